"""The worker's Dramatiq actor, declared by a function once the broker is set.

There is one message type, ``project(name)``: catch projection ``name`` up. Exactly-once
comes from the checkpoint written in the batch's transaction, not from the broker, so a
redelivered or duplicate message finds nothing new and costs one query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from shared_contracts.messages import ACTOR_NAME, QUEUE_NAME

#: A failure outside the runner's own poison handling (e.g. the database is restarting)
#: is retried by Dramatiq with this backoff, in milliseconds.
MAX_RETRIES = 10
MIN_BACKOFF_MS = 200
MAX_BACKOFF_MS = 10_000


def declare_project_actor(broker: dramatiq.Broker, handler: Callable[[str, int], None]) -> Any:
    """Declare ``project(name, hop=0)`` on ``broker``, calling ``handler(name, hop)``."""

    def project(name: str, hop: int = 0) -> None:
        handler(name, hop)

    return dramatiq.actor(
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=QUEUE_NAME,
        max_retries=MAX_RETRIES,
        min_backoff=MIN_BACKOFF_MS,
        max_backoff=MAX_BACKOFF_MS,
    )(project)
