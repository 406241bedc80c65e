"""Upcasting: stored history of an old schema version reads as the current shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared_contracts import upcasting
from shared_contracts.events import StockAdjusted, decode_payload, schema_version_of
from shared_contracts.upcasting import UPCASTERS, UpcastError, upcast, upcaster

# A StockAdjusted payload exactly as version 1 wrote it to the event log.
V1_PAYLOAD = (
    b'{"sku": "ABC-1", "quantity_change": -3, "note": "dropped a box", "on_hand": 7, "reserved": 2}'
)


def test_stock_adjusted_is_at_version_2() -> None:
    assert StockAdjusted.SCHEMA_VERSION == 2
    assert schema_version_of("StockAdjusted") == 2


def test_v1_stock_adjusted_reads_as_v2() -> None:
    event = decode_payload("StockAdjusted", 1, V1_PAYLOAD)
    assert event == StockAdjusted(
        sku="ABC-1", delta=-3, reason="dropped a box", on_hand=7, reserved=2
    )


def test_v1_stock_adjusted_without_note_gets_a_reason() -> None:
    payload = {"sku": "A", "quantity_change": 4, "note": None, "on_hand": 4, "reserved": 0}
    event = decode_payload("StockAdjusted", 1, payload)
    assert event == StockAdjusted(sku="A", delta=4, reason="unspecified", on_hand=4, reserved=0)
    # The caller's dict (perhaps a cached row) is left as it was.
    assert payload["quantity_change"] == 4 and "delta" not in payload


def test_v1_stock_adjusted_with_note_missing_entirely() -> None:
    payload = b'{"sku": "A", "quantity_change": 1, "on_hand": 1, "reserved": 0}'
    assert decode_payload("StockAdjusted", 1, payload).reason == "unspecified"  # type: ignore[union-attr]


def test_v2_payload_is_not_upcast() -> None:
    payload = b'{"sku": "A", "delta": 1, "reason": "found", "on_hand": 1, "reserved": 0}'
    assert decode_payload("StockAdjusted", 2, payload) == StockAdjusted(
        sku="A", delta=1, reason="found", on_hand=1, reserved=0
    )


def test_a_newer_version_than_the_code_is_refused() -> None:
    with pytest.raises(UpcastError):
        decode_payload("StockAdjusted", 3, b"{}")


def test_a_missing_step_is_refused() -> None:
    with pytest.raises(UpcastError):
        decode_payload("OrderPaid", 0, b'{"order_id": "o", "amount": 1}')


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    saved = dict(UPCASTERS)
    yield
    UPCASTERS.clear()
    UPCASTERS.update(saved)


@pytest.mark.usefixtures("scratch_registry")
def test_upcasters_chain_in_version_order() -> None:
    @upcaster("Widget", 1)
    def _one(p: dict[str, Any]) -> dict[str, Any]:
        p["steps"] = [*p.get("steps", []), 1]
        return p

    @upcaster("Widget", 2)
    def _two(p: dict[str, Any]) -> dict[str, Any]:
        p["steps"] = [*p["steps"], 2]
        return p

    assert upcast("Widget", 1, 3, {}) == {"steps": [1, 2]}
    assert upcast("Widget", 2, 3, {"steps": []}) == {"steps": [2]}
    assert upcast("Widget", 3, 3, {"x": 1}) == {"x": 1}


@pytest.mark.usefixtures("scratch_registry")
def test_one_upcaster_per_step() -> None:
    with pytest.raises(ValueError, match="already registered"):
        upcasting.upcaster("StockAdjusted", 1)(lambda p: p)
