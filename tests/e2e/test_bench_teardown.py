"""The benchmark harness leaves nothing running when it is stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support import poll_until

STACK = ("command-api", "relay", "worker", "query-api")


def _started_by(proc: subprocess.Popen[bytes], work: Path) -> list[psutil.Process]:
    """Its child processes, and the servers it started under ``work`` (PostgreSQL's
    pg_ctl detaches the postmaster, so it is no child)."""
    found = {p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)}
    for p in psutil.process_iter(["cmdline"]):
        if str(work) in " ".join(p.info["cmdline"] or []):
            found[p.pid] = p
    return list(found.values())


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone meanwhile (pg_ctl, say)
        return ""


def _stack_up(proc: subprocess.Popen[bytes], work: Path) -> list[psutil.Process] | None:
    assert proc.poll() is None, "the benchmark exited early"
    started = _started_by(proc, work)
    names = {_cmdline(p) for p in started}
    return started if all(any(f"cli {n}" in c for c in names) for n in STACK) else None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_stops_the_stack_and_the_servers_it_started(tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    args = ["--quick", "--only", "writes", "--work-dir", str(work), "--out", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
    )
    started: list[psutil.Process] = []
    try:
        started = poll_until(lambda: _stack_up(proc, work), timeout=90, interval=0.2)
        assert any("postgres" in _cmdline(p) for p in started)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        poll_until(
            lambda: not [p for p in started if _alive(p)],
            timeout=30,
            message="every process the benchmark started has stopped",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in started:  # whatever a failed run left behind
            if _alive(p):
                p.send_signal(signal.SIGINT if "postgres" in _cmdline(p) else signal.SIGKILL)
