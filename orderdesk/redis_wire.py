"""A lean Redis connection for one hot call: commands written to the socket by hand, replies
parsed by hiredis in the protocol's ``data_received``.

Through redis-py's asyncio client a call costs an API process ~90 µs of CPU (pool checkout,
command packing, a stream reader, per-command hooks, a task); here about half. The query
API's cache reads (:mod:`query_side.cache_reads`) and the command API's rate limiter
(:mod:`orderdesk.ratelimit`) each keep one such connection for their batched calls.

:class:`RedisWire` answers each :meth:`~RedisWire.call` with its reply, in order (Redis
answers a connection's commands in the order sent). An error reply raises
:class:`ReplyError`. No reply within the timeout, or a lost connection, closes the
connection and fails every call waiting on it, so a late reply can never be taken for the
answer to a later call; the next call connects again. There is no task per call: a timer
per call, and the reply resolves the caller's future from ``data_received``.

Only ``redis://`` and ``unix://`` addresses are spoken this way (:func:`address_of` is
``None`` for others, TLS say): callers then use redis-py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from typing import Any, cast
from urllib.parse import urlsplit

import hiredis
from redis.asyncio.connection import parse_url


@dataclasses.dataclass(frozen=True, slots=True)
class Address:
    """Where and how to connect: a TCP host and port or a Unix socket path, plus the
    database number and credentials of the URL."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None


def address_of(url: str) -> Address | None:
    """The :class:`Address` of a ``redis://`` or ``unix://`` URL; None for other schemes."""
    if urlsplit(url).scheme not in ("redis", "unix"):
        return None
    parts = parse_url(url)
    return Address(
        host=parts.get("host") or "127.0.0.1",
        port=int(parts.get("port") or 6379),
        path=parts.get("path"),
        db=int(parts.get("db") or 0),
        username=parts.get("username"),
        password=parts.get("password"),
    )


def command(*args: str | bytes) -> bytes:
    """One command in the Redis protocol (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ReplyError(Exception):
    """Redis answered a call with an error (``NOSCRIPT …``, ``WRONGTYPE …``)."""


class _Protocol(asyncio.Protocol):
    """One connection: what the server sends goes to hiredis, each reply to the oldest
    waiting call."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise hiredis.ProtocolError("a reply nobody asked for")
                waiter = self.waiting.popleft()
                if waiter.done():  # its caller gave up; the reply is still consumed
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    waiter.set_exception(ReplyError(str(reply)))
                else:
                    waiter.set_result(reply)
        except hiredis.ProtocolError as exc:
            self.fail(ConnectionError(f"unreadable reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("Redis closed the connection"))

    def fail(self, exc: BaseException) -> None:
        """Close the connection and fail every call still waiting on it."""
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError(str(exc) or type(exc).__name__))
        if self.transport is not None:
            self.transport.close()


class RedisWire:
    """``await call(*args)``: one command's reply on this object's own connection."""

    def __init__(self, address: Address, *, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._connection: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        #: Bumped by close(): a connect still under way when it is called is discarded.
        self._generation = 0

    @property
    def connected(self) -> bool:
        """True while the connection is open (:meth:`send` may be used)."""
        return self._connection is not None and self._connection.lost is None

    async def connect(self) -> None:
        """Open the connection unless it is open; raises like :meth:`call`."""
        if not self.connected:
            await self._connect()

    async def call(self, *args: str | bytes) -> Any:
        """The reply to ``args``. Raises :class:`ReplyError` for an error reply; else
        ``OSError`` (``ConnectionError`` when the connection failed or no reply came within
        the timeout, which also closes it) or ``TimeoutError`` (connecting took too long)."""
        await self.connect()
        return await self.send(*args)

    def send(self, *args: str | bytes) -> asyncio.Future[Any]:
        """Write ``args`` now, on the open connection; the future of its reply (failing as
        :meth:`call` raises). For callers that batch from callbacks, without a task."""
        connection = self._connection
        if connection is None or connection.lost is not None:
            raise ConnectionError("not connected to Redis")
        waiter = _write(connection, command(*args))
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.timeout, self._timed_out, connection, waiter)
        waiter.add_done_callback(lambda _: deadline.cancel())
        return waiter

    def _timed_out(self, connection: _Protocol, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            connection.fail(TimeoutError(f"no reply from Redis within {self.timeout} s"))

    async def _connect(self) -> None:
        """Open the connection, once however many calls wait for it. The opening runs as a
        task of its own: a caller cancelled while it waits (its client went away) cancels
        neither the opening nor the other callers."""
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._open_for(self._generation))
            self._connecting.add_done_callback(self._opened)
        await asyncio.shield(self._connecting)

    def _opened(self, task: asyncio.Task[_Protocol]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here: callers may all have gone

    async def _open_for(self, generation: int) -> _Protocol:
        connection = await asyncio.wait_for(self._open(), self.timeout)
        if generation != self._generation:  # close() was called meanwhile
            connection.fail(ConnectionError("closed"))
            raise ConnectionError("the connection was closed while it opened")
        self._connection = connection
        return connection

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        address = self.address
        if address.path is not None:
            _, connection = await loop.create_unix_connection(_Protocol, address.path)
        else:
            _, connection = await loop.create_connection(_Protocol, address.host, address.port)
        try:
            if address.password is not None:
                credentials = (address.username, address.password)
                await self._setup(connection, "AUTH", *(c for c in credentials if c is not None))
            if address.db:
                await self._setup(connection, "SELECT", str(address.db))
        except BaseException:
            connection.fail(ConnectionError("Redis connection set-up failed"))
            raise
        return connection

    @staticmethod
    async def _setup(connection: _Protocol, *args: str) -> None:
        try:
            await _write(connection, command(*args))
        except ReplyError as exc:
            raise ConnectionError(f"Redis refused {args[0]}: {exc}") from None

    def close(self) -> None:
        """Close the connection (and discard one still opening); calls still waiting fail
        with ``ConnectionError``."""
        self._generation += 1
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.fail(ConnectionError("closed"))


def _write(connection: _Protocol, data: bytes) -> asyncio.Future[Any]:
    """Write ``data`` on ``connection``; the future of its reply. The waiter is queued only
    once the write went out, so a failed write can never leave a waiter that would take
    the next command's reply."""
    if connection.lost is not None or connection.transport is None:
        raise ConnectionError(f"Redis connection lost: {connection.lost}")
    try:
        connection.transport.write(data)
    except (OSError, RuntimeError) as exc:  # uvloop: RuntimeError on a closed handle
        connection.fail(exc)
        raise ConnectionError(f"could not write to Redis: {exc}") from None
    waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    connection.waiting.append(waiter)
    return waiter
