"""The one timestamp format of every API response and cached view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from shared_contracts.views import rfc3339


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "2026-01-02T03:04:05.000006Z"),
        # A whole second keeps its fraction: cached and fresh views stay byte-equal.
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "2026-03-01T12:00:00.000000Z"),
        # Another offset is converted to UTC, across midnight and a month end.
        (
            datetime(2026, 3, 1, 1, 30, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
            "2026-02-28T23:30:00.250000Z",
        ),
        (datetime(999, 5, 6, 7, 8, 9, tzinfo=UTC), "0999-05-06T07:08:09.000000Z"),
    ],
)
def test_rfc3339_is_utc_with_microseconds_and_z(moment: datetime, expected: str) -> None:
    assert rfc3339(moment) == expected


def test_rfc3339_parses_back_to_the_same_moment() -> None:
    moment = datetime(2026, 7, 8, 9, 10, 11, 123456, tzinfo=timezone(timedelta(hours=-5)))
    shown = rfc3339(moment)
    assert datetime.fromisoformat(shown) == moment
    assert msgspec.json.decode(f'"{shown}"', type=datetime) == moment


def test_rfc3339_strings_sort_like_their_moments() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(microseconds=n * 499_999) for n in range(7)]
    assert sorted(rfc3339(m) for m in reversed(moments)) == [rfc3339(m) for m in moments]
