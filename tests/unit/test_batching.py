"""RoundTripBatcher: one call in flight, the items that wait meanwhile share the next."""

from __future__ import annotations

import asyncio

import pytest

from orderdesk.batching import RoundTripBatcher


class Recorder:
    """A ``send`` that answers each item doubled and records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def send(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("server gone")
        return [item * 2 for item in items]


def test_items_waiting_together_share_one_call_and_each_gets_its_own_result() -> None:
    async def scenario() -> tuple[list[int], list[list[int]], int]:
        recorder = Recorder()
        batcher = RoundTripBatcher(recorder.send, "test")
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0)  # the first call is now in flight
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 3, 4)]
        await asyncio.sleep(0)
        recorder.release.set()
        results = await asyncio.gather(first, *rest)
        return results, recorder.batches, batcher.calls

    results, batches, calls = asyncio.run(scenario())
    assert results == [2, 4, 6, 6, 8]
    # A lone item goes at once; the four that arrived while it travelled go together.
    assert batches == [[1], [2, 3, 3, 4]] and calls == 2


def test_a_failed_call_fails_its_own_items_only() -> None:
    async def scenario() -> tuple[list[object], int]:
        recorder = Recorder()
        recorder.fail_next = True
        batcher = RoundTripBatcher(recorder.send, "test")
        doomed = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        later = asyncio.ensure_future(batcher.submit(5))
        recorder.release.set()
        outcomes = await asyncio.gather(*doomed, later, return_exceptions=True)
        return outcomes, batcher.calls

    outcomes, calls = asyncio.run(scenario())
    assert [type(o) for o in outcomes[:2]] == [ConnectionError, ConnectionError]
    assert outcomes[2] == 10 and calls == 2


def test_a_waiter_that_gave_up_does_not_disturb_the_others() -> None:
    async def scenario() -> int:
        recorder = Recorder()
        batcher = RoundTripBatcher(recorder.send, "test")
        impatient = asyncio.ensure_future(asyncio.wait_for(batcher.submit(1), 0.01))
        patient = asyncio.ensure_future(batcher.submit(2))
        with pytest.raises(TimeoutError):
            await impatient
        recorder.release.set()
        return await patient

    assert asyncio.run(scenario()) == 4
