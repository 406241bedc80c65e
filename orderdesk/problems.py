"""RFC 9457 problem details (``application/problem+json``) for both APIs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.responses import Response

PROBLEM_TYPE_PREFIX = "urn:orderdesk:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ErrorItem(msgspec.Struct, frozen=True):
    """One validation error: where (``loc``) and what (``msg``)."""

    loc: list[str | int]
    msg: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """The problem+json body. ``type`` is ``urn:orderdesk:problem:<slug>``."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] | None = None
    skus: list[str] | None = None


class ProblemError(Exception):
    """Raised anywhere in a request to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        errors: Sequence[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
        skus: Sequence[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}
        self.skus = list(skus) if skus is not None else None

    def to_problem(self) -> Problem:
        return Problem(
            type=PROBLEM_TYPE_PREFIX + self.slug,
            title=TITLES.get(self.status, "Error"),
            status=self.status,
            detail=self.detail,
            errors=self.errors,
            skus=self.skus,
        )


def problem_response(error: ProblemError, extra_headers: dict[str, Any] | None = None) -> Response:
    """The HTTP response for ``error``."""
    headers = {**error.headers, **(extra_headers or {})}
    return Response(
        msgspec.json.encode(error.to_problem()),
        status_code=error.status,
        headers=headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


#: The pattern of free-text fields: anything but NUL, which PostgreSQL text and jsonb
#: cannot store. Its msgspec message ("Expected `str` matching regex …") is replaced by
#: :data:`NO_NUL_MESSAGE` in problems.
NO_NUL = r"^[^\x00]*$"
NO_NUL_MESSAGE = "Must not contain NUL characters (U+0000)."


def validation_error(exc: msgspec.ValidationError, *, root: str = "body") -> ProblemError:
    """A 422 from msgspec's validation message, with ``loc`` parsed from its ``at `$.a[0].b```."""
    message = str(exc)
    loc: list[str | int] = [root]
    text, marker, path = message.partition(" - at `$")
    if marker:
        for part in path.rstrip("`").replace("]", "").replace("[", ".").split("."):
            if part:
                loc.append(int(part) if part.lstrip("-").isdigit() else part)
    # "Object missing required field `x`" names the field itself: point at it.
    if text.startswith(("Object missing required field", "Object contains unknown field")):
        loc.append(text.split("`")[1])
    if text.endswith(f"matching regex {NO_NUL!r}"):
        text = NO_NUL_MESSAGE
    return ProblemError(
        422, "validation", "The request is not valid.", errors=[ErrorItem(loc=loc, msg=text)]
    )
