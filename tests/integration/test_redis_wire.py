"""orderdesk.redis_wire: the hand-written Redis connection of the hot calls, against the real
Redis (and, for the timing cases, a server that answers late)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from orderdesk.redis_wire import Address, RedisWire, ReplyError, address_of
from tests.support import free_port


def _wire(url: str, timeout: float = 1.0) -> RedisWire:
    address = address_of(url)
    assert address is not None
    return RedisWire(address, timeout=timeout)


def test_concurrent_calls_each_get_their_own_reply(redis_url: str) -> None:
    async def calls() -> list[object]:
        wire = _wire(redis_url)
        try:
            return list(await asyncio.gather(*(wire.call("ECHO", f"v{i}") for i in range(300))))
        finally:
            wire.close()

    assert asyncio.run(calls()) == [f"v{i}".encode() for i in range(300)]


def test_an_error_reply_raises_and_the_connection_goes_on(redis_url: str) -> None:
    async def calls() -> tuple[str, object]:
        wire = _wire(redis_url)
        try:
            await wire.call("SET", "wire:text", "x")
            with pytest.raises(ReplyError) as refused:
                await wire.call("INCR", "wire:text")
            return str(refused.value), await wire.call("GET", "wire:text")
        finally:
            wire.close()

    message, value = asyncio.run(calls())
    assert "not an integer" in message
    assert value == b"x"


def test_the_urls_user_password_and_database_are_used(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    user, secret = f"wire-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(user, enabled=True, passwords=[f"+{secret}"], keys=["*"], commands=["+@all"])
    address = address_of(redis_url)
    assert address is not None
    try:

        async def call() -> object:
            wire = RedisWire(
                Address(address.host, address.port, db=3, username=user, password=secret),
                timeout=1.0,
            )
            try:
                return await wire.call("SET", "wire:db3", "here")
            finally:
                wire.close()

        assert asyncio.run(call()) == b"OK"
        assert redis.Redis(address.host, address.port, db=3).get("wire:db3") == b"here"
        assert admin.get("wire:db3") is None  # not in the URL's default database 0

        async def wrong_password() -> None:
            wire = RedisWire(
                Address(address.host, address.port, username=user, password="wrong"), timeout=1.0
            )
            try:
                await wire.call("PING")
            finally:
                wire.close()

        with pytest.raises(ConnectionError, match="refused AUTH"):
            asyncio.run(wrong_password())
    finally:
        admin.acl_deluser(user)
        redis.Redis(address.host, address.port, db=3).flushdb()
        admin.close()


def test_a_late_reply_is_never_taken_for_the_answer_to_a_later_call() -> None:
    """The first connection answers after the caller gave up; the call after it must get
    its own answer from a new connection, not the late one."""

    async def scenario() -> tuple[BaseException | None, object, float]:
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            late = connections == 1
            while await reader.read(1024):
                if late:
                    await asyncio.sleep(0.3)
                writer.write(b"+late\r\n" if late else b"+fresh\r\n")
                await writer.drain()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        wire = RedisWire(Address("127.0.0.1", port), timeout=0.1)
        failure: BaseException | None = None
        started = asyncio.get_running_loop().time()
        try:
            await wire.call("PING")
        except ConnectionError as exc:
            failure = exc
        waited = asyncio.get_running_loop().time() - started
        await asyncio.sleep(0.4)  # the late reply has been sent by now
        answer = await wire.call("PING")
        wire.close()
        server.close()
        await server.wait_closed()
        return failure, answer, waited

    failure, answer, waited = asyncio.run(scenario())
    assert isinstance(failure, ConnectionError) and "within 0.1 s" in str(failure)
    assert waited < 0.25
    assert answer == b"fresh"


def test_no_server_is_an_os_error() -> None:
    async def call() -> None:
        wire = RedisWire(Address("127.0.0.1", free_port()), timeout=1.0)
        await wire.call("PING")

    with pytest.raises(OSError):
        asyncio.run(call())


async def _slow_auth_server() -> asyncio.Server:
    """A server that answers AUTH after 0.1 s and every other command with ``+v``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            if b"AUTH" in data:
                await asyncio.sleep(0.1)
            writer.write(b"+OK\r\n" if b"AUTH" in data else b"+v\r\n")
            await writer.drain()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_a_caller_cancelled_while_the_connection_opens_takes_no_one_with_it() -> None:
    async def scenario() -> object:
        server = await _slow_auth_server()
        port = server.sockets[0].getsockname()[1]
        wire = RedisWire(Address("127.0.0.1", port, password="pw"), timeout=1.0)
        try:
            first = asyncio.create_task(wire.call("GET", "k"))  # opens the connection
            await asyncio.sleep(0.02)
            second = asyncio.create_task(wire.call("GET", "k"))  # waits for the same one
            await asyncio.sleep(0.02)
            first.cancel()  # say its HTTP client went away
            with pytest.raises(asyncio.CancelledError):
                await first
            return await second
        finally:
            wire.close()
            server.close()

    assert asyncio.run(scenario()) == b"v"


def test_close_while_the_connection_opens_leaves_it_closed() -> None:
    async def scenario() -> tuple[BaseException | None, bool]:
        server = await _slow_auth_server()
        port = server.sockets[0].getsockname()[1]
        wire = RedisWire(Address("127.0.0.1", port, password="pw"), timeout=1.0)
        call = asyncio.create_task(wire.call("PING"))
        await asyncio.sleep(0.02)
        wire.close()  # shutting down while the AUTH reply is still on its way
        failure = None
        try:
            await call
        except ConnectionError as exc:
            failure = exc
        connected = wire.connected
        server.close()
        return failure, connected

    failure, connected = asyncio.run(scenario())
    assert isinstance(failure, ConnectionError)
    assert not connected
