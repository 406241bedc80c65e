"""``GET /projections`` (admin): every projection's state and lag, from ``projection_state``."""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from query_side.representations import json_response
from query_side.resources import admin, resources


class Checkpoint(msgspec.Struct, frozen=True):
    """The last event applied, in the gap-safe reading order of the event log."""

    transaction_id: int
    position: int


class ProjectionStatus(msgspec.Struct, frozen=True):
    """One row of ``GET /projections``."""

    name: str
    version: int
    state: Literal["live", "rebuilding", "stalled"]
    checkpoint: Checkpoint
    events_behind: int
    seconds_behind: float
    last_error: str | None


async def list_projections(request: Request) -> Response:
    """Every projection, by name."""
    res = resources(request)
    admin(request, res)
    async with res.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT name, version, state, checkpoint_tx, checkpoint_pos, events_behind,"
                " seconds_behind, last_error FROM read.projection_state ORDER BY name"
            )
        ).fetchall()
    return json_response(
        [
            ProjectionStatus(
                name=name,
                version=version,
                state=state,
                checkpoint=Checkpoint(transaction_id=tx, position=pos),
                events_behind=behind,
                seconds_behind=seconds,
                last_error=error,
            )
            for name, version, state, tx, pos, behind, seconds, error in rows
        ],
        "no-store",
    )
