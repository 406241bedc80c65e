"""JWT verification per API.md §Auth: pinned algorithm, exp required, roles."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orderdesk.auth import ANONYMOUS, TokenVerifier, mint_token
from orderdesk.problems import ProblemError
from orderdesk.settings import Settings

SECRET = "unit-test-secret-with-enough-length-0123"


def _verifier() -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(jwt_secret=SECRET))


def _header(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm=alg)


def test_no_header_is_anonymous() -> None:
    assert _verifier().principal(None) == ANONYMOUS


def test_minted_token_gives_subject_and_roles() -> None:
    token = mint_token(Settings(jwt_secret=SECRET), "c-1", ["customer"], 60)
    principal = _verifier().principal(f"Bearer {token}")
    assert principal.subject == "c-1"
    assert principal.roles == {"customer"}
    assert not principal.is_staff


def test_admin_counts_as_staff() -> None:
    principal = _verifier().principal(
        _header({"sub": "a", "roles": ["admin"], "exp": time.time() + 60})
    )
    assert principal.is_staff and principal.is_admin


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        _header({"sub": "a", "roles": ["staff"]}),  # no exp
        _header({"sub": "a", "roles": ["staff"], "exp": time.time() - 10}),  # expired
        _header(
            {"sub": "a", "roles": ["staff"], "exp": time.time() + 60}, key="other-secret-x" * 3
        ),
        _header({"roles": ["staff"], "exp": time.time() + 60}),  # no sub
        _header({"sub": "x" * 65, "roles": ["staff"], "exp": time.time() + 60}),
        _header({"sub": "a\x00b", "roles": ["staff"], "exp": time.time() + 60}),  # NUL
        _header({"sub": "a", "roles": "staff", "exp": time.time() + 60}),
    ],
)
def test_bad_tokens_are_401(header: str) -> None:
    with pytest.raises(ProblemError) as caught:
        _verifier().principal(header)
    assert caught.value.status == 401
    assert "Bearer" in caught.value.headers["WWW-Authenticate"]


def test_alg_none_is_rejected() -> None:
    unsigned = jwt.encode(
        {"sub": "a", "roles": ["admin"], "exp": time.time() + 60}, None, algorithm="none"
    )
    with pytest.raises(ProblemError) as caught:
        _verifier().principal(f"Bearer {unsigned}")
    assert caught.value.status == 401


def test_rs256_with_public_key_and_no_algorithm_confusion() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = Settings(jwt_public_key=public_pem, jwt_private_key=private_pem)
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.algorithm == "RS256"
    token = mint_token(settings, "s-1", ["staff"], 60)
    assert verifier.principal(f"Bearer {token}").subject == "s-1"
    # An HS256 token "signed" with the public key must not pass (algorithm pinned).
    forged = jwt.encode(
        {"sub": "s-1", "roles": ["admin"], "exp": time.time() + 60}, SECRET, algorithm="HS256"
    )
    with pytest.raises(ProblemError):
        verifier.principal(f"Bearer {forged}")


def test_unknown_role_cannot_be_minted() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        mint_token(Settings(jwt_secret=SECRET), "x", ["root"], 60)
