"""Domain errors: each names a problem slug the HTTP layer maps to RFC 9457 problem+json.

The class chooses the status (:class:`NotFound` 404, :class:`Conflict` 409,
:class:`RuleViolation` 422); ``slug`` becomes ``urn:orderdesk:problem:<slug>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class DomainError(Exception):
    """Base of every rejected command. A raising method has changed nothing."""

    slug: str = "domain-error"

    def __init__(self, detail: str, slug: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if slug is not None:
            self.slug = slug


class NotFound(DomainError):
    """The aggregate the command is addressed to does not exist."""

    slug = "not-found"


class Conflict(DomainError):
    """The command does not fit the aggregate's current state (409)."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail, slug)


class InsufficientStock(Conflict):
    """Not enough available stock; ``skus`` names every short sku, sorted."""

    def __init__(self, skus: Iterable[str]) -> None:
        self.skus: list[str] = sorted(set(skus))
        super().__init__("insufficient-stock", f"not enough stock for: {', '.join(self.skus)}")


class RuleViolation(DomainError):
    """A business rule about the command's input failed (422).

    ``loc`` points at the offending request field the way validation errors do, e.g.
    ``["body", "lines", 2, "sku"]``, so clients can show the error next to the input.
    """

    def __init__(self, slug: str, detail: str, loc: Sequence[str | int]) -> None:
        super().__init__(detail, slug)
        self.loc: list[str | int] = list(loc)
