"""Event contracts: every type round-trips through the event log shape and tagged JSON."""

from __future__ import annotations

import json
from typing import get_args

import msgspec
import pytest

from shared_contracts.events import (
    EVENT_TYPES,
    Event,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductAdded,
    ProductDiscontinued,
    ProductUpdated,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
    UnknownEventType,
    decode_payload,
    encode_payload,
    event_type_of,
    schema_version_of,
    stream_of,
)

ORDER_ID = "0b7e3c1e-8f5a-4d5e-9a43-6f2f0e1d2c3b"
LINES = (OrderLine("ABC-1", "Mug", 2, 1250), OrderLine("XYZ-9", "Café au lait", 1, 399))

SAMPLES: list[Event] = [
    ProductAdded(sku="ABC-1", name="Mug", price=1250),
    ProductUpdated(sku="ABC-1", price=1300),
    ProductUpdated(sku="ABC-1", name="Big mug"),
    ProductDiscontinued(sku="ABC-1"),
    StockReceived(sku="ABC-1", quantity=10, reference="PO-7", on_hand=10, reserved=0),
    StockReceived(sku="ABC-1", quantity=10, reference=None, on_hand=20, reserved=0),
    StockAdjusted(sku="ABC-1", delta=-3, reason="broken", on_hand=17, reserved=0),
    StockReserved(sku="ABC-1", quantity=2, order_id=ORDER_ID, on_hand=17, reserved=2),
    StockReleased(sku="ABC-1", quantity=2, order_id=ORDER_ID, on_hand=17, reserved=0),
    StockShipped(sku="ABC-1", quantity=2, order_id=ORDER_ID, on_hand=15, reserved=0),
    OrderPlaced(order_id=ORDER_ID, customer_id="cust-1", lines=LINES, total=2899),
    OrderPaid(order_id=ORDER_ID, amount=2899),
    OrderShipped(order_id=ORDER_ID),
    OrderCancelled(
        order_id=ORDER_ID, reason=None, refund=2899, previous_status="paid", lines=LINES
    ),
]


def test_samples_cover_every_event_type() -> None:
    assert {type(e).__name__ for e in SAMPLES} == set(EVENT_TYPES)
    assert set(EVENT_TYPES.values()) == set(get_args(Event))


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_every_event_type_is_tagged_frozen_and_versioned(cls: type[Event]) -> None:
    config = cls.__struct_config__
    assert config.tag == cls.__name__
    assert config.tag_field == "type"
    assert config.frozen
    assert isinstance(cls.SCHEMA_VERSION, int) and cls.SCHEMA_VERSION >= 1
    assert schema_version_of(cls.__name__) == cls.SCHEMA_VERSION
    # A class variable, not a field: it must never be written into payloads.
    assert "SCHEMA_VERSION" not in cls.__struct_fields__


@pytest.mark.parametrize("event", SAMPLES, ids=repr)
def test_payload_round_trip(event: Event) -> None:
    event_type = event_type_of(event)
    payload = encode_payload(event)
    as_dict = json.loads(payload)
    assert "type" not in as_dict  # the tag lives in the event_type column
    version = schema_version_of(event_type)
    assert decode_payload(event_type, version, payload) == event
    assert decode_payload(event_type, version, payload.decode()) == event
    # psycopg hands jsonb over as a dict
    assert decode_payload(event_type, version, as_dict) == event


@pytest.mark.parametrize("event", SAMPLES, ids=repr)
def test_tagged_json_round_trip(event: Event) -> None:
    data = msgspec.json.encode(event)
    assert json.loads(data)["type"] == type(event).__name__
    assert msgspec.json.decode(data, type=Event) == event


def test_payload_keeps_fields_in_published_names() -> None:
    payload = json.loads(encode_payload(SAMPLES[10]))
    assert payload == {
        "order_id": ORDER_ID,
        "customer_id": "cust-1",
        "lines": [
            {"sku": "ABC-1", "name": "Mug", "quantity": 2, "unit_price": 1250},
            {"sku": "XYZ-9", "name": "Café au lait", "quantity": 1, "unit_price": 399},
        ],
        "total": 2899,
    }


def test_product_updated_leaves_unchanged_fields_null() -> None:
    assert json.loads(encode_payload(ProductUpdated(sku="A", price=5))) == {
        "sku": "A",
        "name": None,
        "price": 5,
    }


def test_unknown_fields_are_ignored_so_shapes_can_grow() -> None:
    payload = b'{"order_id": "o", "amount": 5, "currency": "EUR"}'
    assert decode_payload("OrderPaid", 1, payload) == OrderPaid(order_id="o", amount=5)


def test_invalid_payload_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_payload("OrderPaid", 1, b'{"order_id": "o", "amount": "five"}')
    with pytest.raises(msgspec.ValidationError):
        decode_payload("OrderPaid", 1, {"order_id": "o"})
    with pytest.raises(msgspec.ValidationError):
        decode_payload("StockAdjusted", 1, b"[1, 2]")


def test_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType):
        decode_payload("OrderTeleported", 1, b"{}")
    with pytest.raises(UnknownEventType):
        schema_version_of("OrderTeleported")


def test_order_line_total_is_derived() -> None:
    assert LINES[0].line_total == 2500
    assert "line_total" not in json.loads(msgspec.json.encode(LINES[0]))


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (ProductAdded(sku="ABC-1", name="Mug", price=1), ("product", "product:ABC-1")),
        (ProductDiscontinued(sku="ABC-1"), ("product", "product:ABC-1")),
        (
            StockAdjusted(sku="ABC-1", delta=1, reason="r", on_hand=1, reserved=0),
            ("stock", "stock:ABC-1"),
        ),
        (
            StockShipped(sku="XYZ-9", quantity=1, order_id=ORDER_ID, on_hand=0, reserved=0),
            ("stock", "stock:XYZ-9"),
        ),
        (OrderShipped(order_id=ORDER_ID), ("order", f"order:{ORDER_ID}")),
        (
            OrderCancelled(
                order_id=ORDER_ID, reason="x", refund=0, previous_status="placed", lines=()
            ),
            ("order", f"order:{ORDER_ID}"),
        ),
    ],
)
def test_stream_of(event: Event, expected: tuple[str, str]) -> None:
    assert stream_of(event) == expected


def test_every_sample_has_a_stream() -> None:
    for event in SAMPLES:
        stream_type, stream_id = stream_of(event)
        assert stream_type in {"product", "stock", "order"}
        assert stream_id.startswith(stream_type + ":")


def test_events_are_immutable() -> None:
    event = OrderPaid(order_id="o", amount=1)
    with pytest.raises(AttributeError):
        event.amount = 2  # type: ignore[misc]
