"""The baseline for bench/read_load.py: a bare Starlette + msgspec endpoint of the same shape
as ``GET /products/{sku}``, served by uvicorn with the same settings as the query API."""

from __future__ import annotations

import argparse

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared_contracts.views import ProductView

PRODUCT = ProductView(
    sku="SKU-00001",
    name="Product 1",
    price=1999,
    status="active",
    on_hand=100,
    reserved=3,
    available=97,
    units_sold=12,
    revenue=23988,
    version=5,
    updated_at="2026-03-01T12:00:00.000000Z",
)


def create_app() -> Starlette:
    """One route; the representation is encoded per request, as a real handler would."""
    encoder = msgspec.json.Encoder()

    async def product(request: Request) -> Response:
        return Response(encoder.encode(PRODUCT), media_type="application/json")

    return Starlette(routes=[Route("/products/{sku}", product, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Exactly the uvicorn settings orderdesk.cli uses for the APIs.
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
