"""The read schema as SQLAlchemy metadata (checked against migrations by ``alembic check``).

Every table is denormalised for the queries API.md lists; the query side reads them with
plain SQL. Timestamps come from the events (``recorded_at``), so a rebuild reproduces them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData(schema="read")

projection_state = sa.Table(
    "projection_state",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    # The gap-safe checkpoint: last (transaction_id, position) applied. xid8 values of the
    # write database are kept as bigint, since the read database may be another server.
    sa.Column("checkpoint_tx", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("checkpoint_pos", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("events_applied", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("events_behind", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("seconds_behind", sa.Float, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("failed_event_id", pg.UUID(as_uuid=False)),
    sa.Column("failed_event_position", sa.BigInteger),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    ),
    sa.CheckConstraint(
        "state IN ('live', 'rebuilding', 'stalled')", name="projection_state_state_known"
    ),
)

product_view = sa.Table(
    "product_view",
    metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("on_hand", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("available", sa.BigInteger, sa.Computed("on_hand - reserved"), nullable=False),
    sa.Column("units_sold", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("revenue", sa.BigInteger, nullable=False, server_default="0"),
    # Row version: +1 for every event applied to this row, so it changes with every
    # change of the representation (ETag) and orders cache writes (newest wins).
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("product_view_name_idx", sa.text("lower(name)"), "sku"),
    sa.Index("product_view_units_idx", sa.text("units_sold DESC"), "sku"),
    sa.Index("product_view_revenue_idx", sa.text("revenue DESC"), "sku"),
)

order_view = sa.Table(
    "order_view",
    metadata,
    sa.Column("order_id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    # [{sku, name, quantity, unit_price, line_total}] with names as they were at order time.
    sa.Column("lines", pg.JSONB, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("paid_amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refund", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cancel_reason", sa.Text),
    sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("paid_at", sa.DateTime(timezone=True)),
    sa.Column("shipped_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.Column("version", sa.BigInteger, nullable=False),
    # Keyset pagination, newest first, overall / per customer / per status.
    sa.Index("order_view_placed_idx", sa.text("placed_at DESC"), sa.text("order_id DESC")),
    sa.Index(
        "order_view_customer_idx",
        "customer_id",
        sa.text("placed_at DESC"),
        sa.text("order_id DESC"),
    ),
    sa.Index(
        "order_view_status_idx", "status", sa.text("placed_at DESC"), sa.text("order_id DESC")
    ),
)

order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("order_id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("data", pg.JSONB, nullable=False),
)

daily_sales = sa.Table(
    "daily_sales",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("orders", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("units", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("revenue", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cancelled", sa.BigInteger, nullable=False, server_default="0"),
)
