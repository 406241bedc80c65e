"""Read-your-writes: ``X-Consistency-Token`` makes a GET wait until the projections it reads
have applied the write (API.md §Consistency).

One :class:`CheckpointWatcher` per process keeps every projection's checkpoint in memory.
A dedicated connection LISTENs on ``orderdesk_checkpoints`` (the projector NOTIFYs it in
the transaction that moves a checkpoint, so the notice arrives on commit); each notice,
or a burst of them, makes one refresh task re-read all checkpoints in one query and wake
the waiting requests whose point the checkpoints now cover — only those: each waits on a
future of its own, and a refresh that does not reach a request's point costs that request
nothing. While anyone waits, the refresh also runs every ``poll_interval`` as a fallback
for a lost notice. A waiting request therefore never queries the database itself, however
many are waiting.

While nobody waits, a notice only marks the checkpoints stale (under a steady write load
the projector commits a hundred batches a second, and re-reading them for no one would
cost a query each). The cached checkpoints only ever lag, so a token they already cover
is answered at once; otherwise the first request to find them stale refreshes them (one
query, shared by every request that arrives meanwhile) before it decides to wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from orderdesk.database import libpq_url
from orderdesk.problems import ProblemError
from shared_contracts.tokens import LogPoint, MalformedToken, decode_token

log = logging.getLogger("orderdesk.query.consistency")

CHANNEL = "orderdesk_checkpoints"
DEFAULT_WAIT_MS = 2000
MAX_WAIT_MS = 10_000
RETRY_AFTER_SECONDS = 1
STOP_TIMEOUT = 3.0

PRODUCTS = ("product_view",)
ORDERS = ("order_view",)
HISTORY = ("order_history",)
DAILY_SALES = ("daily_sales",)

_ORIGIN = LogPoint(0, 0)


class CheckpointWatcher:
    """The checkpoints of every projection, kept fresh by LISTEN/NOTIFY, and the waiters."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        listen_url: str,
        *,
        poll_interval: float = 0.25,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.pool = pool
        self.listen_url = listen_url
        self.poll_interval = poll_interval
        self.reconnect_delay = reconnect_delay
        self.checkpoints: dict[str, LogPoint] = {}
        self.refreshes = 0
        #: Each waiting request's future, resolved by the refresh that reaches its point.
        self._waiting: dict[asyncio.Future[None], tuple[tuple[str, ...], LogPoint]] = {}
        #: A notice arrived since the last refresh (the cached checkpoints may be behind).
        self._stale = True
        self._refreshing: asyncio.Future[None] | None = None
        self._reading = asyncio.Lock()
        self._wake = asyncio.Event()
        self._listening = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the listener and the refresher (call from the app's lifespan)."""
        self._wake.set()  # first refresh right away
        self._tasks = [
            asyncio.create_task(self._listen(), name="checkpoint-listener"),
            asyncio.create_task(self._refresh_loop(), name="checkpoint-refresh"),
        ]

    async def stop(self) -> None:
        """Cancel the background tasks; a bounded wait, so a shutdown never hangs on one."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in pending:
                log.warning("checkpoint task did not stop in time", extra={"task": task.get_name()})
        self._tasks = []

    @property
    def stale(self) -> bool:
        """True when a notice arrived since the last refresh (nobody needed it yet)."""
        return self._stale

    @property
    def listening(self) -> bool:
        """True while the notice connection is up (else only polls see new checkpoints)."""
        return self._listening

    @property
    def waiting(self) -> int:
        """How many requests wait for a checkpoint right now."""
        return len(self._waiting)

    def reached(self, projections: Iterable[str], point: LogPoint) -> bool:
        """True when every projection in ``projections`` has applied ``point``."""
        return all(self.checkpoints.get(name, _ORIGIN) >= point for name in projections)

    async def wait_for(
        self, projections: tuple[str, ...], point: LogPoint, wait_seconds: float
    ) -> bool:
        """Wait up to ``wait_seconds`` until :meth:`reached`; the final answer."""
        if self.reached(projections, point):
            return True
        if self._stale:
            await self._catch_up()
            if self.reached(projections, point):
                return True
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[reached] = (projections, point)
        # Refresh now when a notice came in since the refresh above (nobody was waiting
        # for it then, so it woke no one), and with the first waiter, to start the poll.
        # Later waiters join a refresher that is awake already.
        if self._stale or len(self._waiting) == 1:
            self._wake.set()
        try:
            async with asyncio.timeout(wait_seconds):
                await reached
            return True
        except TimeoutError:
            return self.reached(projections, point)
        finally:
            self._waiting.pop(reached, None)

    async def _catch_up(self) -> None:
        """One refresh now, shared by every request that asks while it runs; a failure
        only leaves the checkpoints as they were (the wait and its poll go on)."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh_quietly())
        await asyncio.shield(self._refreshing)

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except (psycopg.Error, OSError) as exc:
            log.warning("cannot read projection checkpoints", extra={"error": repr(exc)})
        finally:
            self._refreshing = None

    async def refresh(self) -> None:
        """Re-read every checkpoint (one query) and wake the waiters.

        One refresh at a time (a request's catch-up and the refresh task may both ask): the
        results then land in the order their queries read, so a slow older read never
        overwrites a newer one after ``stale`` was cleared — the waiter that registers next
        would trust checkpoints older than a notice already handled, and wait out its time.
        """
        async with self._reading:
            self._stale = False
            try:
                async with self.pool.connection() as conn:
                    rows = await (
                        await conn.execute(
                            "SELECT name, checkpoint_tx, checkpoint_pos FROM read.projection_state"
                        )
                    ).fetchall()
            except BaseException:
                self._stale = True
                raise
            self.checkpoints = {str(name): LogPoint(int(tx), int(pos)) for name, tx, pos in rows}
            self.refreshes += 1
            for reached in [
                f for f, (names, point) in self._waiting.items() if self.reached(names, point)
            ]:
                del self._waiting[reached]
                if not reached.done():
                    reached.set_result(None)

    async def _refresh_loop(self) -> None:
        while True:
            _stop_if_cancelled()
            if self._waiting:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    if not self._waiting:
                        continue  # the poll is for waiters: they have all gone
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except (psycopg.Error, OSError) as exc:
                _stop_if_cancelled(exc)
                log.warning("cannot read projection checkpoints", extra={"error": repr(exc)})
                await asyncio.sleep(self.reconnect_delay)

    async def _listen(self) -> None:
        while True:
            _stop_if_cancelled()
            try:
                conn: Any = await psycopg.AsyncConnection.connect(
                    libpq_url(self.listen_url),
                    autocommit=True,
                    application_name="orderdesk-query-listen",
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._stale = True  # notices may have been missed while disconnected
                    self._wake.set()
                    self._listening = True
                    async for _notice in conn.notifies():
                        self._stale = True
                        if self._waiting:
                            self._wake.set()
            except (psycopg.Error, OSError) as exc:
                _stop_if_cancelled(exc)
                log.warning("checkpoint listener disconnected", extra={"error": repr(exc)})
            finally:
                self._listening = False
            await asyncio.sleep(self.reconnect_delay)


def _stop_if_cancelled(exc: BaseException | None = None) -> None:
    """Raise CancelledError when this task was asked to stop but a library swallowed it.

    On Python 3.11 ``asyncio.wait_for`` (used by psycopg_pool while it waits for a
    connection) can drop a cancellation that races with its result; psycopg may turn one
    into an error while it cleans a connection up. Either way the loop would carry on and
    :meth:`CheckpointWatcher.stop` would wait for it forever, so every loop checks here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def _wait_seconds(request: Request) -> float:
    raw = request.headers.get("x-wait-ms")
    if raw is None:
        return DEFAULT_WAIT_MS / 1000
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or int(raw) > MAX_WAIT_MS:
        raise ProblemError(
            400, "invalid-wait", f"X-Wait-Ms must be an integer from 0 to {MAX_WAIT_MS}."
        )
    return int(raw) / 1000


async def await_projections(
    request: Request, watcher: CheckpointWatcher, projections: tuple[str, ...]
) -> bool:
    """Honour ``X-Consistency-Token``: False without one (never waits); True once every
    projection in ``projections`` has applied it; a 503 ``projection-lagging`` problem when
    ``X-Wait-Ms`` runs out; 400 for a malformed token or wait."""
    token = request.headers.get("x-consistency-token")
    if token is None:
        return False
    try:
        point = decode_token(token.strip())
    except MalformedToken:
        raise ProblemError(
            400,
            "malformed-consistency-token",
            "X-Consistency-Token is not a token this service issued.",
        ) from None
    timeout = _wait_seconds(request)
    if await watcher.wait_for(projections, point, timeout):
        return True
    raise ProblemError(
        503,
        "projection-lagging",
        f"The read model has not caught up with this write yet "
        f"({', '.join(projections)}); retry shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
