"""The Dramatiq broker and the wire contract of the one message the projectors consume.

The broker is chosen from ``ORDERDESK_BROKER_URL`` (default: the Redis URL): ``redis://``
gives a RedisBroker, ``amqp://`` a RabbitmqBroker. A composition root builds it and calls
``dramatiq.set_broker`` BEFORE declaring actors (:mod:`projections.actors`), because the
actor decorator would otherwise create a default RabbitMQ broker on its own.
"""

from __future__ import annotations

import dramatiq

#: The queue and actor of ``project(name)`` messages. The relay (command side, which may
#: not import this package) sends the same message; a unit test keeps the two in step.
QUEUE_NAME = "projections"
ACTOR_NAME = "project"


def make_broker(url: str) -> dramatiq.Broker:
    """A broker for ``url`` (``redis://``/``rediss://``/``unix://`` or ``amqp://``/``amqps://``)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url)  # type: ignore[no-untyped-call]
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise ValueError(f"unsupported broker URL scheme {scheme}:// (use redis:// or amqp://)")


def install_broker(url: str) -> dramatiq.Broker:
    """Build the broker and make it Dramatiq's global one (call before declaring actors)."""
    broker = make_broker(url)
    dramatiq.set_broker(broker)
    return broker


def project_message(name: str, hop: int = 0) -> dramatiq.Message[None]:
    """The ``project(name)`` message, for senders that do not declare the actor."""
    return dramatiq.Message(
        queue_name=QUEUE_NAME,
        actor_name=ACTOR_NAME,
        args=(name,),
        kwargs={"hop": hop} if hop else {},
        options={},
    )
