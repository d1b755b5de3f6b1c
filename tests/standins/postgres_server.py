"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temp dir, pg_ctl start.

Debian keeps initdb and pg_ctl off the PATH (in /usr/lib/postgresql/<version>/bin); they are
found with `pg_config --bindir`, then that glob, then the PATH. initdb refuses to run as root,
so as root the server runs as the `postgres` user (Debian's package makes it) or `nobody`. It
listens on 127.0.0.1 on a free port and on a unix socket in its own directory, trusts local
connections, and skips fsync: a test server, gone when stopped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

SUPERUSER = "triage"
DATABASE = "triage"


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
        self._directory = Path(tempfile.mkdtemp(prefix="triage-postgres-"))
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
