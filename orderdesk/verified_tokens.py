"""A bounded cache of verified bearer tokens, in front of :class:`orderdesk.auth.TokenVerifier`.

A client sends the same token with every request for its lifetime. The command API looks
at it twice per request (the rate limiter keys on its subject, the endpoint authorises it),
the query API once for every read of an order or a staff resource. Verifying an HS256 JWT
costs tens of microseconds of CPU each time; a dictionary lookup does not. Only tokens that
verified are cached, keyed by the exact header value, and an entry is used only while
``now < exp`` — so an expired token is re-verified (and refused) exactly as without the
cache. The cache is LRU-bounded, so a flood of distinct tokens cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import jwt

from orderdesk.auth import ANONYMOUS, Principal

DEFAULT_SIZE = 4096


class Verifier(Protocol):
    """What :class:`orderdesk.auth.TokenVerifier` offers."""

    def principal(self, authorization: str | None) -> Principal: ...


class CachedVerifier:
    """``principal(authorization)`` like :class:`TokenVerifier`, remembering verified tokens."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        size: int = DEFAULT_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if size < 1:
            raise ValueError("cache size must be positive")
        self.verifier = verifier
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def principal(self, authorization: str | None) -> Principal:
        """The caller named by an ``Authorization`` header; 401 problem when it is bad."""
        if authorization is None:
            return ANONYMOUS
        entry = self._entries.get(authorization)
        if entry is not None:
            principal, expires = entry
            if self.clock() < expires:
                self._entries.move_to_end(authorization)
                return principal
            del self._entries[authorization]
        principal = self.verifier.principal(authorization)  # raises the 401 when bad
        expiry = _expiry(authorization)
        if expiry is not None:
            self._entries[authorization] = (principal, expiry)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return principal

    def __len__(self) -> int:
        return len(self._entries)


def _expiry(authorization: str) -> float | None:
    # The signature and exp were just checked by the verifier; this only reads exp back.
    token = authorization.partition(" ")[2].strip()
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.InvalidTokenError:
        return None
    return float(exp) if isinstance(exp, int | float) else None
