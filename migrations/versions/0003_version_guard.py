"""write.versions_matched: lets one statement refuse a save whose guarded rows moved.

A command's save is one statement (command_side.save_statement). On the optimistic path
it runs without a transaction around it, so it must fail by itself when a guarded update
(``AND version = <loaded>``) found its row changed: the statement's last expression calls
this function, which raises SQLSTATE OD409 then, and the whole statement rolls back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION write.versions_matched(matched boolean) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            IF matched IS NOT TRUE THEN
                RAISE EXCEPTION 'a row this command read was changed by another command'
                    USING ERRCODE = 'OD409';
            END IF;
            RETURN true;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION write.versions_matched(boolean)")
