"""command_side.row_queue: a process's commands on one row take turns (no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from command_side.row_queue import RowQueue


def test_commands_on_one_row_run_one_after_the_other_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        rows = RowQueue()
        log: list[str] = []

        async def command(name: str) -> None:
            held = await rows.take(["stock:A"])
            log.append(f"{name} reads")
            await asyncio.sleep(0)  # the round trips in between
            log.append(f"{name} saves")
            rows.give_back(held)

        await asyncio.gather(*(command(n) for n in ("first", "second", "third")))
        assert len(rows) == 0  # nothing left behind once every command is done
        return log

    assert asyncio.run(scenario()) == [
        "first reads",
        "first saves",
        "second reads",
        "second saves",
        "third reads",
        "third saves",
    ]


def test_commands_on_different_rows_do_not_wait_for_each_other() -> None:
    async def scenario() -> None:
        rows = RowQueue()
        held = await rows.take(["stock:A"])
        other = await asyncio.wait_for(rows.take(["stock:B"]), timeout=1)
        rows.give_back(held)
        rows.give_back(other)

    asyncio.run(scenario())


def test_overlapping_key_sets_in_any_order_never_deadlock() -> None:
    async def scenario() -> None:
        rows = RowQueue()

        async def command(keys: list[str]) -> None:
            held = await rows.take(keys)
            await asyncio.sleep(0)
            rows.give_back(held)

        jobs = [command(["stock:A", "stock:B"]), command(["stock:B", "stock:A"])] * 20
        await asyncio.wait_for(asyncio.gather(*jobs), timeout=5)
        assert len(rows) == 0

    asyncio.run(scenario())


def test_a_command_cancelled_while_waiting_leaves_the_row_to_the_next() -> None:
    async def scenario() -> None:
        rows = RowQueue()
        held = await rows.take(["stock:A"])
        waiting = asyncio.create_task(rows.take(["stock:A", "stock:B"]))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        rows.give_back(held)
        assert len(rows) == 0
        again = await asyncio.wait_for(rows.take(["stock:A", "stock:B"]), timeout=1)
        rows.give_back(again)

    asyncio.run(scenario())
