"""``/openapi.json`` of the query API, built by :mod:`orderdesk.openapi` from the Structs the
handlers encode their responses with (:mod:`shared_contracts.views`, the page Structs, the
history entries, the stats and projection rows). Nothing here is hand-written JSON Schema:
a parameter's constraints are the ones its handler enforces (API.md §Query API)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from msgspec import Meta

from orderdesk.health import operations_endpoints
from orderdesk.http import MAX_REQUEST_ID
from orderdesk.openapi import Operation, Parameter, build_openapi
from query_side.consistency import MAX_WAIT_MS
from query_side.orders import STATUSES as ORDER_STATUSES
from query_side.orders import HistoryEntry
from query_side.pagination import MAX_CURSOR_LENGTH, MAX_LIMIT
from query_side.products import IN_STOCK, MAX_Q, SKU, SORTS
from query_side.products import STATUSES as PRODUCT_STATUSES
from query_side.projections_status import ProjectionStatus
from query_side.representations import OrderPage, ProductPage
from query_side.stats import BY, DailySales, TopProduct
from shared_contracts.views import OrderView, ProductView

TITLE = "orderdesk query API"
VERSION = "1.0.0"

Sku = Annotated[str, Meta(pattern=f"^{SKU.pattern}$")]
CustomerId = Annotated[str, Meta(min_length=1, max_length=64)]
Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str, Meta(max_length=MAX_CURSOR_LENGTH)]
WaitMs = Annotated[int, Meta(ge=0, le=MAX_WAIT_MS)]
RequestId = Annotated[str, Meta(min_length=1, max_length=MAX_REQUEST_ID)]
Query = Annotated[str, Meta(max_length=MAX_Q)]


def _choice(values: Any) -> Any:
    """``Literal[...]`` of ``values``: the schema's enum is the handler's own list."""
    return Literal[tuple(values)]


_REQUEST_ID = Parameter(
    "X-Request-ID", "header", RequestId, description="Correlation id; generated when absent."
)
_CONSISTENCY = [
    Parameter(
        "X-Consistency-Token",
        "header",
        description="A command response's token: wait until this endpoint's projections "
        "have applied that write (400 when malformed, 503 past the wait).",
    ),
    Parameter(
        "X-Wait-Ms",
        "header",
        WaitMs,
        description="How long to wait for X-Consistency-Token (default 2000).",
    ),
]
_IF_NONE_MATCH = Parameter(
    "If-None-Match", "header", description='"<version>" or *: 304 when it is the current one.'
)
_PAGING = [
    Parameter("limit", "query", Limit, description="Items per page (default 20)."),
    Parameter("cursor", "query", Cursor, description="next_cursor of the previous page."),
]
_LIST_HEADERS = {"X-Request-ID": "The request's correlation id.", "Cache-Control": "Caching."}
_SINGLE_HEADERS = {**_LIST_HEADERS, "ETag": '"<version>" of the resource.'}
# Every read can meet a malformed consistency header (400), a lagging projection or an
# unreachable read database (503).
_READ_PROBLEMS = (400, 503)
_AUTHED_PROBLEMS = (400, 401, 403, 503)


def read_operations() -> list[Operation]:
    """Every GET of API.md's query table."""
    order_id = Parameter("order_id", "path", uuid.UUID, True, "The order's id.")
    return [
        Operation(
            "GET",
            "/products",
            "Search and page the catalog.",
            {200: ProductPage},
            [
                Parameter("q", "query", Query, description="Part of the name or sku."),
                Parameter("status", "query", _choice(PRODUCT_STATUSES)),
                Parameter("in_stock", "query", _choice(IN_STOCK)),
                Parameter("sort", "query", _choice(SORTS), description="Default sku."),
                *_PAGING,
                *_CONSISTENCY,
                _REQUEST_ID,
            ],
            problems=(*_READ_PROBLEMS, 422),
            auth="none",
            operation_id="list_products",
            tags=["catalog"],
            response_headers=_LIST_HEADERS,
        ),
        Operation(
            "GET",
            "/products/{sku}",
            "One product (ETag; 304 for If-None-Match).",
            {200: ProductView, 304: None},
            [
                Parameter("sku", "path", Sku, True, "The product's sku."),
                _IF_NONE_MATCH,
                *_CONSISTENCY,
                _REQUEST_ID,
            ],
            problems=(*_READ_PROBLEMS, 404),
            auth="none",
            operation_id="get_product",
            tags=["catalog"],
            response_headers=_SINGLE_HEADERS,
        ),
        Operation(
            "GET",
            "/orders",
            "Every order, newest first (staff).",
            {200: OrderPage},
            [
                Parameter("status", "query", _choice(ORDER_STATUSES)),
                *_PAGING,
                *_CONSISTENCY,
                _REQUEST_ID,
            ],
            problems=(*_AUTHED_PROBLEMS, 422),
            operation_id="list_orders",
            tags=["orders"],
            response_headers=_LIST_HEADERS,
        ),
        Operation(
            "GET",
            "/orders/{order_id}",
            "One order, for its customer or staff (ETag; 304 for If-None-Match).",
            {200: OrderView, 304: None},
            [order_id, _IF_NONE_MATCH, *_CONSISTENCY, _REQUEST_ID],
            problems=(*_AUTHED_PROBLEMS, 404),
            operation_id="get_order",
            tags=["orders"],
            response_headers=_SINGLE_HEADERS,
        ),
        Operation(
            "GET",
            "/orders/{order_id}/history",
            "An order's audit trail, oldest first.",
            {200: list[HistoryEntry]},
            [order_id, *_CONSISTENCY, _REQUEST_ID],
            problems=(*_AUTHED_PROBLEMS, 404),
            operation_id="order_history",
            tags=["orders"],
            response_headers=_LIST_HEADERS,
        ),
        Operation(
            "GET",
            "/customers/{customer_id}/orders",
            "One customer's orders, newest first (that customer or staff).",
            {200: OrderPage},
            [
                Parameter("customer_id", "path", CustomerId, True, "The customer's JWT sub."),
                Parameter("status", "query", _choice(ORDER_STATUSES)),
                *_PAGING,
                *_CONSISTENCY,
                _REQUEST_ID,
            ],
            problems=(*_AUTHED_PROBLEMS, 404, 422),
            operation_id="customer_orders",
            tags=["orders"],
            response_headers=_LIST_HEADERS,
        ),
        Operation(
            "GET",
            "/stats/top-products",
            "Best-selling products, best first (staff).",
            {200: list[TopProduct]},
            [
                Parameter("by", "query", _choice(BY), description="Default units."),
                Parameter("limit", "query", Limit, description="Default 10."),
                *_CONSISTENCY,
                _REQUEST_ID,
            ],
            problems=(*_AUTHED_PROBLEMS, 422),
            operation_id="top_products",
            tags=["stats"],
            response_headers=_LIST_HEADERS,
        ),
        Operation(
            "GET",
            "/stats/daily-sales",
            "Sales by UTC day, at most 366 days (staff).",
            {200: list[DailySales]},
            [
                Parameter("from", "query", date, description="First day (default: to - 29)."),
                Parameter("to", "query", date, description="Last day (default: today)."),
                *_CONSISTENCY,
                _REQUEST_ID,
            ],
            problems=(*_AUTHED_PROBLEMS, 422),
            operation_id="daily_sales",
            tags=["stats"],
            response_headers=_LIST_HEADERS,
        ),
        Operation(
            "GET",
            "/projections",
            "Every projection's state and lag (admin).",
            {200: list[ProjectionStatus]},
            [_REQUEST_ID],
            problems=(401, 403, 503),
            operation_id="list_projections",
            tags=["operations"],
            response_headers=_LIST_HEADERS,
        ),
    ]


READYZ = (
    "200 when the read database answers and is migrated; Redis do"
    "wn is only degraded. 503 with the same body otherwise."
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the query API."""
    return build_openapi(
        [*read_operations(), *operations_endpoints(READYZ)],
        title=TITLE,
        version=VERSION,
        description="Eventually consistent reads of the projections; send a command's "
        "token as X-Consistency-Token to read your own write. Errors are RFC 9457 "
        "problem+json.",
    )
