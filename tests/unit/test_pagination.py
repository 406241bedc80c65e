"""Cursors, query-parameter rules and conditional-GET parsing (no I/O)."""

from __future__ import annotations

import base64

import pytest

from orderdesk.problems import ProblemError
from query_side.pagination import (
    decode_cursor,
    encode_cursor,
    fingerprint,
    parse_choice,
    parse_limit,
)
from query_side.representations import not_modified


def test_a_cursor_round_trips_its_sort_key() -> None:
    query = fingerprint("products", "mug", None, True, "-units_sold")
    cursor = encode_cursor(query, [42, "MUG-1"])
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, query, (int, str)) == [42, "MUG-1"]
    assert decode_cursor(None, query, (int, str)) is None
    assert decode_cursor("", query, (int, str)) is None


def test_fingerprints_tell_queries_apart() -> None:
    assert fingerprint("products", "a", None, "sku") != fingerprint("products", "b", None, "sku")
    assert fingerprint("orders", "*", None) != fingerprint("orders", "*", "paid")
    assert fingerprint("orders", "*", None) == fingerprint("orders", "*", None)


def _rejected(raw: str, query: str, types: tuple[type, ...]) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        decode_cursor(raw, query, types)
    assert caught.value.status == 400
    assert caught.value.slug == "invalid-cursor"
    return caught.value


def test_cursors_that_are_not_ours_or_belong_elsewhere_are_400() -> None:
    query = fingerprint("products", "", None, None, "sku")
    other = fingerprint("products", "", None, None, "name")
    raw = lambda text: base64.urlsafe_b64encode(text.encode()).decode()  # noqa: E731
    _rejected("***", query, (str,))
    _rejected(raw("not json"), query, (str,))
    _rejected(raw('{"a": 1}'), query, (str,))
    _rejected(raw(f'["{query}"]'), query, (str,))  # key missing
    _rejected(raw(f'["{query}", 5]'), query, (str,))  # wrong type
    _rejected(raw(f'["{query}", true, "A"]'), query, (int, str))  # bool is not an int here
    _rejected("A" * 600, query, (str,))
    assert "another query" in _rejected(encode_cursor(other, ["A"]), query, (str,)).detail


@pytest.mark.parametrize(("raw", "expected"), [(None, 20), ("", 20), ("1", 1), ("100", 100)])
def test_limit_defaults_and_bounds(raw: str | None, expected: int) -> None:
    params = {} if raw is None else {"limit": raw}
    assert parse_limit(params) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "1.5", "ten", "\u0661\u0660", "9" * 20])
def test_bad_limits_are_422_naming_limit(raw: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_limit({"limit": raw})
    assert caught.value.status == 422
    assert caught.value.errors is not None
    assert caught.value.errors[0].loc == ["query", "limit"]


def test_choices() -> None:
    assert parse_choice({}, "sort", ("sku", "name"), "sku") == "sku"
    assert parse_choice({"sort": "name"}, "sort", ("sku", "name")) == "name"
    with pytest.raises(ProblemError) as caught:
        parse_choice({"sort": "price"}, "sort", ("sku", "name"))
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ('"3"', True),
        ('"4"', False),
        ('W/"3"', True),
        ('"1", "3"', True),
        ("*", True),
        ("3", False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert not_modified(header, 3) is matches
