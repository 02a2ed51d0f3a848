"""Alembic environment: the URL comes from the caller's Config (see server.migrate)."""

from __future__ import annotations

from alembic import context

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
            context.run_migrations()
    engine.dispose()
