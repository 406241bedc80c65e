"""Orders: one order (cached, owner or staff), its audit trail, and newest-first pages.

A customer asking for another customer's order gets the same 404 as for a missing one,
so order ids cannot be probed. ``/customers/{other}/orders`` is a 403 for a customer: the
path names a customer, not an order, and the caller knows it is not theirs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from orderdesk.auth import Principal
from orderdesk.problems import ProblemError
from query_side import cache
from query_side.consistency import HISTORY, ORDERS, await_projections
from query_side.pagination import (
    decode_cursor,
    encode_cursor,
    fingerprint,
    parse_choice,
    parse_limit,
)
from query_side.representations import OrderPage, encoder, json_response, single
from query_side.resources import Resources, order_reader, resources, staff
from shared_contracts.views import ORDER_COLUMNS, order_cache_key, order_from_row, rfc3339

STATUSES = ("placed", "paid", "shipped", "cancelled")
ORDER_PRIVATE = "private, no-cache"


class _Owner(msgspec.Struct):
    customer_id: str


class HistoryEntry(msgspec.Struct, frozen=True):
    """One event of an order's audit trail."""

    event_type: str
    version: int
    at: str
    actor: str | None
    request_id: str | None
    # The stored JSON object is passed through as is; the schema still says "object".
    data: Annotated[
        msgspec.Raw,
        msgspec.Meta(
            extra_json_schema={"type": "object"},
            description="The event payload as the API would show it.",
        ),
    ]


def _not_found() -> ProblemError:
    return ProblemError(404, "not-found", "No such order.")


def _order_id(request: Request) -> str:
    """The canonical order id of the path; 404 when it is not a UUID (it cannot exist)."""
    try:
        return str(uuid.UUID(request.path_params["order_id"]))
    except ValueError:
        raise _not_found() from None


def _may_read(who: Principal, customer_id: str) -> bool:
    return who.is_staff or who.subject == customer_id


async def get_order(request: Request) -> Response:
    """One order, for its customer or staff."""
    res = resources(request)
    who = order_reader(request, res)
    order_id = _order_id(request)
    fresh = "x-consistency-token" in request.headers and await await_projections(
        request, res.watcher, ORDERS
    )
    key = order_cache_key(order_id)
    if res.cache_ttl and not fresh:
        hit = await cache.cached(res.reads, key)
        if hit is not None:
            res.stats.hit("order")
            version, payload = hit
            if (
                not who.is_staff
                and msgspec.json.decode(payload, type=_Owner).customer_id != who.subject
            ):
                raise _not_found()
            return single(payload, version, request.headers.get("if-none-match"), ORDER_PRIVATE)
        res.stats.miss("order")
    async with res.connection() as conn:
        row = await (
            await conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM read.order_view WHERE order_id = %s", [order_id]
            )
        ).fetchone()
    if row is None:
        raise _not_found()
    view = order_from_row(row)
    payload = encoder.encode(view)
    if res.cache_ttl:
        await cache.fill(res.reads, key, view.version, payload, res.cache_ttl)
    if not _may_read(who, view.customer_id):
        raise _not_found()
    return single(payload, view.version, request.headers.get("if-none-match"), ORDER_PRIVATE)


async def order_history(request: Request) -> Response:
    """The audit trail of an order, oldest first."""
    res = resources(request)
    who = order_reader(request, res)
    order_id = _order_id(request)
    await await_projections(request, res.watcher, HISTORY)
    async with res.connection() as conn:
        # The owner from the order row, or from the history itself when order_view lags.
        owner = await (
            await conn.execute(
                "SELECT COALESCE("
                " (SELECT customer_id FROM read.order_view WHERE order_id = %(id)s),"
                " (SELECT data->>'customer_id' FROM read.order_history"
                "  WHERE order_id = %(id)s ORDER BY version LIMIT 1))",
                {"id": order_id},
            )
        ).fetchone()
        if owner is None or owner[0] is None or not _may_read(who, owner[0]):
            raise _not_found()
        rows = await (
            await conn.execute(
                "SELECT event_type, version, at, actor, request_id, data::text"
                " FROM read.order_history WHERE order_id = %s ORDER BY version",
                [order_id],
            )
        ).fetchall()
    return json_response(
        [
            HistoryEntry(
                event_type=t,
                version=v,
                at=rfc3339(at),
                actor=actor,
                request_id=rid,
                data=msgspec.Raw(data.encode()),
            )
            for t, v, at, actor, rid, data in rows
        ],
        ORDER_PRIVATE,
    )


def _cursor_key(raw: str | None, query_id: str) -> tuple[datetime, str] | None:
    key = decode_cursor(raw, query_id, (str, str))
    if key is None:
        return None
    try:
        return datetime.fromisoformat(key[0]), str(uuid.UUID(key[1]))
    except ValueError:
        raise ProblemError(
            400, "invalid-cursor", "The cursor is not one this API issued."
        ) from None


async def _page(request: Request, res: Resources, customer_id: str | None) -> Response:
    params = request.query_params
    limit = parse_limit(params)
    status = parse_choice(params, "status", STATUSES)
    query_id = fingerprint("orders", customer_id or "*", status)
    key = _cursor_key(params.get("cursor"), query_id)
    await await_projections(request, res.watcher, ORDERS)
    where: list[str] = []
    args: list[Any] = []
    if customer_id is not None:
        where.append("customer_id = %s")
        args.append(customer_id)
    if status is not None:
        where.append("status = %s")
        args.append(status)
    if key is not None:
        where.append("(placed_at, order_id) < (%s, %s::uuid)")
        args += list(key)
    sql = (
        f"SELECT {ORDER_COLUMNS}, placed_at FROM read.order_view"
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        " ORDER BY placed_at DESC, order_id DESC LIMIT %s"
    )
    args.append(limit + 1)
    async with res.connection() as conn:
        rows = await (await conn.execute(sql, args)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(query_id, [last[12].isoformat(), last[0]])
    return json_response(
        OrderPage(items=[order_from_row(r) for r in rows], next_cursor=next_cursor), ORDER_PRIVATE
    )


async def list_orders(request: Request) -> Response:
    """All orders, newest first (staff)."""
    res = resources(request)
    staff(request, res)
    return await _page(request, res, None)


async def customer_orders(request: Request) -> Response:
    """One customer's orders, newest first (that customer or staff)."""
    res = resources(request)
    who = order_reader(request, res)
    customer_id: str = request.path_params["customer_id"]
    if "\x00" in customer_id:  # no customer id holds NUL, and PostgreSQL text cannot
        raise ProblemError(404, "not-found", "No such customer.")
    if not who.is_staff and who.subject != customer_id:
        raise ProblemError(403, "forbidden", "Customers may only list their own orders.")
    return await _page(request, res, customer_id)
