"""Alembic environment: the URL comes from the caller's Config (see server.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from server.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "server.migrate sets sqlalchemy.url"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several API processes may start (and migrate) at once: one at a time; the
                # others then find the schema current. (SQLite: BEGIN IMMEDIATE serializes.)
                connection.execute(text("SELECT pg_advisory_xact_lock(724310002)"))
            context.run_migrations()
    engine.dispose()
