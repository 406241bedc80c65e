"""The verified-token cache: same answers as the verifier, honours exp, stays bounded."""

from __future__ import annotations

import time

import jwt
import pytest

from orderdesk.auth import ANONYMOUS, Principal, TokenVerifier
from orderdesk.problems import ProblemError
from orderdesk.verified_tokens import CachedVerifier

SECRET = "unit-test-secret-0123456789-abcdefghij"


def header(sub: str, exp: float, *roles: str) -> str:
    return "Bearer " + jwt.encode(
        {"sub": sub, "roles": list(roles), "exp": int(exp)}, SECRET, algorithm="HS256"
    )


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_answers_like_the_verifier_and_caches_valid_tokens() -> None:
    cache = CachedVerifier(TokenVerifier("HS256", SECRET))
    alice = header("alice", time.time() + 60, "customer")
    assert cache.principal(None) is ANONYMOUS
    first = cache.principal(alice)
    assert (first.subject, first.roles) == ("alice", frozenset({"customer"}))
    assert cache.principal(alice) is first and len(cache) == 1
    with pytest.raises(ProblemError) as bad:
        cache.principal(alice[:-3] + "xyz")
    assert bad.value.status == 401 and len(cache) == 1  # failures are never cached


class CountingVerifier:
    def __init__(self) -> None:
        self.inner = TokenVerifier("HS256", SECRET)
        self.calls = 0

    def principal(self, authorization: str | None) -> Principal:
        self.calls += 1
        return self.inner.principal(authorization)


def test_an_entry_is_used_only_until_the_token_expires() -> None:
    clock, verifier = Clock(), CountingVerifier()
    cache = CachedVerifier(verifier, clock=clock)
    token = header("bob", clock.now + 30, "customer")
    cache.principal(token)
    clock.now += 29
    cache.principal(token)
    assert verifier.calls == 1
    clock.now += 2  # past exp: the entry is dropped and the verifier decides again
    cache.principal(token)
    assert verifier.calls == 2


def test_the_cache_is_bounded_lru() -> None:
    cache = CachedVerifier(TokenVerifier("HS256", SECRET), size=2)
    a, b, c = (header(s, time.time() + 60, "staff") for s in "abc")
    cache.principal(a)
    cache.principal(b)
    cache.principal(a)  # a is now the most recently used
    cache.principal(c)
    assert len(cache) == 2 and set(cache._entries) == {a, c}
