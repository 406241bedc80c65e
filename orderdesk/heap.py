"""Garbage-collector settings for the long-running processes (APIs, relay, worker).

A service process keeps a large heap that lives as long as it does (modules, routes,
pools) and allocates many short-lived objects per request or event (coroutines, futures,
header lists). With CPython's defaults (a young collection every 700 net allocations, an
older one every 10 of those) the collector keeps re-walking objects that will never be
garbage: measured on the query API, cached GETs got ~30% faster with the settings below
(docs/benchmarks.md, "Third session").

:func:`settle` is called by each process's composition root once start-up is done: it
moves everything alive into the permanent generation (``gc.freeze``, never scanned again)
and collects the young generation every :data:`YOUNG_THRESHOLD` allocations. Cycles are
still collected, in fewer and larger passes; the extra garbage that can wait for a pass is
a few MB at most.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (50, 100)


def settle() -> None:
    """Freeze the start-up heap and raise the collection thresholds (see the module doc)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
