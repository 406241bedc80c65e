"""One batch for every projection at once: what a ``project("*")`` wakeup runs.

Four separate batches cost four transactions, each taking its lock, loading its state,
reading the log and writing its checkpoint: about forty round trips per wakeup, most of
the worker's CPU under a steady write load. A sweep does the same work for every live
projection in ONE read-database transaction: one statement takes the advisory locks, one
loads the states, the log is read once (the union of the event types, from the lowest
checkpoint), each projection applies its own events set-based, and one statement moves
every checkpoint and NOTIFYs the query API. Exactly-once is unchanged: rows and
checkpoints still commit together.

A sweep is only the fast path. A projection that is not simply live and ours (first run,
locked by another worker, stalled, outdated) goes through :func:`projections.runner.
catch_up`, and so does every projection of a sweep whose apply failed: the runner owns
retries, poison isolation and stalling.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from projections import cache_refresh
from projections.model import Projection
from projections.reader import read_batch
from projections.runner import (
    CHECKPOINT_CHANNEL,
    LOCK_NAMESPACE,
    BatchResult,
    catch_up,
    lag,
    lock_key,
    log_applied,
    refresh_cache,
    request_ids,
)
from shared_contracts.tokens import LogPoint
from shared_contracts.views import OrderView, ProductView

# First the locks, then (in a second statement) the states. Not in one statement: under
# READ COMMITTED a statement's snapshot is taken before its functions run, so a state row
# read together with the lock may predate the commit of the worker that just released
# that lock, and its batch would be applied a second time.
_LOCKS = """
SELECT k.name FROM unnest(%s::text[], %s::int[]) AS k(name, key)
WHERE pg_try_advisory_xact_lock(%s, k.key)
"""
# Only existing rows: a first run is left to the runner, which creates them.
_STATES = """
SELECT name, version, state, checkpoint_tx, checkpoint_pos
FROM read.projection_state WHERE name = ANY(%s)
"""

# Every moved checkpoint in one statement, and one notice per projection to the query API.
_ADVANCE = f"""
WITH moved AS (
    UPDATE read.projection_state AS s
    SET checkpoint_tx = v.tx, checkpoint_pos = v.pos,
        events_applied = s.events_applied + v.applied, events_behind = %s,
        seconds_behind = %s, attempts = 0, last_error = NULL, failed_event_id = NULL,
        failed_event_position = NULL, updated_at = now()
    FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[])
        AS v(name, tx, pos, applied)
    WHERE s.name = v.name
    RETURNING s.name
)
SELECT pg_notify('{CHECKPOINT_CHANNEL}', name) FROM moved
"""


class _ApplyFailed(Exception):
    """Raised inside the sweep's transaction so it rolls back; the runner takes over."""


@dataclasses.dataclass(slots=True)
class _Step:
    """One projection's share of a sweep."""

    projection: Projection
    checkpoint: LogPoint
    target: LogPoint
    applied: int = 0
    request_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did: a result per projection swept, and those left to the runner."""

    results: list[BatchResult]
    left: list[Projection]
    caught_up: bool


def sweep_batch(
    projections: Sequence[Projection],
    write_conn: psycopg.Connection[Any],
    read_conn: psycopg.Connection[Any],
    *,
    batch_size: int,
    redis: Any = None,
    cache_ttl: int = 30,
) -> SweepResult:
    """One batch for every projection that is live and ours; both connections autocommit."""
    names = [p.name for p in projections]
    products: list[ProductView] = []
    orders: list[OrderView] = []
    try:
        with read_conn.transaction(), read_conn.cursor() as cur:
            cur.execute(_LOCKS, (names, [lock_key(n)[1] for n in names], LOCK_NAMESPACE))
            locked = [row[0] for row in cur.fetchall()]
            found = {}
            if locked:
                cur.execute(_STATES, (locked,))
                found = {row[0]: row for row in cur.fetchall()}
            steps: list[_Step] = []
            left: list[Projection] = []
            for projection in projections:
                row = found.get(projection.name)
                if row is None or row[2] != "live" or row[1] != projection.version:
                    left.append(projection)
                    continue
                point = LogPoint(row[3], row[4])
                steps.append(_Step(projection, point, point))
            if not steps:
                return SweepResult([], left, caught_up=True)
            start = min(step.checkpoint for step in steps)
            types = frozenset().union(*(step.projection.event_types for step in steps))
            # Read before this transaction writes anything (see runner.run_batch).
            batch = read_batch(write_conn, start, types, batch_size)
            end = batch.next_checkpoint(start)
            for step in steps:
                # Every event of the union up to ``end`` has been read, so each projection
                # may move to ``end`` even when its own last event lies earlier.
                step.target = max(step.checkpoint, end)
                mine = [
                    e
                    for e in batch.events
                    if e.point > step.checkpoint and e.event_type in step.projection.event_types
                ]
                if not mine:
                    continue
                tables = step.projection.live_tables()
                try:
                    affected = step.projection.apply(cur, mine, tables)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise
                except Exception as exc:
                    raise _ApplyFailed from exc
                step.applied = len(mine)
                step.request_ids = request_ids(mine)
                products += cache_refresh.load_products(
                    cur, tables.get("product_view", ""), affected.skus
                )
                orders += cache_refresh.load_orders(
                    cur, tables.get("order_view", ""), affected.order_ids
                )
            moved = [s for s in steps if s.target != s.checkpoint]
            behind, seconds = lag(write_conn, batch) if moved else (0, 0.0)
            if moved:
                cur.execute(
                    _ADVANCE,
                    (
                        behind,
                        seconds,
                        [s.projection.name for s in moved],
                        [s.target[0] for s in moved],
                        [s.target[1] for s in moved],
                        [s.applied for s in moved],
                    ),
                )
    except _ApplyFailed:
        return SweepResult([], list(projections), caught_up=False)
    refresh_cache(redis, products, orders, cache_ttl, "sweep")
    results = [_result(step, batch.complete, behind, seconds) for step in steps]
    for result in results:
        if result.events:
            log_applied(result)
    return SweepResult(results, left, caught_up=batch.complete)


def _result(step: _Step, complete: bool, behind: int, seconds: float) -> BatchResult:
    name = step.projection.name
    if step.target == step.checkpoint:
        return BatchResult(name, "idle", checkpoint=step.checkpoint)
    return BatchResult(
        name,
        "applied",
        events=step.applied,
        checkpoint=step.target,
        caught_up=complete,
        events_behind=behind,
        seconds_behind=seconds,
        request_ids=step.request_ids,
    )


def catch_up_all(
    projections: Sequence[Projection],
    write_conn: psycopg.Connection[Any],
    read_conn: psycopg.Connection[Any],
    *,
    batch_size: int,
    max_retries: int,
    redis: Any = None,
    cache_ttl: int = 30,
    max_seconds: float = 5.0,
    on_batch: Callable[[BatchResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[BatchResult]:
    """Sweep until caught up or ``max_seconds`` spent, then run what the sweep left.

    Returns the last result per projection (its ``events`` the total of this call), so the
    caller can tell whether work is left (``caught_up``) or another worker holds a lock.
    """
    deadline = time.monotonic() + max_seconds
    last: dict[str, BatchResult] = {}
    totals: dict[str, int] = {}
    left: dict[str, Projection] = {}
    while True:
        sweep = sweep_batch(
            projections,
            write_conn,
            read_conn,
            batch_size=batch_size,
            redis=redis,
            cache_ttl=cache_ttl,
        )
        for result in sweep.results:
            totals[result.name] = totals.get(result.name, 0) + result.events
            last[result.name] = result
            if on_batch is not None:
                on_batch(result)
        left.update((p.name, p) for p in sweep.left)
        if not sweep.results or sweep.caught_up or time.monotonic() >= deadline:
            break
    for projection in left.values():
        result = catch_up(
            projection,
            write_conn,
            read_conn,
            batch_size=batch_size,
            max_retries=max_retries,
            redis=redis,
            cache_ttl=cache_ttl,
            max_seconds=max(0.5, deadline - time.monotonic()),
            on_batch=on_batch,
            sleep=sleep,
        )
        totals[projection.name] = totals.get(projection.name, 0) + result.events
        last[projection.name] = result
    return [dataclasses.replace(r, events=totals.get(n, 0)) for n, r in last.items()]
