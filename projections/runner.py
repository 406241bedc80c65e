"""The projection runner: one batch at a time, rows and checkpoint in one transaction.

For one projection a batch is: take the projection's advisory lock in the READ database
(so several workers never apply the same events twice), load its state row, read up to N
events after the checkpoint from the WRITE database (gap-safe), apply them set-based,
write the new checkpoint in the same transaction, ``NOTIFY orderdesk_checkpoints`` (the
query API waits on it for consistency tokens) and commit. Only then are the Redis keys of
the changed rows refreshed. A crash anywhere before the commit leaves the checkpoint where
it was, so the batch is simply applied again: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from orderdesk.logs import correlation_id
from projections import cache_refresh
from projections.model import Affected, Projection, Tables
from projections.reader import Batch, StoredEvent, read_batch
from shared_contracts.tokens import LogPoint
from shared_contracts.views import OrderView, ProductView

log = logging.getLogger(__name__)

#: The query API LISTENs here; the payload is the projection name.
CHECKPOINT_CHANNEL = "orderdesk_checkpoints"
#: First key of our two-key advisory locks (the second is a hash of the projection name).
LOCK_NAMESPACE = 0x0D35


@dataclasses.dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch did; the seam for metrics (events applied, lag, outcomes)."""

    name: str
    #: applied | idle | locked | stalled | outdated | failed
    outcome: str
    events: int = 0
    checkpoint: LogPoint | None = None
    caught_up: bool = True
    events_behind: int = 0
    seconds_behind: float = 0.0
    attempts: int = 0
    error: str | None = None
    #: The distinct correlation ids of the events applied, in log order.
    request_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class State:
    """A ``read.projection_state`` row (the part the runner needs)."""

    version: int
    state: str
    checkpoint: LogPoint
    attempts: int


def lock_key(name: str) -> tuple[int, int]:
    """The two-int advisory lock key of projection ``name`` (stable across processes)."""
    return LOCK_NAMESPACE, zlib.crc32(name.encode()) - 2**31


def load_state(conn: psycopg.Connection[Any], projection: Projection) -> State:
    """The state row, created (live, at the code's version, from the start) on first run."""
    conn.execute(
        "INSERT INTO read.projection_state (name, version, state) VALUES (%s, %s, 'live')"
        " ON CONFLICT (name) DO NOTHING",
        (projection.name, projection.version),
    )
    row = conn.execute(
        "SELECT version, state, checkpoint_tx, checkpoint_pos, attempts"
        " FROM read.projection_state WHERE name = %s",
        (projection.name,),
    ).fetchone()
    assert row is not None
    return State(row[0], row[1], LogPoint(row[2], row[3]), row[4])


def lag(write_conn: psycopg.Connection[Any], batch: Batch) -> tuple[int, float]:
    """(events behind, seconds behind) after ``batch``; an estimate while catching up."""
    if batch.complete or not batch.events:
        return 0, 0.0
    last = batch.events[-1]
    row = write_conn.execute("SELECT max(position) FROM write.event_log").fetchone()
    head = int(row[0]) if row and row[0] is not None else last.position
    seconds = (dt.datetime.now(dt.UTC) - last.recorded_at).total_seconds()
    return max(1, head - last.position), max(0.0, seconds)


def _apply(
    read_conn: psycopg.Connection[Any],
    projection: Projection,
    events: Sequence[StoredEvent],
    tables: Tables,
) -> tuple[Affected, list[ProductView], list[OrderView]]:
    with read_conn.transaction(), read_conn.cursor() as cur:
        affected = projection.apply(cur, events, tables)
        products = cache_refresh.load_products(cur, tables.get("product_view", ""), affected.skus)
        orders = cache_refresh.load_orders(cur, tables.get("order_view", ""), affected.order_ids)
    return affected, products, orders


def _isolate_failure(
    read_conn: psycopg.Connection[Any],
    projection: Projection,
    events: Sequence[StoredEvent],
    tables: Tables,
) -> tuple[int, Exception | None, list[ProductView], list[OrderView]]:
    """Apply one event at a time (failure path only) to find the event that fails.

    Returns how many events applied cleanly before it, its error, and the views of the
    rows they changed; the prefix is kept so one bad event does not hold back the rest.
    """
    products: list[ProductView] = []
    orders: list[OrderView] = []
    for index, stored in enumerate(events):
        try:
            _, p, o = _apply(read_conn, projection, [stored], tables)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except Exception as exc:
            return index, exc, products, orders
        products.extend(p)
        orders.extend(o)
    return len(events), None, products, orders


def run_batch(
    projection: Projection,
    write_conn: psycopg.Connection[Any],
    read_conn: psycopg.Connection[Any],
    *,
    batch_size: int,
    max_retries: int,
    redis: Any = None,
    cache_ttl: int = 30,
) -> BatchResult:
    """Apply the next batch of ``projection``; both connections in autocommit mode."""
    tables = projection.live_tables()
    products: list[ProductView] = []
    orders: list[OrderView] = []
    with read_conn.transaction():
        locked = read_conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", lock_key(projection.name)
        ).fetchone()
        if not locked or not locked[0]:
            return BatchResult(projection.name, "locked", caught_up=False)
        state = load_state(read_conn, projection)
        if state.version != projection.version:
            log.error(
                "projection %s is stored at version %s but this code is version %s:"
                " run `orderdesk projections rebuild %s`",
                projection.name,
                state.version,
                projection.version,
                projection.name,
            )
            return BatchResult(projection.name, "outdated", checkpoint=state.checkpoint)
        if state.state == "stalled":
            return BatchResult(projection.name, "stalled", checkpoint=state.checkpoint)
        # Read before this transaction writes anything: an xid of ours would hold back the
        # horizon when the read and write databases are the same.
        batch = read_batch(write_conn, state.checkpoint, projection.event_types, batch_size)
        checkpoint = batch.next_checkpoint(state.checkpoint)
        if not batch.events and checkpoint == state.checkpoint:
            return BatchResult(projection.name, "idle", checkpoint=checkpoint)
        try:
            _, products, orders = _apply(read_conn, projection, batch.events, tables)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except Exception:
            done, error, products, orders = _isolate_failure(
                read_conn, projection, batch.events, tables
            )
            if error is not None:
                result = _record_failure(
                    write_conn, read_conn, projection, state, batch.events, done, error, max_retries
                )
                refresh_cache(redis, products, orders, cache_ttl, projection.name)
                return result
        behind, seconds = lag(write_conn, batch)
        read_conn.execute(
            "UPDATE read.projection_state SET checkpoint_tx = %s, checkpoint_pos = %s,"
            " events_applied = events_applied + %s, events_behind = %s, seconds_behind = %s,"
            " attempts = 0, last_error = NULL, failed_event_id = NULL,"
            " failed_event_position = NULL, updated_at = now() WHERE name = %s",
            (*checkpoint, len(batch.events), behind, seconds, projection.name),
        )
        read_conn.execute("SELECT pg_notify(%s, %s)", (CHECKPOINT_CHANNEL, projection.name))
    refresh_cache(redis, products, orders, cache_ttl, projection.name)
    result = BatchResult(
        projection.name,
        "applied",
        events=len(batch.events),
        checkpoint=checkpoint,
        caught_up=batch.complete,
        events_behind=behind,
        seconds_behind=seconds,
        request_ids=request_ids(batch.events),
    )
    if result.events:
        log_applied(result)
    return result


def request_ids(events: Sequence[StoredEvent]) -> tuple[str, ...]:
    """The distinct correlation ids of ``events``, first occurrence first."""
    return tuple(dict.fromkeys(e.correlation_id for e in events if e.correlation_id))


def log_applied(result: BatchResult) -> None:
    """One INFO line per committed batch naming every request behind its events.

    ``request_ids`` lists them all, so ``grep <id>`` finds the batch that applied a
    request's events; when the batch came from one request only, ``request_id`` is set too.
    """
    only = result.request_ids[0] if len(result.request_ids) == 1 else None
    token = correlation_id.set(only) if only else None
    try:
        log.info(
            "event applied",
            extra={
                "projection": result.name,
                "events": result.events,
                "request_ids": list(result.request_ids),
                "checkpoint": f"{result.checkpoint[0]}/{result.checkpoint[1]}"
                if result.checkpoint
                else None,
                "events_behind": result.events_behind,
            },
        )
    finally:
        if token is not None:
            correlation_id.reset(token)


def _record_failure(
    write_conn: psycopg.Connection[Any],
    read_conn: psycopg.Connection[Any],
    projection: Projection,
    state: State,
    events: Sequence[StoredEvent],
    done: int,
    error: Exception,
    max_retries: int,
) -> BatchResult:
    """Keep the clean prefix, count the attempt, and stall after ``max_retries`` retries."""
    bad = events[done]
    found = write_conn.execute(
        "SELECT event_id::text FROM write.event_log"
        " WHERE transaction_id = %s::text::xid8 AND position = %s",
        (str(bad.transaction_id), bad.position),
    ).fetchone()
    event_id = found[0] if found else None
    checkpoint = events[done - 1].point if done else state.checkpoint
    attempts = state.attempts + 1
    stalled = attempts > max_retries
    message = f"{type(error).__name__}: {error}"[:2000]
    read_conn.execute(
        "UPDATE read.projection_state SET checkpoint_tx = %s, checkpoint_pos = %s,"
        " events_applied = events_applied + %s, attempts = %s, last_error = %s,"
        " failed_event_id = %s, failed_event_position = %s,"
        " state = CASE WHEN %s THEN 'stalled' ELSE state END, updated_at = now()"
        " WHERE name = %s",
        (
            *checkpoint,
            done,
            attempts,
            message,
            event_id,
            bad.position,
            stalled,
            projection.name,
        ),
    )
    if done:
        read_conn.execute("SELECT pg_notify(%s, %s)", (CHECKPOINT_CHANNEL, projection.name))
    token = correlation_id.set(bad.correlation_id or None)
    try:
        log.log(
            logging.ERROR if stalled else logging.WARNING,
            "projection %s %s on event %s (position %s, %s): %s",
            projection.name,
            "stalled" if stalled else f"failed (attempt {attempts} of {max_retries + 1})",
            event_id,
            bad.position,
            bad.event_type,
            message,
            extra={"projection": projection.name, "event_id": event_id},
        )
    finally:
        correlation_id.reset(token)
    return BatchResult(
        projection.name,
        "stalled" if stalled else "failed",
        events=done,
        checkpoint=checkpoint,
        caught_up=False,
        attempts=attempts,
        error=message,
    )


def refresh_cache(
    redis: Any, products: list[ProductView], orders: list[OrderView], ttl: int, name: str
) -> None:
    if redis is None or not (products or orders):
        return
    try:
        cache_refresh.write_views(redis, products, orders, ttl)
    except Exception as exc:
        # The rows are committed; the cache is only an accelerator (query API falls back).
        log.warning("projection %s: Redis refresh failed: %s", name, exc)


def catch_up(
    projection: Projection,
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
) -> BatchResult:
    """Run batches until caught up, stalled, locked out or ``max_seconds`` spent.

    Failures are retried here with exponential backoff; the runner stalls the projection
    once its retries are used up. The last result says whether more work is left.
    """
    deadline = time.monotonic() + max_seconds
    total = 0
    while True:
        result = run_batch(
            projection,
            write_conn,
            read_conn,
            batch_size=batch_size,
            max_retries=max_retries,
            redis=redis,
            cache_ttl=cache_ttl,
        )
        total += result.events
        if on_batch is not None:
            on_batch(result)
        if result.outcome == "failed":
            sleep(min(0.05 * 2**result.attempts, 2.0))
        elif result.outcome != "applied" or result.caught_up:
            break
        if time.monotonic() >= deadline:
            break
    return dataclasses.replace(result, events=total)
