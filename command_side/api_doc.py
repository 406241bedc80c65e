"""``/openapi.json`` of the command API, built from :func:`command_side.routes.command_routes`:
the request Structs that decode the bodies, the result Structs the handlers return, and the
problem statuses each route declares. Nothing in it is written by hand."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from msgspec import Meta

from command_side import commands as c
from command_side.idempotency import MAX_KEY
from command_side.routes import CommandRoute, command_routes
from orderdesk.health import operations_endpoints
from orderdesk.http import MAX_REQUEST_ID
from orderdesk.openapi import Operation, Parameter, build_openapi

TITLE = "orderdesk command API"
VERSION = "1.0.0"

IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=MAX_KEY)]
IfMatch = Annotated[str, Meta(pattern=r'^(\*|"[0-9]+")$')]
RequestId = Annotated[str, Meta(min_length=1, max_length=MAX_REQUEST_ID)]

_PATH_TYPES: dict[str, tuple[Any, str]] = {
    "sku": (c.Sku, "the product's sku"),
    "order_id": (uuid.UUID, "the order's id"),
}
_REQUEST_ID = Parameter(
    "X-Request-ID", "header", RequestId, description="Correlation id; generated when absent."
)
_IDEMPOTENCY_KEY = Parameter(
    "Idempotency-Key",
    "header",
    IdempotencyKey,
    description="A retry with the same key and body replays the first response (24 h).",
)
_IF_MATCH = Parameter(
    "If-Match", "header", IfMatch, description='"<version>": 412 unless it is the current one.'
)


def operation(route: CommandRoute) -> Operation:
    """The OpenAPI operation of one command route."""
    params = [
        Parameter(name, "path", type_, True, description)
        for name, (type_, description) in _PATH_TYPES.items()
        if "{" + name + "}" in route.path
    ]
    params += [_REQUEST_ID, _IDEMPOTENCY_KEY]
    if route.created is None:
        params.append(_IF_MATCH)
    headers = {
        "ETag": '"<version>" of the aggregate after the command.',
        "X-Request-ID": "The request's correlation id.",
        "Idempotent-Replayed": "true when this is a stored response replayed.",
    }
    if route.created is not None:
        headers["Location"] = "Where the query API serves the new resource."
    return Operation(
        method=route.method,
        path=route.path,
        summary=route.summary,
        responses={201 if route.created else 200: route.result},
        parameters=params,
        request_body=route.command,
        problems=route.problems,
        operation_id=route.name,
        tags=["orders" if "order" in route.name else "catalog"],
        response_headers=headers,
    )


READYZ = (
    "200 when the database answers and is migrated; Redis down is"
    " only degraded. 503 with the same body otherwise."
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the command API."""
    return build_openapi(
        [*(operation(route) for route in command_routes()), *operations_endpoints(READYZ)],
        title=TITLE,
        version=VERSION,
        description="Commands change the write model; each success returns a consistency "
        "token for the query API. Errors are RFC 9457 problem+json.",
    )
