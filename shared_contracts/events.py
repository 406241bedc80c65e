"""Domain events: the published language of orderdesk.

Every event is a frozen msgspec Struct tagged with its class name (``"type"`` field), so a
tagged JSON document decodes to the right class in one call (``msgspec.json.decode(data,
type=Event)``). In the event log the tag lives in the ``event_type`` column instead, and
``payload`` holds only the fields (:func:`encode_payload` / :func:`decode_payload`).

Each class has a ``SCHEMA_VERSION``. Shapes evolve only by adding fields with defaults; a
change that old payloads cannot satisfy bumps the version and registers an upcaster in
:mod:`shared_contracts.upcasting`, so stored history is never rewritten.

Stock events carry the absolute levels *after* the event (``on_hand``, ``reserved``) so a
projection can upsert the row as it is rather than add deltas, which makes replays and
redeliveries harmless.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeAlias, get_args

import msgspec

from shared_contracts.upcasting import upcast


class UnknownEventType(LookupError):
    """An ``event_type`` this code has no class for."""


class _ProductEvent(msgspec.Struct, frozen=True, tag=True):
    STREAM_TYPE: ClassVar[str] = "product"


class _StockEvent(msgspec.Struct, frozen=True, tag=True):
    STREAM_TYPE: ClassVar[str] = "stock"


class _OrderEvent(msgspec.Struct, frozen=True, tag=True):
    STREAM_TYPE: ClassVar[str] = "order"


# --- product stream -------------------------------------------------------------------


class ProductAdded(_ProductEvent, frozen=True, tag=True):
    """A product joined the catalog (as ``active``)."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str
    name: str
    price: int


class ProductUpdated(_ProductEvent, frozen=True, tag=True):
    """Name and/or price changed; only the fields that changed are set."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str
    name: str | None = None
    price: int | None = None


class ProductDiscontinued(_ProductEvent, frozen=True, tag=True):
    """The product can no longer be ordered."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str


# --- stock stream ---------------------------------------------------------------------


class StockReceived(_StockEvent, frozen=True, tag=True):
    """Goods arrived: ``on_hand`` grew by ``quantity``."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str
    quantity: int
    reference: str | None
    on_hand: int
    reserved: int


class StockAdjusted(_StockEvent, frozen=True, tag=True):
    """A manual correction of ``on_hand`` by a signed ``delta`` (v1: ``quantity_change``)."""

    SCHEMA_VERSION: ClassVar[int] = 2
    sku: str
    delta: int
    reason: str
    on_hand: int
    reserved: int


class StockReserved(_StockEvent, frozen=True, tag=True):
    """``quantity`` units were set aside for an order."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str
    quantity: int
    order_id: str
    on_hand: int
    reserved: int


class StockReleased(_StockEvent, frozen=True, tag=True):
    """An order's reservation was given back (the order was cancelled)."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str
    quantity: int
    order_id: str
    on_hand: int
    reserved: int


class StockShipped(_StockEvent, frozen=True, tag=True):
    """Reserved units left the warehouse: both ``on_hand`` and ``reserved`` dropped."""

    SCHEMA_VERSION: ClassVar[int] = 1
    sku: str
    quantity: int
    order_id: str
    on_hand: int
    reserved: int


# --- order stream ---------------------------------------------------------------------


class OrderLine(msgspec.Struct, frozen=True):
    """One line of an order, with the product's name and price captured at order time."""

    sku: str
    name: str
    quantity: int
    unit_price: int

    @property
    def line_total(self) -> int:
        """``quantity * unit_price`` (derived, so never stored and never inconsistent)."""
        return self.quantity * self.unit_price


class OrderPlaced(_OrderEvent, frozen=True, tag=True):
    """An order was placed and its stock reserved; ``total`` is the sum of line totals."""

    SCHEMA_VERSION: ClassVar[int] = 1
    order_id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    total: int


class OrderPaid(_OrderEvent, frozen=True, tag=True):
    """The order was paid in full."""

    SCHEMA_VERSION: ClassVar[int] = 1
    order_id: str
    amount: int


class OrderShipped(_OrderEvent, frozen=True, tag=True):
    """The order left the warehouse."""

    SCHEMA_VERSION: ClassVar[int] = 1
    order_id: str


class OrderCancelled(_OrderEvent, frozen=True, tag=True):
    """The order was cancelled; ``lines`` let sales projections subtract without a lookup."""

    SCHEMA_VERSION: ClassVar[int] = 1
    order_id: str
    reason: str | None
    refund: int
    previous_status: str
    lines: tuple[OrderLine, ...]


#: Every event; ``msgspec.json.decode(data, type=Event)`` picks the class by its tag.
Event: TypeAlias = (
    ProductAdded
    | ProductUpdated
    | ProductDiscontinued
    | StockReceived
    | StockAdjusted
    | StockReserved
    | StockReleased
    | StockShipped
    | OrderPlaced
    | OrderPaid
    | OrderShipped
    | OrderCancelled
)

#: ``event_type`` (the tag, i.e. the class name) -> class.
EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in get_args(Event)}

# Built once: a Decoder per type is several times faster than msgspec.json.decode(type=...).
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()
}
_ENCODER = msgspec.json.Encoder()


def _class_of(event_type: str) -> type[Event]:
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def schema_version_of(event_type: str) -> int:
    """The current schema version of ``event_type`` (what new rows are written with)."""
    return _class_of(event_type).SCHEMA_VERSION


def event_type_of(event: Event) -> str:
    """The ``event_type`` column value for ``event`` (its tag, the class name)."""
    return type(event).__name__


def encode_payload(event: Event) -> bytes:
    """The event's fields as JSON, without the tag, for the ``payload`` jsonb column."""
    # asdict is shallow: nested OrderLine Structs stay Structs and encode natively.
    return _ENCODER.encode(msgspec.structs.asdict(event))


def decode_payload(
    event_type: str, schema_version: int, payload: bytes | str | msgspec.Raw | dict[str, Any]
) -> Event:
    """Rebuild an event from an event-log row, upcasting an old ``schema_version`` first.

    ``payload`` may be the raw JSON (fastest: text, bytes or a ``msgspec.Raw`` view of it)
    or the dict a driver made of the jsonb. Raises :class:`UnknownEventType`,
    ``upcasting.UpcastError`` or ``msgspec.ValidationError`` / ``msgspec.DecodeError`` for
    payloads that do not fit.
    """
    cls = _class_of(event_type)
    if schema_version == cls.SCHEMA_VERSION and not isinstance(payload, dict):
        # The common case: straight from JSON to the Struct, no intermediate dict.
        event: Event = _DECODERS[event_type].decode(payload)
        return event
    data = payload if isinstance(payload, dict) else msgspec.json.decode(payload)
    if not isinstance(data, dict):
        raise msgspec.ValidationError(f"{event_type} payload is not a JSON object")
    if schema_version != cls.SCHEMA_VERSION:
        data = upcast(event_type, schema_version, cls.SCHEMA_VERSION, data)
    return msgspec.convert(data, cls)


def stream_of(event: Event) -> tuple[str, str]:
    """``(stream_type, stream_id)`` of the aggregate that recorded ``event``.

    ``stream_id`` is prefixed with the type (``"product:ABC-1"``, ``"stock:ABC-1"``,
    ``"order:<uuid>"``) so product and stock streams of one sku never collide.
    """
    natural = event.order_id if isinstance(event, _OrderEvent) else event.sku
    return event.STREAM_TYPE, f"{event.STREAM_TYPE}:{natural}"
