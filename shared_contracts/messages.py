"""The one message between the relay (write side) and the projectors.

``project(name, hop=0)`` on queue ``projections`` asks the workers to catch projection
``name`` up; ``project("*")`` (:data:`EVERY_PROJECTION`) asks for all of them in one sweep,
which is what the relay sends on each wakeup. The relay sends it without importing the
projections package (the write side may not depend on the read side), so both sides take
the names from here.
"""

from __future__ import annotations

#: The Dramatiq queue the projectors consume.
QUEUE_NAME = "projections"
#: The Dramatiq actor that handles ``project(name, hop=0)``.
ACTOR_NAME = "project"
#: Every projection the relay wakes; ``projections.registry`` must know exactly these.
PROJECTION_NAMES: tuple[str, ...] = ("order_view", "product_view", "daily_sales", "order_history")
#: The ``name`` of ``project(name)`` that means every projection, in one sweep.
EVERY_PROJECTION = "*"
