"""One round trip for the requests that wait together.

Under load, most of what a small Redis call costs an API process is the client's work per
command (packing, a pool checkout, parsing, a timeout), not the server's. A
:class:`RoundTripBatcher` keeps at most ONE call in flight: items submitted while it travels
go together in the next call. The busier the process, the larger the batch and the cheaper
each item; an idle process still answers a lone item after a single round trip, with no
timer and no added delay. The command API's rate limiter and the query API's read cache
both use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class RoundTripBatcher(Generic[T, R]):
    """Sends submitted items in batches through ``send``, one batch in flight at a time.

    ``send(items)`` must answer one result per item, in order. When it raises, every item
    of that batch gets the exception; the next batch is sent all the same.
    """

    def __init__(self, send: Callable[[list[T]], Awaitable[Sequence[R]]], name: str) -> None:
        self._send = send
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None
        #: Calls of ``send`` so far (each answered a whole batch).
        self.calls = 0

    async def submit(self, item: T) -> R:
        """``item``'s result, from the next batch that goes out."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._drain(), name=self._name)
        return await answer

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            self.calls += 1
            try:
                results = await self._send([item for item, _ in batch])
                if len(results) != len(batch):
                    raise ValueError(f"{len(results)} results for {len(batch)} items")
            except asyncio.CancelledError:
                for _, answer in [*batch, *self._queue]:
                    answer.cancel()
                raise
            except Exception as exc:
                for _, answer in batch:
                    if not answer.done():  # a waiter may have given up (timeout, disconnect)
                        answer.set_exception(exc)
                continue
            for (_, answer), result in zip(batch, results, strict=True):
                if not answer.done():
                    answer.set_result(result)
