"""Rows of the read tables as the JSON API.md shows, and the conditional-GET helpers.

The single-resource shapes are :mod:`shared_contracts.views` — the projector caches the
same Structs — so a representation built here and one read from Redis are byte-for-byte
the same. Timestamps are :func:`shared_contracts.views.rfc3339` (UTC, microseconds, ``Z``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from starlette.responses import Response

from shared_contracts.views import OrderLineView, OrderView, ProductView, rfc3339

JSON = "application/json"

encoder = msgspec.json.Encoder()

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


class ProductPage(msgspec.Struct, frozen=True):
    """A page of ``GET /products``: ``{"items": [product], "next_cursor": str | None}``."""

    items: list[ProductView]
    next_cursor: str | None


class OrderPage(msgspec.Struct, frozen=True):
    """A page of ``GET /orders`` or ``GET /customers/{id}/orders``, newest first."""

    items: list[OrderView]
    next_cursor: str | None


def etag(version: int) -> str:
    """The strong ETag of a representation at ``version``."""
    return f'"{version}"'


def not_modified(if_none_match: str | None, version: int) -> bool:
    """True when ``If-None-Match`` names the current version (or ``*``)."""
    if if_none_match is None:
        return False
    current = etag(version)
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == current:
            return True
    return False


def single(
    payload: bytes, version: int, if_none_match: str | None, cache_control: str = "no-cache"
) -> Response:
    """A single resource with its ETag, or 304 when the client has this version."""
    headers = {"ETag": etag(version), "Cache-Control": cache_control}
    if not_modified(if_none_match, version):
        return Response(status_code=304, headers=headers)
    return Response(payload, headers=headers, media_type=JSON)


def json_response(value: Any, cache_control: str | None = None) -> Response:
    """``value`` encoded with msgspec."""
    headers = {"Cache-Control": cache_control} if cache_control else None
    return Response(encoder.encode(value), headers=headers, media_type=JSON)
