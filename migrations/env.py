"""Alembic environment: migrates the database given by the config's ``sqlalchemy.url``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy.dialects.postgresql.base import ischema_names

from command_side.tables import Xid8
from command_side.tables import metadata as write_metadata
from projections.tables import metadata as read_metadata

SCHEMAS = {"write", "read"}
# Teach reflection the xid8 type so `alembic check` compares it instead of warning.
ischema_names.setdefault("xid8", Xid8)


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Only our two schemas take part in autogenerate/check; `public` holds alembic_version.
    if type_ == "schema":
        return name in SCHEMAS
    return True


def run_migrations() -> None:
    config = context.config
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=[write_metadata, read_metadata],
            include_schemas=True,
            include_name=_include_name,
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
