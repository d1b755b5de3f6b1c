"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temp dir, pg_ctl start.

Debian keeps initdb and pg_ctl off the PATH (in /usr/lib/postgresql/<version>/bin); they are
found with `pg_config --bindir`, then that glob, then the PATH. initdb refuses to run as root,
so as root the server runs as the `postgres` user (Debian's package makes it) or `nobody`. It
listens on 127.0.0.1 on a free port and on a unix socket in its own directory, trusts local
connections, and skips fsync: a test server, gone when stopped.

A run killed before it stops its server leaves it running: `stop_on_signals` stops it on
SIGTERM and SIGINT too, and `clean_stale` (called before a start) stops the servers whose
owner process (written in the directory) is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self
from urllib.parse import quote

SUPERUSER = "triage"
DATABASE = "triage"
# Each server's directory (in the temp dir) starts so, and names its owner's pid in OWNER_FILE.
DIRECTORY_PREFIX = "triage-postgres-"
OWNER_FILE = "owner.pid"

logger = logging.getLogger(__name__)


class PostgresUnavailableError(RuntimeError):
    """The server could not be started (no binaries, or initdb / pg_ctl failed)."""


def find_bindir() -> Path:
    """The directory with initdb and pg_ctl."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(  # noqa: S603  # a fixed command
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    # Debian's layout, newest version first.
    installed = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    candidates += [path.parent for path in sorted(installed, key=_version_of, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise PostgresUnavailableError(
        "no initdb/pg_ctl found (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH):"
        " apt-get install postgresql"
    )


def _version_of(initdb: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", initdb.parts[-3]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_user() -> str | None:
    """Who runs the server: None for ourselves, or a user initdb accepts when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailableError("running as root and no postgres or nobody user exists")


class PostgresServer:
    """One server for a test session or a benchmark run; `async with` or start()/stop()."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = _free_port()
        self.user = _server_user()
        self._directory = Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX))
        # Who started it: a later run stops it if this process died without doing so.
        (self._directory / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        self.data = self._directory / "data"
        self.log = self._directory / "server.log"
        self._started = False
        self._schemas = 0

    def _command(self, *argv: str) -> list[str]:
        if self.user is None:
            return list(argv)
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self.user, "--", *argv]

    def _run(self, *argv: str) -> None:
        result = subprocess.run(  # noqa: S603  # our own binaries and arguments
            self._command(*argv), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.is_file() else ""
            raise PostgresUnavailableError(
                f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr.strip()}"
                f"\n{log[-2000:]}"
            )

    def start(self) -> Self:
        """Make a cluster and start the server; raises PostgresUnavailableError."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.user is not None:
            shutil.chown(self._directory, user=self.user)
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self._directory} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--options",
            options,
            "--wait",
            "start",
        )
        self._started = True
        self._run(
            str(self.bindir / "createdb"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--username",
            SUPERUSER,
            DATABASE,
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        try:
            if self._started:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data),
                    "--mode",
                    "fast",
                    "--wait",
                    "stop",
                )
                self._started = False
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)

    @property
    def directory(self) -> Path:
        """Where its cluster, socket, log and owner file are."""
        return self._directory

    @property
    def url(self) -> str:
        """The database's URL (no password: the server trusts local connections)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def url_in_schema(self, schema: str) -> str:
        """The URL of a connection whose tables live in one schema (its search_path)."""
        return f"{self.url}?options={quote(f'-csearch_path={schema}', safe='')}"

    def new_schema_name(self) -> str:
        """A schema name not handed out before by this server object."""
        self._schemas += 1
        return f"test_{self._schemas}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def stop_on_signals(
    server: PostgresServer, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[PostgresServer]:
    """Stop the server if the process gets one of these signals, then let the signal act.

    The handler stops the server, puts the previous handler back and sends the signal again:
    SIGTERM still ends the process, SIGINT still raises KeyboardInterrupt. The handlers are
    restored at the end of the block.
    """
    previous = {number: signal.getsignal(number) for number in signals}

    def stop_then_resend(number: int, _frame: FrameType | None) -> None:
        try:
            server.stop()
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
            signal.raise_signal(number)

    for number in signals:
        signal.signal(number, stop_then_resend)
    try:
        yield server
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def clean_stale(root: Path | None = None) -> list[Path]:
    """Stop and delete the servers under root (the temp dir) whose owner process is gone.

    Only directories this module made (DIRECTORY_PREFIX and an OWNER_FILE) are looked at, and
    only those whose owner pid no longer runs: another run's live server is left alone.
    Returns the directories cleaned.
    """
    cleaned = []
    for directory in sorted((root or Path(tempfile.gettempdir())).glob(DIRECTORY_PREFIX + "*")):
        owner = directory / OWNER_FILE
        try:
            pid = int(owner.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue  # not one of ours, or being made right now
        if _running(pid):
            continue
        _stop_cluster(directory / "data")
        shutil.rmtree(directory, ignore_errors=True)
        logger.warning("stopped a test PostgreSQL left running by process %s: %s", pid, directory)
        cleaned.append(directory)
    return cleaned


def _running(pid: int) -> bool:
    """Whether a process with this pid runs (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_cluster(data: Path) -> None:
    """Stop the server of a cluster, if one runs (pg_ctl reads its postmaster.pid)."""
    if not (data / "postmaster.pid").is_file():
        return
    try:
        bindir = find_bindir()
    except PostgresUnavailableError:
        return
    owner = data.stat().st_uid
    command = [str(bindir / "pg_ctl"), "--pgdata", str(data), "--mode", "immediate", "--wait"]
    if os.geteuid() == 0 and owner != 0:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        command = [runuser, "-u", pwd.getpwuid(owner).pw_name, "--", *command]
    subprocess.run(  # noqa: S603  # our own binary on our own cluster
        [*command, "stop"], capture_output=True, text=True, check=False
    )
