"""The command API's composition root: ``create_app(settings)`` wires everything.

Every command endpoint runs the same steps, in the order a client would expect errors:
authenticate (401) → role (403) → body (415/413/400/422) → headers (If-Match 400,
Idempotency-Key 422) → one transaction: idempotency replay, handler, stored response.

``If-Match`` must be a strong entity tag of digits, ``"<version>"`` (or ``*``): anything else
is a 400, because silently ignoring a malformed precondition would let a stale write
through. It is checked on commands to an existing aggregate and ignored on creations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import psycopg
import psycopg_pool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from command_side import commands as c
from command_side import handlers, idempotency
from command_side.handlers import Outcome
from command_side.postgres import PostgresUnitOfWork
from command_side.unit_of_work import EventMetadata, UnitOfWork
from orderdesk.auth import Principal, TokenVerifier
from orderdesk.database import async_pool
from orderdesk.http import RequestContextMiddleware, exception_handlers, read_json_body
from orderdesk.logs import correlation_id
from orderdesk.problems import ProblemError
from orderdesk.settings import Settings

#: Transient errors that mean "run the whole transaction again" rather than "tell the client".
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
ATTEMPTS = 3

Call = Callable[[Request, Any, UnitOfWork, Principal, int | None], Awaitable[Outcome]]

_encoder = msgspec.json.Encoder()


@dataclasses.dataclass(frozen=True, slots=True)
class CommandRoute:
    """How one endpoint maps to its handler."""

    path: str
    method: str
    command: type[Any]
    role: str  # "staff" or "customer" (staff and admin may do what customers do)
    call: Call
    created: str | None = None  # Location prefix: a 201 pointing at the query API


def parse_if_match(raw: str | None) -> int | None:
    """``"<version>"`` → version; ``*`` or absent → no precondition; else 400."""
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip()
    if len(value) >= 3 and value[0] == value[-1] == '"' and value[1:-1].isdigit():
        return int(value[1:-1])
    raise ProblemError(
        400, "invalid-if-match", 'If-Match must be a version in double quotes, e.g. "3".'
    )


def _authorise(principal: Principal, role: str) -> None:
    if principal.subject is None:
        raise ProblemError(
            401,
            "unauthorized",
            "Send a bearer token.",
            headers={"WWW-Authenticate": 'Bearer realm="orderdesk"'},
        )
    allowed = principal.is_staff or (role == "customer" and "customer" in principal.roles)
    if not allowed:
        raise ProblemError(403, "forbidden", f"This command needs the {role} role.")


async def _body(request: Request, command: type[Any]) -> bytes:
    # Commands without fields may be sent with no body at all, as most clients do for {}.
    if (
        command in c.BODYLESS
        and "content-type" not in request.headers
        and request.headers.get("content-length", "0") == "0"
    ):
        return b"{}"
    return await read_json_body(request)


def _traceparent(raw: str | None) -> str | None:
    return raw if raw is not None and len(raw) <= 128 and raw.isprintable() else None


def _endpoint(
    spec: CommandRoute, verifier: TokenVerifier, settings: Settings
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        principal = verifier.principal(request.headers.get("authorization"))
        _authorise(principal, spec.role)
        assert principal.subject is not None
        command = c.decode_command(await _body(request, spec.command), spec.command)
        if_match = parse_if_match(request.headers.get("if-match"))
        key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
        request_hash = (
            idempotency.fingerprint(request.method, request.url.path, c.canonical_bytes(command))
            if key
            else b""
        )
        pool: psycopg_pool.AsyncConnectionPool = request.state.pool
        metadata = EventMetadata(
            correlation_id=correlation_id.get(),
            causation_id=str(uuid.uuid4()),
            actor=principal.subject,
            traceparent=_traceparent(request.headers.get("traceparent")),
        )
        for attempt in range(ATTEMPTS):
            try:
                async with pool.connection() as conn, PostgresUnitOfWork(conn, metadata) as uow:
                    if key is not None:
                        replay = await idempotency.claim(conn, principal.subject, key, request_hash)
                        if replay is not None:
                            return Response(
                                replay.body,
                                replay.status,
                                {**replay.headers, "Idempotent-Replayed": "true"},
                            )
                    outcome = await spec.call(request, command, uow, principal, if_match)
                    stored = _stored(spec, outcome)
                    if key is not None:
                        await idempotency.remember(
                            conn,
                            principal.subject,
                            key,
                            request_hash,
                            stored,
                            settings.idempotency_ttl_hours,
                        )
                return Response(stored.body, stored.status, stored.headers)
            except RETRYABLE:
                if attempt == ATTEMPTS - 1:
                    raise ProblemError(
                        503, "busy", "The database is busy; retry.", headers={"Retry-After": "1"}
                    ) from None
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
                raise ProblemError(
                    503,
                    "database-unavailable",
                    "The database is unavailable; retry later.",
                    headers={"Retry-After": "1"},
                ) from None
        raise AssertionError("unreachable")

    return endpoint


def _stored(spec: CommandRoute, outcome: Outcome) -> idempotency.StoredResponse:
    headers = {"ETag": f'"{outcome.version}"', "Content-Type": "application/json"}
    status = 200
    if spec.created is not None:
        status = 201
        headers["Location"] = f"{spec.created}/{outcome.id}"
    return idempotency.StoredResponse(status, _encoder.encode(outcome.body()), headers)


def command_routes() -> list[CommandRoute]:
    """Every command of API.md, with its handler call."""
    h = handlers
    return [
        CommandRoute(
            "/products",
            "POST",
            c.AddProduct,
            "staff",
            lambda r, cmd, uow, who, m: h.add_product(cmd, uow),
            created="/products",
        ),
        CommandRoute(
            "/products/{sku}",
            "PATCH",
            c.UpdateProduct,
            "staff",
            lambda r, cmd, uow, who, m: h.update_product(
                r.path_params["sku"], cmd, uow, if_match=m
            ),
        ),
        CommandRoute(
            "/products/{sku}/discontinue",
            "POST",
            c.DiscontinueProduct,
            "staff",
            lambda r, cmd, uow, who, m: h.discontinue_product(
                r.path_params["sku"], cmd, uow, if_match=m
            ),
        ),
        CommandRoute(
            "/stock/{sku}/receipts",
            "POST",
            c.ReceiveStock,
            "staff",
            lambda r, cmd, uow, who, m: h.receive_stock(r.path_params["sku"], cmd, uow, if_match=m),
        ),
        CommandRoute(
            "/stock/{sku}/adjustments",
            "POST",
            c.AdjustStock,
            "staff",
            lambda r, cmd, uow, who, m: h.adjust_stock(r.path_params["sku"], cmd, uow, if_match=m),
        ),
        CommandRoute(
            "/orders",
            "POST",
            c.PlaceOrder,
            "customer",
            lambda r, cmd, uow, who, m: h.place_order(cmd, uow, actor=who),
            created="/orders",
        ),
        CommandRoute(
            "/orders/{order_id}/payment",
            "POST",
            c.PayOrder,
            "customer",
            lambda r, cmd, uow, who, m: h.pay_order(
                r.path_params["order_id"], cmd, uow, actor=who, if_match=m
            ),
        ),
        CommandRoute(
            "/orders/{order_id}/shipment",
            "POST",
            c.ShipOrder,
            "staff",
            lambda r, cmd, uow, who, m: h.ship_order(
                r.path_params["order_id"], cmd, uow, actor=who, if_match=m
            ),
        ),
        CommandRoute(
            "/orders/{order_id}/cancellation",
            "POST",
            c.CancelOrder,
            "customer",
            lambda r, cmd, uow, who, m: h.cancel_order(
                r.path_params["order_id"], cmd, uow, actor=who, if_match=m
            ),
        ),
    ]


async def healthz(request: Request) -> Response:
    """200 while the process runs."""
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(settings: Settings) -> Starlette:
    """The command API for ``settings`` (the pool opens in the lifespan, not here)."""
    if settings.database_url is None:
        raise ValueError("the command API needs settings.database_url")
    database_url = settings.database_url
    verifier = TokenVerifier.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        pool = async_pool(database_url, size=settings.db_pool_size, name="command-api")
        await pool.open()
        try:
            yield {"pool": pool}
        finally:
            await pool.close()

    routes = [
        Route(spec.path, _endpoint(spec, verifier, settings), methods=[spec.method])
        for spec in command_routes()
    ]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
