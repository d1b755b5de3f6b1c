"""Start-up errors a new operator meets: one line naming the setting or file, exit 2."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.app import build_client
from bot.compose import Serving, build_services
from bot.runner import run_slack
from bot.sandbox.shell import INTAKE, sandbox_slack_config
from bot.sandbox.slack_api import SlackStandIn
from bot.settings import BOLT_READS, Settings, load_settings
from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.errors import UserError
from routing.store import Store
from tests.slack_harness import (
    BOT_TOKEN,
    SIGNING_SECRET,
    running_bot,
    standin_for,
    write_standin_config,
)

APP_TOKEN = "xapp-startup-test"


@pytest.fixture(autouse=True)
def _in_a_fresh_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run from an empty folder (no `.env` of the developer's) with only the test's settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("TRIAGE_CONFIG", "TRIAGE_DB", "TRIAGE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def _fails_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], *names: str) -> str:
    """Run `triage argv`; it must exit 2 with one line on stderr naming each of names."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("triage: error: ")
    assert "Traceback" not in err
    for name in names:
        assert name in err
    return err


def _refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens: bound once, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- settings and .env -------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING"])
def test_a_known_log_level_in_any_case_is_accepted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    """TRIAGE_LOG_LEVEL takes the standard names in any case (checked past start-up)."""
    monkeypatch.setenv("TRIAGE_LOG_LEVEL", level)
    monkeypatch.setenv("TRIAGE_CONFIG", "missing.toml")
    err = _fails_in_one_line(capsys, ["classify", "hello"], "missing.toml")
    assert "TRIAGE_LOG_LEVEL" not in err


def test_an_unknown_log_level_names_the_setting_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """TRIAGE_LOG_LEVEL=LOUD: one line naming the setting and the five levels, no traceback."""
    monkeypatch.setenv("TRIAGE_LOG_LEVEL", "LOUD")
    err = _fails_in_one_line(capsys, ["classify", "hello"], "setting TRIAGE_LOG_LEVEL")
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    assert "Value error" not in err


@pytest.mark.parametrize(
    ("value", "problem"),
    [("abc", "must be a number"), ("-5", "must be more than 0")],
)
def test_a_bad_lease_reads_as_words_not_pydantic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    """TRIAGE_LEASE_SECONDS=abc says what the setting takes, not "Input should be ..."."""
    monkeypatch.setenv("TRIAGE_LEASE_SECONDS", value)
    err = _fails_in_one_line(capsys, ["classify", "hello"], "setting TRIAGE_LEASE_SECONDS")
    assert f"TRIAGE_LEASE_SECONDS: {problem}" in err
    assert "Input should" not in err


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        (["SLACK_BOT_TOKEN=xoxb-secret-one", "this line has no equals sign"], ".env line 2 is"),
        (['SLACK_BOT_TOKEN="xoxb-secret-one', "SLACK_APP_TOKEN=xapp-1"], ".env line 1 is"),
        (["a b c", "OK=1", "'"], ".env lines 1, 3 are"),
        # A token pasted alone, or a name with no value: lost as surely as a broken quote.
        (["TRIAGE_LOG_LEVEL=INFO", "xoxb-secret-pasted-alone"], ".env line 2 is"),
        (["SLACK_BOT_TOKEN"], ".env line 1 is"),
    ],
)
def test_a_malformed_env_line_stops_the_start_naming_the_line(
    capsys: pytest.CaptureFixture[str], lines: list[str], where: str
) -> None:
    """A line python-dotenv cannot parse: its number, never its text, and no sandbox start."""
    Path(".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = _fails_in_one_line(capsys, ["run"], where, "malformed")
    assert "secret" not in err
    assert "equals" not in err
    assert "sandbox" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("slack_bot_token=xoxb-secret-one", "did you mean SLACK_BOT_TOKEN?"),
        ("SLACK_BOT_TOKN=xoxb-secret-one", "did you mean SLACK_BOT_TOKEN?"),
        ("TRIAGE_LOGLEVEL=debug", "did you mean TRIAGE_LOG_LEVEL?"),
    ],
)
def test_a_misspelt_setting_in_env_is_named(
    capsys: pytest.CaptureFixture[str], line: str, said: str
) -> None:
    """A name in `.env` that is almost a setting stops the start instead of being ignored."""
    Path(".env").write_text(f"OTHER_TOOL=1\n{line}\n", encoding="utf-8")
    err = _fails_in_one_line(capsys, ["run"], ".env line 2", said)
    assert "secret" not in err
    assert "sandbox" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"])
def test_half_the_workspace_credentials_do_not_start_the_sandbox(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """An app token or signing secret without the bot token names the bot token."""
    monkeypatch.setenv(name, "xapp-secret-one" if name == "SLACK_APP_TOKEN" else "s3cret-one")
    err = _fails_in_one_line(capsys, ["run"], "SLACK_BOT_TOKEN: missing", name)
    assert "secret-one" not in err


def test_an_env_file_that_is_not_utf8_names_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    """A `.env` saved in another encoding is named, not a UnicodeDecodeError traceback."""
    Path(".env").write_bytes(b"TRIAGE_DB=caf\xe9.sqlite3\n")
    _fails_in_one_line(capsys, ["classify", "hello"], ".env: not UTF-8")


@pytest.mark.parametrize(
    ("names", "said"),
    [
        (
            ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"),
            "SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are set, but this is a single-workspace app:"
            " remove them and use SLACK_BOT_TOKEN",
        ),
        (("SLACK_CLIENT_SECRET",), "SLACK_CLIENT_SECRET is set"),
    ],
)
def test_oauth_credentials_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    names: tuple[str, ...],
    said: str,
) -> None:
    """SLACK_CLIENT_ID / SLACK_CLIENT_SECRET stop the start: Bolt would switch to OAuth."""
    for name in names:
        monkeypatch.setenv(name, "1234.5678-secret-value")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    err = _fails_in_one_line(capsys, ["run"], said)
    assert "secret-value" not in err


def test_oauth_credentials_in_env_file_are_refused_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The same pair in `.env` is refused the same way."""
    Path(".env").write_text("SLACK_CLIENT_ID=1.2\nSLACK_CLIENT_SECRET=abc\n", encoding="utf-8")
    _fails_in_one_line(capsys, ["run"], "SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are set")


# --- the config file ---------------------------------------------------------------------------


def test_a_config_path_that_is_a_directory_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """TRIAGE_CONFIG naming a folder says it is a directory and what to pass instead."""
    monkeypatch.setenv("TRIAGE_CONFIG", str(tmp_path))
    _fails_in_one_line(capsys, ["classify", "hello"], str(tmp_path), "a directory", "TRIAGE_CONFIG")


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux's /proc")
def test_a_config_file_that_cannot_be_read_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file whose read fails (here /proc/self/mem: EIO, even for root) names the file."""
    monkeypatch.setenv("TRIAGE_CONFIG", "/proc/self/mem")
    _fails_in_one_line(capsys, ["classify", "hello"], "/proc/self/mem: cannot be read")


def test_a_toml_syntax_error_names_the_file_and_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A TOML syntax error names the file and the line and column."""
    broken = tmp_path / "broken.toml"
    broken.write_text('examples = "examples.jsonl"\n[[categories]\nname = "x"\n', encoding="utf-8")
    monkeypatch.setenv("TRIAGE_CONFIG", str(broken))
    _fails_in_one_line(capsys, ["classify", "hello"], "broken.toml", "not valid TOML", "line 2")


def test_a_validator_message_has_no_pydantic_prefix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A channel name where an id belongs reads as our message, without "Value error, "."""
    config = write_standin_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(f'intake_channels = ["{INTAKE}"]', 'intake_channels = ["#help"]'),
        encoding="utf-8",
    )
    monkeypatch.setenv("TRIAGE_CONFIG", str(config))
    err = _fails_in_one_line(capsys, ["classify", "hello"], "slack.intake_channels")
    assert "slack.intake_channels: '#help' is not a channel id" in err
    assert "Value error" not in err


def test_an_examples_file_that_is_not_utf8_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The examples file in another encoding names that file, not a traceback."""
    config = write_standin_config(tmp_path)
    examples = load_config(config).examples_path
    examples.write_bytes(b'{"text": "caf\xe9", "category": "billing"}\n')
    monkeypatch.setenv("TRIAGE_CONFIG", str(config))
    _fails_in_one_line(capsys, ["classify", "hello"], examples.name, "not UTF-8")


# --- Slack out of reach at start ----------------------------------------------------------------


def _slack_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api_url: str) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", api_url)
    monkeypatch.setenv("TRIAGE_CONFIG", str(write_standin_config(tmp_path)))
    monkeypatch.setenv("TRIAGE_DB", str(tmp_path / "bot.sqlite3"))


class _PlainHTTP(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads only the bot's stderr."""


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A plain-HTTP server on 127.0.0.1: a TLS client's handshake with it fails."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PlainHTTP)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("http", [False, True], ids=["socket-mode", "http"])
def test_slack_refusing_the_connection_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    http: bool,
) -> None:
    """A refused port at SLACK_API_URL: the host, the reason and what to check."""
    port = _refused_port()
    _slack_settings(monkeypatch, tmp_path, f"http://127.0.0.1:{port}/api/")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    argv = ["run", "--http", "--port", str(_refused_port())] if http else ["run"]
    err = _fails_in_one_line(capsys, argv, "127.0.0.1", "connection refused", "SLACK_API_URL")
    assert "proxy" in err


def test_slack_s_host_not_resolving_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A host that cannot resolve (.invalid never does): DNS named, with what to check."""
    _slack_settings(monkeypatch, tmp_path, "https://slack.invalid/api/")
    _fails_in_one_line(capsys, ["run"], "slack.invalid", "DNS lookup failed", "SLACK_API_URL")


def test_a_tls_failure_with_slack_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    plain_http_port: int,
) -> None:
    """https:// to a server that speaks no TLS: the TLS failure is named in one line."""
    _slack_settings(monkeypatch, tmp_path, f"https://127.0.0.1:{plain_http_port}/api/")
    _fails_in_one_line(capsys, ["run"], "127.0.0.1", "TLS failed", "SLACK_API_URL")


def test_an_address_that_is_not_slack_is_named_not_the_token(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    plain_http_port: int,
) -> None:
    """An HTTP server that is no Slack (a wrong path, a proxy page) blames SLACK_API_URL."""
    _slack_settings(monkeypatch, tmp_path, f"http://127.0.0.1:{plain_http_port}/api/")
    err = _fails_in_one_line(capsys, ["run"], "SLACK_API_URL", "not as Slack's Web API does")
    assert "SLACK_BOT_TOKEN" not in err


class _UnreachableSocketMode(SlackStandIn):
    """A stand-in whose apps.connections.open hands out a Socket Mode URL nothing listens at."""

    def __init__(self, socket_port: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # the stand-in's own keywords
        self._socket_port = socket_port

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self._socket_port}/socket"


async def _run_bot(slack: SlackStandIn, tmp_path: Path, app_token: str) -> tuple[int, str]:
    """`python -m bot run` against the stand-in, to its exit: the status and its stderr."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": app_token,
        "SLACK_API_URL": slack.base_url,
        "TRIAGE_CONFIG": str(write_standin_config(tmp_path)),
        "TRIAGE_DB": str(tmp_path / "bot.sqlite3"),
    }
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        # Bounded only so that a regression (the SDK's endless retries) fails instead of hanging.
        _, stderr = await asyncio.wait_for(bot.communicate(), timeout=120)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert bot.returncode is not None
    return bot.returncode, stderr.decode()


@pytest.fixture
async def unreachable_socket_mode() -> AsyncIterator[SlackStandIn]:
    async with _UnreachableSocketMode(
        _refused_port(), bot_token=BOT_TOKEN, app_token=APP_TOKEN, channels={INTAKE: "intake"}
    ) as server:
        yield server


async def test_socket_mode_host_out_of_reach_is_one_line(
    unreachable_socket_mode: SlackStandIn, tmp_path: Path
) -> None:
    """The Web API answers but Socket Mode's host refuses: one line, exit 2, not endless retries."""
    status, err = await _run_bot(unreachable_socket_mode, tmp_path, APP_TOKEN)
    assert status == 2
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert "Socket Mode host 127.0.0.1 (connection refused)" in err
    assert "proxy" in err
    assert unreachable_socket_mode.calls_to("apps.connections.open")[0].ok


async def test_a_refused_app_token_is_one_line(
    unreachable_socket_mode: SlackStandIn, tmp_path: Path
) -> None:
    """A wrong xapp- token names SLACK_APP_TOKEN and Slack's error (the SDK would retry it)."""
    status, err = await _run_bot(unreachable_socket_mode, tmp_path, "xapp-wrong")
    assert status == 2
    assert err.count("\n") == 1, err
    assert "setting SLACK_APP_TOKEN: Slack refused it (invalid_auth)" in err
    assert "Traceback" not in err


# --- Bolt never sees the OAuth variables -------------------------------------------------------


async def test_bolt_ignores_oauth_variables_and_authorizes_with_the_bot_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With SLACK_CLIENT_ID/SECRET in os.environ, build_app makes no OAuth flow or store."""
    monkeypatch.setenv("SLACK_CLIENT_ID", "1234.5678")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "oauth-secret")
    config = load_config()
    async with standin_for(config) as slack, await Store.open(tmp_path / "t.sqlite3") as store:
        client = build_client(token=BOT_TOKEN, base_url=slack.base_url)
        app = build_services(
            config,
            sandbox_slack_config(config),
            pipeline=build_pipeline(config, embedder=None),
            store=store,
            client=client,
            serving=Serving(signing_secret=SIGNING_SECRET),
        ).app
        assert app.oauth_flow is None
        assert app.installation_store is None
        routes = {resource.canonical for resource in app.web_app().router.resources()}
        assert routes == {"/slack/events"}
    # The variables Bolt would have read are back for whoever reads them next.
    assert os.environ["SLACK_CLIENT_SECRET"] == "oauth-secret"
    assert set(BOLT_READS) >= {"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}

    async with running_bot(tmp_path, MiniLMEmbedder.load(), config=config) as bot:
        await bot.customer_says("I was charged twice this month")
        await bot.desk.drain()
        assert bot.slack.calls_to("auth.test")[0].ok
        posts = bot.all_ticket_posts()
        assert len(posts) == 1
        assert "charged twice" in json.dumps(posts[0]["blocks"])


# --- the database and the port -----------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN, channels={INTAKE: "intake"}
    ) as server:
        yield server


def _standin_settings(slack: SlackStandIn, tmp_path: Path, **extra: str) -> Settings:
    return load_settings(
        environ={
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.base_url,
            "TRIAGE_CONFIG": str(write_standin_config(tmp_path)),
            "TRIAGE_DB": str(tmp_path / "bot.sqlite3"),
            **extra,
        },
        dotenv_path=tmp_path / "no.env",
    )


@pytest.mark.parametrize("problem", ["missing folder", "not a database"])
def test_a_database_that_cannot_be_opened_names_triage_db(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    problem: str,
) -> None:
    """TRIAGE_DB in a missing folder, or a file that is no database: one line, before Slack."""
    _slack_settings(monkeypatch, tmp_path, f"http://127.0.0.1:{_refused_port()}/api/")
    if problem == "missing folder":
        database = tmp_path / "nowhere" / "bot.sqlite3"
        said = "the folder of"
    else:
        database = tmp_path / "notes.txt"
        database.write_text("not a database\n", encoding="utf-8")
        said = "file is not a database"
    monkeypatch.setenv("TRIAGE_DB", str(database))
    err = _fails_in_one_line(capsys, ["run"], "setting TRIAGE_DB", str(database), said)
    assert "cannot reach Slack" not in err


async def test_a_port_already_in_use_names_the_port(slack: SlackStandIn, tmp_path: Path) -> None:
    """`run --http --port N` with N taken: one line naming the port, not an OSError traceback."""
    settings = _standin_settings(slack, tmp_path)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104  # the bot listens on every interface too
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(UserError) as error:
            await run_slack(settings, load_config(settings.triage_config), http=True, port=port)
    message = str(error.value)
    assert message.startswith(f"--port {port}: cannot listen there (")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("TRIAGE_DB", "sqlite:///triage.db", "an SQLite file's path"),
        ("SLACK_API_URL", "notaurl", "must be an http(s):// URL"),
        ("SLACK_API_URL", "ftp://slack.com/api/", "must be an http(s):// URL"),
    ],
)
def test_a_setting_of_the_wrong_shape_is_named(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    said: str,
) -> None:
    """A URL where a path belongs, or no URL where one does: one line naming the setting."""
    monkeypatch.setenv(variable, value)
    _fails_in_one_line(capsys, ["classify", "hello"], f"setting {variable}", said)


@pytest.mark.parametrize("database", ["/dev/null", "/proc/self/status"])
def test_a_database_that_is_no_regular_writable_file_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    """TRIAGE_DB at a device or a /proc file: one line and exit 2, not a traceback and a hang."""
    monkeypatch.setenv("TRIAGE_DB", database)
    monkeypatch.setattr("sys.stdin", io.StringIO("I was charged twice\n"))
    _fails_in_one_line(capsys, ["run"], "setting TRIAGE_DB", database)


def test_a_config_nested_too_deeply_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file of 100,000 '[' is refused in one line, not a RecursionError of 3,000 lines."""
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000, encoding="utf-8")
    _fails_in_one_line(capsys, ["classify", "--config", str(deep), "hi"], "nested too deeply")


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Windows editors' UTF-8 byte-order mark does not make the config invalid TOML."""
    assert main(["init-config", str(tmp_path)]) == 0
    config = tmp_path / "config.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    assert load_config(config).fallback_team == "support"


def test_an_env_that_is_a_directory_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """A `.env` directory is not silently ignored."""
    Path(".env").mkdir()
    _fails_in_one_line(capsys, ["classify", "hi"], ".env: not a file")


@pytest.mark.parametrize("directory", ["", "   "])
def test_init_config_needs_a_directory(capsys: pytest.CaptureFixture[str], directory: str) -> None:
    """An empty DIR is refused instead of writing into the current folder."""
    _fails_in_one_line(capsys, ["init-config", directory], "needs a directory")


def _read_only_database(path: Path) -> None:
    """A real SQLite file SQLite itself opens read-only (header's write version 3).

    chmod cannot make a file read-only for root, who runs these tests in CI; SQLite refuses
    every write to a file whose format write version it does not know, as it would on a
    read-only mount.
    """
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
    with path.open("r+b") as raw:
        raw.seek(18)
        raw.write(b"\x03")


def _corrupt_after_its_header(path: Path) -> None:
    """A bot's database whose header reads but whose tables are garbage (a torn disk write)."""
    asyncio.run(_make_store(path))
    data = bytearray(path.read_bytes())
    page = 4096
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))


async def _make_store(path: Path) -> None:
    store = await Store.open(path)
    await store.close()
    # Out of WAL mode, so the garbage is in the file SQLite reads.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")


@pytest.mark.parametrize(
    ("problem", "said"),
    [("read-only", "readonly database"), ("corrupt after its header", "malformed")],
)
def test_a_read_only_or_corrupt_database_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    problem: str,
    said: str,
) -> None:
    """TRIAGE_DB SQLite will not write, or corrupt past the header: one line naming it, exit 2."""
    _slack_settings(monkeypatch, tmp_path, f"http://127.0.0.1:{_refused_port()}/api/")
    database = tmp_path / "bot.sqlite3"
    if problem == "read-only":
        _read_only_database(database)
    else:
        _corrupt_after_its_header(database)
    monkeypatch.setenv("TRIAGE_DB", str(database))
    err = _fails_in_one_line(capsys, ["run"], "setting TRIAGE_DB", str(database), said)
    assert "cannot reach Slack" not in err
