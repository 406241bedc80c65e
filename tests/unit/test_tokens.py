"""Consistency tokens name a point of the gap-safe reading order and round-trip exactly."""

from __future__ import annotations

import pytest

from shared_contracts.tokens import LogPoint, MalformedToken, decode_token, encode_token


def test_round_trip() -> None:
    point = LogPoint(2**40 + 7, 123456789)
    assert decode_token(encode_token(point)) == point


def test_order_follows_transaction_then_position() -> None:
    assert LogPoint(5, 900) < LogPoint(6, 1) < LogPoint(6, 2)


@pytest.mark.parametrize(
    "text", ["", "c1.", "c1.!!!", "x1.MTIuMw", "c1." + "A" * 80, "c1.MTI", "c1.LTEuMg"]
)
def test_malformed_tokens_are_rejected(text: str) -> None:
    with pytest.raises(MalformedToken):
        decode_token(text)
