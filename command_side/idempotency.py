"""``Idempotency-Key``: a retried POST/PATCH gets the first response back, not a second effect.

The record lives in ``write.idempotency_keys`` keyed by (subject, key) — keys are scoped per
caller, so two customers can never collide or read each other's responses — and is written
in the SAME transaction as the command, so "the command happened" and "its response is
stored" are one fact: a crash cannot leave one without the other.

Concurrent duplicates: :func:`claim` first takes a transaction-scoped advisory lock on the
(subject, key) hash, then looks the key up. A second request with the same key waits on
the lock until the first commits (then finds its record and replays it) or rolls back
(then runs the command itself). The lookup is a separate statement on purpose: under READ
COMMITTED each statement takes a fresh snapshot, so it sees what the first one committed
while we waited.

Only successful responses are stored. A rejected command (any 4xx) rolls back the whole
transaction, its record included, so the client can fix the request and retry with the same
key; replaying a stored 409 for ever would only make the key unusable. Records older than
``idempotency_ttl_hours`` are ignored and overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import msgspec
from psycopg import AsyncConnection

from orderdesk.problems import ErrorItem, ProblemError

HEADER = "idempotency-key"
MAX_KEY = 200

LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s || chr(10) || %s, 0))"
LOOKUP = """
SELECT request_hash, status_code, response_body, response_headers::text
FROM write.idempotency_keys
WHERE subject = %s AND key = %s AND expires_at > now()
"""
REMEMBER = """
INSERT INTO write.idempotency_keys
    (subject, key, request_hash, status_code, response_body, response_headers, created_at,
     expires_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, now(), now() + make_interval(hours => %s))
ON CONFLICT (subject, key) DO UPDATE SET
    request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code,
    response_body = EXCLUDED.response_body, response_headers = EXCLUDED.response_headers,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
"""

_headers_decoder = msgspec.json.Decoder(dict[str, str])
_headers_encoder = msgspec.json.Encoder()


@dataclasses.dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as it is replayed: status, body and the headers that describe it."""

    status: int
    body: bytes
    headers: dict[str, str]


def parse_key(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header's value; 422 when it is empty or longer than 200."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY or not raw.isprintable():
        raise ProblemError(
            422,
            "validation",
            "The request is not valid.",
            errors=[
                ErrorItem(
                    loc=["header", "Idempotency-Key"],
                    msg=f"must be 1-{MAX_KEY} printable characters",
                )
            ],
        )
    return raw


def fingerprint(method: str, path: str, canonical_body: bytes) -> bytes:
    """What "the same request" means: method, path and the decoded body."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), canonical_body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


async def claim(
    conn: AsyncConnection[Any], subject: str, key: str, request_hash: bytes
) -> StoredResponse | None:
    """Inside the command's transaction: wait for any concurrent use of the key, then the
    stored response to replay, or ``None`` to run the command. 422 when the key was used
    for a different request."""
    async with conn.pipeline() as pipeline:
        await conn.execute(LOCK, (subject, key))
        cur = await conn.execute(LOOKUP, (subject, key))
        await pipeline.sync()
        row = await cur.fetchone()
    if row is None:
        return None
    stored_hash, status, body, headers = row
    if bytes(stored_hash) != request_hash:
        raise ProblemError(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was already used for a different request.",
        )
    return StoredResponse(status, bytes(body), _headers_decoder.decode(headers))


async def remember(
    conn: AsyncConnection[Any],
    subject: str,
    key: str,
    request_hash: bytes,
    response: StoredResponse,
    ttl_hours: int,
) -> None:
    """Store ``response`` for the key, in the command's transaction."""
    await conn.execute(
        REMEMBER,
        (
            subject,
            key,
            request_hash,
            response.status,
            response.body,
            _headers_encoder.encode(response.headers).decode(),
            ttl_hours,
        ),
    )
