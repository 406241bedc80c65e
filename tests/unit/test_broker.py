"""One broker factory for the relay, the worker and the CLI; one message contract."""

from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from orderdesk.broker import make_broker, project_message
from orderdesk.doorbell_broker import DoorbellRedisBroker
from projections.registry import PROJECTIONS
from shared_contracts.messages import ACTOR_NAME, PROJECTION_NAMES, QUEUE_NAME


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6399/0", "rediss://cache.example:6380/1", "unix:///tmp/r.sock"]
)
def test_redis_urls_give_a_redis_broker_with_a_doorbell(url: str) -> None:
    broker = make_broker(url)
    assert isinstance(broker, RedisBroker) and isinstance(broker, DoorbellRedisBroker)


@pytest.mark.parametrize("waits", [{"idle_wait": 0}, {"delay_wait": -1.0}])
def test_a_doorbell_wait_must_be_positive(waits: dict[str, float]) -> None:
    # BLPOP with a timeout of 0 would block for ever.
    with pytest.raises(ValueError, match="must be positive"):
        DoorbellRedisBroker(url="redis://127.0.0.1:6399/0", **waits)


@pytest.mark.parametrize("url", ["amqp://guest:guest@127.0.0.1:5699/", "AMQPS://mq.example/vh"])
def test_amqp_urls_give_a_rabbitmq_broker(url: str) -> None:
    broker = make_broker(url)
    assert isinstance(broker, RabbitmqBroker)


@pytest.mark.parametrize("url", ["kafka://127.0.0.1:9092", "127.0.0.1:6379", ""])
def test_other_urls_are_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(ValueError, match="use redis:// or amqp://"):
        make_broker(url)


def test_the_message_names_a_projection_the_worker_knows() -> None:
    message = project_message("order_view")
    assert (message.queue_name, message.actor_name, message.args) == (
        QUEUE_NAME,
        ACTOR_NAME,
        ("order_view",),
    )
    assert project_message("daily_sales", hop=2).kwargs == {"hop": 2}
    # The relay wakes exactly the projections the worker can run.
    assert sorted(PROJECTION_NAMES) == sorted(PROJECTIONS)
