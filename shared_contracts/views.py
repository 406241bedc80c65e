"""Read-model representations shared by the projector (cache refresh) and the query API.

These are exactly the JSON shapes API.md gives for single resources. The projector writes
them to the Redis cache after commit; the query API serves them from the cache or builds
them from the read tables. One shape, so a cached value and a fresh one never differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec


def rfc3339(dt: datetime) -> str:
    """``dt`` as every API timestamp is shown: RFC 3339 in UTC, always with six fraction
    digits and a ``Z`` (``2026-01-02T03:04:05.000006Z``).

    Fixed width on purpose: the projector's cached views and the query API's fresh ones
    must be byte-for-byte equal, also for a whole second (``.000000Z``, never dropped), and
    the strings sort like the moments they name. A naive ``dt`` is taken as local time, as
    :meth:`datetime.astimezone` does.
    """
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ProductView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /products/{sku}``."""

    sku: str
    name: str
    price: int
    status: str
    on_hand: int
    reserved: int
    available: int
    units_sold: int
    revenue: int
    version: int
    updated_at: str


class OrderLineView(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order, with the product name and price captured at order time."""

    sku: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /orders/{id}``."""

    id: str
    customer_id: str
    status: str
    lines: list[OrderLineView]
    total: int
    paid_amount: int
    refund: int
    placed_at: str
    paid_at: str | None
    shipped_at: str | None
    cancelled_at: str | None
    version: int


def product_cache_key(sku: str) -> str:
    """Redis key of a cached :class:`ProductView`."""
    return f"orderdesk:product:{sku}"


def order_cache_key(order_id: str) -> str:
    """Redis key of a cached :class:`OrderView`."""
    return f"orderdesk:order:{order_id}"


TOP_PRODUCTS_BY_UNITS = "orderdesk:top-products:units"
TOP_PRODUCTS_BY_REVENUE = "orderdesk:top-products:revenue"
# Set by the query API once it has seeded both sorted sets from product_view; a rebuild that
# swaps product_view deletes it (and the sets) so the next read reseeds them.
TOP_PRODUCTS_COMPLETE = "orderdesk:top-products:complete"


# The read tables' columns behind each view, in the order the converters below expect;
# the projector (cache refresh) and the query API both select with them.
PRODUCT_COLUMNS = (
    "sku, name, price, status, on_hand, reserved, available, units_sold, "
    "revenue, version, updated_at"
)
ORDER_COLUMNS = (
    "order_id::text, customer_id, status, lines, total, paid_amount, refund, "
    "placed_at, paid_at, shipped_at, cancelled_at, version"
)


def _maybe(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def product_from_row(row: Sequence[Any]) -> ProductView:
    """A :class:`ProductView` from a row selected with :data:`PRODUCT_COLUMNS`."""
    (
        sku,
        name,
        price,
        status,
        on_hand,
        reserved,
        available,
        units_sold,
        revenue,
        version,
        updated_at,
    ) = row[:11]
    return ProductView(
        sku=sku,
        name=name,
        price=price,
        status=status,
        on_hand=on_hand,
        reserved=reserved,
        available=available,
        units_sold=units_sold,
        revenue=revenue,
        version=version,
        updated_at=rfc3339(updated_at),
    )


def _line(line: Mapping[str, Any]) -> OrderLineView:
    quantity = int(line["quantity"])
    unit_price = int(line["unit_price"])
    return OrderLineView(
        sku=str(line["sku"]),
        name=str(line["name"]),
        quantity=quantity,
        unit_price=unit_price,
        line_total=int(line.get("line_total", quantity * unit_price)),
    )


def order_from_row(row: Sequence[Any]) -> OrderView:
    """An :class:`OrderView` from a row selected with :data:`ORDER_COLUMNS`."""
    (
        order_id,
        customer_id,
        status,
        lines,
        total,
        paid_amount,
        refund,
        placed_at,
        paid_at,
        shipped_at,
        cancelled_at,
        version,
    ) = row[:12]
    return OrderView(
        id=order_id,
        customer_id=customer_id,
        status=status,
        lines=[_line(line) for line in lines],
        total=total,
        paid_amount=paid_amount,
        refund=refund,
        placed_at=rfc3339(placed_at),
        paid_at=_maybe(paid_at),
        shipped_at=_maybe(shipped_at),
        cancelled_at=_maybe(cancelled_at),
        version=version,
    )
