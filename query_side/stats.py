"""Staff statistics: top products (Redis sorted sets, rebuilt from ``product_view`` when
missing) and daily sales."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from query_side.cache import RedisGuard
from query_side.consistency import DAILY_SALES, PRODUCTS, await_projections
from query_side.pagination import invalid_query, parse_choice, parse_limit
from query_side.representations import json_response
from query_side.resources import Resources, resources, staff
from shared_contracts.views import (
    TOP_PRODUCTS_BY_REVENUE,
    TOP_PRODUCTS_BY_UNITS,
    TOP_PRODUCTS_COMPLETE,
)

TOP_DEFAULT_LIMIT = 10
MAX_DAYS = 366
DEFAULT_DAYS = 30
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# by -> (sorted set, column). The sets hold every product with its absolute figure.
BY = {
    "units": (TOP_PRODUCTS_BY_UNITS, "units_sold"),
    "revenue": (TOP_PRODUCTS_BY_REVENUE, "revenue"),
}
# Set once a rebuild has put every product into both sets. A flush removes it with the
# sets, so a set the projector has refilled with a few members only is never trusted.


class TopProduct(msgspec.Struct, frozen=True):
    """One row of ``GET /stats/top-products``."""

    sku: str
    name: str
    units_sold: int
    revenue: int


class DailySales(msgspec.Struct, frozen=True):
    """One day of ``GET /stats/daily-sales``."""

    day: str
    orders: int
    units: int
    revenue: int
    cancelled: int


async def _ranked_skus(guard: RedisGuard, key: str, limit: int) -> list[str] | None:
    """The best ``limit`` skus from the sorted set, or None when it cannot be trusted."""

    async def read() -> Any:
        async with guard.client.pipeline(transaction=False) as pipe:
            pipe.exists(TOP_PRODUCTS_COMPLETE)
            pipe.zrevrange(key, 0, limit - 1)
            return await pipe.execute()

    result = await guard.call(read)
    if result is None or not result[0]:
        return None
    return [member.decode() for member in result[1]]


async def _rebuild_sets(guard: RedisGuard, rows: list[tuple[str, int, int]]) -> None:
    """Put every product into both sets with ``ZADD NX``: a figure the projector wrote
    meanwhile (newer than our read) is never overwritten by ours."""

    async def write() -> Any:
        async with guard.client.pipeline(transaction=False) as pipe:
            if rows:
                pipe.zadd(TOP_PRODUCTS_BY_UNITS, {sku: units for sku, units, _ in rows}, nx=True)
                pipe.zadd(TOP_PRODUCTS_BY_REVENUE, {sku: rev for sku, _, rev in rows}, nx=True)
            pipe.set(TOP_PRODUCTS_COMPLETE, b"1")
            return await pipe.execute()

    await guard.call(write)


async def _top_from_sets(
    res: Resources, key: str, column: str, limit: int
) -> list[TopProduct] | None:
    skus = await _ranked_skus(res.redis, key, limit)
    if skus is None:
        return None
    async with res.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT sku, name, units_sold, revenue FROM read.product_view WHERE sku = ANY(%s)",
                [skus],
            )
        ).fetchall()
    items = [TopProduct(*row) for row in rows]
    # The figures come from PostgreSQL; order by them so the answer is self-consistent.
    items.sort(key=lambda p: (-(p.units_sold if column == "units_sold" else p.revenue), p.sku))
    return items


async def top_products(request: Request) -> Response:
    """``by`` units or revenue, ``limit`` 1 to 100 (default 10), best first."""
    res = resources(request)
    staff(request, res)
    params = request.query_params
    by = parse_choice(params, "by", tuple(BY), "units") or "units"
    limit = parse_limit(params, default=TOP_DEFAULT_LIMIT)
    key, column = BY[by]
    # With a token, product_view has the write but the sets may not yet (they are
    # refreshed after commit): answer from PostgreSQL.
    fresh = await await_projections(request, res.watcher, PRODUCTS)
    if not fresh and res.redis.available:
        items = await _top_from_sets(res, key, column, limit)
        if items is not None:
            res.stats.hit("top-products")
            return json_response(items)
        res.stats.miss("top-products")
    async with res.connection() as conn:
        rows = await (
            await conn.execute(
                f"SELECT sku, name, units_sold, revenue FROM read.product_view"
                f" ORDER BY {column} DESC, sku LIMIT %s",
                [limit],
            )
        ).fetchall()
        rebuild = None
        if not fresh and res.redis.available:
            rebuild = await (
                await conn.execute("SELECT sku, units_sold, revenue FROM read.product_view")
            ).fetchall()
    if rebuild is not None:
        await _rebuild_sets(res.redis, rebuild)
    return json_response([TopProduct(*row) for row in rows])


def _date(params: Any, name: str) -> date | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        if _DATE.fullmatch(raw) is None:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid_query(name, "Expected a date as YYYY-MM-DD.") from None


async def daily_sales(request: Request) -> Response:
    """Days from ``from`` to ``to`` inclusive (default: the last 30 days), at most 366."""
    res = resources(request)
    staff(request, res)
    start = _date(request.query_params, "from")
    end = _date(request.query_params, "to")
    try:
        if end is None:
            end = (
                start + timedelta(days=DEFAULT_DAYS - 1)
                if start is not None
                else datetime.now(UTC).date()
            )
        if start is None:
            start = end - timedelta(days=DEFAULT_DAYS - 1)
    except OverflowError:  # a default window past year 1 or 9999
        raise invalid_query(
            "from" if start is None else "to", "Give both from and to for dates this far out."
        ) from None
    if start > end:
        raise invalid_query("from", "from must not be after to.")
    if (end - start).days + 1 > MAX_DAYS:
        raise invalid_query("to", f"At most {MAX_DAYS} days at once.")
    await await_projections(request, res.watcher, DAILY_SALES)
    async with res.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT day, orders, units, revenue, cancelled FROM read.daily_sales"
                " WHERE day BETWEEN %s AND %s ORDER BY day",
                [start, end],
            )
        ).fetchall()
    return json_response([DailySales(day.isoformat(), o, u, r, c) for day, o, u, r, c in rows])
