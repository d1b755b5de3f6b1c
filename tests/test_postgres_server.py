"""The throwaway PostgreSQL of the tests: stopped on SIGTERM and SIGINT, and after a kill.

A server a killed run left behind is found by its owner file and stopped by the next run.

Each test runs a real server in a child process, as a pytest run holds it, and looks at what
the child leaves behind once a signal ends it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins.postgres_server import (
    DIRECTORY_PREFIX,
    OWNER_FILE,
    PostgresUnavailableError,
    clean_stale,
    find_bindir,
)
from tests.timekeeping import HANG_GUARD_SECONDS, until

REPO = Path(__file__).resolve().parent.parent
# The child: a server held as the session fixture holds it, its directory printed, then waiting.
CHILD = """
import signal, sys, tempfile
tempfile.tempdir = sys.argv[1]
from tests.standins.postgres_server import PostgresServer, stop_on_signals
server = PostgresServer().start()
with stop_on_signals(server):
    print(server.directory, flush=True)
    signal.pause()
"""


@pytest.fixture(autouse=True)
def _needs_postgres() -> None:
    try:
        find_bindir()
    except PostgresUnavailableError as error:
        pytest.skip(str(error))


@pytest.fixture
def root() -> Iterator[Path]:
    """A temp dir of the child's own that the server's user can enter (pytest's is 0700)."""
    made = Path(tempfile.mkdtemp(prefix="triage-pgtest-"))
    made.chmod(0o755)  # the server runs as another user when we are root
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def _postmaster(directory: Path) -> int:
    """The running server's pid, from its cluster's postmaster.pid."""
    return int((directory / "data" / "postmaster.pid").read_text().splitlines()[0])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie no one has reaped yet has stopped serving.
    status = Path(f"/proc/{pid}/stat")
    return not (status.is_file() and status.read_text().split(") ")[-1].startswith("Z"))


async def _child_with_a_server(root: Path) -> tuple[asyncio.subprocess.Process, Path, int]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(root),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        line = await child.stdout.readline()
    directory = Path(line.decode().strip())
    assert directory.name.startswith(DIRECTORY_PREFIX)
    assert (directory / OWNER_FILE).read_text().strip() == str(child.pid)
    return child, directory, _postmaster(directory)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
async def test_a_signalled_run_stops_its_server_and_removes_its_files(
    root: Path, number: signal.Signals
) -> None:
    """SIGTERM or SIGINT to the run holding the server: the server stops, its files go."""
    child, directory, postmaster = await _child_with_a_server(root)
    assert _running(postmaster)
    child.send_signal(number)
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        status = await child.wait()
    assert status != 0  # the signal still ended it (SIGTERM) or raised in it (SIGINT)
    await until(lambda: not _running(postmaster), what="the server stopped")
    assert not directory.exists()


async def test_a_server_a_killed_run_left_is_stopped_by_the_next_run(root: Path) -> None:
    """SIGKILL leaves the server running; clean_stale stops it and removes only its files."""
    child, directory, postmaster = await _child_with_a_server(root)
    # Another run's directory whose owner still runs (this process): left alone.
    live = root / f"{DIRECTORY_PREFIX}live"
    live.mkdir()
    (live / OWNER_FILE).write_text(f"{os.getpid()}\n")
    child.kill()
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        await child.wait()
    assert _running(postmaster)  # nothing stopped it
    assert clean_stale(root) == [directory]
    await until(lambda: not _running(postmaster), what="the stale server stopped")
    assert not directory.exists()
    assert live.exists()
    assert clean_stale(root) == []
