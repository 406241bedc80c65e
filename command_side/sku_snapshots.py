"""The last committed product and stock row of each sku this process has seen.

An order of one line (the common command) needs its sku's product and stock row. Read from
PostgreSQL, that is a round trip and a query per order; this process, though, wrote most of
those rows itself a moment ago. So the optimistic path (:mod:`command_side.postgres`) keeps
a snapshot of both rows per sku, as of its own last read or save, and decides from it.

A snapshot is a guess, never the truth: another process may have changed either row since.
The save proves it right or wrong in the same statement, so nothing is decided on stale
data:

- the save checks both rows hold exactly the snapshot's values (``checked`` rows in
  :func:`command_side.save_statement.save_sql`), besides the stock update's usual
  ``AND version = …`` guard; a row that differs makes the statement raise and write
  nothing, and the command runs again from the database (locking). Values, not only the
  version: the decision depends on nothing else, so it stays right even if a version
  number came back with other contents (a commit lost in a failover to an asynchronous
  standby, a point-in-time restore);
- a command *rejected* on a snapshot (not enough stock, a discontinued sku) writes nothing to
  check, so it is run again reading the database before the rejection is believed;
- a command that finds its connection broken (the database restarted, failed over)
  forgets every snapshot.

A sku whose snapshot proved stale is *contended* (another process writes it too): for
:data:`CONTENDED_SECONDS` its rows are read from the database on every command, as without
snapshots, instead of paying for a failed save each time. Entries are kept for at most
``capacity`` skus, least recently used first out.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

#: How long a sku whose snapshot proved stale is read from the database instead.
CONTENDED_SECONDS = 1.0
CAPACITY = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class ProductRow:
    """``write.products`` as loaded: what an order captures, and the version checked."""

    name: str
    price: int
    status: str
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class StockRow:
    """``write.stock_items`` as loaded."""

    on_hand: int
    reserved: int
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class SkuSnapshot:
    product: ProductRow
    stock: StockRow


class SkuSnapshots:
    """``sku → SkuSnapshot``, least recently used out past ``capacity``; see the module."""

    def __init__(
        self,
        capacity: int = CAPACITY,
        *,
        contended_seconds: float = CONTENDED_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.contended_seconds = contended_seconds
        self._clock = clock
        #: Called with "hit", "miss" or "stale" (the ``orderdesk_sku_snapshots_total``
        #: counter in the command API).
        self._observe = observe
        self._entries: OrderedDict[str, SkuSnapshot] = OrderedDict()
        self._contended: dict[str, float] = {}  # sku → until (clock)
        #: Commands that decided from a snapshot / that found one stale at their save.
        self.hits = 0
        self.stale = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, sku: str) -> SkuSnapshot | None:
        """The snapshot of ``sku``, or ``None`` (never seen, dropped, or contended)."""
        found = self._entries.get(sku)
        if found is None:
            if self._observe is not None:
                self._observe("miss")
            return None
        self._entries.move_to_end(sku)
        self.hits += 1
        if self._observe is not None:
            self._observe("hit")
        return found

    def put(self, sku: str, snapshot: SkuSnapshot) -> None:
        """Remember ``sku``'s rows as just read or saved (not while it is contended)."""
        if self._contended and self._is_contended(sku):
            return
        self._entries[sku] = snapshot
        self._entries.move_to_end(sku)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def saved(
        self, sku: str, *, product: ProductRow | None = None, stock: StockRow | None = None
    ) -> None:
        """A committed save wrote these rows: replace them in ``sku``'s snapshot, if any."""
        found = self._entries.get(sku)
        if found is not None:
            self._entries[sku] = SkuSnapshot(product or found.product, stock or found.stock)

    def forget(self, skus: Iterable[str], *, contended: bool = False) -> None:
        """Drop the snapshots of ``skus``; ``contended``: one proved stale (see the module)."""
        for sku in skus:
            self._entries.pop(sku, None)
            if contended:
                self.stale += 1
                self._contended[sku] = self._clock() + self.contended_seconds
                if self._observe is not None:
                    self._observe("stale")
        if len(self._contended) > self.capacity:  # keep the markers bounded too
            now = self._clock()
            live = [(s, t) for s, t in self._contended.items() if t > now]
            self._contended = dict(live[-max(1, self.capacity // 2) :])  # the newest

    def forget_all(self) -> None:
        """Drop every snapshot (after a connection failure: trust nothing remembered)."""
        self._entries.clear()

    def _is_contended(self, sku: str) -> bool:
        until = self._contended.get(sku)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._contended[sku]
        return False
