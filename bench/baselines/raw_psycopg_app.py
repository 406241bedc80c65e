"""The driver ceiling: a Starlette endpoint writing one aggregate row + one event row.

No domain, no idempotency, no auth: decode the JSON body with msgspec, insert an order
row and an event row in one transaction through a psycopg async pool, answer 201. It runs
under the same uvicorn settings as the command API, so the gap between the two is what
orderdesk's own work costs.

Run: ``BENCH_RAW_DATABASE_URL=postgresql://… uvicorn --factory
bench.baselines.raw_psycopg_app:create_app``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import msgspec
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_orders (
    id uuid PRIMARY KEY, customer_id text NOT NULL, total bigint NOT NULL,
    version integer NOT NULL, lines jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS raw_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL, stream_version integer NOT NULL, event_type text NOT NULL,
    payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version));
"""


class Line(msgspec.Struct, frozen=True):
    """One order line of the request body."""

    sku: str
    quantity: int


class PlaceOrder(msgspec.Struct, frozen=True):
    """The request body (the same shape as orderdesk's POST /orders)."""

    lines: list[Line]


def create_app(database_url: str | None = None, pool_size: int = 10) -> Starlette:
    """The app; the URL comes from ``BENCH_RAW_DATABASE_URL`` when not given."""
    url = database_url or os.environ["BENCH_RAW_DATABASE_URL"]
    pool = AsyncConnectionPool(url, min_size=pool_size, max_size=pool_size, open=False)
    decoder = msgspec.json.Decoder(PlaceOrder)
    encoder = msgspec.json.Encoder()

    async def place_order(request: Request) -> Response:
        try:
            command = decoder.decode(await request.body())
        except msgspec.DecodeError as exc:
            return Response(encoder.encode({"detail": str(exc)}), 422)
        order_id = uuid.uuid4()
        lines = [{"sku": line.sku, "quantity": line.quantity} for line in command.lines]
        total = sum(line.quantity * 100 for line in command.lines)
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO raw_orders (id, customer_id, total, version, lines)"
                " VALUES (%s, %s, %s, 1, %s)",
                (order_id, "bench", total, Jsonb(lines)),
            )
            await conn.execute(
                "INSERT INTO raw_events (stream_id, stream_version, event_type, payload)"
                " VALUES (%s, 1, 'OrderPlaced', %s)",
                (f"order:{order_id}", Jsonb({"order_id": str(order_id), "lines": lines})),
            )
        body = encoder.encode({"id": str(order_id), "version": 1, "total": total})
        return Response(body, 201, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        async with pool.connection() as conn:
            await conn.execute(SCHEMA)
        yield
        await pool.close()

    return Starlette(routes=[Route("/orders", place_order, methods=["POST"])], lifespan=lifespan)
