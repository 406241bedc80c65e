"""Command requests: the JSON bodies of the command API as msgspec Structs (API.md).

Field constraints live in the types (msgspec checks them while decoding, and the same types
describe the API in OpenAPI); the few rules that span fields ("at least one of", "distinct
skus", "non-zero") are checked by :func:`decode_command` right after, with the same
``errors[].loc`` shape. Unknown fields are refused so a typo never passes silently.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from orderdesk.problems import NO_NUL, ErrorItem, ProblemError, validation_error

Sku = Annotated[str, Meta(pattern=r"^[A-Z0-9][A-Z0-9-]{0,31}$", description="product code")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Price = Annotated[int, Meta(ge=1, le=1_000_000_000, description="minor units (cents)")]
Receipt = Annotated[int, Meta(ge=1, le=1_000_000)]
Delta = Annotated[int, Meta(ge=-1_000_000, le=1_000_000, description="non-zero")]
Reason = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Reference = Annotated[str, Meta(max_length=100, pattern=NO_NUL)]
CancelReason = Annotated[str, Meta(max_length=200, pattern=NO_NUL)]
LineQuantity = Annotated[int, Meta(ge=1, le=1000)]
CustomerId = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]
Amount = Annotated[int, Meta(ge=0, le=2**53)]


class AddProduct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /products``."""

    sku: Sku
    name: Name
    price: Price


class UpdateProduct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``PATCH /products/{sku}``: at least one of ``name`` and ``price``."""

    name: Name | None = None
    price: Price | None = None


class DiscontinueProduct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /products/{sku}/discontinue`` (empty body)."""


class ReceiveStock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /stock/{sku}/receipts``."""

    quantity: Receipt
    reference: Reference | None = None


class AdjustStock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /stock/{sku}/adjustments``: ``delta`` is non-zero."""

    delta: Delta
    reason: Reason


class LineRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One requested order line."""

    sku: Sku
    quantity: LineQuantity


class PlaceOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /orders``: 1-100 lines with distinct skus; ``customer_id`` for staff only."""

    lines: Annotated[list[LineRequest], Meta(min_length=1, max_length=100)]
    customer_id: CustomerId | None = None


class PayOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /orders/{id}/payment``: ``amount`` must equal the order total."""

    amount: Amount


class ShipOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /orders/{id}/shipment`` (empty body)."""


class CancelOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /orders/{id}/cancellation``."""

    reason: CancelReason | None = None


Command = (
    AddProduct
    | UpdateProduct
    | DiscontinueProduct
    | ReceiveStock
    | AdjustStock
    | PlaceOrder
    | PayOrder
    | ShipOrder
    | CancelOrder
)
C = TypeVar("C", bound=Command)

#: Commands whose body may be omitted entirely (it would be ``{}``).
BODYLESS: tuple[type[Command], ...] = (DiscontinueProduct, ShipOrder, CancelOrder)

# One decoder per type, built once: they are pure, and several times faster than
# msgspec.json.decode(body, type=...) which re-resolves the type on every call.
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    cls: msgspec.json.Decoder(cls)
    for cls in (
        AddProduct,
        UpdateProduct,
        DiscontinueProduct,
        ReceiveStock,
        AdjustStock,
        PlaceOrder,
        PayOrder,
        ShipOrder,
        CancelOrder,
    )
}
_CANONICAL = msgspec.json.Encoder(order="deterministic")


def decode_command(body: bytes, command_type: type[C]) -> C:
    """Decode and validate ``body`` as ``command_type``.

    400 ``malformed-json`` when it is not JSON; 422 ``validation`` with ``errors[].loc``
    when a field or a rule across fields does not hold.
    """
    try:
        command: C = _DECODERS[command_type].decode(body)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ProblemError(400, "malformed-json", f"The body is not valid JSON: {exc}") from None
    errors = cross_field_errors(command)
    if errors:
        raise ProblemError(422, "validation", "The request is not valid.", errors=errors)
    return command


def cross_field_errors(command: Command) -> list[ErrorItem]:
    """The rules msgspec's per-field constraints cannot express."""
    if isinstance(command, UpdateProduct):
        if command.name is None and command.price is None:
            return [ErrorItem(loc=["body"], msg="give at least one of name and price")]
    elif isinstance(command, AdjustStock):
        if command.delta == 0:
            return [ErrorItem(loc=["body", "delta"], msg="delta must not be zero")]
    elif isinstance(command, PlaceOrder):
        seen: set[str] = set()
        errors: list[ErrorItem] = []
        for i, line in enumerate(command.lines):
            if line.sku in seen:
                errors.append(
                    ErrorItem(loc=["body", "lines", i, "sku"], msg=f"{line.sku} is on two lines")
                )
            seen.add(line.sku)
        return errors
    return []


def canonical_bytes(command: Command) -> bytes:
    """A stable encoding of the decoded command (for idempotency fingerprints).

    Hashing this rather than the raw body means whitespace or key order alone never makes a
    retry look like a different request.
    """
    return _CANONICAL.encode(command)
