"""Write schema: aggregates, event log (outbox) and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from command_side.tables import Xid8

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS write")
    op.execute("CREATE SCHEMA IF NOT EXISTS read")
    op.create_table(
        "products",
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("price > 0", name="products_price_positive"),
        sa.CheckConstraint("status IN ('active', 'discontinued')", name="products_status_known"),
        schema="write",
    )
    op.create_table(
        "stock_items",
        sa.Column("sku", sa.Text, sa.ForeignKey("write.products.sku"), primary_key=True),
        sa.Column("on_hand", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("reserved >= 0 AND reserved <= on_hand",
                           name="stock_items_levels_valid"),
        schema="write",
    )
    op.create_table(
        "orders",
        sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("paid_amount", sa.BigInteger, nullable=False),
        sa.Column("refund", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("status IN ('placed', 'paid', 'shipped', 'cancelled')",
                           name="orders_status_known"),
        schema="write",
    )
    op.create_table(
        "order_lines",
        sa.Column("order_id", pg.UUID(as_uuid=False), sa.ForeignKey("write.orders.id"),
                  primary_key=True),
        sa.Column("line_no", sa.SmallInteger, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=False),
        schema="write",
    )
    op.create_table(
        "event_log",
        sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("transaction_id", Xid8(), nullable=False,
                  server_default=sa.text("pg_current_xact_id()")),
        sa.Column("event_id", pg.UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("stream_type", sa.Text, nullable=False),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("metadata", pg.JSONB, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.UniqueConstraint("stream_id", "stream_version", name="event_log_stream_version_key"),
        schema="write",
    )
    op.create_index("event_log_transaction_position_idx", "event_log",
                    ["transaction_id", "position"], schema="write")
    # NOTIFY fires inside the writing transaction and is delivered on commit, so the relay
    # wakes for every committed batch and never for a rolled-back one. Statement-level:
    # one notification per INSERT, and PostgreSQL folds duplicates within a transaction.
    op.execute("""
        CREATE FUNCTION write.notify_event_appended() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('orderdesk_events', '');
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER event_log_notify AFTER INSERT ON write.event_log
        FOR EACH STATEMENT EXECUTE FUNCTION write.notify_event_appended()
    """)
    op.create_table(
        "idempotency_keys",
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.LargeBinary, nullable=False),
        sa.Column("status_code", sa.SmallInteger, nullable=False),
        sa.Column("response_body", sa.LargeBinary, nullable=False),
        sa.Column("response_headers", pg.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        schema="write",
    )
    op.create_index("idempotency_keys_expires_at_idx", "idempotency_keys", ["expires_at"],
                    schema="write")


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema="write")
    op.execute("DROP TRIGGER event_log_notify ON write.event_log")
    op.execute("DROP FUNCTION write.notify_event_appended()")
    op.drop_table("event_log", schema="write")
    op.drop_table("order_lines", schema="write")
    op.drop_table("orders", schema="write")
    op.drop_table("stock_items", schema="write")
    op.drop_table("products", schema="write")
    op.execute("DROP SCHEMA IF EXISTS read CASCADE")
    op.execute("DROP SCHEMA IF EXISTS write CASCADE")
