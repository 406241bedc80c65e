"""The command API's endpoints, declared once: path, command type, role, handler, result type
and the problems each can answer. The app builds its routes from this list and
``/openapi.json`` describes the very same list (see :mod:`command_side.api_doc`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from command_side import commands as c
from command_side import handlers as h
from command_side import responses as r
from command_side.handlers import Outcome
from command_side.unit_of_work import UnitOfWork
from orderdesk.auth import Principal

Call = Callable[[Request, Any, UnitOfWork, Principal, int | None], Awaitable[Outcome]]

# Every command can be refused for these reasons (API.md §Errors): malformed JSON or
# If-Match (400), token (401), role (403), concurrent change (409), size (413), media type
# (415), validation (422), rate limit (429), database down or busy (503).
COMMON_PROBLEMS = (400, 401, 403, 409, 413, 415, 422, 429, 503)
EXISTING = (404, 412)  # commands to an existing aggregate: unknown id, stale If-Match


@dataclasses.dataclass(frozen=True, slots=True)
class CommandRoute:
    """How one endpoint maps to its handler, and how it is documented."""

    name: str  # operationId and the ``type`` label of orderdesk_commands_total
    path: str
    method: str
    command: type[Any]
    role: str  # "staff" or "customer" (staff and admin may do what customers do)
    call: Call
    result: type[r.Result]
    summary: str
    created: str | None = None  # Location prefix: a 201 pointing at the query API

    @property
    def problems(self) -> tuple[int, ...]:
        """The problem+json statuses this command can answer."""
        return tuple(sorted({*COMMON_PROBLEMS, *(() if self.created else EXISTING)}))


def command_routes() -> list[CommandRoute]:
    """Every command of API.md, with its handler call (the hottest route first: Starlette
    tries routes in order)."""
    return [
        CommandRoute(
            "place_order",
            "/orders",
            "POST",
            c.PlaceOrder,
            "customer",
            lambda req, cmd, uow, who, m: h.place_order(cmd, uow, actor=who),
            r.OrderPlacedResult,
            "Place an order: reserves every line or none, captures prices.",
            created="/orders",
        ),
        CommandRoute(
            "add_product",
            "/products",
            "POST",
            c.AddProduct,
            "staff",
            lambda req, cmd, uow, who, m: h.add_product(cmd, uow),
            r.ProductResult,
            "Add a product to the catalog (its stock starts at 0).",
            created="/products",
        ),
        CommandRoute(
            "update_product",
            "/products/{sku}",
            "PATCH",
            c.UpdateProduct,
            "staff",
            lambda req, cmd, uow, who, m: h.update_product(
                req.path_params["sku"], cmd, uow, if_match=m
            ),
            r.ProductResult,
            "Change a product's name and/or price.",
        ),
        CommandRoute(
            "discontinue_product",
            "/products/{sku}/discontinue",
            "POST",
            c.DiscontinueProduct,
            "staff",
            lambda req, cmd, uow, who, m: h.discontinue_product(
                req.path_params["sku"], cmd, uow, if_match=m
            ),
            r.ProductResult,
            "Discontinue a product (it can no longer be ordered).",
        ),
        CommandRoute(
            "receive_stock",
            "/stock/{sku}/receipts",
            "POST",
            c.ReceiveStock,
            "staff",
            lambda req, cmd, uow, who, m: h.receive_stock(
                req.path_params["sku"], cmd, uow, if_match=m
            ),
            r.StockResult,
            "Record a stock receipt.",
        ),
        CommandRoute(
            "adjust_stock",
            "/stock/{sku}/adjustments",
            "POST",
            c.AdjustStock,
            "staff",
            lambda req, cmd, uow, who, m: h.adjust_stock(
                req.path_params["sku"], cmd, uow, if_match=m
            ),
            r.StockResult,
            "Correct the stock on hand (never below 0 or below reserved).",
        ),
        CommandRoute(
            "pay_order",
            "/orders/{order_id}/payment",
            "POST",
            c.PayOrder,
            "customer",
            lambda req, cmd, uow, who, m: h.pay_order(
                req.path_params["order_id"], cmd, uow, actor=who, if_match=m
            ),
            r.OrderResult,
            "Pay an order (the owner or staff); the amount must equal the total.",
        ),
        CommandRoute(
            "ship_order",
            "/orders/{order_id}/shipment",
            "POST",
            c.ShipOrder,
            "staff",
            lambda req, cmd, uow, who, m: h.ship_order(
                req.path_params["order_id"], cmd, uow, actor=who, if_match=m
            ),
            r.OrderResult,
            "Ship a paid order: its reserved units leave on hand.",
        ),
        CommandRoute(
            "cancel_order",
            "/orders/{order_id}/cancellation",
            "POST",
            c.CancelOrder,
            "customer",
            lambda req, cmd, uow, who, m: h.cancel_order(
                req.path_params["order_id"], cmd, uow, actor=who, if_match=m
            ),
            r.OrderResult,
            "Cancel an order (the owner or staff): releases stock, refunds what was paid.",
        ),
    ]
