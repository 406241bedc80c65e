"""Insert a batch's new rows: COPY into a rebuild's shadow table, else one INSERT.

The live runner may see an event again (a batch retried after a lost connection), so it
inserts with ``ON CONFLICT DO NOTHING`` from one JSON parameter (projections.recordset).
A rebuild's shadow table started empty and receives every event exactly once
(``Tables.bulk_load``): there is nothing to conflict with, and COPY costs the server about
a third of that INSERT, which parses the whole batch as jsonb and then each row's fields
out of it again (docs/benchmarks.md, "Fourth session").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from projections.recordset import recordset, rows_json


def insert_new(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: Mapping[str, str],
    rows: Sequence[Sequence[Any]],
    *,
    bulk_load: bool,
    returning: bool = False,
) -> list[Any]:
    """Insert ``rows`` (values in the order of ``columns``: column name -> SQL type) unless
    a row with the same key exists; with ``returning``, the first column's value of each
    row inserted (else ``[]``).

    A ``jsonb`` column's values are ``msgspec.Raw`` JSON (or None). With ``bulk_load``
    the rows are COPYed and all of them are inserted.
    """
    if not rows:
        return []
    names = list(columns)
    if bulk_load:
        raw = [i for i, sql_type in enumerate(columns.values()) if sql_type == "jsonb"]
        with cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                if raw:
                    values = list(row)
                    for i in raw:
                        if values[i] is not None:
                            values[i] = str(memoryview(values[i]), "utf-8")
                    row = values
                copy.write_row(row)
        return [row[0] for row in rows] if returning else []
    listed = ", ".join(names)
    selected = ", ".join(f"r.{name}" for name in names)
    cur.execute(
        f"INSERT INTO {table} ({listed}) SELECT {selected} FROM {recordset('r', columns)}"
        " ON CONFLICT DO NOTHING" + (f" RETURNING {names[0]}::text" if returning else ""),
        (rows_json([dict(zip(names, row, strict=True)) for row in rows]),),
    )
    return [found[0] for found in cur.fetchall()] if returning else []
