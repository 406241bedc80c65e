"""The doorbell broker against the real Redis: an idle consumer blocks, yet takes a message
as soon as it is enqueued; delayed messages run when due; a lost ring only costs time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from orderdesk.doorbell_broker import DoorbellRedisBroker
from tests.support import poll_until


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A Dramatiq namespace of this test's own, emptied afterwards."""
    name = f"doorbell-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _message(queue: str) -> dramatiq.Message[None]:
    return dramatiq.Message(queue_name=queue, actor_name="noop", args=(), kwargs={}, options={})


def _fetches(client: redis.Redis) -> int:
    """Script calls Redis has answered so far (each Dramatiq fetch is one)."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))


def _take_one(broker: RedisBroker, queue: str, got: list[float]) -> None:
    """Consume ``queue`` until one message arrives; record when, and acknowledge it."""
    consumer = broker.consume(queue, prefetch=1)
    try:
        for message in consumer:
            if message is not None:
                got.append(time.monotonic())
                consumer.ack(message)
                return
    finally:
        consumer.close()


def test_an_idle_consumer_blocks_and_wakes_on_enqueue(redis_url: str, namespace: str) -> None:
    # A ten-second idle wait: only the doorbell can explain a wakeup within the check below.
    broker = DoorbellRedisBroker(url=redis_url, namespace=namespace, idle_wait=10.0)
    broker.declare_queue("q")
    client = redis.Redis.from_url(redis_url)
    got: list[float] = []
    consumer = threading.Thread(target=_take_one, args=(broker, "q", got), daemon=True)
    consumer.start()
    try:
        # Idle: the consumer waits in one BLPOP instead of fetching over and over.
        poll_until(
            lambda: any(c.get("cmd") == "blpop" for c in client.client_list()),
            message="consumer blocked on its doorbell",
        )
        # Watched for a while, the idle consumer makes no fetch (Dramatiq's own consumer,
        # polling every 10 ms, made ~30 in this window).
        before = _fetches(client)
        time.sleep(0.3)
        assert _fetches(client) - before <= 1
        sent = time.monotonic()
        broker.enqueue(_message("q"))
        consumer.join(timeout=5.0)
        assert got, "the consumer did not take the message"
        assert got[0] - sent < 2.0
        # Nothing is left behind: the message was acknowledged, its ring consumed.
        assert client.llen(f"{namespace}:q") == 0
        assert client.llen(broker.doorbell("q")) == 0
    finally:
        broker.enqueue(_message("q"))  # frees a still-waiting consumer
        consumer.join(timeout=12.0)
        broker.close()
        client.close()


def test_a_message_without_a_ring_waits_at_most_the_idle_wait(
    redis_url: str, namespace: str
) -> None:
    # A sender that does not ring (a lost ring, or Dramatiq's own broker) only costs time.
    broker = DoorbellRedisBroker(url=redis_url, namespace=namespace, idle_wait=0.5)
    plain = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    broker.declare_queue("q")
    plain.declare_queue("q")
    got: list[float] = []
    consumer = threading.Thread(target=_take_one, args=(broker, "q", got), daemon=True)
    consumer.start()
    try:
        sent = time.monotonic()
        plain.enqueue(_message("q"))
        consumer.join(timeout=5.0)
        assert got and got[0] - sent < 2.0
    finally:
        broker.close()
        plain.close()


def test_a_delayed_message_runs_when_due(redis_url: str, namespace: str) -> None:
    broker = DoorbellRedisBroker(url=redis_url, namespace=namespace, idle_wait=3.0)
    ran: list[float] = []

    def record() -> None:
        ran.append(time.monotonic())

    actor = dramatiq.actor(record, broker=broker, queue_name="later", actor_name="record")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        sent = time.monotonic()
        actor.send_with_options(delay=300)
        poll_until(lambda: ran, timeout=5.0, message="the delayed message ran")
        # Not before it was due, and not an idle wait (3 s) after it.
        assert 0.3 <= ran[0] - sent < 1.5
        poll_until(lambda: broker.client.llen(f"{namespace}:later") == 0, message="acked")
        assert len(ran) == 1
    finally:
        stopping = time.monotonic()
        worker.stop(timeout=10_000)
        broker.close()
    # A consumer blocked on its doorbell lets the worker stop within one idle wait.
    assert time.monotonic() - stopping < 3.0 + 1.0
