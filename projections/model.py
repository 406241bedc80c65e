"""What a projection is: a name, a version, the events it handles and a batch apply function.

Statements that find a batch's rows in a read table by key (``WHERE key = ANY(…)``, an
``UPDATE … FROM`` the batch's rows) run unprepared (``prepare=False``), so PostgreSQL plans
them for the table as it is now and the keys actually sent. Prepared, they keep the plan
settled on in the first minutes of a deployment, while the tables were nearly empty: a scan
of the whole table for every batch, however large it has grown since
(tests/integration/test_projection_plans.py). Planning one costs tens of microseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from projections.reader import StoredEvent


@dataclasses.dataclass(frozen=True, slots=True)
class Tables:
    """Where a batch is written: logical table name (``"product_view"``) -> the qualified
    table (``"read.product_view"`` live, ``"read.product_view__rebuild"`` in a rebuild)."""

    names: Mapping[str, str]
    #: True while a rebuild fills its shadow tables: they started empty and receive every
    #: event exactly once, so new rows may be loaded with COPY, without conflict handling
    #: (see projections.new_rows).
    bulk_load: bool = False

    def __getitem__(self, name: str) -> str:
        return self.names[name]

    def get(self, name: str, default: str = "") -> str:
        """The qualified table of ``name``; ``default`` when the projection has none."""
        return self.names.get(name, default)


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
    #: True when ``apply`` only ever adds rows (no update, no lookup, no conflict in a
    #: bulk load): a rebuild then builds even the primary key after the fill, in one sort,
    #: instead of inserting every row into it (order_history: ~0.5 s less per 1M events).
    append_only: bool = False

    def live_tables(self) -> Tables:
        """The tables the live runner writes."""
        return Tables({t: f"read.{t}" for t in self.tables})

    def shadow_tables(self) -> Tables:
        """The tables a rebuild fills before the swap (empty at first, each event once)."""
        return Tables({t: f"read.{t}{SHADOW_SUFFIX}" for t in self.tables}, bulk_load=True)


SHADOW_SUFFIX = "__rebuild"
