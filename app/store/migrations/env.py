"""Alembic environment for the local database, driven from app.store.db (no alembic.ini).

The caller hands over an open connection in `config.attributes["connection"]`: the key never
goes into a config string, and the migration runs inside the caller's engine settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from app.store.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("app.store.db runs the migrations with an open connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
