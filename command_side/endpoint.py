"""One command endpoint: the steps every command runs, in the order a client expects errors.

authenticate (401) → role (403) → body (415/413/400/422) → headers (If-Match 400,
Idempotency-Key 422) → one transaction: idempotency replay, handler, stored response.

``If-Match`` must be a strong entity tag of digits, ``"<version>"`` (or ``*``): anything else
is a 400, because silently ignoring a malformed precondition would let a stale write
through. It is checked on commands to an existing aggregate and ignored on creations.

Every call is counted in ``orderdesk_commands_total{type, outcome}`` (outcome ``ok``,
``replayed`` for an idempotent replay, or the problem slug of the rejection) and every
committed event in ``orderdesk_events_appended_total{event_type}``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import psycopg
import psycopg_pool
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response

from command_side import commands as c
from command_side import idempotency
from command_side.handlers import Outcome
from command_side.postgres import PostgresUnitOfWork, ReadAgain, RetryWithLocks
from command_side.routes import CommandRoute
from command_side.unit_of_work import EventMetadata
from orderdesk.auth import Principal
from orderdesk.http import read_json_body
from orderdesk.logs import correlation_id
from orderdesk.metrics import Metrics
from orderdesk.problems import ProblemError
from orderdesk.settings import Settings
from orderdesk.verified_tokens import CachedVerifier

#: Transient errors that mean "run the whole transaction again" rather than "tell the client".
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
#: At most: an order from a snapshot, again reading the database, then locking, and once
#: more after a deadlock (other commands: optimistic or locking, then two more locking).
ATTEMPTS = 4

_encoder = msgspec.json.Encoder()
_JSON = "application/json"


def _causation_id() -> str:
    """A random (version 4) UUID naming this command as the cause of its events.

    From ``random``, not ``os.urandom``: it must be unique, not secret, and the system
    call per command showed in the command API's profile (~1%).
    """
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


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


def authorise(principal: Principal, role: str) -> str:
    """The caller's subject when it may run a command for ``role``; 401/403 otherwise."""
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
    return principal.subject


async def _body(request: Request, command: type[object]) -> bytes:
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


def stored_response(spec: CommandRoute, outcome: Outcome) -> idempotency.StoredResponse:
    """The response of a successful command, as it is sent and stored for replays."""
    headers = {"ETag": f'"{outcome.version}"', "Content-Type": _JSON}
    status = 200
    if spec.created is not None:
        status = 201
        headers["Location"] = f"{spec.created}/{outcome.id}"
    return idempotency.StoredResponse(status, _encoder.encode(outcome.result), headers)


def command_endpoint(
    spec: CommandRoute, verifier: CachedVerifier, settings: Settings, metrics: Metrics
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``spec``."""
    counted: dict[str, Counter] = {}  # outcome → labelled child, resolved once

    def count(outcome: str) -> None:
        child = counted.get(outcome)
        if child is None:
            child = counted[outcome] = metrics.commands.labels(type=spec.name, outcome=outcome)
        child.inc()

    appended: dict[str, Counter] = {}  # event type → labelled child, resolved once

    def count_appended(event_type: str) -> None:
        child = appended.get(event_type)
        if child is None:
            child = appended[event_type] = metrics.events_appended.labels(event_type=event_type)
        child.inc()

    async def endpoint(request: Request) -> Response:
        try:
            response, outcome = await _run(spec, verifier, settings, count_appended, request)
        except ProblemError as problem:
            count(problem.slug)
            raise
        except BaseException:
            count("internal")
            raise
        count(outcome)
        return response

    return endpoint


async def _run(
    spec: CommandRoute,
    verifier: CachedVerifier,
    settings: Settings,
    count_appended: Callable[[str], None],
    request: Request,
) -> tuple[Response, str]:
    headers = request.headers
    principal = verifier.principal(headers.get("authorization"))
    subject = authorise(principal, spec.role)
    command = c.decode_command(await _body(request, spec.command), spec.command)
    if_match = parse_if_match(headers.get("if-match"))
    key = idempotency.parse_key(headers.get(idempotency.HEADER))
    request_hash = (
        idempotency.fingerprint(request.method, request.url.path, c.canonical_bytes(command))
        if key
        else b""
    )
    pool: psycopg_pool.AsyncConnectionPool = request.state.pool
    metadata = EventMetadata(
        correlation_id=correlation_id.get(),
        causation_id=_causation_id(),
        actor=subject,
        traceparent=_traceparent(headers.get("traceparent")),
    )
    # First without locks or a transaction: two round trips (one for an order decided from
    # a sku snapshot), the save checks what was read (command_side.postgres). After a
    # rejection on a snapshot, the same reading the database; after a stale read or
    # snapshot, and whenever an Idempotency-Key needs its record written in the command's
    # transaction, locking.
    locking = key is not None
    fresh = False
    for attempt in range(ATTEMPTS):
        try:
            async with (
                pool.connection() as conn,
                PostgresUnitOfWork(
                    conn,
                    metadata,
                    locking=locking,
                    rows=request.state.row_queue,
                    snapshots=request.state.sku_snapshots,
                    fresh=fresh,
                ) as uow,
            ):
                if key is not None:
                    replay = await idempotency.claim(conn, subject, key, request_hash)
                    if replay is not None:
                        replayed = Response(
                            replay.body,
                            replay.status,
                            {**replay.headers, "Idempotent-Replayed": "true"},
                        )
                        return replayed, "replayed"
                outcome = await spec.call(request, command, uow, principal, if_match)
                stored = stored_response(spec, outcome)
                if key is not None:
                    await idempotency.remember(
                        conn, subject, key, request_hash, stored, settings.idempotency_ttl_hours
                    )
            # Committed: only now do the events exist.
            for event_type in uow.appended:
                count_appended(event_type)
            return Response(stored.body, stored.status, stored.headers), "ok"
        except ReadAgain:
            fresh = True
        except RetryWithLocks:
            locking = True
        except RETRYABLE:
            locking = True
            if attempt == ATTEMPTS - 1:
                raise ProblemError(
                    503, "busy", "The database is busy; retry.", headers={"Retry-After": "1"}
                ) from None
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            if not isinstance(exc, psycopg_pool.PoolTimeout):
                request.state.pool_recovery.connection_failed()
            raise ProblemError(
                503,
                "database-unavailable",
                "The database is unavailable; retry later.",
                headers={"Retry-After": "1"},
            ) from None
    raise AssertionError("unreachable")
