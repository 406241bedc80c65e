"""Inventory: how many units of a sku are on hand and how many of those are reserved.

Invariant, always: ``0 <= reserved <= on_hand``. Every stock event carries the levels after
it, so projections can store them as they are.
"""

from __future__ import annotations

from command_side.domain.errors import Conflict, InsufficientStock, RuleViolation
from shared_contracts.events import (
    Event,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
)


def _check_positive(quantity: int, loc: list[str | int]) -> None:
    # Zero or negative movements would let reserve/release be used to forge stock.
    if quantity <= 0:
        raise RuleViolation("invalid-quantity", "quantity must be positive", loc)


class StockItem:
    """The stock of one sku."""

    def __init__(self, sku: str, on_hand: int = 0, reserved: int = 0, version: int = 0) -> None:
        """Load a stock item as stored (records no event); a new sku starts at zero."""
        self.sku = sku
        self.on_hand = on_hand
        self.reserved = reserved
        self.version = version
        self.events: list[Event] = []

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.on_hand - self.reserved

    def receive(self, quantity: int, reference: str | None = None) -> None:
        """Goods arrived: ``on_hand`` grows by ``quantity``."""
        _check_positive(quantity, ["body", "quantity"])
        self.on_hand += quantity
        self._record(
            StockReceived(
                sku=self.sku,
                quantity=quantity,
                reference=reference,
                on_hand=self.on_hand,
                reserved=self.reserved,
            )
        )

    def adjust(self, delta: int, reason: str) -> None:
        """Correct ``on_hand`` by ``delta``; it may not drop below zero or below ``reserved``."""
        if delta == 0:
            raise RuleViolation("invalid-delta", "delta must not be zero", ["body", "delta"])
        if self.on_hand + delta < self.reserved:  # reserved >= 0, so this also covers < 0
            raise Conflict(
                "insufficient-on-hand",
                f"{self.sku}: on hand {self.on_hand} with {self.reserved} reserved "
                f"cannot change by {delta}",
            )
        self.on_hand += delta
        self._record(
            StockAdjusted(
                sku=self.sku,
                delta=delta,
                reason=reason,
                on_hand=self.on_hand,
                reserved=self.reserved,
            )
        )

    def reserve(self, order_id: str, quantity: int) -> None:
        """Set ``quantity`` units aside for an order; :class:`InsufficientStock` if short."""
        _check_positive(quantity, ["body", "quantity"])
        if self.available < quantity:
            raise InsufficientStock([self.sku])
        self.reserved += quantity
        self._record(
            StockReserved(
                sku=self.sku,
                quantity=quantity,
                order_id=order_id,
                on_hand=self.on_hand,
                reserved=self.reserved,
            )
        )

    def release(self, order_id: str, quantity: int) -> None:
        """Give back an order's reservation (the order was cancelled)."""
        self._check_reserved(quantity)
        self.reserved -= quantity
        self._record(
            StockReleased(
                sku=self.sku,
                quantity=quantity,
                order_id=order_id,
                on_hand=self.on_hand,
                reserved=self.reserved,
            )
        )

    def ship(self, order_id: str, quantity: int) -> None:
        """Reserved units leave the warehouse: ``on_hand`` and ``reserved`` both drop."""
        self._check_reserved(quantity)
        self.on_hand -= quantity
        self.reserved -= quantity
        self._record(
            StockShipped(
                sku=self.sku,
                quantity=quantity,
                order_id=order_id,
                on_hand=self.on_hand,
                reserved=self.reserved,
            )
        )

    def can_take_back(self, quantity: int) -> bool:
        """Whether ``quantity`` reserved units can be released or shipped."""
        return 0 < quantity <= self.reserved

    def _check_reserved(self, quantity: int) -> None:
        # Only reachable through a bug or corrupted state: an order always holds its
        # reservation until it ships or is cancelled. Refuse rather than go negative.
        if not self.can_take_back(quantity):
            raise Conflict(
                "insufficient-reserved",
                f"{self.sku}: cannot take back {quantity} of {self.reserved} reserved",
            )

    def _record(self, event: Event) -> None:
        self.version += 1
        self.events.append(event)

    def __repr__(self) -> str:
        return (
            f"StockItem({self.sku!r}, on_hand={self.on_hand}, reserved={self.reserved}, "
            f"v{self.version})"
        )
