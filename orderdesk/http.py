"""ASGI plumbing shared by both APIs: correlation ids, body limits, problem+json errors."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderdesk.logs import correlation_id
from orderdesk.problems import ProblemError, problem_response

log = logging.getLogger("orderdesk.http")

MAX_BODY_BYTES = 64 * 1024
MAX_REQUEST_ID = 200
REQUEST_ID_HEADER = b"x-request-id"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _valid_request_id(raw: bytes) -> str | None:
    try:
        value = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if 1 <= len(value) <= MAX_REQUEST_ID and value.isprintable():
        return value
    return None


class RequestContextMiddleware:
    """Sets the correlation id for the request (from ``X-Request-ID`` or a new one) and
    echoes it on every response, errors included; logs one line per request."""

    def __init__(
        self, app: ASGIApp, *, observe: Callable[[Scope, int, float], None] | None = None
    ) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = _valid_request_id(value)
                break
        if request_id is None:
            # 32 hex digits, like a uuid4's hex. Not os.urandom: one system call per request
            # showed as ~8% of a cached GET's CPU, and a correlation id needs uniqueness,
            # not secrecy.
            request_id = f"{random.getrandbits(128):032x}"
        token = correlation_id.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if self.observe is not None:
                self.observe(scope, status, elapsed)
            # One access line per request, carrying the correlation id (via the context
            # variable). Probes and scrapes are DEBUG so they do not drown the log.
            if status >= 500:
                level, message = logging.WARNING, "request failed"
            elif scope["path"] in QUIET_PATHS:
                level, message = logging.DEBUG, "request"
            else:
                level, message = logging.INFO, "request"
            if log.isEnabledFor(level):
                fields = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                }
                log.log(level, message, extra=fields)
            correlation_id.reset(token)


async def read_json_body(request: Request) -> bytes:
    """The raw JSON body: 415 unless JSON, 413 past 64 KiB, 400 when empty."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ProblemError(415, "unsupported-media-type", "Send the body as application/json.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # The client went away mid-body: nothing to answer and nothing to run.
        raise ProblemError(400, "client-disconnected", "The request body was cut off.") from None
    return b"".join(chunks)


def _too_large() -> ProblemError:
    return ProblemError(
        413, "body-too-large", f"The request body is larger than {MAX_BODY_BYTES} bytes."
    )


def decode_json(body: bytes, type_: Any) -> Any:
    """Decode and validate ``body`` as ``type_``: 400 for malformed JSON, 422 for invalid."""
    from orderdesk.problems import validation_error

    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ProblemError(400, "malformed-json", f"The body is not valid JSON: {exc}") from None


async def problem_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`ProblemError`."""
    assert isinstance(exc, ProblemError)
    return problem_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as problem+json too."""
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    headers = dict(exc.headers or {})
    return problem_response(ProblemError(exc.status_code, slug, detail, headers=headers))


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """Last resort: log the bug with its correlation id, answer problem+json 500."""
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(ProblemError(500, "internal", "An unexpected error occurred."))


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """The handlers both APIs install."""
    return {
        ProblemError: problem_handler,
        HTTPException: http_exception_handler,
        Exception: unexpected_error_handler,
    }
