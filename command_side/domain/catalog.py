"""The catalog: products, their names, prices and whether they can still be ordered."""

from __future__ import annotations

from command_side.domain.errors import Conflict, RuleViolation
from shared_contracts.events import Event, ProductAdded, ProductDiscontinued, ProductUpdated

ACTIVE = "active"
DISCONTINUED = "discontinued"


def _check_price(price: int) -> None:
    # The API validates the range too; the domain repeats the rule that matters to it
    # (a product is never free or negative) so no other entry point can break it.
    if price <= 0:
        raise RuleViolation("invalid-price", "price must be positive", ["body", "price"])


class Product:
    """A catalog entry. ``status`` is ``"active"`` or ``"discontinued"``."""

    def __init__(
        self, sku: str, name: str, price: int, status: str = ACTIVE, version: int = 0
    ) -> None:
        """Load a product as stored (records no event)."""
        self.sku = sku
        self.name = name
        self.price = price
        self.status = status
        self.version = version
        self.events: list[Event] = []

    @classmethod
    def add(cls, sku: str, name: str, price: int) -> Product:
        """Create a new active product, recording ``ProductAdded`` (version 1)."""
        _check_price(price)
        product = cls(sku, name, price)
        product._record(ProductAdded(sku=sku, name=name, price=price))
        return product

    @property
    def is_active(self) -> bool:
        """Whether the product can be ordered."""
        return self.status == ACTIVE

    def update(self, name: str | None = None, price: int | None = None) -> None:
        """Change name and/or price; records only the fields whose value actually changes.

        Asking for the current values records nothing and leaves ``version`` alone, so the
        API answers with the same version (an idempotent PATCH).
        """
        if not self.is_active:
            raise Conflict("discontinued", f"product {self.sku} is discontinued")
        if price is not None:
            _check_price(price)
        new_name = name if name is not None and name != self.name else None
        new_price = price if price is not None and price != self.price else None
        if new_name is None and new_price is None:
            return
        if new_name is not None:
            self.name = new_name
        if new_price is not None:
            self.price = new_price
        self._record(ProductUpdated(sku=self.sku, name=new_name, price=new_price))

    def discontinue(self) -> None:
        """Stop selling the product; existing orders are unaffected."""
        if not self.is_active:
            raise Conflict("already-discontinued", f"product {self.sku} is already discontinued")
        self.status = DISCONTINUED
        self._record(ProductDiscontinued(sku=self.sku))

    def _record(self, event: Event) -> None:
        self.version += 1
        self.events.append(event)

    def __repr__(self) -> str:
        return (
            f"Product({self.sku!r}, {self.name!r}, {self.price}, {self.status!r}, v{self.version})"
        )
