"""Rebuild a projection from the start of the log without taking it offline.

1. Create shadow tables ``read.<table>__rebuild`` shaped like the live ones (primary key
   only: secondary indexes are built once at the end, which is much faster than
   maintaining them row by row).
2. Replay the whole log into them in large batches, one commit per batch, while the live
   tables keep serving and the live projector keeps running.
3. Build the secondary indexes, catch up again.
4. In ONE short transaction: take the projection's advisory lock (the live runner waits),
   apply the last events, swap the tables by renaming them, and move the checkpoint,
   version and state — readers see the old tables or the new ones, never a mix.
5. After commit, refresh Redis: drop the projection's cached rows, re-seed leaderboards.

Any failure drops the shadow tables and leaves the live projection as it was.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, TextIO

import psycopg

from orderdesk.database import connect
from orderdesk.redis_client import sync_redis
from orderdesk.settings import Settings
from projections import cache_refresh
from projections.model import SHADOW_SUFFIX, Projection
from projections.reader import START, count_after, read_batch
from projections.runner import CHECKPOINT_CHANNEL, load_state, lock_key
from shared_contracts.tokens import LogPoint

REBUILD_BATCH = 10_000
_OLD = "__old"
_REBUILD_LOCK_NAMESPACE = 0x0D36


class RebuildError(RuntimeError):
    """A rebuild failed; the live projection is untouched."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Index:
    name: str
    definition: str
    primary: bool


@dataclasses.dataclass(frozen=True, slots=True)
class RebuildSummary:
    """What a rebuild did."""

    name: str
    version: int
    events: int
    seconds: float
    checkpoint: LogPoint

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds > 0 else float(self.events)


class Progress:
    """A progress bar on a terminal (``\\r``), plain lines every few seconds otherwise."""

    def __init__(self, out: TextIO, name: str, total: int) -> None:
        self.out = out
        self.name = name
        self.total = max(total, 1)
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        self.total = max(self.total, done)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        fraction = done / self.total
        if self.tty:
            bar = "#" * int(fraction * 30)
            self.out.write(
                f"\r{self.name:<14} [{bar:<30}] {done:>10,}/{self.total:,} events"
                f"  {rate:>9,.0f} ev/s  ETA {eta:5.0f}s"
            )
            if final:
                self.out.write("\n")
        else:
            self.out.write(
                f"{self.name}: {done}/{self.total} events ({fraction:.0%}),"
                f" {rate:.0f} events/s, ETA {eta:.0f}s\n"
            )
        self.out.flush()


def _indexes(conn: psycopg.Connection[Any], table: str) -> list[_Index]:
    rows = conn.execute(
        "SELECT i.relname, coalesce(pg_get_constraintdef(c.oid), pg_get_indexdef(i.oid)),"
        " x.indisprimary FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid"
        " WHERE x.indrelid = %s::regclass ORDER BY i.relname",
        (f"read.{table}",),
    ).fetchall()
    return [_Index(r[0], r[1], r[2]) for r in rows]


def _create_shadows(
    conn: psycopg.Connection[Any], tables: tuple[str, ...]
) -> dict[str, list[_Index]]:
    found: dict[str, list[_Index]] = {}
    with conn.transaction():
        for table in tables:
            shadow = f"read.{table}{SHADOW_SUFFIX}"
            indexes = _indexes(conn, table)
            found[table] = indexes
            conn.execute(f"DROP TABLE IF EXISTS {shadow}")
            conn.execute(
                f"CREATE TABLE {shadow} (LIKE read.{table} INCLUDING DEFAULTS"
                " INCLUDING GENERATED INCLUDING CONSTRAINTS)"
            )
            for index in indexes:
                if index.primary:
                    conn.execute(
                        f"ALTER TABLE {shadow} ADD CONSTRAINT {index.name}{SHADOW_SUFFIX}"
                        f" {index.definition}"
                    )
    return found


def _create_secondary_indexes(
    conn: psycopg.Connection[Any], indexes: dict[str, list[_Index]]
) -> None:
    for table, found in indexes.items():
        for index in found:
            if index.primary:
                continue
            prefix = f" {index.name} ON read.{table} "
            if prefix not in index.definition:
                raise RebuildError(f"cannot copy index definition: {index.definition}")
            conn.execute(
                index.definition.replace(
                    prefix, f" {index.name}{SHADOW_SUFFIX} ON read.{table}{SHADOW_SUFFIX} ", 1
                )
            )


def _swap(conn: psycopg.Connection[Any], indexes: dict[str, list[_Index]]) -> None:
    """Rename live → old, shadow → live (tables and index names), drop old. In a transaction."""
    for table, found in indexes.items():
        conn.execute(f"ALTER TABLE read.{table} RENAME TO {table}{_OLD}")
        for index in found:
            conn.execute(f"ALTER INDEX read.{index.name} RENAME TO {index.name}{_OLD}")
        conn.execute(f"ALTER TABLE read.{table}{SHADOW_SUFFIX} RENAME TO {table}")
        for index in found:
            conn.execute(f"ALTER INDEX read.{index.name}{SHADOW_SUFFIX} RENAME TO {index.name}")
        conn.execute(f"DROP TABLE read.{table}{_OLD}")


def _drop_shadows(conn: psycopg.Connection[Any], tables: tuple[str, ...]) -> None:
    for table in tables:
        conn.execute(f"DROP TABLE IF EXISTS read.{table}{SHADOW_SUFFIX}")


def _replay(
    write: psycopg.Connection[Any],
    read: psycopg.Connection[Any],
    projection: Projection,
    after: LogPoint,
    batch_size: int,
    progress: Progress | None,
    done: int,
    *,
    commit_each: bool,
) -> tuple[LogPoint, int]:
    """Apply batches into the shadow tables until everything below the horizon is read."""
    tables = projection.shadow_tables()
    while True:
        batch = read_batch(write, after, projection.event_types, batch_size)
        if batch.events:
            if commit_each:
                with read.transaction(), read.cursor() as cur:
                    projection.apply(cur, batch.events, tables)
            else:
                with read.cursor() as cur:
                    projection.apply(cur, batch.events, tables)
        after = batch.next_checkpoint(after)
        done += len(batch.events)
        if progress is not None:
            progress.update(done)
        if batch.complete:
            return after, done


def rebuild_projection(
    settings: Settings,
    projection: Projection,
    *,
    out: TextIO | None = None,
    batch_size: int = REBUILD_BATCH,
) -> RebuildSummary:
    """Rebuild ``projection`` and swap it in; raises :class:`RebuildError` on failure."""
    out = out or sys.stderr
    assert settings.database_url and settings.effective_read_database_url
    started = time.monotonic()
    tables = projection.tables
    try:
        write = connect(settings.database_url, autocommit=True)
        read = connect(settings.effective_read_database_url, autocommit=True)
    except psycopg.Error as exc:
        raise RebuildError(f"cannot connect: {exc}") from exc
    with write, read:
        got = read.execute(
            "SELECT pg_try_advisory_lock(%s, %s)",
            (_REBUILD_LOCK_NAMESPACE, lock_key(projection.name)[1]),
        ).fetchone()
        if not got or not got[0]:
            raise RebuildError(f"another rebuild of {projection.name} is running")
        with read.transaction():
            previous = load_state(read, projection).state
            read.execute(
                "UPDATE read.projection_state SET state = 'rebuilding', updated_at = now()"
                " WHERE name = %s",
                (projection.name,),
            )
        swapped = False
        try:
            indexes = _create_shadows(read, tables)
            progress = Progress(
                out, projection.name, count_after(write, START, projection.event_types)
            )
            point, done = _replay(
                write, read, projection, START, batch_size, progress, 0, commit_each=True
            )
            _create_secondary_indexes(read, indexes)
            point, done = _replay(
                write, read, projection, point, batch_size, progress, done, commit_each=True
            )
            with read.transaction():
                read.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(projection.name))
                point, done = _replay(
                    write, read, projection, point, batch_size, None, done, commit_each=False
                )
                _swap(read, indexes)
                read.execute(
                    "UPDATE read.projection_state SET version = %s, state = 'live',"
                    " checkpoint_tx = %s, checkpoint_pos = %s, events_applied = %s,"
                    " events_behind = 0, seconds_behind = 0, attempts = 0, last_error = NULL,"
                    " failed_event_id = NULL, failed_event_position = NULL, updated_at = now()"
                    " WHERE name = %s",
                    (projection.version, *point, done, projection.name),
                )
                read.execute("SELECT pg_notify(%s, %s)", (CHECKPOINT_CHANNEL, projection.name))
            swapped = True
            progress.update(done, final=True)
        except Exception as exc:
            if not swapped:
                _abandon(read, projection, previous)
            raise RebuildError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            read.execute(
                "SELECT pg_advisory_unlock(%s, %s)",
                (_REBUILD_LOCK_NAMESPACE, lock_key(projection.name)[1]),
            )
        _refresh_redis(settings, read, projection.name, out)
    summary = RebuildSummary(
        projection.name, projection.version, done, time.monotonic() - started, point
    )
    print(
        f"rebuilt {summary.name} (version {summary.version}): {summary.events} events in"
        f" {summary.seconds:.1f}s ({summary.rate:,.0f} events/s),"
        f" checkpoint {point.transaction_id}/{point.position}",
        file=sys.stdout,
    )
    return summary


def _abandon(read: psycopg.Connection[Any], projection: Projection, previous: str) -> None:
    try:
        if read.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            read.rollback()
        with read.transaction():
            _drop_shadows(read, projection.tables)
            read.execute(
                "UPDATE read.projection_state SET state = %s WHERE name = %s"
                " AND state = 'rebuilding'",
                (previous, projection.name),
            )
    except psycopg.Error:
        pass  # the original error is what the user needs; shadows are dropped next time


def _refresh_redis(
    settings: Settings, read: psycopg.Connection[Any], name: str, out: TextIO
) -> None:
    if not settings.redis_url:
        return
    client = sync_redis(settings.redis_url)
    try:
        cache_refresh.reset_after_rebuild(client, read, name)
    except Exception as exc:
        out.write(f"warning: Redis not refreshed after rebuilding {name}: {exc}\n")
    finally:
        client.close()
