"""Many rows as ONE query parameter: a JSON array encoded by msgspec, unpacked in SQL.

A set-based statement needs every row of a batch as parameters. Passed as typed arrays
(``unnest(%b::bigint[], ...)``) psycopg dumps each element of each array in Python, which
was a fifth of a rebuild's CPU. Encoded as one JSON document, the rows cost one msgspec
call (in C) here and one ``jsonb_to_recordset`` (in C, on the server) there, and the
statement text stays constant (prepared once per connection). Datetimes travel as
RFC 3339 text, nested JSON (``msgspec.Raw``, Structs) as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def recordset(alias: str, columns: Mapping[str, str]) -> str:
    """The FROM item that reads a :func:`rows_json` parameter: ``jsonb_to_recordset(%s::jsonb)
    AS alias(key type, ...)``, declared from one mapping of row key to SQL type so the
    statement and the rows it reads cannot drift apart."""
    declared = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    return f"jsonb_to_recordset(%s::jsonb) AS {alias}({declared})"


def rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as the JSON array a ``jsonb_to_recordset(%s::jsonb)`` reads."""
    return _encoder.encode(rows).decode()
