"""The Dramatiq broker of every process that sends or consumes ``project`` messages.

``ORDERDESK_BROKER_URL`` picks the engine: ``redis://`` (also ``rediss://``, ``unix://``)
gives a RedisBroker with a doorbell (:mod:`orderdesk.doorbell_broker`), ``amqp://``
(``amqps://``) a RabbitmqBroker. The relay, the worker and ``orderdesk projections retry``
all build their broker here, so they can never disagree.
"""

from __future__ import annotations

import dramatiq

from shared_contracts.messages import ACTOR_NAME, QUEUE_NAME

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")


def make_broker(url: str) -> dramatiq.Broker:
    """A new broker for ``url``; ``ValueError`` for any other scheme.

    Nothing connects yet: both brokers open their connections lazily on first use.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        from orderdesk.doorbell_broker import DoorbellRedisBroker

        return DoorbellRedisBroker(url=url)
    if scheme in AMQP_SCHEMES:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise ValueError(
        f"unsupported broker URL scheme {scheme + '://' if scheme else repr(url)}"
        " (use redis:// or amqp://)"
    )


def project_message(name: str, hop: int = 0) -> dramatiq.Message[None]:
    """The ``project(name)`` message, for senders that do not declare the actor."""
    return dramatiq.Message(
        queue_name=QUEUE_NAME,
        actor_name=ACTOR_NAME,
        args=(name,),
        kwargs={"hop": hop} if hop else {},
        options={},
    )
