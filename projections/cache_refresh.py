"""After a batch commits: refresh the Redis keys of the rows it changed.

Cached single resources are written with the versioned ``set_if_newer`` (a stale fill by
the query API cannot overwrite a newer projection), and the top-products sorted sets get
ABSOLUTE scores read from the committed ``product_view`` rows — never increments — so a
replay or a crash cannot make them drift. Redis is a cache here: errors are logged by the
caller and never fail a batch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import msgspec
import psycopg
from redis.exceptions import NoScriptError

from orderdesk.cache import SET_IF_NEWER, SET_IF_NEWER_SHA
from shared_contracts.views import (
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
    TOP_PRODUCTS_BY_REVENUE,
    TOP_PRODUCTS_BY_UNITS,
    TOP_PRODUCTS_COMPLETE,
    OrderView,
    ProductView,
    order_cache_key,
    order_from_row,
    product_cache_key,
    product_from_row,
)

_encoder = msgspec.json.Encoder()


def load_products(cur: psycopg.Cursor[Any], table: str, skus: Collection[str]) -> list[ProductView]:
    """The committed-to-be rows of ``skus`` as views (call inside the batch transaction)."""
    if not skus:
        return []
    query = f"SELECT {PRODUCT_COLUMNS} FROM {table} WHERE sku = ANY(%s)"
    cur.execute(query, (list(skus),), prepare=False)  # planned as it is (projections.model)
    return [product_from_row(row) for row in cur.fetchall()]


def load_orders(cur: psycopg.Cursor[Any], table: str, ids: Collection[str]) -> list[OrderView]:
    """The rows of order ``ids`` as views (call inside the batch transaction)."""
    if not ids:
        return []
    cur.execute(
        f"SELECT {ORDER_COLUMNS} FROM {table} WHERE order_id = ANY(%s::uuid[])",
        (list(ids),),
        prepare=False,  # planned for the table as it is (projections.model)
    )
    return [order_from_row(row) for row in cur.fetchall()]


def write_views(
    client: Any, products: Iterable[ProductView], orders: Iterable[OrderView], ttl: int
) -> None:
    """Cache the views (newest version wins) and set absolute top-product scores.

    One pipeline, one round trip, whatever the number of rows: the script goes by its
    SHA1, and only a server that answers NOSCRIPT (restarted, flushed) is sent its text and
    the pipeline again (every command in it is idempotent).
    """
    products, orders = list(products), list(orders)
    try:
        _views_pipeline(client, products, orders, ttl).execute()
    except NoScriptError:
        client.script_load(SET_IF_NEWER)
        _views_pipeline(client, products, orders, ttl).execute()


def _views_pipeline(
    client: Any, products: list[ProductView], orders: list[OrderView], ttl: int
) -> Any:
    pipe = client.pipeline(transaction=False)
    units: dict[str, int] = {}
    revenue: dict[str, int] = {}
    for product in products:
        key = product_cache_key(product.sku)
        pipe.evalsha(SET_IF_NEWER_SHA, 1, key, product.version, _encoder.encode(product), ttl)
        units[product.sku] = product.units_sold
        revenue[product.sku] = product.revenue
    for order in orders:
        key = order_cache_key(order.id)
        pipe.evalsha(SET_IF_NEWER_SHA, 1, key, order.version, _encoder.encode(order), ttl)
    if units:
        pipe.zadd(TOP_PRODUCTS_BY_UNITS, units)
        pipe.zadd(TOP_PRODUCTS_BY_REVENUE, revenue)
    return pipe


def reset_after_rebuild(client: Any, projection: str) -> None:
    """After a rebuild swap: drop the projection's cached rows (and the leaderboards).

    Cached values are dropped rather than overwritten: a rebuilt row may carry a lower
    version than the cached one, which ``set_if_newer`` would (rightly) refuse. For
    ``product_view`` the top-product sets and their completeness marker go too, in one
    transaction, so the query API reseeds both sets from the new table on its next read.
    The live projector's absolute scores need no such reset: they leave the marker alone.
    """
    patterns = {
        "product_view": product_cache_key("*"),
        "order_view": order_cache_key("*"),
    }
    pattern = patterns.get(projection)
    if pattern is None:
        return
    if projection == "product_view":
        client.delete(TOP_PRODUCTS_COMPLETE, TOP_PRODUCTS_BY_UNITS, TOP_PRODUCTS_BY_REVENUE)
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
