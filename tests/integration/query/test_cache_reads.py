"""query_side.cache_reads: the query API's batched cache reads on their own connection,
against real valkey servers (one shared, and dedicated ones this module starts, stops and
freezes with SIGSTOP)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis

from orderdesk.embedded import _valkey_bin, free_port
from orderdesk.redis_wire import address_of
from query_side.cache import GetBatcher, RedisGuard
from query_side.cache_reads import BatchedGets, cache_reader

PASSWORD = "s3cret"


@dataclass
class Valkey:
    process: subprocess.Popen[bytes]
    port: int
    socket: str

    @property
    def tcp_url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def unix_url(self, db: int) -> str:
        return f"unix://:{PASSWORD}@{self.socket}?db={db}"


@pytest.fixture
def valkey() -> Iterator[Valkey]:
    """A dedicated valkey-server with a password, on TCP and a Unix socket."""
    # A short directory: Unix socket paths are limited to ~100 bytes.
    directory = tempfile.mkdtemp(prefix="od-vk-")
    port = free_port()
    socket = os.path.join(directory, "valkey.sock")
    process = subprocess.Popen(
        [
            str(_valkey_bin()),
            *("--port", str(port), "--bind", "127.0.0.1", "--unixsocket", socket),
            *("--requirepass", PASSWORD, "--save", "", "--appendonly", "no"),
            *("--dir", directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(socket).exists():
        assert time.monotonic() < deadline, "valkey-server did not start"
        time.sleep(0.02)
    server = Valkey(process, port, socket)
    try:
        yield server
    finally:
        # server.process: a test may have replaced the first server with a restarted one.
        server.process.send_signal(signal.SIGCONT)
        server.process.terminate()
        server.process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def _reads(url: str, *, timeout: float = 0.5, cooldown: float = 0.0) -> BatchedGets:
    reader = cache_reader(
        url, RedisGuard(aredis.Redis.from_url(url), cooldown=cooldown, timeout=timeout)
    )
    assert isinstance(reader, BatchedGets)
    return reader


def test_concurrent_reads_share_mgets_and_each_gets_its_own_value(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).mset({f"batch:{i}": f"value-{i}" for i in range(10)})

    async def read_all() -> tuple[list[bytes | None], int]:
        reader = _reads(redis_url)
        try:
            await reader.get("batch:0")  # connected
            before = reader.batches
            keys = [f"batch:{i % 12}" for i in range(60)]  # repeats, and two missing keys
            values = await asyncio.gather(*(reader.get(k) for k in keys))
            return list(values), reader.batches - before
        finally:
            await reader.aclose()

    values, batches = asyncio.run(read_all())
    assert values == [f"value-{i % 12}".encode() if i % 12 < 10 else None for i in range(60)]
    assert batches <= 2  # 60 concurrent reads: the first MGET, then one for the rest


def test_unix_socket_password_and_database_number_are_honoured(valkey: Valkey) -> None:
    for db in (0, 3):
        redis.Redis.from_url(valkey.unix_url(db)).set("k", f"in-db-{db}")

    async def read(url: str) -> bytes | None:
        reader = _reads(url)
        try:
            return await reader.get("k")
        finally:
            await reader.aclose()

    assert asyncio.run(read(valkey.unix_url(3))) == b"in-db-3"
    assert asyncio.run(read(valkey.tcp_url)) == b"in-db-0"


def test_a_refused_password_is_a_miss_and_a_cool_down_not_an_error(valkey: Valkey) -> None:
    redis.Redis.from_url(valkey.tcp_url).set("k", "v")
    wrong = f"redis://:wrong@127.0.0.1:{valkey.port}/0"

    async def read() -> tuple[bytes | None, bool]:
        reader = _reads(wrong, cooldown=30)
        try:
            return await reader.get("k"), reader.guard.available
        finally:
            await reader.aclose()

    assert asyncio.run(read()) == (None, False)


def test_a_reply_that_comes_too_late_never_answers_a_later_request(valkey: Valkey) -> None:
    redis.Redis.from_url(valkey.tcp_url).mset({"a": "value-a", "b": "value-b"})

    async def scenario() -> list[object]:
        reader = _reads(valkey.tcp_url, timeout=0.2)
        try:
            seen: list[object] = [await reader.get("a")]
            valkey.process.send_signal(signal.SIGSTOP)  # the server hangs, MGET unanswered
            started = time.monotonic()
            seen.append(await reader.get("a"))
            seen.append(time.monotonic() - started < 2)
            valkey.process.send_signal(signal.SIGCONT)  # now it answers that MGET, late
            deadline = time.monotonic() + 10
            value = None
            while value is None and time.monotonic() < deadline:
                value = await reader.get("b")
            seen.append(value)
            seen.append(await reader.get("a"))
            return seen
        finally:
            await reader.aclose()

    first, while_frozen, answered_in_time, b, a = asyncio.run(scenario())
    assert first == b"value-a"
    assert while_frozen is None and answered_in_time
    # Had the connection been kept, the late ["value-a"] would have answered "b".
    assert b == b"value-b"
    assert a == b"value-a"


def test_a_restarted_server_is_read_again_after_the_cool_down(valkey: Valkey) -> None:
    url = valkey.tcp_url
    redis.Redis.from_url(url).set("k", "before")

    def restart() -> None:
        valkey.process = subprocess.Popen(
            [
                str(_valkey_bin()),
                *("--port", str(valkey.port), "--bind", "127.0.0.1"),
                *("--requirepass", PASSWORD, "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).set("k", "after")
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "valkey did not come back"
                time.sleep(0.05)

    async def scenario() -> list[bytes | None]:
        reader = _reads(url, cooldown=0.2)
        try:
            seen = [await reader.get("k")]
            valkey.process.kill()
            await asyncio.to_thread(valkey.process.wait, 10)
            seen.append(await reader.get("k"))  # refused: a miss
            await asyncio.to_thread(restart)
            deadline = time.monotonic() + 10
            value = None
            while value is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                value = await reader.get("k")
            seen.append(value)
            return seen
        finally:
            await reader.aclose()

    assert asyncio.run(scenario()) == [b"before", None, b"after"]


def test_fills_keep_the_newest_version_and_survive_a_script_flush(valkey: Valkey) -> None:
    direct = redis.Redis.from_url(valkey.tcp_url)

    async def fill_three_times() -> None:
        reader = _reads(valkey.tcp_url)
        try:
            await reader.fill("order:1", 2, b'{"version":2}', 60)
            await reader.fill("order:1", 1, b'{"version":1}', 60)  # older: refused
            direct.script_flush()  # a restarted or flushed server forgets the script
            await reader.fill("order:2", 5, b'{"version":5}', 60)
            assert reader.guard.available
        finally:
            await reader.aclose()

    asyncio.run(fill_three_times())
    assert direct.get("order:1") == b'2:{"version":2}'
    assert direct.get("order:2") == b'5:{"version":5}'
    assert 0 < direct.ttl("order:2") <= 60


def test_a_fill_with_redis_gone_is_a_cool_down_not_an_error(valkey: Valkey) -> None:
    async def fill() -> bool:
        reader = _reads(valkey.tcp_url, cooldown=30)
        try:
            await reader.get("warm")  # connected
            valkey.process.terminate()
            valkey.process.wait(timeout=10)
            await reader.fill("order:1", 1, b"{}", 60)
            return reader.guard.available
        finally:
            await reader.aclose()

    assert asyncio.run(fill()) is False


def test_only_plain_and_unix_addresses_get_the_dedicated_connection() -> None:
    assert address_of("redis://127.0.0.1:6380/2") is not None
    assert address_of("unix:///run/valkey.sock?db=1") is not None
    assert address_of("rediss://cache.example:6380/0") is None
    guard = RedisGuard(aredis.Redis.from_url("rediss://cache.example:6380/0"))
    assert isinstance(cache_reader("rediss://cache.example:6380/0", guard), GetBatcher)
