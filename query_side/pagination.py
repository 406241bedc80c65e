"""Keyset pagination with opaque cursors, and the query-parameter rules every list shares.

A cursor is the base64url JSON of ``[fingerprint, *sort key of the last row served]``. The
fingerprint is a short hash of the endpoint, its filters and its sort, so a cursor handed
to a different query is refused instead of silently paging something else. The next page
is ``WHERE (sort key) after (cursor key)``: rows are never repeated or skipped by inserts
that land before the cursor, unlike ``OFFSET``.

Error kinds (documented in docs/query-api.md): a query *value* that is out of range or
unknown (``limit``, ``sort``, ``status``, dates) is a 422 ``validation`` problem whose
``loc`` is ``["query", name]``; a cursor that is not one of ours, or belongs to another
query, is a 400 ``invalid-cursor`` problem (the client did not build it, so it is not a
validation mistake it can correct field by field).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from orderdesk.problems import ErrorItem, ProblemError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 512

_encoder = msgspec.json.Encoder()


def invalid_query(name: str, msg: str) -> ProblemError:
    """The 422 problem for a bad value of query parameter ``name``."""
    return ProblemError(
        422,
        "validation",
        "The query parameters are not valid.",
        errors=[ErrorItem(loc=["query", name], msg=msg)],
    )


def parse_limit(
    params: Mapping[str, str], *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT
) -> int:
    """``limit`` as an int in 1..``maximum`` (``default`` when absent)."""
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise invalid_query("limit", f"Expected an integer from 1 to {maximum}.")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise invalid_query("limit", f"Expected an integer from 1 to {maximum}.")
    return value


def parse_choice(
    params: Mapping[str, str], name: str, choices: Sequence[str], default: str | None = None
) -> str | None:
    """Query parameter ``name`` when it is one of ``choices`` (``default`` when absent)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise invalid_query(name, f"Expected one of: {', '.join(choices)}.")
    return raw


def fingerprint(*parts: object) -> str:
    """A short digest of what identifies a query (endpoint, filters, sort)."""
    digest = hashlib.blake2s(_encoder.encode([str(p) for p in parts]), digest_size=6)
    return digest.hexdigest()


def encode_cursor(query: str, key: Sequence[Any]) -> str:
    """The opaque cursor after a row with sort ``key`` in the query with fingerprint ``query``."""
    raw = _encoder.encode([query, *key])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _bad_cursor(detail: str) -> ProblemError:
    return ProblemError(400, "invalid-cursor", detail)


def decode_cursor(raw: str | None, query: str, types: Sequence[type]) -> list[Any] | None:
    """The sort key in cursor ``raw`` (None when absent), checked against the query and the
    types of its key columns; a 400 ``invalid-cursor`` problem otherwise."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_CURSOR_LENGTH or not raw.isascii():
        raise _bad_cursor("The cursor is not one this API issued.")
    try:
        decoded = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise _bad_cursor("The cursor is not one this API issued.") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != len(types) + 1
        or not isinstance(decoded[0], str)
    ):
        raise _bad_cursor("The cursor is not one this API issued.")
    if decoded[0] != query:
        raise _bad_cursor(
            "The cursor belongs to another query: keep q, status, in_stock "
            "and sort as they were for the first page."
        )
    key = decoded[1:]
    for value, type_ in zip(key, types, strict=True):
        # bool is an int subclass in Python; a cursor never carries one.
        if not isinstance(value, type_) or isinstance(value, bool):
            raise _bad_cursor("The cursor is not one this API issued.")
        if isinstance(value, str) and "\x00" in value:  # never issued; PostgreSQL refuses it
            raise _bad_cursor("The cursor is not one this API issued.")
    return key
