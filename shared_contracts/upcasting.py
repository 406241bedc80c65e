"""Upcasters: turn a stored payload of an old schema version into the current shape.

The event log is append-only, so history is never rewritten when an event's shape changes.
Instead every change of shape bumps the event class's ``SCHEMA_VERSION`` and registers one
upcaster here taking a payload of version ``n`` to version ``n + 1``. Reading chains them
until the current version is reached, so an upcaster is written once and never edited.

Upcasters work on plain dicts (the decoded JSON) rather than Structs, because the old
shapes no longer exist as classes. This module knows nothing about the event classes (the
caller passes the current version), which keeps it free of import cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

#: ``(event_type, from_version) -> fn`` where ``fn`` returns the payload at ``from_version + 1``.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UpcastError(ValueError):
    """A stored payload cannot be brought to the current version (a missing upcaster)."""


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the decorated function as the upcaster of ``event_type`` from ``from_version``."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        # Two upcasters for one step would make the result depend on import order.
        if key in UPCASTERS:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        UPCASTERS[key] = fn
        return fn

    return register


def upcast(event_type: str, version: int, current_version: int, payload: Payload) -> Payload:
    """Apply the registered upcasters to ``payload`` from ``version`` up to ``current_version``.

    The input dict is never mutated (it may be a row cached by the caller). Raises
    :class:`UpcastError` when a step is missing or the stored version is newer than the code.
    """
    if version > current_version:
        # A newer writer than this reader: refuse rather than silently drop fields.
        raise UpcastError(
            f"{event_type} v{version} is newer than this code knows (v{current_version})"
        )
    while version < current_version:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UpcastError(f"no upcaster for {event_type} from v{version}")
        payload = step(dict(payload))
        version += 1
    return payload


@upcaster("StockAdjusted", 1)
def _stock_adjusted_v1_to_v2(payload: Payload) -> Payload:
    """v1 called the signed change ``quantity_change`` and its optional comment ``note``.

    v2 names them ``delta`` and ``reason`` and requires a reason, so an adjustment that was
    recorded without a note reads as ``"unspecified"``.
    """
    payload["delta"] = payload.pop("quantity_change")
    note = payload.pop("note", None)
    payload["reason"] = "unspecified" if note is None else note
    return payload
