"""Command handlers: load aggregates through the unit of work, run the behaviour, save.

Each handler is a plain async function with explicit arguments, called by the command API
(and by ``orderdesk seed``) inside ``async with uow:``. Domain errors come out as
:class:`ProblemError` with the status API.md names, so every caller answers alike:
NotFound → 404, Conflict → 409 (``insufficient-stock`` lists ``skus``), RuleViolation → 422
with ``errors[].loc``; a stale ``If-Match`` → 412.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import msgspec

from command_side import commands as c
from command_side.domain.catalog import Product
from command_side.domain.errors import (
    Conflict,
    DomainError,
    InsufficientStock,
    NotFound,
    RuleViolation,
)
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order
from command_side.domain.orders import place_order as place_order_in_domain
from command_side.responses import (
    OrderPlacedResult,
    OrderResult,
    ProductResult,
    Result,
    StockResult,
)
from command_side.unit_of_work import UnitOfWork
from orderdesk.auth import Principal
from orderdesk.problems import ErrorItem, ProblemError
from shared_contracts.tokens import LogPoint, encode_token

P = ParamSpec("P")


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """A successful command: its response body (a Struct of :mod:`command_side.responses`,
    which carries the aggregate's ``id``, new ``version`` and the consistency ``token``)."""

    result: Result

    @property
    def id(self) -> str:
        return self.result.id

    @property
    def version(self) -> int:
        return self.result.version

    @property
    def token(self) -> str:
        return self.result.token

    @property
    def fields(self) -> dict[str, Any]:
        """The resource fields of the body (everything but id, version and token)."""
        body = msgspec.structs.asdict(self.result)
        for common in ("id", "version", "token"):
            del body[common]
        return body


def problem_from(error: DomainError) -> ProblemError:
    """The problem+json error for a rejected command."""
    if isinstance(error, NotFound):
        return ProblemError(404, error.slug, error.detail)
    if isinstance(error, InsufficientStock):
        return ProblemError(409, error.slug, error.detail, skus=error.skus)
    if isinstance(error, Conflict):
        return ProblemError(409, error.slug, error.detail)
    if isinstance(error, RuleViolation):
        return ProblemError(
            422, error.slug, error.detail, errors=[ErrorItem(loc=error.loc, msg=error.detail)]
        )
    return ProblemError(422, error.slug, error.detail)


def _answers_problems(
    handler: Callable[P, Awaitable[Outcome]],
) -> Callable[P, Awaitable[Outcome]]:
    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Outcome:
        try:
            return await handler(*args, **kwargs)
        except DomainError as error:
            raise problem_from(error) from None

    return wrapper


def _check_version(current: int, if_match: int | None) -> None:
    if if_match is not None and if_match != current:
        raise ProblemError(
            412,
            "version-mismatch",
            f"If-Match names version {if_match}; the current version is {current}.",
            headers={"ETag": f'"{current}"'},
        )


async def _token(uow: UnitOfWork, point: LogPoint | None, stream_id: str) -> str:
    # A command that changed nothing (a PATCH to the current values) appended no event; its
    # token names the stream's newest event instead, which is exactly the state it returns.
    if point is None:
        point = await uow.stream_head(stream_id) or LogPoint(0, 0)
    return encode_token(point)


def _product_outcome(product: Product, token: str) -> Outcome:
    return Outcome(
        ProductResult(
            product.sku,
            product.version,
            token,
            product.sku,
            product.name,
            product.price,
            product.status,
        )
    )


async def _product(uow: UnitOfWork, sku: str, if_match: int | None) -> Product:
    product = await uow.get_product(sku)
    if product is None:
        raise NotFound(f"no product {sku}")
    _check_version(product.version, if_match)
    return product


@_answers_problems
async def add_product(cmd: c.AddProduct, uow: UnitOfWork) -> Outcome:
    """``POST /products``: 409 ``product-exists`` when the sku is taken."""
    if await uow.get_product(cmd.sku) is not None:
        raise Conflict("product-exists", f"product {cmd.sku} already exists")
    product = Product.add(cmd.sku, cmd.name, cmd.price)
    uow.add_product(product)
    point = await uow.save()
    return _product_outcome(product, await _token(uow, point, f"product:{cmd.sku}"))


@_answers_problems
async def update_product(
    sku: str, cmd: c.UpdateProduct, uow: UnitOfWork, *, if_match: int | None = None
) -> Outcome:
    """``PATCH /products/{sku}``; asking for the current values changes nothing (200, same
    version, a token for the current state)."""
    product = await _product(uow, sku, if_match)
    product.update(name=cmd.name, price=cmd.price)
    point = await uow.save()
    return _product_outcome(product, await _token(uow, point, f"product:{sku}"))


@_answers_problems
async def discontinue_product(
    sku: str, cmd: c.DiscontinueProduct, uow: UnitOfWork, *, if_match: int | None = None
) -> Outcome:
    """``POST /products/{sku}/discontinue``."""
    product = await _product(uow, sku, if_match)
    product.discontinue()
    point = await uow.save()
    return _product_outcome(product, await _token(uow, point, f"product:{sku}"))


async def _stock_change(
    uow: UnitOfWork, sku: str, if_match: int | None, change: Callable[[StockItem], None]
) -> Outcome:
    item = await uow.get_stock_item(sku)
    if item is None:
        raise NotFound(f"no product {sku}")
    _check_version(item.version, if_match)
    change(item)
    point = await uow.save()
    token = await _token(uow, point, f"stock:{sku}")
    return Outcome(
        StockResult(sku, item.version, token, sku, item.on_hand, item.reserved, item.available)
    )


@_answers_problems
async def receive_stock(
    sku: str, cmd: c.ReceiveStock, uow: UnitOfWork, *, if_match: int | None = None
) -> Outcome:
    """``POST /stock/{sku}/receipts``."""
    return await _stock_change(
        uow, sku, if_match, lambda item: item.receive(cmd.quantity, cmd.reference)
    )


@_answers_problems
async def adjust_stock(
    sku: str, cmd: c.AdjustStock, uow: UnitOfWork, *, if_match: int | None = None
) -> Outcome:
    """``POST /stock/{sku}/adjustments``: 409 when on hand would drop below 0 or reserved."""
    return await _stock_change(uow, sku, if_match, lambda item: item.adjust(cmd.delta, cmd.reason))


@_answers_problems
async def place_order(
    cmd: c.PlaceOrder, uow: UnitOfWork, *, actor: Principal, order_id: str | None = None
) -> Outcome:
    """``POST /orders``: reserves every line or none; prices are captured now.

    A customer orders for itself (another ``customer_id`` → 403); staff may order for anyone.
    """
    assert actor.subject is not None
    customer_id = cmd.customer_id or actor.subject
    if customer_id != actor.subject and not actor.is_staff:
        raise ProblemError(403, "forbidden", "Customers can only place orders for themselves.")
    requested = [(line.sku, line.quantity) for line in cmd.lines]
    products, stock = await uow.get_for_order([sku for sku, _ in requested])
    order = place_order_in_domain(
        order_id or str(uuid.uuid4()), customer_id, requested, products, stock
    )
    uow.add_order(order)
    point = await uow.save()
    token = await _token(uow, point, f"order:{order.id}")
    return Outcome(
        OrderPlacedResult(order.id, order.version, token, order.status, customer_id, order.total)
    )


async def _order(uow: UnitOfWork, order_id: str, actor: Principal, if_match: int | None) -> Order:
    try:
        canonical = str(uuid.UUID(order_id))
    except ValueError:
        raise NotFound(f"no order {order_id}") from None
    order = await uow.get_order(canonical)
    # Another customer's order is "not found": its existence is not revealed (API.md §Auth).
    if order is None or (not actor.is_staff and order.customer_id != actor.subject):
        raise NotFound(f"no order {order_id}")
    _check_version(order.version, if_match)
    return order


def _order_outcome(order: Order, token: str) -> Outcome:
    return Outcome(
        OrderResult(
            order.id,
            order.version,
            token,
            order.status,
            order.total,
            order.paid_amount,
            order.refund,
        )
    )


@_answers_problems
async def pay_order(
    order_id: str,
    cmd: c.PayOrder,
    uow: UnitOfWork,
    *,
    actor: Principal,
    if_match: int | None = None,
) -> Outcome:
    """``POST /orders/{id}/payment``: owner or staff; the amount must equal the total."""
    order = await _order(uow, order_id, actor, if_match)
    order.pay(cmd.amount)
    point = await uow.save()
    return _order_outcome(order, await _token(uow, point, f"order:{order.id}"))


@_answers_problems
async def ship_order(
    order_id: str,
    cmd: c.ShipOrder,
    uow: UnitOfWork,
    *,
    actor: Principal,
    if_match: int | None = None,
) -> Outcome:
    """``POST /orders/{id}/shipment``: staff; reserved units leave on hand."""
    order = await _order(uow, order_id, actor, if_match)
    _, stock = await uow.get_for_order([line.sku for line in order.lines])
    order.ship(stock)
    point = await uow.save()
    return _order_outcome(order, await _token(uow, point, f"order:{order.id}"))


@_answers_problems
async def cancel_order(
    order_id: str,
    cmd: c.CancelOrder,
    uow: UnitOfWork,
    *,
    actor: Principal,
    if_match: int | None = None,
) -> Outcome:
    """``POST /orders/{id}/cancellation``: owner or staff; releases stock, refunds payment."""
    order = await _order(uow, order_id, actor, if_match)
    _, stock = await uow.get_for_order([line.sku for line in order.lines])
    order.cancel(cmd.reason, stock)
    point = await uow.save()
    return _order_outcome(order, await _token(uow, point, f"order:{order.id}"))
