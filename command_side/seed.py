"""``orderdesk seed``: a demo catalog, stock and orders, written through the real handlers.

Every change goes through the same handlers and unit of work as the API, so the event log
is exactly what real traffic would leave and the projections pick it up as usual.
Running it again skips the products that exist and places ``orders`` more orders.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

import psycopg

from command_side import commands as c
from command_side import handlers as h
from command_side.handlers import Outcome
from command_side.postgres import PostgresUnitOfWork
from command_side.unit_of_work import EventMetadata, UnitOfWork
from orderdesk.auth import Principal
from orderdesk.database import libpq_url
from orderdesk.problems import ProblemError
from orderdesk.settings import Settings

CATALOG = [
    ("MUG-CLASSIC", "Classic mug", 1290),
    ("MUG-TRAVEL", "Travel mug", 2490),
    ("TEE-S", "T-shirt, small", 1990),
    ("TEE-M", "T-shirt, medium", 1990),
    ("TEE-L", "T-shirt, large", 1990),
    ("CAP-BLACK", "Black cap", 1590),
    ("HOODIE-GREY", "Grey hoodie", 4990),
    ("STICKER-PACK", "Sticker pack", 490),
    ("NOTEBOOK-A5", "A5 notebook", 890),
    ("PEN-STEEL", "Steel pen", 1490),
    ("BAG-TOTE", "Tote bag", 1290),
    ("POSTER-A2", "A2 poster", 990),
]
CUSTOMERS = ["alice", "bob", "carol", "dave", "erin"]
STAFF = Principal("seed", frozenset({"staff"}))


def seed(settings: Settings, orders: int) -> int:
    """Fill the write database with demo data; prints a summary, returns the exit code 0."""
    if settings.database_url is None:
        raise ValueError("seed needs settings.database_url")
    summary = asyncio.run(_seed(libpq_url(settings.database_url), orders))
    print(", ".join(f"{count} {what}" for what, count in summary.items()))
    return 0


async def _seed(url: str, orders: int) -> dict[str, int]:
    summary = {
        "products added": 0,
        "products skipped": 0,
        "stock receipts": 0,
        "orders placed": 0,
        "paid": 0,
        "shipped": 0,
        "cancelled": 0,
    }
    rng = random.Random(orders)
    async with await psycopg.AsyncConnection.connect(url) as conn:

        async def run(
            call: Callable[[UnitOfWork], Awaitable[Outcome]], actor: str
        ) -> Outcome | None:
            metadata = EventMetadata("seed", str(uuid.uuid4()), actor)
            try:
                async with PostgresUnitOfWork(conn, metadata) as uow:
                    return await call(uow)
            except ProblemError:
                return None

        for sku, name, price in CATALOG:
            added = await run(partial(h.add_product, c.AddProduct(sku, name, price)), "seed")
            summary["products added" if added else "products skipped"] += 1
            if added:
                receipt = c.ReceiveStock(rng.randint(50, 400), "initial stock")
                await run(partial(h.receive_stock, sku, receipt), "seed")
                summary["stock receipts"] += 1

        for _ in range(orders):
            customer = Principal(rng.choice(CUSTOMERS), frozenset({"customer"}))
            who = customer.subject or ""
            picked = rng.sample(CATALOG, rng.randint(1, 3))
            cmd = c.PlaceOrder([c.LineRequest(sku, rng.randint(1, 3)) for sku, _, _ in picked])
            placed = await run(partial(h.place_order, cmd, actor=customer), who)
            if placed is None:
                continue
            summary["orders placed"] += 1
            fate = rng.random()
            if fate < 0.6:
                payment = c.PayOrder(int(placed.fields["total"]))
                await run(partial(h.pay_order, placed.id, payment, actor=customer), who)
                summary["paid"] += 1
                if fate < 0.35:
                    await run(partial(h.ship_order, placed.id, c.ShipOrder(), actor=STAFF), "seed")
                    summary["shipped"] += 1
            elif fate < 0.7:
                reason = c.CancelOrder("changed my mind")
                await run(partial(h.cancel_order, placed.id, reason, actor=customer), who)
                summary["cancelled"] += 1
    return summary
