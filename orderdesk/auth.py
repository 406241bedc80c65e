"""JWT bearer tokens (PyJWT): verification for the APIs, minting for ``orderdesk token``.

HS256 with ``ORDERDESK_JWT_SECRET`` by default; RS256 when ``ORDERDESK_JWT_PUBLIC_KEY`` is
set (a PEM, or a path to one). The algorithm is pinned per deployment — the token's own
``alg`` header is never trusted, so ``none`` and algorithm-confusion tokens are rejected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from orderdesk.problems import ProblemError
from orderdesk.settings import Settings

ROLES = ("customer", "staff", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token subject and roles, or anonymous (``subject is None``)."""

    subject: str | None
    roles: frozenset[str]

    @property
    def is_staff(self) -> bool:
        """Staff and admins may do everything staff can."""
        return bool(self.roles & {"staff", "admin"})

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


ANONYMOUS = Principal(subject=None, roles=frozenset())


def _pem(value: str) -> str:
    return value if "-----BEGIN" in value else Path(value).read_text()


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    """Verifies bearer tokens with one pinned algorithm and key."""

    algorithm: str
    key: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        if settings.jwt_public_key:
            return cls("RS256", _pem(settings.jwt_public_key))
        return cls("HS256", settings.jwt_secret)

    def principal(self, authorization: str | None) -> Principal:
        """The caller named by an ``Authorization`` header; 401 problem when it is bad."""
        if authorization is None:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("The Authorization header must be 'Bearer <token>'.")
        try:
            claims = jwt.decode(
                token.strip(),
                self.key,
                algorithms=[self.algorithm],
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("The token has expired.") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("The token is not valid.") from None
        subject = claims.get("sub")
        roles = claims.get("roles", [])
        if (
            not isinstance(subject, str)
            or not 1 <= len(subject) <= 64
            or "\x00" in subject  # stored as text and jsonb, which cannot hold NUL
            or not isinstance(roles, list)
            or not all(isinstance(r, str) for r in roles)
        ):
            raise _unauthorized("The token's claims are not valid.")
        return Principal(subject=subject, roles=frozenset(r for r in roles if r in ROLES))


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="orderdesk"'}
    )


def mint_token(settings: Settings, subject: str, roles: list[str], ttl_seconds: int) -> str:
    """A signed token for ``subject`` (``orderdesk token``, tests, the dev command)."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}; choose from {', '.join(ROLES)}")
    now = int(time.time())
    claims = {"sub": subject, "roles": roles, "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_private_key:
        return jwt.encode(claims, _pem(settings.jwt_private_key), algorithm="RS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
