"""Success bodies of the command API as msgspec Structs (API.md §Command API).

Every body has ``id``, ``version`` and the consistency ``token``, plus the fields of the
resource it changed. Handlers build these Structs and the API encodes them as they are, and
``/openapi.json`` describes them from the same types, so the document cannot drift.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

Token = Annotated[str, Meta(description="opaque consistency token (X-Consistency-Token)")]
Version = Annotated[int, Meta(ge=1, description="the aggregate's version; also the ETag")]
Money = Annotated[int, Meta(ge=0, description="minor units (cents)")]


class ProductResult(msgspec.Struct, frozen=True):
    """The product after ``POST /products``, ``PATCH /products/{sku}`` or a discontinue."""

    id: str
    version: Version
    token: Token
    sku: str
    name: str
    price: Money
    status: Annotated[str, Meta(description="active or discontinued")]


class StockResult(msgspec.Struct, frozen=True):
    """The stock of a sku after a receipt or an adjustment."""

    id: str
    version: Version
    token: Token
    sku: str
    on_hand: Annotated[int, Meta(ge=0)]
    reserved: Annotated[int, Meta(ge=0)]
    available: Annotated[int, Meta(ge=0)]


class OrderPlacedResult(msgspec.Struct, frozen=True):
    """A new order (``POST /orders``)."""

    id: str
    version: Version
    token: Token
    status: Annotated[str, Meta(description="placed")]
    customer_id: str
    total: Money


class OrderResult(msgspec.Struct, frozen=True):
    """An order after payment, shipment or cancellation."""

    id: str
    version: Version
    token: Token
    status: Annotated[str, Meta(description="placed, paid, shipped or cancelled")]
    total: Money
    paid_amount: Money
    refund: Money


Result = ProductResult | StockResult | OrderPlacedResult | OrderResult
