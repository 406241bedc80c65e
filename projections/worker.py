"""``orderdesk worker``: the composition root of the projector process.

Builds the broker from settings and installs it before the actor is declared, opens
connection pools to the write and read databases and a Redis client, runs Dramatiq's
Worker in-process with ``threads`` worker threads, and polls every few seconds as a safety
net for wakeups the relay may have missed. SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
from psycopg_pool import ConnectionPool

from orderdesk.database import libpq_url
from orderdesk.metrics import Metrics, create_metrics, start_worker_metrics_server
from orderdesk.redis_client import sync_redis
from orderdesk.settings import Settings
from projections import registry
from projections.actors import declare_project_actor
from projections.broker import install_broker
from projections.runner import BatchResult, catch_up
from projections.sweep import catch_up_all
from shared_contracts.messages import EVERY_PROJECTION

log = logging.getLogger(__name__)

SAFETY_NET_INTERVAL = 3.0
#: How long one message may work before it re-enqueues itself (fairness between queues).
SLICE_SECONDS = 2.0
#: When another worker holds a projection's lock, look again shortly (it may be finishing
#: its last batch as our events commit), a bounded number of times.
LOCKED_RETRY_MS = 150
LOCKED_MAX_HOPS = 3
#: Dramatiq's worker timeout: how often an idle worker thread, and a RabbitMQ consumer,
#: wake up to look around (and so the resolution of a delayed message's due time). It no
#: longer bounds a wakeup's delay: on Redis the consumer blocks on a doorbell that every
#: enqueue rings (:mod:`orderdesk.doorbell_broker`); RabbitMQ pushes. (With Dramatiq's
#: polling Redis consumer this had to be 10 ms: at 100 ms the consumer's idle sleep was
#: most of the lag's p99; at 10 ms the idle poll cost ~10% of a core plus ~3% in Redis.)
WORKER_TIMEOUT_MS = 100


def _pool(url: str, size: int, name: str) -> ConnectionPool:
    return ConnectionPool(
        libpq_url(url),
        min_size=1,
        max_size=size,
        name=name,
        open=False,
        check=ConnectionPool.check_connection,
        kwargs={"application_name": f"orderdesk-{name}", "autocommit": True},
    )


class Projector:
    """What one ``project(name)`` message does, with the process's pools and clients."""

    def __init__(
        self,
        settings: Settings,
        write_pool: ConnectionPool,
        read_pool: ConnectionPool,
        redis: Any,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.write_pool = write_pool
        self.read_pool = read_pool
        self.redis = redis
        self.on_batch = on_batch
        self.actor: Any = None
        # Sweeps of one process run one at a time: a second wakeup arriving mid-sweep
        # waits and then reads what committed meanwhile, instead of finding every lock
        # taken and coming back later.
        self._sweeping = threading.Lock()

    def project(self, name: str, hop: int = 0) -> None:
        """Catch ``name`` (or every projection, for ``"*"``) up for one time slice;
        re-enqueue when work is left."""
        if name == EVERY_PROJECTION:
            with self._sweeping:
                results = self._slice(catch_up_all, list(registry.PROJECTIONS.values()))
        else:
            try:
                projection = registry.get(name)
            except KeyError as exc:
                log.error("ignoring message: %s", exc)  # retrying cannot help
                return
            results = [self._slice(catch_up, projection)]
        # The per-batch "event applied" lines (runner, sweep) carry the request ids.
        if any(r.outcome in ("applied", "failed") and not r.caught_up for r in results):
            self.actor.send(name)
        elif any(r.outcome == "locked" for r in results) and hop < LOCKED_MAX_HOPS:
            self.actor.send_with_options(
                args=(name,), kwargs={"hop": hop + 1}, delay=LOCKED_RETRY_MS
            )

    def _slice(self, run: Callable[..., Any], target: Any) -> Any:
        """``run(target, write, read, ...)`` (:func:`projections.runner.catch_up` or
        :func:`projections.sweep.catch_up_all`) for one time slice, on pooled connections."""
        with self.write_pool.connection() as write, self.read_pool.connection() as read:
            return run(
                target,
                write,
                read,
                batch_size=self.settings.projection_batch_size,
                max_retries=self.settings.projection_max_retries,
                redis=self.redis,
                cache_ttl=self.settings.cache_ttl,
                max_seconds=SLICE_SECONDS,
                on_batch=self.on_batch,
            )

    def wake_all(self) -> None:
        """Enqueue one sweep of every projection (startup and safety net)."""
        self.actor.send(EVERY_PROJECTION)


def record_batch(metrics: Metrics, result: BatchResult) -> None:
    """Feed one :class:`BatchResult` into the worker's projection metrics."""
    name = result.name
    if result.events:
        metrics.projection_events_applied.labels(projection=name).inc(result.events)
    if result.outcome in ("applied", "idle"):
        metrics.projection_events_behind.labels(projection=name).set(result.events_behind)
        metrics.projection_seconds_behind.labels(projection=name).set(result.seconds_behind)
        metrics.set_projection_state(name, "live")
    elif result.outcome in ("stalled", "outdated"):
        metrics.set_projection_state(name, result.outcome)
    # "locked": another worker ran the batch and reports it; "failed": still live, retrying.


def _serve_metrics(settings: Settings, metrics_port: int | None) -> Metrics:
    """The worker's registry, served on its own port (successive ports for more workers)."""
    metrics = create_metrics("worker")
    for name in registry.PROJECTIONS:
        # Every series exists from the start, so a dashboard shows 0, not "no data".
        metrics.projection_events_applied.labels(projection=name)
        metrics.projection_events_behind.labels(projection=name)
        metrics.projection_seconds_behind.labels(projection=name)
    port = metrics_port if metrics_port is not None else settings.worker_metrics_port
    try:
        start_worker_metrics_server(metrics.registry, port)
    except OSError as exc:
        # Projecting matters more than being scraped: go on without the endpoint.
        log.warning("worker metrics not served: %s", exc, extra={"port": port})
    return metrics


def _safety_net(projector: Projector, stop: threading.Event) -> None:
    while not stop.wait(SAFETY_NET_INTERVAL):
        try:
            projector.wake_all()
        except Exception as exc:
            log.warning("safety-net poll could not enqueue: %s", exc)


def run_worker(
    settings: Settings,
    threads: int = 2,
    metrics_port: int | None = None,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> int:
    """Run the projector until SIGTERM/SIGINT (or ``stop``); returns the exit code.

    ``on_batch`` receives every :class:`BatchResult` too (after the metrics do). The
    metrics are served on ``metrics_port`` (default ``settings.worker_metrics_port``; the
    next free port when another worker holds it, 0 for any free port).
    """
    assert settings.database_url and settings.effective_read_database_url
    broker_url = settings.effective_broker_url
    if not broker_url:
        log.error("no broker: set ORDERDESK_BROKER_URL or ORDERDESK_REDIS_URL")
        return 2
    metrics = _serve_metrics(settings, metrics_port)

    def batch_done(result: BatchResult) -> None:
        record_batch(metrics, result)
        if on_batch is not None:
            on_batch(result)

    broker = install_broker(broker_url)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("worker stopping (signal %s)", signum)
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    write_pool = _pool(settings.database_url, threads + 1, "worker-write")
    read_pool = _pool(settings.effective_read_database_url, threads + 1, "worker-read")
    redis = sync_redis(settings.redis_url) if settings.redis_url else None
    projector = Projector(settings, write_pool, read_pool, redis, batch_done)
    projector.actor = declare_project_actor(broker, projector.project)
    write_pool.open()
    read_pool.open()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS)
    worker.start()
    log.info(
        "worker started", extra={"threads": threads, "projections": list(registry.PROJECTIONS)}
    )
    try:
        projector.wake_all()  # catch up whatever was committed while we were down
    except Exception as exc:
        log.warning("could not enqueue the startup catch-up: %s", exc)
    net = threading.Thread(target=_safety_net, args=(projector, stop), daemon=True)
    net.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        started = time.monotonic()
        worker.stop(timeout=10_000)
        broker.close()
        write_pool.close()
        read_pool.close()
        if redis is not None:
            redis.close()
        log.info("worker stopped", extra={"seconds": round(time.monotonic() - started, 3)})
    return 0
