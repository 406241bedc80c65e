"""Consistency tokens: what a command response gives and a query waits on (API.md §Consistency).

A token names the last event a command appended by its place in the gap-safe reading
order of the event log: ``(transaction_id, position)``. Projections keep their checkpoint
as the same pair and read in that order, so "the projection has applied this write" is
simply ``checkpoint >= token`` — no lookup in the write database is needed.
"""

from __future__ import annotations

import base64
import binascii
from typing import NamedTuple

_PREFIX = "c1."


class LogPoint(NamedTuple):
    """A point in the event log's reading order. Tuples compare in that order."""

    transaction_id: int
    position: int


class MalformedToken(ValueError):
    """The text is not a token this service issued."""


def encode_token(point: LogPoint) -> str:
    """The opaque token for ``point``."""
    raw = f"{point.transaction_id}.{point.position}".encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> LogPoint:
    """The point a token names; :class:`MalformedToken` when it is not one of ours."""
    if not token.startswith(_PREFIX) or len(token) > 64:
        raise MalformedToken("not a consistency token")
    body = token[len(_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
        tx_text, pos_text = raw.split(".")
        point = LogPoint(int(tx_text), int(pos_text))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MalformedToken("not a consistency token") from None
    if point.transaction_id < 0 or point.position < 0:
        raise MalformedToken("not a consistency token")
    return point
