"""Cache reads of the query API: GETs batched into MGETs on one dedicated Redis connection.

The read path's hottest call. Through redis-py's asyncio client one call costs ~90 µs of
CPU (pool checkout, command packing, a stream reader, per-command hooks); here the MGET is
written straight to the socket and its reply parsed by hiredis in the protocol's
``data_received``, which hands each waiting request its value: ~45 µs per call and no task
per batch (docs/benchmarks.md, "Third session"). The wire format and addresses are
:mod:`orderdesk.redis_wire`'s; the batching lives here, in the protocol's callbacks.

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
from collections import deque
from typing import Any, cast

import hiredis

from orderdesk.redis_wire import Address, address_of, command
from query_side.cache import GetBatcher, RedisGuard

Waiter = tuple[str, "asyncio.Future[bytes | None]"]


class _Replies(asyncio.Protocol):
    """One connection: feeds what the server sends to hiredis; replies to the set-up
    commands (AUTH, SELECT) go to their waiters, every later one to the owner."""

    def __init__(self, owner: BatchedGets) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.setup: deque[asyncio.Future[Any]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                if self.setup:
                    waiter = self.setup.popleft()
                    if not waiter.done():
                        waiter.set_result(reply)
                else:
                    self.owner.reply(self, reply)
        except hiredis.ProtocolError as exc:
            self.owner.failed(self, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.setup:
            waiter = self.setup.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("Redis closed the connection"))
        self.owner.failed(self, exc or ConnectionError("Redis closed the connection"))

    async def call(self, *args: str) -> None:
        """Send a set-up command and wait for its reply; raise if Redis refuses it."""
        assert self.transport is not None
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.setup.append(waiter)
        self.transport.write(command(*args))
        reply = await waiter
        if isinstance(reply, hiredis.ReplyError):
            raise ConnectionError(f"Redis refused {args[0]}: {reply}")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class BatchedGets:
    """``await get(key)``: the value at ``key``, ``None`` on a miss or while Redis is
    unavailable (see the module docstring)."""

    def __init__(self, address: Address, guard: RedisGuard) -> None:
        self.address = address
        self.guard = guard
        #: MGET commands sent so far (each answered a whole batch).
        self.batches = 0
        self._connection: _Replies | None = None
        self._connecting: asyncio.Future[bool] | None = None
        self._queue: list[Waiter] = []
        self._in_flight: tuple[list[str], list[Waiter]] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, from the next MGET that goes out."""
        if not self.guard.available:
            return None
        if self._connection is None and not await self._connect():
            return None
        if self._connection is None:  # lost again while this request waited to resume
            return None
        answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._queue.append((key, answer))
        if self._in_flight is None:
            self._send()
        return await answer

    def _send(self) -> None:
        batch, self._queue = self._queue, []
        keys = list(dict.fromkeys(key for key, _ in batch))
        assert self._connection is not None and self._connection.transport is not None
        self._in_flight = (keys, batch)
        self.batches += 1
        self._connection.transport.write(command("MGET", *keys))
        self._deadline = asyncio.get_running_loop().call_later(
            self.guard.timeout, self._timed_out, self._connection
        )

    def reply(self, connection: _Replies, reply: Any) -> None:
        """A complete reply arrived on ``connection`` (called by the protocol)."""
        if connection is not self._connection:
            return
        if self._in_flight is None or isinstance(reply, hiredis.ReplyError):
            self.failed(connection, ConnectionError(f"unexpected reply from Redis: {reply!r}"))
            return
        keys, batch = self._in_flight
        if not isinstance(reply, list) or len(reply) != len(keys):
            self.failed(connection, ConnectionError("MGET answered the wrong number of keys"))
            return
        self._in_flight = None
        if self._deadline is not None:
            self._deadline.cancel()
        values = dict(zip(keys, reply, strict=True))
        for key, answer in batch:
            if not answer.done():  # a cancelled request (client went away) is skipped
                answer.set_result(values[key])
        if self._queue:
            self._send()

    def _timed_out(self, connection: _Replies) -> None:
        self.failed(connection, TimeoutError(f"no MGET reply within {self.guard.timeout} s"))

    def failed(self, connection: _Replies, exc: BaseException) -> None:
        """Close ``connection`` and answer everything waiting on it with a miss."""
        if connection is not self._connection:
            return
        self._connection = None
        self.guard.failed(exc)
        self._close(connection)

    def _close(self, connection: _Replies) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        connection.close()
        waiting = self._queue + (self._in_flight[1] if self._in_flight else [])
        self._queue, self._in_flight = [], None
        for _, answer in waiting:
            if not answer.done():
                answer.set_result(None)

    async def _connect(self) -> bool:
        """Open the connection (once, however many requests wait for it)."""
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        opened = self._connecting = asyncio.get_running_loop().create_future()
        ok = False
        try:
            ok = await self._open()
        finally:
            self._connecting = None
            opened.set_result(ok)
        return ok

    async def _open(self) -> bool:
        loop = asyncio.get_running_loop()
        address = self.address
        connection: _Replies | None = None
        try:
            async with asyncio.timeout(self.guard.timeout):
                if address.path is not None:
                    _, connection = await loop.create_unix_connection(
                        lambda: _Replies(self), address.path
                    )
                else:
                    _, connection = await loop.create_connection(
                        lambda: _Replies(self), address.host, address.port
                    )
                if address.password is not None:
                    credentials = (address.username, address.password)
                    await connection.call("AUTH", *(c for c in credentials if c is not None))
                if address.db:
                    await connection.call("SELECT", str(address.db))
        except BaseException as exc:
            if connection is not None:
                connection.close()
            if isinstance(exc, OSError | TimeoutError | ConnectionError):
                self.guard.failed(exc)
                return False
            raise
        self._connection = connection
        return True

    async def aclose(self) -> None:
        """Close the connection; anything still waiting gets a miss."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._close(connection)


def cache_reader(url: str, guard: RedisGuard) -> BatchedGets | GetBatcher:
    """The fastest cache reader for ``url``: :class:`BatchedGets`, or redis-py's MGET."""
    address = address_of(url)
    return BatchedGets(address, guard) if address is not None else GetBatcher(guard)
