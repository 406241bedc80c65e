"""The write schema as SQLAlchemy metadata: the source Alembic migrations are checked against.

The application itself talks to these tables with plain SQL through psycopg (prepared
statements on a hot path); this metadata exists so ``alembic check`` can prove that the
migrations and the model never drift.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.types import UserDefinedType

metadata = sa.MetaData(schema="write")


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id type (``xid8``), which SQLAlchemy does not ship."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


products = sa.Table(
    "products",
    metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.CheckConstraint("price > 0", name="products_price_positive"),
    sa.CheckConstraint("status IN ('active', 'discontinued')", name="products_status_known"),
)

stock_items = sa.Table(
    "stock_items",
    metadata,
    sa.Column("sku", sa.Text, sa.ForeignKey("write.products.sku"), primary_key=True),
    sa.Column("on_hand", sa.Integer, nullable=False),
    sa.Column("reserved", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # The domain guards these; the database makes a bug loud instead of silent.
    sa.CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="stock_items_levels_valid"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("paid_amount", sa.BigInteger, nullable=False),
    sa.Column("refund", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.CheckConstraint(
        "status IN ('placed', 'paid', 'shipped', 'cancelled')", name="orders_status_known"
    ),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column(
        "order_id", pg.UUID(as_uuid=False), sa.ForeignKey("write.orders.id"), primary_key=True
    ),
    sa.Column("line_no", sa.SmallInteger, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
)

event_log = sa.Table(
    "event_log",
    metadata,
    sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column(
        "transaction_id", Xid8(), nullable=False, server_default=sa.text("pg_current_xact_id()")
    ),
    sa.Column("event_id", pg.UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("stream_type", sa.Text, nullable=False),
    sa.Column("stream_id", sa.Text, nullable=False),
    sa.Column("stream_version", sa.Integer, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("schema_version", sa.SmallInteger, nullable=False),
    sa.Column("payload", pg.JSONB, nullable=False),
    sa.Column("metadata", pg.JSONB, nullable=False),
    sa.Column(
        "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.UniqueConstraint("stream_id", "stream_version", name="event_log_stream_version_key"),
    # The gap-safe reader walks the log in (transaction_id, position) order.
    sa.Index("event_log_transaction_position_idx", "transaction_id", "position"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.LargeBinary, nullable=False),
    sa.Column("status_code", sa.SmallInteger, nullable=False),
    sa.Column("response_body", sa.LargeBinary, nullable=False),
    sa.Column("response_headers", pg.JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("idempotency_keys_expires_at_idx", "expires_at"),
)
