"""Request validation of the command bodies: what a client gets back for bad input."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from command_side import commands as c
from orderdesk.problems import ProblemError


def _reject(body: Any, command: type[Any]) -> ProblemError:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    with pytest.raises(ProblemError) as caught:
        c.decode_command(raw, command)
    return caught.value


def _locs(error: ProblemError) -> list[list[str | int]]:
    assert error.errors is not None
    return [item.loc for item in error.errors]


def test_valid_bodies_decode() -> None:
    assert c.decode_command(b'{"sku":"A-1","name":"Mug","price":450}', c.AddProduct) == (
        c.AddProduct("A-1", "Mug", 450)
    )
    order = c.decode_command(
        b'{"lines":[{"sku":"A","quantity":2},{"sku":"B","quantity":1}]}', c.PlaceOrder
    )
    assert [(line.sku, line.quantity) for line in order.lines] == [("A", 2), ("B", 1)]
    assert c.decode_command(b"{}", c.CancelOrder).reason is None


def test_malformed_json_is_400() -> None:
    error = _reject(b'{"sku": ', c.AddProduct)
    assert (error.status, error.slug) == (400, "malformed-json")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"sku": "a-lower", "name": "x", "price": 1}, ["body", "sku"]),
        ({"sku": "-LEADING", "name": "x", "price": 1}, ["body", "sku"]),
        ({"sku": "A" * 33, "name": "x", "price": 1}, ["body", "sku"]),
        ({"sku": "A", "name": "", "price": 1}, ["body", "name"]),
        ({"sku": "A", "name": "x" * 201, "price": 1}, ["body", "name"]),
        ({"sku": "A", "name": "x", "price": 0}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": 1_000_000_001}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "12"}, ["body", "price"]),
        ({"sku": "A", "name": "x"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": 1, "colour": "red"}, ["body", "colour"]),
    ],
)
def test_add_product_field_rules(body: dict[str, Any], loc: list[str | int]) -> None:
    error = _reject(body, c.AddProduct)
    assert error.status == 422
    assert _locs(error) == [loc]


def test_update_product_needs_a_field() -> None:
    assert _locs(_reject({}, c.UpdateProduct)) == [["body"]]
    assert c.decode_command(b'{"price": 5}', c.UpdateProduct).price == 5


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"quantity": 0}, ["body", "quantity"]),
        ({"quantity": 1_000_001}, ["body", "quantity"]),
        ({"quantity": 1, "reference": "r" * 101}, ["body", "reference"]),
    ],
)
def test_receipt_rules(body: dict[str, Any], loc: list[str | int]) -> None:
    assert _locs(_reject(body, c.ReceiveStock)) == [loc]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"delta": 0, "reason": "count"}, ["body", "delta"]),
        ({"delta": -1_000_001, "reason": "count"}, ["body", "delta"]),
        ({"delta": 3, "reason": ""}, ["body", "reason"]),
        ({"delta": 3}, ["body", "reason"]),
    ],
)
def test_adjustment_rules(body: dict[str, Any], loc: list[str | int]) -> None:
    assert _locs(_reject(body, c.AdjustStock)) == [loc]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"lines": []}, ["body", "lines"]),
        ({"lines": [{"sku": "A", "quantity": 1}] * 101}, ["body", "lines"]),
        ({"lines": [{"sku": "A", "quantity": 0}]}, ["body", "lines", 0, "quantity"]),
        ({"lines": [{"sku": "A", "quantity": 1001}]}, ["body", "lines", 0, "quantity"]),
        ({"lines": [{"sku": "A", "quantity": 1}, {"sku": "bad"}]}, ["body", "lines", 1, "sku"]),
        (
            {"lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]},
            ["body", "lines", 1, "sku"],
        ),
        ({"lines": [{"sku": "A", "quantity": 1}], "customer_id": ""}, ["body", "customer_id"]),
    ],
)
def test_order_rules(body: dict[str, Any], loc: list[str | int]) -> None:
    error = _reject(body, c.PlaceOrder)
    assert error.status == 422
    assert _locs(error) == [loc]


def test_bodyless_commands_refuse_fields() -> None:
    assert _locs(_reject({"force": True}, c.ShipOrder)) == [["body", "force"]]
    assert _locs(_reject({"reason": "x" * 201}, c.CancelOrder)) == [["body", "reason"]]


def test_canonical_bytes_ignore_layout() -> None:
    a = c.decode_command(b'{"sku":"A","name":"x","price":1}', c.AddProduct)
    b = c.decode_command(b'{ "price": 1, "name": "x",  "sku": "A" }', c.AddProduct)
    assert c.canonical_bytes(a) == c.canonical_bytes(b)
    other = c.decode_command(b'{"sku":"A","name":"x","price":2}', c.AddProduct)
    assert c.canonical_bytes(a) != c.canonical_bytes(other)
