"""The query API's checkpoint watcher with a scripted pool (no I/O): refreshes that overlap
land in the order they read."""

from __future__ import annotations

import asyncio
from typing import Any

from query_side.consistency import CheckpointWatcher
from shared_contracts.tokens import LogPoint


class ScriptedPool:
    """``pool.connection()`` whose query reads ``position`` when it runs and then, if the
    test queued a gate for it, answers only once the gate opens."""

    def __init__(self) -> None:
        self.position = 0
        self.gates: list[asyncio.Event] = []

    def connection(self, timeout: float | None = None) -> Any:
        pool = self

        class Rows:
            def __init__(self, rows: list[tuple[str, int, int]]) -> None:
                self.rows = rows

            async def fetchall(self) -> list[tuple[str, int, int]]:
                return self.rows

        class Connection:
            async def execute(self, query: str) -> Rows:
                rows = [("order_view", 7, pool.position)]
                if pool.gates:
                    await pool.gates.pop(0).wait()
                return Rows(rows)

            async def __aenter__(self) -> Connection:
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

        return Connection()


def test_a_slow_older_refresh_never_overwrites_a_newer_one() -> None:
    async def scenario() -> tuple[LogPoint, bool]:
        pool = ScriptedPool()
        watcher = CheckpointWatcher(pool, "unused")  # type: ignore[arg-type]
        slow = asyncio.Event()
        pool.gates.append(slow)
        older = asyncio.create_task(watcher.refresh())  # reads position 0, answers late
        await asyncio.sleep(0)
        pool.position = 5  # the projector commits; its notice asks for a refresh
        newer = asyncio.create_task(watcher.refresh())
        for _ in range(10):  # let the newer refresh run as far as it can
            await asyncio.sleep(0)
        slow.set()
        await asyncio.gather(older, newer)
        waited = await watcher.wait_for(("order_view",), LogPoint(7, 5), 0.05)
        return watcher.checkpoints["order_view"], waited

    checkpoint, waited = asyncio.run(scenario())
    assert checkpoint == LogPoint(7, 5)
    assert waited  # answered from the newest read, not after its wait ran out
