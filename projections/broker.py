"""Installing the worker's Dramatiq broker before its actor is declared.

The broker itself comes from :func:`orderdesk.broker.make_broker` (shared with the relay).
A composition root calls :func:`install_broker` BEFORE declaring actors
(:mod:`projections.actors`), because the actor decorator would otherwise create a default
RabbitMQ broker on its own.
"""

from __future__ import annotations

import dramatiq

from orderdesk.broker import make_broker


def install_broker(url: str) -> dramatiq.Broker:
    """Build the broker and make it Dramatiq's global one (call before declaring actors)."""
    broker = make_broker(url)
    dramatiq.set_broker(broker)
    return broker
