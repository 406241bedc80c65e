"""Orders: placing (with all-or-none stock reservation), paying, shipping and cancelling.

Status flow: ``placed`` -> ``paid`` -> ``shipped``; ``placed``/``paid`` -> ``cancelled``.
An order in ``placed`` or ``paid`` holds a reservation of every line's quantity; shipping
turns it into units leaving ``on_hand``, cancelling gives it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict, InsufficientStock, RuleViolation
from command_side.domain.inventory import StockItem
from shared_contracts.events import (
    Event,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
)

PLACED = "placed"
PAID = "paid"
SHIPPED = "shipped"
CANCELLED = "cancelled"
STATUSES = (PLACED, PAID, SHIPPED, CANCELLED)


class Order:
    """A customer's order. ``lines`` keep the name and price captured when it was placed."""

    def __init__(
        self,
        id: str,
        customer_id: str,
        status: str,
        lines: Iterable[OrderLine],
        total: int,
        paid_amount: int = 0,
        refund: int = 0,
        version: int = 0,
    ) -> None:
        """Load an order as stored (records no event)."""
        self.id = id
        self.customer_id = customer_id
        self.status = status
        self.lines: tuple[OrderLine, ...] = tuple(lines)
        self.total = total
        self.paid_amount = paid_amount
        self.refund = refund
        self.version = version
        self.events: list[Event] = []

    @classmethod
    def place(cls, order_id: str, customer_id: str, lines: Sequence[OrderLine]) -> Order:
        """Create a placed order from priced lines, recording ``OrderPlaced`` (version 1).

        Reserving stock is the caller's part; use :func:`place_order`, which does both.
        """
        total = sum(line.line_total for line in lines)
        order = cls(order_id, customer_id, PLACED, lines, total)
        order._record(
            OrderPlaced(order_id=order_id, customer_id=customer_id, lines=order.lines, total=total)
        )
        return order

    def pay(self, amount: int) -> None:
        """Pay the order in full: only a ``placed`` order, only exactly its total."""
        self._require_status((PLACED,), "pay")
        if amount != self.total:
            raise RuleViolation(
                "amount-mismatch",
                f"amount {amount} does not match the order total {self.total}",
                ["body", "amount"],
            )
        self.paid_amount = amount
        self.status = PAID
        self._record(OrderPaid(order_id=self.id, amount=amount))

    def ship(self, stock: Mapping[str, StockItem]) -> None:
        """Ship a ``paid`` order: every line's reserved units leave ``on_hand``."""
        self._require_status((PAID,), "ship")
        self._check_reservations(stock)
        for line in self.lines:
            stock[line.sku].ship(self.id, line.quantity)
        self.status = SHIPPED
        self._record(OrderShipped(order_id=self.id))

    def cancel(self, reason: str | None, stock: Mapping[str, StockItem]) -> None:
        """Cancel a ``placed`` or ``paid`` order, releasing its stock and refunding payment."""
        self._require_status((PLACED, PAID), "cancel")
        self._check_reservations(stock)
        for line in self.lines:
            stock[line.sku].release(self.id, line.quantity)
        previous = self.status
        self.status = CANCELLED
        self.refund = self.paid_amount
        self._record(
            OrderCancelled(
                order_id=self.id,
                reason=reason,
                refund=self.refund,
                previous_status=previous,
                lines=self.lines,
            )
        )

    def _require_status(self, allowed: tuple[str, ...], action: str) -> None:
        if self.status not in allowed:
            raise Conflict("invalid-status", f"cannot {action} an order that is {self.status}")

    def _check_reservations(self, stock: Mapping[str, StockItem]) -> None:
        # Check every line before touching any stock item, so a failure part-way through
        # cannot leave some items shipped/released and others not.
        for line in self.lines:
            item = stock.get(line.sku)
            if item is None or not item.can_take_back(line.quantity):
                raise Conflict(
                    "insufficient-reserved",
                    f"order {self.id}: {line.sku} does not hold {line.quantity} reserved units",
                )

    def _record(self, event: Event) -> None:
        self.version += 1
        self.events.append(event)

    def __repr__(self) -> str:
        return f"Order({self.id!r}, {self.status!r}, total={self.total}, v{self.version})"


def place_order(
    order_id: str,
    customer_id: str,
    requested: Sequence[tuple[str, int]],
    products: Mapping[str, Product],
    stock: Mapping[str, StockItem],
) -> Order:
    """Place an order for ``requested`` ``(sku, quantity)`` lines, reserving all or none.

    Checks in this order, so the client gets the most useful error first:
    1. per line, in request order: unknown sku, then discontinued sku (422 with ``loc``);
    2. availability of every line at once: :class:`InsufficientStock` names every short
       sku, and nothing is reserved;
    then reserves each line (``StockReserved`` on the stock items) and returns the new order
    with the names and prices of ``products`` captured in its lines.

    ``stock`` should hold a ``StockItem`` per requested sku (``StockItem(sku)`` for one
    never received); a missing item counts as none available.
    """
    if not requested:
        raise RuleViolation("no-lines", "an order needs at least one line", ["body", "lines"])
    seen: set[str] = set()
    for i, (sku, quantity) in enumerate(requested):
        loc: list[str | int] = ["body", "lines", i, "sku"]
        product = products.get(sku)
        if product is None:
            raise RuleViolation("unknown-sku", f"unknown sku {sku}", loc)
        if not product.is_active:
            raise RuleViolation("discontinued-sku", f"{sku} is discontinued", loc)
        # Duplicates would be checked against availability one line at a time and could
        # together reserve more than is available.
        if sku in seen:
            raise RuleViolation("duplicate-sku", f"{sku} appears on more than one line", loc)
        seen.add(sku)
        if quantity <= 0:
            raise RuleViolation(
                "invalid-quantity", "quantity must be positive", ["body", "lines", i, "quantity"]
            )

    short = [
        sku for sku, quantity in requested if sku not in stock or stock[sku].available < quantity
    ]
    if short:
        raise InsufficientStock(short)

    for sku, quantity in requested:
        stock[sku].reserve(order_id, quantity)
    lines = [
        OrderLine(
            sku=sku, name=products[sku].name, quantity=quantity, unit_price=products[sku].price
        )
        for sku, quantity in requested
    ]
    return Order.place(order_id, customer_id, lines)
