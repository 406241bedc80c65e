"""Handlers against the in-memory unit of work: statuses, ownership, If-Match, atomicity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from command_side import commands as c
from command_side import handlers as h
from command_side.handlers import Outcome
from command_side.unit_of_work import FakeUnitOfWork, _Store
from orderdesk.auth import Principal
from orderdesk.problems import ProblemError
from shared_contracts.tokens import decode_token

STAFF = Principal("staff-1", frozenset({"staff"}))
ALICE = Principal("alice", frozenset({"customer"}))
BOB = Principal("bob", frozenset({"customer"}))


def run(store: _Store, call: Callable[[FakeUnitOfWork], Awaitable[Outcome]]) -> Outcome:
    async def go() -> Outcome:
        async with FakeUnitOfWork(store) as uow:
            return await call(uow)

    return asyncio.run(go())


def reject(store: _Store, call: Callable[[FakeUnitOfWork], Awaitable[Outcome]]) -> ProblemError:
    before = (dict(store.products), dict(store.stock), dict(store.orders), list(store.log))
    with pytest.raises(ProblemError) as caught:
        run(store, call)
    # A rejected command changes nothing and appends no event.
    assert (store.products, store.stock, store.orders, store.log) == before
    return caught.value


@pytest.fixture
def store() -> _Store:
    s = FakeUnitOfWork.new_store()
    for sku, price, units in (("MUG", 450, 10), ("TEE", 1500, 3)):
        run(s, lambda u, sku=sku, price=price: h.add_product(c.AddProduct(sku, sku, price), u))
        run(s, lambda u, sku=sku, units=units: h.receive_stock(sku, c.ReceiveStock(units), u))
    return s


def order(store: _Store, who: Principal = ALICE, **lines: int) -> Outcome:
    cmd = c.PlaceOrder([c.LineRequest(sku, q) for sku, q in lines.items()])
    return run(store, lambda u: h.place_order(cmd, u, actor=who))


def test_add_product_answers_id_version_token(store: _Store) -> None:
    out = run(store, lambda u: h.add_product(c.AddProduct("CAP", "Cap", 900), u))
    assert (out.id, out.version, out.fields["price"]) == ("CAP", 1, 900)
    assert decode_token(out.token) == store.log[-1].point
    assert store.stock["CAP"].on_hand == 0


def test_duplicate_product_is_409(store: _Store) -> None:
    error = reject(store, lambda u: h.add_product(c.AddProduct("MUG", "Again", 1), u))
    assert (error.status, error.slug) == (409, "product-exists")


def test_unknown_product_is_404(store: _Store) -> None:
    assert reject(store, lambda u: h.update_product("NOPE", c.UpdateProduct("x"), u)).status == 404
    assert reject(store, lambda u: h.receive_stock("NOPE", c.ReceiveStock(1), u)).status == 404


def test_update_with_current_values_changes_nothing(store: _Store) -> None:
    events = len(store.log)
    out = run(store, lambda u: h.update_product("MUG", c.UpdateProduct(price=450), u))
    assert out.version == 1 and len(store.log) == events
    product_events = [r for r in store.log if r.stream_id == "product:MUG"]
    assert decode_token(out.token) == product_events[-1].point


def test_if_match_mismatch_is_412(store: _Store) -> None:
    error = reject(store, lambda u: h.update_product("MUG", c.UpdateProduct("New"), u, if_match=7))
    assert error.status == 412 and error.headers["ETag"] == '"1"'
    out = run(store, lambda u: h.update_product("MUG", c.UpdateProduct("New"), u, if_match=1))
    assert out.version == 2


def test_discontinued_product_conflicts(store: _Store) -> None:
    run(store, lambda u: h.discontinue_product("TEE", c.DiscontinueProduct(), u))
    assert (
        reject(store, lambda u: h.discontinue_product("TEE", c.DiscontinueProduct(), u)).status
        == 409
    )
    assert reject(store, lambda u: h.update_product("TEE", c.UpdateProduct("x"), u)).status == 409
    error = reject(
        store,
        lambda u: h.place_order(
            c.PlaceOrder([c.LineRequest("MUG", 1), c.LineRequest("TEE", 1)]), u, actor=ALICE
        ),
    )
    assert error.status == 422 and error.errors is not None
    assert error.errors[0].loc == ["body", "lines", 1, "sku"]


def test_adjustment_below_reserved_is_409(store: _Store) -> None:
    order(store, TEE=2)
    error = reject(store, lambda u: h.adjust_stock("TEE", c.AdjustStock(-2, "count"), u))
    assert error.status == 409
    out = run(store, lambda u: h.adjust_stock("TEE", c.AdjustStock(-1, "count"), u))
    assert out.fields == {"sku": "TEE", "on_hand": 2, "reserved": 2, "available": 0}


def test_place_order_reserves_and_captures_price(store: _Store) -> None:
    out = order(store, MUG=2, TEE=1)
    assert out.fields["total"] == 2 * 450 + 1500 and out.version == 1
    assert store.stock["MUG"].reserved == 2 and store.stock["TEE"].reserved == 1
    assert store.orders[out.id].customer_id == "alice"
    # The token names the last event the command appended.
    assert decode_token(out.token) == store.log[-1].point
    assert store.log[-1].event.__class__.__name__ == "OrderPlaced"


def test_insufficient_stock_names_skus_and_reserves_nothing(store: _Store) -> None:
    error = reject(
        store,
        lambda u: h.place_order(
            c.PlaceOrder([c.LineRequest("MUG", 11), c.LineRequest("TEE", 4)]), u, actor=ALICE
        ),
    )
    assert (error.status, error.slug, error.skus) == (409, "insufficient-stock", ["MUG", "TEE"])


def test_unknown_sku_is_422(store: _Store) -> None:
    error = reject(
        store, lambda u: h.place_order(c.PlaceOrder([c.LineRequest("GHOST", 1)]), u, actor=ALICE)
    )
    assert error.status == 422 and error.errors is not None
    assert error.errors[0].loc == ["body", "lines", 0, "sku"]


def test_customer_cannot_order_for_someone_else(store: _Store) -> None:
    cmd = c.PlaceOrder([c.LineRequest("MUG", 1)], customer_id="bob")
    assert reject(store, lambda u: h.place_order(cmd, u, actor=ALICE)).status == 403
    out = run(store, lambda u: h.place_order(cmd, u, actor=STAFF))
    assert store.orders[out.id].customer_id == "bob"


def test_pay_ship_flow(store: _Store) -> None:
    placed = order(store, MUG=2)
    wrong = reject(store, lambda u: h.pay_order(placed.id, c.PayOrder(1), u, actor=ALICE))
    assert wrong.status == 422
    paid = run(store, lambda u: h.pay_order(placed.id, c.PayOrder(900), u, actor=ALICE))
    assert (paid.version, paid.fields["status"]) == (2, "paid")
    assert (
        reject(store, lambda u: h.pay_order(placed.id, c.PayOrder(900), u, actor=ALICE)).status
        == 409
    )
    shipped = run(store, lambda u: h.ship_order(placed.id, c.ShipOrder(), u, actor=STAFF))
    assert shipped.fields["status"] == "shipped"
    assert (store.stock["MUG"].on_hand, store.stock["MUG"].reserved) == (8, 0)
    assert (
        reject(store, lambda u: h.cancel_order(placed.id, c.CancelOrder(), u, actor=ALICE)).status
        == 409
    )


def test_cancel_releases_and_refunds(store: _Store) -> None:
    placed = order(store, MUG=3)
    run(store, lambda u: h.pay_order(placed.id, c.PayOrder(1350), u, actor=ALICE))
    out = run(store, lambda u: h.cancel_order(placed.id, c.CancelOrder("late"), u, actor=STAFF))
    assert (out.fields["status"], out.fields["refund"]) == ("cancelled", 1350)
    assert store.stock["MUG"].reserved == 0 and store.stock["MUG"].on_hand == 10


def test_another_customers_order_is_not_found(store: _Store) -> None:
    placed = order(store, MUG=1)
    for call in (
        lambda u: h.pay_order(placed.id, c.PayOrder(450), u, actor=BOB),
        lambda u: h.cancel_order(placed.id, c.CancelOrder(), u, actor=BOB),
    ):
        assert reject(store, call).status == 404
    assert (
        reject(store, lambda u: h.pay_order("not-a-uuid", c.PayOrder(1), u, actor=ALICE)).status
        == 404
    )


def test_order_if_match(store: _Store) -> None:
    placed = order(store, MUG=1)
    error = reject(
        store, lambda u: h.pay_order(placed.id, c.PayOrder(450), u, actor=ALICE, if_match=2)
    )
    assert error.status == 412


def test_events_carry_stream_versions(store: _Store) -> None:
    placed = order(store, MUG=1)
    run(store, lambda u: h.pay_order(placed.id, c.PayOrder(450), u, actor=ALICE))
    versions = [r.stream_version for r in store.log if r.stream_id == f"order:{placed.id}"]
    assert versions == [1, 2]
    stock_versions = [r.stream_version for r in store.log if r.stream_id == "stock:MUG"]
    assert stock_versions == [1, 2]
