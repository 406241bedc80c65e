"""``orderdesk projections status|retry|rebuild``: operating the projections.

``read.projection_state`` (one row per projection) is the source of truth that both this
CLI and the query API's ``GET /projections`` show:

- ``version``: the projection code version the rows were built with;
- ``state``: ``live`` | ``rebuilding`` | ``stalled``;
- ``checkpoint_tx``/``checkpoint_pos``: the last applied point of the gap-safe reading
  order — a consistency token ``(tx, pos)`` is applied iff ``(checkpoint_tx,
  checkpoint_pos) >= (tx, pos)``;
- ``events_behind``/``seconds_behind``: lag as of the last batch (0 when caught up);
- ``last_error``, ``failed_event_id``, ``failed_event_position``, ``attempts``: the
  failure that is being retried or that stalled the projection.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import msgspec

from orderdesk.database import connect
from orderdesk.settings import Settings
from projections import registry
from projections.reader import count_after
from shared_contracts.tokens import LogPoint

_COLUMNS = (
    "name, version, state, checkpoint_tx, checkpoint_pos, events_behind, seconds_behind,"
    " last_error, failed_event_id::text, failed_event_position, events_applied, updated_at"
)


def read_status(settings: Settings) -> list[dict[str, Any]]:
    """One dict per known projection (state rows plus projections not started yet).

    ``events_behind`` is recounted exactly from the write database here.
    """
    assert settings.database_url and settings.effective_read_database_url
    with connect(settings.effective_read_database_url) as read:
        rows = read.execute(f"SELECT {_COLUMNS} FROM read.projection_state").fetchall()
    by_name = {row[0]: row for row in rows}
    out: list[dict[str, Any]] = []
    with connect(settings.database_url, autocommit=True) as write:
        for name, projection in registry.PROJECTIONS.items():
            row = by_name.get(name)
            point = LogPoint(row[3], row[4]) if row else LogPoint(0, 0)
            behind = count_after(write, point, projection.event_types)
            out.append(
                {
                    "name": name,
                    "version": row[1] if row else None,
                    "code_version": projection.version,
                    "state": row[2] if row else "not started",
                    "checkpoint": f"{point.transaction_id}/{point.position}",
                    "events_behind": behind,
                    "seconds_behind": round(row[6], 3) if row else 0.0,
                    "last_error": row[7] if row else None,
                    "failed_event_id": row[8] if row else None,
                    "failed_event_position": row[9] if row else None,
                    "events_applied": row[10] if row else 0,
                }
            )
    return out


def status(settings: Settings, as_json: bool = False, out: TextIO | None = None) -> int:
    """Print one line per projection (or JSON); exit code 1 when one is stalled."""
    out = out or sys.stdout
    rows = read_status(settings)
    if as_json:
        out.write(msgspec.json.encode(rows).decode() + "\n")
    else:
        header = ("NAME", "VERSION", "STATE", "CHECKPOINT", "BEHIND", "SECONDS", "LAST ERROR")
        table = [header] + [
            (
                r["name"],
                _version(r),
                r["state"],
                r["checkpoint"],
                str(r["events_behind"]),
                f"{r['seconds_behind']:.1f}",
                _error(r),
            )
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
        for line in table:
            cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
            out.write("  ".join([*cells, line[-1]]).rstrip() + "\n")
    return 1 if any(r["state"] == "stalled" for r in rows) else 0


def _version(row: dict[str, Any]) -> str:
    if row["version"] is None or row["version"] == row["code_version"]:
        return str(row["code_version"])
    return f"{row['version']} (code {row['code_version']}: rebuild needed)"


def _error(row: dict[str, Any]) -> str:
    if not row["last_error"]:
        return "-"
    return f"{row['last_error']} (event {row['failed_event_id']} at {row['failed_event_position']})"


def retry(settings: Settings, name: str) -> int:
    """Set a stalled projection live again and wake the worker for it."""
    try:
        registry.get(name)
    except KeyError as exc:
        print(f"orderdesk projections retry: {exc.args[0]}", file=sys.stderr)
        return 2
    assert settings.effective_read_database_url
    with connect(settings.effective_read_database_url) as conn:
        row = conn.execute(
            "UPDATE read.projection_state SET state = 'live', attempts = 0, updated_at = now()"
            " WHERE name = %s AND state = 'stalled' RETURNING last_error",
            (name,),
        ).fetchone()
    if row is None:
        print(f"projection {name} is not stalled; nothing to retry")
        return 0
    try:
        _wake(settings, name)
    except Exception as exc:
        print(
            f"projection {name} is live again, but the worker could not be woken ({exc});"
            " it will pick it up on its next poll"
        )
        return 0
    print(f"projection {name} resumed (it stalled on: {row[0]})")
    return 0


def _wake(settings: Settings, name: str) -> None:
    from orderdesk.broker import make_broker, project_message

    url = settings.effective_broker_url
    if not url:
        return
    broker = make_broker(url)
    try:
        broker.enqueue(project_message(name))
    finally:
        broker.close()


def rebuild(settings: Settings, names: list[str], all_: bool) -> int:
    """Rebuild projections into shadow tables and swap them in; see :mod:`projections.rebuild`."""
    from projections.rebuild import RebuildError, rebuild_projections

    chosen = list(registry.PROJECTIONS) if all_ else names
    unknown = [n for n in chosen if n not in registry.PROJECTIONS]
    if unknown or not chosen:
        known = ", ".join(registry.PROJECTIONS)
        print(f"orderdesk projections rebuild: unknown {unknown} (known: {known})", file=sys.stderr)
        return 2
    try:
        # One pass over the log for every chosen projection, one swap for all of them.
        rebuild_projections(
            settings, [registry.get(n) for n in dict.fromkeys(chosen)], out=sys.stderr
        )
    except RebuildError as exc:
        print(f"orderdesk projections rebuild {' '.join(chosen)} failed: {exc}", file=sys.stderr)
        return 1
    return 0
