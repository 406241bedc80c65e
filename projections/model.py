"""What a projection is: a name, a version, the events it handles and a batch apply function."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from projections.reader import StoredEvent

#: Logical table name (``"product_view"``) -> the qualified table a batch writes to
#: (``"read.product_view"`` live, ``"read.product_view__rebuild"`` during a rebuild).
Tables = Mapping[str, str]


@dataclasses.dataclass(slots=True)
class Affected:
    """The read rows a batch changed, so the runner can refresh their Redis keys."""

    skus: set[str] = dataclasses.field(default_factory=set)
    order_ids: set[str] = dataclasses.field(default_factory=set)


ApplyFn = Callable[["psycopg.Cursor[Any]", Sequence[StoredEvent], Tables], Affected]


@dataclasses.dataclass(frozen=True, slots=True)
class Projection:
    """One read model. ``apply`` must be set-based: a few statements per batch."""

    name: str
    version: int
    event_types: frozenset[str]
    tables: tuple[str, ...]
    apply: ApplyFn

    def live_tables(self) -> dict[str, str]:
        """The tables the live runner writes."""
        return {t: f"read.{t}" for t in self.tables}

    def shadow_tables(self) -> dict[str, str]:
        """The tables a rebuild writes before the swap."""
        return {t: f"read.{t}{SHADOW_SUFFIX}" for t in self.tables}


SHADOW_SUFFIX = "__rebuild"
