"""``GET /products`` (search, filters, keyset pages) and ``GET /products/{sku}`` (cached)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orderdesk.problems import ProblemError
from query_side import cache
from query_side.consistency import PRODUCTS, await_projections
from query_side.pagination import (
    decode_cursor,
    encode_cursor,
    fingerprint,
    invalid_query,
    parse_choice,
    parse_limit,
)
from query_side.representations import ProductPage, encoder, json_response, single
from query_side.resources import resources
from shared_contracts.views import PRODUCT_COLUMNS, product_cache_key, product_from_row

SKU = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")
STATUSES = ("active", "discontinued")
MAX_Q = 200

# sort name -> (ORDER BY, the sort key as selected, "after the cursor" condition, key types)
SORTS: dict[str, tuple[str, str, str, tuple[type, ...]]] = {
    "sku": ("sku", "sku", "sku > %s", (str,)),
    "name": ("lower(name), sku", "lower(name), sku", "(lower(name), sku) > (%s, %s)", (str, str)),
    "-units_sold": (
        "units_sold DESC, sku",
        "units_sold, sku",
        "(units_sold < %s OR (units_sold = %s AND sku > %s))",
        (int, str),
    ),
    "-revenue": (
        "revenue DESC, sku",
        "revenue, sku",
        "(revenue < %s OR (revenue = %s AND sku > %s))",
        (int, str),
    ),
}
IN_STOCK = {"true": True, "1": True, "false": False, "0": False}


def _not_found(sku: str) -> ProblemError:
    return ProblemError(404, "not-found", f"No product with sku {sku!r}.")


async def get_product(request: Request) -> Response:
    """One product, from the cache when it has it (no PostgreSQL round trip on a hit)."""
    res = resources(request)
    sku: str = request.path_params["sku"]
    if SKU.fullmatch(sku) is None:
        raise _not_found(sku)
    # After a wait for a token the cache may still hold the version before the write
    # (the projector refreshes it after commit): read PostgreSQL instead.
    fresh = "x-consistency-token" in request.headers and await await_projections(
        request, res.watcher, PRODUCTS
    )
    key = product_cache_key(sku)
    if res.cache_ttl and not fresh:
        hit = await cache.cached(res.reads, key)
        if hit is not None:
            res.stats.hit("product")
            return single(hit[1], hit[0], request.headers.get("if-none-match"))
        res.stats.miss("product")
    async with res.connection() as conn:
        row = await (
            await conn.execute(
                f"SELECT {PRODUCT_COLUMNS} FROM read.product_view WHERE sku = %s", [sku]
            )
        ).fetchone()
    if row is None:
        raise _not_found(sku)
    view = product_from_row(row)
    payload = encoder.encode(view)
    if res.cache_ttl:
        await cache.fill(res.reads, key, view.version, payload, res.cache_ttl)
    return single(payload, view.version, request.headers.get("if-none-match"))


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_products(request: Request) -> Response:
    """A page of products: ``q`` (name or sku, case-insensitive), ``status``, ``in_stock``,
    ``sort`` (sku, name, -units_sold, -revenue), ``limit``, ``cursor``."""
    res = resources(request)
    params = request.query_params
    limit = parse_limit(params)
    sort = parse_choice(params, "sort", tuple(SORTS), "sku") or "sku"
    status = parse_choice(params, "status", STATUSES)
    q = params.get("q", "")
    if len(q) > MAX_Q:
        raise invalid_query("q", f"At most {MAX_Q} characters.")
    if "\x00" in q:  # PostgreSQL text cannot hold NUL: refuse it here, not with a 500
        raise invalid_query("q", "Must not contain NUL characters.")
    in_stock_raw = params.get("in_stock")
    in_stock: bool | None = None
    if in_stock_raw:
        if in_stock_raw.lower() not in IN_STOCK:
            raise invalid_query("in_stock", "Expected true or false.")
        in_stock = IN_STOCK[in_stock_raw.lower()]
    order_by, key_columns, after, key_types = SORTS[sort]
    query_id = fingerprint("products", q, status, in_stock, sort)
    key = decode_cursor(params.get("cursor"), query_id, key_types)
    await await_projections(request, res.watcher, PRODUCTS)

    where: list[str] = []
    args: list[Any] = []
    if q:
        where.append("(name ILIKE %s OR sku ILIKE %s)")
        args += [_like(q), _like(q)]
    if status is not None:
        where.append("status = %s")
        args.append(status)
    if in_stock is not None:
        where.append("available > 0" if in_stock else "available <= 0")
    if key is not None:
        where.append(after)
        args += [key[0], key[0], key[1]] if sort.startswith("-") else key
    sql = (
        f"SELECT {PRODUCT_COLUMNS}, {key_columns} FROM read.product_view"
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        f" ORDER BY {order_by} LIMIT %s"
    )
    args.append(limit + 1)
    async with res.connection() as conn:
        rows = await (await conn.execute(sql, args)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(query_id, list(rows[-1][11:]))
    return json_response(
        ProductPage(items=[product_from_row(r) for r in rows], next_cursor=next_cursor)
    )
