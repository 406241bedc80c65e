"""Read schema: denormalised views, projection state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('daily_sales',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('orders', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('units', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('revenue', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cancelled', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('day'),
    schema='read'
    )
    op.create_table('order_history',
    sa.Column('order_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.Text(), nullable=True),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('order_id', 'version'),
    schema='read'
    )
    op.create_table('order_view',
    sa.Column('order_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('lines', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('paid_amount', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('refund', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('order_id'),
    schema='read'
    )
    op.create_index('order_view_customer_idx', 'order_view', ['customer_id', sa.literal_column('placed_at DESC'), sa.literal_column('order_id DESC')], unique=False, schema='read')
    op.create_index('order_view_placed_idx', 'order_view', [sa.literal_column('placed_at DESC'), sa.literal_column('order_id DESC')], unique=False, schema='read')
    op.create_index('order_view_status_idx', 'order_view', ['status', sa.literal_column('placed_at DESC'), sa.literal_column('order_id DESC')], unique=False, schema='read')
    op.create_table('product_view',
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('on_hand', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('reserved', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('available', sa.BigInteger(), sa.Computed('on_hand - reserved', ), nullable=False),
    sa.Column('units_sold', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('revenue', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sku'),
    schema='read'
    )
    op.create_index('product_view_name_idx', 'product_view', [sa.literal_column('lower(name)'), 'sku'], unique=False, schema='read')
    op.create_index('product_view_revenue_idx', 'product_view', [sa.literal_column('revenue DESC'), 'sku'], unique=False, schema='read')
    op.create_index('product_view_units_idx', 'product_view', [sa.literal_column('units_sold DESC'), 'sku'], unique=False, schema='read')
    op.create_table('projection_state',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('checkpoint_tx', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('checkpoint_pos', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('events_applied', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('events_behind', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('seconds_behind', sa.Float(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('failed_event_id', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('failed_event_position', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("state IN ('live', 'rebuilding', 'stalled')", name='projection_state_state_known'),
    sa.PrimaryKeyConstraint('name'),
    schema='read'
    )


def downgrade() -> None:
    op.drop_table('projection_state', schema='read')
    op.drop_index('product_view_units_idx', table_name='product_view', schema='read')
    op.drop_index('product_view_revenue_idx', table_name='product_view', schema='read')
    op.drop_index('product_view_name_idx', table_name='product_view', schema='read')
    op.drop_table('product_view', schema='read')
    op.drop_index('order_view_status_idx', table_name='order_view', schema='read')
    op.drop_index('order_view_placed_idx', table_name='order_view', schema='read')
    op.drop_index('order_view_customer_idx', table_name='order_view', schema='read')
    op.drop_table('order_view', schema='read')
    op.drop_table('order_history', schema='read')
    op.drop_table('daily_sales', schema='read')
