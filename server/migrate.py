"""Schema migrations with Alembic, driven from code (no alembic.ini to ship or find)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates %: escape it (URL-encoded query strings and passwords have it).
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return config


def upgrade(db_url: str) -> None:
    """Bring the database at `db_url` to the newest schema (creating it when empty)."""
    command.upgrade(alembic_config(db_url), "head")
