"""Cache reads of the query API: GETs batched into MGETs on one dedicated Redis connection,
and the fills after a miss on the same connection.

The read path's hottest call. Through redis-py's asyncio client one call costs ~90 µs of
CPU (pool checkout, command packing, a stream reader, per-command hooks); on a
:class:`~orderdesk.redis_wire.RedisWire` the MGET is written straight to the socket and its
reply, parsed by hiredis in the protocol's ``data_received``, hands each waiting request its
value from a callback: ~45 µs per call and no task per batch (docs/benchmarks.md, "Third
session").

Batching: one MGET in flight at a time; GETs that arrive meanwhile go out together as soon
as its reply is in, so batches grow with load and an idle server answers at once.

Failure: an error reply, no reply within ``timeout`` or a lost connection answers every
waiting GET with ``None`` (a miss: the caller reads PostgreSQL), starts the guard's
cool-down and closes the connection, so a late reply can never be matched to a later
request. The first GET after the cool-down connects again.

Only ``redis://`` and ``unix://`` addresses are read this way; for anything else (TLS, say)
:func:`cache_reader` returns the redis-py based :class:`query_side.cache.GetBatcher`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from orderdesk.cache import SET_IF_NEWER, SET_IF_NEWER_SHA
from orderdesk.redis_wire import RedisWire, ReplyError, address_of
from query_side.cache import GetBatcher, RedisGuard

Waiter = tuple[str, "asyncio.Future[bytes | None]"]


class BatchedGets:
    """``await get(key)``: the value at ``key``, ``None`` on a miss or while Redis is
    unavailable (see the module docstring)."""

    def __init__(self, wire: RedisWire, guard: RedisGuard) -> None:
        self.wire = wire
        self.guard = guard
        #: MGET commands sent so far (each answered a whole batch).
        self.batches = 0
        self._queue: list[Waiter] = []
        self._in_flight: list[Waiter] | None = None

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, from the next MGET that goes out."""
        if not self.guard.available:
            return None
        if not self.wire.connected:
            try:
                await self.wire.connect()
            except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
                self.guard.failed(exc)
                return None
        if not self.wire.connected:  # lost again while this request waited to resume
            return None
        answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._queue.append((key, answer))
        if self._in_flight is None:
            self._send()
        return await answer

    def _send(self) -> None:
        batch, self._queue = self._queue, []
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            reply = self.wire.send("MGET", *keys)
        except ConnectionError as exc:
            self._in_flight = batch
            self._failed(exc)
            return
        self._in_flight = batch
        self.batches += 1
        reply.add_done_callback(functools.partial(self._answered, keys, batch))

    def _answered(self, keys: list[str], batch: list[Waiter], reply: asyncio.Future[Any]) -> None:
        failure = ConnectionError("MGET cancelled") if reply.cancelled() else reply.exception()
        if batch is not self._in_flight:  # answered already (failed meanwhile)
            return
        if failure is not None:
            self._failed(failure)
            return
        values = reply.result()
        if not isinstance(values, list) or len(values) != len(keys):
            self._failed(ConnectionError("MGET answered the wrong number of keys"))
            return
        self._in_flight = None
        found = dict(zip(keys, values, strict=True))
        for key, answer in batch:
            if not answer.done():  # a cancelled request (client went away) is skipped
                answer.set_result(found[key])
        if self._queue:
            self._send()

    def _failed(self, exc: BaseException) -> None:
        """Start the cool-down, close the connection (a late reply can never answer a later
        MGET) and answer everything waiting with a miss."""
        self.guard.failed(exc)
        self._close()

    def _close(self) -> None:
        self.wire.close()
        waiting = self._queue + (self._in_flight or [])
        self._queue, self._in_flight = [], None
        for _, answer in waiting:
            if not answer.done():
                answer.set_result(None)

    async def fill(self, key: str, version: int, payload: bytes, ttl: int) -> None:
        """Store ``payload`` at ``version`` unless the cache holds a newer version: the
        versioned script by its SHA1 on this connection (its text only after NOSCRIPT).
        A failure starts the cool-down, like a failed read; the value is simply not cached."""
        if not self.guard.available:
            return
        call = ("EVALSHA", SET_IF_NEWER_SHA, "1", key, str(version), payload, str(ttl))
        try:
            try:
                await self.wire.call(*call)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await self.wire.call("SCRIPT", "LOAD", SET_IF_NEWER)
                await self.wire.call(*call)
        except (ReplyError, OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            self.guard.failed(exc)

    async def aclose(self) -> None:
        """Close the connection; anything still waiting gets a miss."""
        self._close()


def cache_reader(url: str, guard: RedisGuard) -> BatchedGets | GetBatcher:
    """The fastest cache reader for ``url``: :class:`BatchedGets`, or redis-py's MGET."""
    address = address_of(url)
    if address is None:
        return GetBatcher(guard)
    return BatchedGets(RedisWire(address, timeout=guard.timeout), guard)
