"""Rebuild a projection from the start of the log without taking it offline.

1. Create shadow tables ``read.<table>__rebuild`` shaped like the live ones (primary key
   only, none at all for an append-only projection: indexes are built once at the end,
   which is much faster than maintaining them row by row).
2. Replay the whole log into them in large batches (new rows by COPY: the shadows get
   every event exactly once), one commit per batch, while the live tables keep serving
   and the live projector keeps running.
3. Build the remaining indexes, VACUUM ANALYZE each shadow, catch up again.
4. In ONE short transaction: take the projection's advisory lock (the live runner waits),
   apply the last events, swap the tables by renaming them, and move the checkpoint,
   version and state — readers see the old tables or the new ones, never a mix.
5. After commit, refresh Redis: drop the projection's cached rows, re-seed leaderboards.

Any failure drops the shadow tables and leaves the live projection as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TextIO

import psycopg

from orderdesk.database import connect
from orderdesk.redis_client import sync_redis
from orderdesk.settings import Settings
from projections import cache_refresh
from projections.model import SHADOW_SUFFIX, Projection, Tables
from projections.reader import START, Batch, StoredEvent, count_after, read_batch
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
    conn: psycopg.Connection[Any], tables: Sequence[str], appended: Collection[str]
) -> dict[str, list[_Index]]:
    """Shadow tables shaped like the live ones, with their primary key only, except the
    ``appended`` tables (of append-only projections), which get it in :func:`_finish_table`.

    Ordinary (logged) tables: the rows arrive by COPY, whose WAL is one record per page of
    tuples, and that costs the server less than filling UNLOGGED tables and rewriting each
    with ``SET LOGGED`` at the end (1M events: ~1 s less CPU, docs/benchmarks.md).
    Autovacuum is off while they fill (it would scan them again and again as they grow);
    :func:`_finish_table` vacuums and analyzes each once and turns it back on.
    """
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
                " WITH (autovacuum_enabled = false)"
            )
            for index in indexes:
                if index.primary and table not in appended:
                    conn.execute(
                        f"ALTER TABLE {shadow} ADD CONSTRAINT {index.name}{SHADOW_SUFFIX}"
                        f" {index.definition}"
                    )
    return found


def _finish_table(
    conn: psycopg.Connection[Any], table: str, indexes: list[_Index], *, appended: bool
) -> None:
    """Build one shadow's secondary indexes (once, at the end: much faster than
    maintaining them row by row) and, for an ``appended`` table, its primary key (a
    duplicate row fails the rebuild here), then VACUUM ANALYZE it and turn autovacuum on.

    The table goes live with planner statistics and a visibility map, as after any bulk
    load, and autovacuum has no reason to start on it at once: a table autovacuum is
    working on holds up the swap's ``ALTER TABLE`` until the deadlock check cancels the
    worker (``deadlock_timeout``, 1 s by default, per table).
    """
    shadow = f"read.{table}{SHADOW_SUFFIX}"
    for index in indexes:
        if index.primary:
            if appended:
                conn.execute(
                    f"ALTER TABLE {shadow} ADD CONSTRAINT {index.name}{SHADOW_SUFFIX}"
                    f" {index.definition}"
                )
            continue
        prefix = f" {index.name} ON read.{table} "
        if prefix not in index.definition:
            raise RebuildError(f"cannot copy index definition: {index.definition}")
        conn.execute(
            index.definition.replace(prefix, f" {index.name}{SHADOW_SUFFIX} ON {shadow} ", 1)
        )
    conn.execute(f"VACUUM (ANALYZE) {shadow}")
    conn.execute(f"ALTER TABLE {shadow} RESET (autovacuum_enabled)")


def _finish_tables(
    conns: Sequence[psycopg.Connection[Any]],
    indexes: dict[str, list[_Index]],
    appended: Collection[str],
) -> None:
    """:func:`_finish_table` for every shadow, spread over ``conns`` so the server indexes
    them in parallel (a psycopg connection serialises its own users)."""
    with ThreadPoolExecutor(max_workers=len(conns), thread_name_prefix="rebuild-finish") as pool:
        finishing = [
            pool.submit(
                _finish_table, conns[i % len(conns)], table, found, appended=table in appended
            )
            for i, (table, found) in enumerate(indexes.items())
        ]
        for future in finishing:
            future.result()


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


def _drop_shadows(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    for table in tables:
        conn.execute(f"DROP TABLE IF EXISTS read.{table}{SHADOW_SUFFIX}")


def _apply_batch(
    conn: psycopg.Connection[Any],
    projection: Projection,
    tables: Tables,
    events: Sequence[StoredEvent],
    *,
    commit: bool,
) -> int:
    """Apply the events of ``projection``'s types; how many there were."""
    mine = [e for e in events if e.event_type in projection.event_types]
    if mine:
        with conn.transaction() if commit else nullcontext(), conn.cursor() as cur:
            projection.apply(cur, mine, tables)
    return len(mine)


def _replay(
    write: psycopg.Connection[Any],
    appliers: Sequence[psycopg.Connection[Any]],
    projections: Sequence[Projection],
    after: LogPoint,
    batch_size: int,
    progress: Progress | None,
    done: dict[str, int],
    *,
    commit_each: bool,
) -> LogPoint:
    """Apply batches into the shadow tables until everything below the horizon is read.

    ONE pass over the log for all ``projections``: each batch is read once (the union of
    their event types) and every projection applies the events of its own types.
    ``done`` counts applied events per projection (updated in place).

    The next batch is read (on ``write``, by a helper thread) while this one is applied.
    With one connection in ``appliers`` per projection, the projections of a batch are
    applied at the same time, each on its own connection (their shadow tables are
    disjoint), so the server works on all of them in parallel; with a single connection
    they are applied one after the other on it (the final catch-up inside the swap).
    """
    types = frozenset().union(*(p.event_types for p in projections))
    targets = [(p, p.shadow_tables()) for p in projections]
    parallel = len(appliers) == len(targets) > 1
    read_so_far = sum(done.values())
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-read") as reader,
        ThreadPoolExecutor(
            max_workers=len(targets) if parallel else 1, thread_name_prefix="rebuild-apply"
        ) as pool,
    ):
        batch = read_batch(write, after, types, batch_size)
        while True:
            after = batch.next_checkpoint(after)
            upcoming: Future[Batch] | None = None
            if not batch.complete:
                upcoming = reader.submit(read_batch, write, after, types, batch_size)
            if batch.events:
                for stored in batch.events:  # decode once, before the threads share them
                    stored.event()
                if parallel:
                    applied = [
                        pool.submit(_apply_batch, conn, p, tables, batch.events, commit=commit_each)
                        for conn, (p, tables) in zip(appliers, targets, strict=True)
                    ]
                    for (projection, _), future in zip(targets, applied, strict=True):
                        done[projection.name] += future.result()
                else:
                    for projection, tables in targets:
                        done[projection.name] += _apply_batch(
                            appliers[0], projection, tables, batch.events, commit=commit_each
                        )
            read_so_far += len(batch.events)
            if progress is not None:
                progress.update(read_so_far)
            if upcoming is None:
                return after
            batch = upcoming.result()


def _rebuild_locks(read: psycopg.Connection[Any], names: Sequence[str]) -> list[str]:
    """Take the session-level rebuild lock of each name; the names that were free."""
    taken: list[str] = []
    for name in names:
        got = read.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_REBUILD_LOCK_NAMESPACE, lock_key(name)[1])
        ).fetchone()
        if not got or not got[0]:
            _release(read, taken)
            raise RebuildError(f"another rebuild of {name} is running")
        taken.append(name)
    return taken


def _release(read: psycopg.Connection[Any], names: Sequence[str]) -> None:
    for name in names:
        read.execute(
            "SELECT pg_advisory_unlock(%s, %s)", (_REBUILD_LOCK_NAMESPACE, lock_key(name)[1])
        )


def rebuild_projection(
    settings: Settings,
    projection: Projection,
    *,
    out: TextIO | None = None,
    batch_size: int = REBUILD_BATCH,
) -> RebuildSummary:
    """Rebuild ``projection`` and swap it in; raises :class:`RebuildError` on failure."""
    return rebuild_projections(settings, [projection], out=out, batch_size=batch_size)[0]


def rebuild_projections(
    settings: Settings,
    projections: Sequence[Projection],
    *,
    out: TextIO | None = None,
    batch_size: int = REBUILD_BATCH,
) -> list[RebuildSummary]:
    """Rebuild ``projections`` in one pass over the log and swap them all in at once.

    Raises :class:`RebuildError` on failure; the live projections are then untouched.
    """
    out = out or sys.stderr
    assert settings.database_url and settings.effective_read_database_url
    assert projections, "nothing to rebuild"
    started = time.monotonic()
    # A fixed order for every lock we take, so two rebuilds can never deadlock.
    projections = sorted(projections, key=lambda p: p.name)
    names = [p.name for p in projections]
    tables = [t for p in projections for t in p.tables]
    appended = {t for p in projections if p.append_only for t in p.tables}
    try:
        write = connect(settings.database_url, autocommit=True)
        read = connect(settings.effective_read_database_url, autocommit=True)
        # One more connection per projection beyond the first, to fill the shadows in
        # parallel (the first projection's share goes through ``read``).
        extra = [
            connect(settings.effective_read_database_url, autocommit=True) for _ in projections[1:]
        ]
    except psycopg.Error as exc:
        raise RebuildError(f"cannot connect: {exc}") from exc
    appliers = [read, *extra]
    with write, read, contextlib.ExitStack() as closing:
        for conn in extra:
            closing.enter_context(conn)
        locked = _rebuild_locks(read, names)
        with read.transaction():
            previous = {p.name: load_state(read, p).state for p in projections}
            read.execute(
                "UPDATE read.projection_state SET state = 'rebuilding', updated_at = now()"
                " WHERE name = ANY(%s)",
                (names,),
            )
        swapped = False
        done = dict.fromkeys(names, 0)
        try:
            indexes = _create_shadows(read, tables, appended)
            types = frozenset().union(*(p.event_types for p in projections))
            progress = Progress(out, "+".join(names), count_after(write, START, types))
            point = _replay(
                write, appliers, projections, START, batch_size, progress, done, commit_each=True
            )
            _finish_tables(appliers, indexes, appended)
            point = _replay(
                write, appliers, projections, point, batch_size, progress, done, commit_each=True
            )
            with read.transaction():
                for name in names:
                    read.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(name))
                point = _replay(
                    write, [read], projections, point, batch_size, None, done, commit_each=False
                )
                _swap(read, indexes)
                for projection in projections:
                    read.execute(
                        "UPDATE read.projection_state SET version = %s, state = 'live',"
                        " checkpoint_tx = %s, checkpoint_pos = %s, events_applied = %s,"
                        " events_behind = 0, seconds_behind = 0, attempts = 0,"
                        " last_error = NULL, failed_event_id = NULL,"
                        " failed_event_position = NULL, updated_at = now() WHERE name = %s",
                        (projection.version, *point, done[projection.name], projection.name),
                    )
                    read.execute("SELECT pg_notify(%s, %s)", (CHECKPOINT_CHANNEL, projection.name))
            swapped = True
            progress.update(sum(done.values()), final=True)
        except Exception as exc:
            if not swapped:
                _abandon(read, tables, previous)
            raise RebuildError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _release(read, locked)
        for name in names:
            _refresh_redis(settings, name, out)
    seconds = time.monotonic() - started
    summaries = [
        RebuildSummary(p.name, p.version, done[p.name], seconds, point) for p in projections
    ]
    for summary in summaries:
        print(
            f"rebuilt {summary.name} (version {summary.version}): {summary.events} events in"
            f" {summary.seconds:.1f}s ({summary.rate:,.0f} events/s),"
            f" checkpoint {point.transaction_id}/{point.position}",
            file=sys.stdout,
        )
    return summaries


def _abandon(
    read: psycopg.Connection[Any], tables: Sequence[str], previous: dict[str, str]
) -> None:
    try:
        if read.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            read.rollback()
        with read.transaction():
            _drop_shadows(read, tables)
            for name, state in previous.items():
                read.execute(
                    "UPDATE read.projection_state SET state = %s WHERE name = %s"
                    " AND state = 'rebuilding'",
                    (state, name),
                )
    except psycopg.Error:
        pass  # the original error is what the user needs; shadows are dropped next time


def _refresh_redis(settings: Settings, name: str, out: TextIO) -> None:
    if not settings.redis_url:
        return
    client = sync_redis(settings.redis_url)
    try:
        cache_refresh.reset_after_rebuild(client, name)
    except Exception as exc:
        out.write(f"warning: Redis not refreshed after rebuilding {name}: {exc}\n")
    finally:
        client.close()
