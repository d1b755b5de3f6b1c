"""The one reader of the environment and `.env`: a frozen settings object built at start-up."""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from routing.errors import UserError, validation_message

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Bolt's OAuth (multi-workspace) credentials: with both in os.environ, AsyncApp turns on its OAuth
# flow and a file installation store on its own. This bot is installed in one workspace.
OAUTH_VARIABLES = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
# What AsyncApp() reads from os.environ when an argument is left out; build_app passes every
# value it needs explicitly, so none of these may change what Bolt builds.
BOLT_READS = (
    *OAUTH_VARIABLES,
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_VERIFICATION_TOKEN",
)


class Settings(BaseModel):
    """Secrets and deployment choices; the taxonomy and policy live in the config file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Path of the taxonomy/policy TOML; None uses the packaged default.
    triage_config: Path | None = Field(default=None, alias="TRIAGE_CONFIG")
    # Any OpenAI-compatible key; without it the bot stays fully offline.
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    # Overrides the config's [llm].base_url (e.g. a local vLLM or Ollama server).
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    # How much the bot logs on stderr: one of LOG_LEVELS, in any case.
    log_level: str = Field(default="WARNING", alias="TRIAGE_LOG_LEVEL")
    # Libraries (slack_sdk, slack_bolt, aiosqlite, psycopg, openai, httpx, aiohttp) log whole
    # payloads at DEBUG: customers' text, tokens in headers. They stay at INFO or above, whatever
    # TRIAGE_LOG_LEVEL says, unless this is set to 1 for a debugging session.
    log_library_debug: bool = Field(default=False, alias="TRIAGE_LOG_LIBRARY_DEBUG")
    # Where tickets, drafts, pages and the audit log are kept: an SQLite file's path, or a
    # postgresql://user:password@host/db URL that several replicas share. Unset: the file
    # triage.sqlite3 (the sandbox: a temporary file). A URL is secret: shown redacted only.
    database: Path | SecretStr | None = Field(default=None, alias="TRIAGE_DB")
    # OAuth & Permissions -> Bot User OAuth Token (xoxb-...). None: the sandbox runs instead.
    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    # Basic Information -> App-Level Tokens, with connections:write (xapp-...): Socket Mode.
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    # Basic Information -> App Credentials -> Signing Secret: checks requests in HTTP mode.
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    # Where the Web API is; only a test or a proxy changes it.
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    # How long a replica's claim on a ticket it is routing lasts unless renewed (it renews a
    # third of the way through): another replica takes over a dead one's tickets after this.
    # The default is routing.desk.LEASE_SECONDS (not imported: settings load before the model).
    lease_seconds: float = Field(default=30.0, gt=0, alias="TRIAGE_LEASE_SECONDS")

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, level: str) -> str:
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (in any case)")
        return level.upper()

    @field_validator("database", mode="before")
    @classmethod
    def _database_kind(cls, value: object) -> object:
        if isinstance(value, str):
            if is_postgres_url(value):
                return SecretStr(value)
            if "://" in value:
                # sqlite:///x.db and the like: SQLAlchemy's spelling, not ours.
                raise ValueError(
                    "give an SQLite file's path (e.g. triage.sqlite3) or a postgresql:// URL"
                )
            return Path(value)
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_shape(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an http(s):// URL such as https://slack.com/api/ (only a test or a"
                " proxy sets it)"
            )
        return url if url.endswith("/") else url + "/"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb- (OAuth & Permissions)")
        return token

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().startswith("xapp-"):
            raise ValueError(
                "must be an app-level token starting with xapp- (Basic Information ->"
                " App-Level Tokens, scope connections:write)"
            )
        return token

    def database_location(self, default: Path) -> Path | str:
        """The SQLite path or the PostgreSQL URL (password included) to open; default if unset."""
        if self.database is None:
            return default
        if isinstance(self.database, SecretStr):
            return self.database.get_secret_value()
        return self.database

    @property
    def connects_to_slack(self) -> bool:
        """True when a bot token is set: the bot runs in a workspace, not the sandbox."""
        return self.slack_bot_token is not None


def is_postgres_url(location: str) -> bool:
    """True for a PostgreSQL connection URL (postgresql:// or postgres://)."""
    return location.startswith(("postgresql://", "postgres://"))


def redact_database_url(url: str) -> str:
    """The URL with its password (in the user part or a password= parameter) as ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else f"{key}={value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> Settings:
    """Settings from `.env` (if present) overridden by the process environment."""
    dotenv_file = dotenv_path if dotenv_path is not None else Path(".env")
    if dotenv_file.exists() and not dotenv_file.is_file():
        raise UserError(
            f"{dotenv_file}: not a file; settings go in a `.env` file of NAME=value lines"
        )
    from_file = _read_dotenv(dotenv_file) if dotenv_file.is_file() else {}
    merged = {**from_file, **(dict(os.environ) if environ is None else dict(environ))}
    # An empty variable means "not set", as in most deployment tools.
    cleaned = {key: value for key, value in merged.items() if value != ""}
    oauth = [name for name in OAUTH_VARIABLES if name in cleaned]
    if oauth:
        raise UserError(
            f"{'/'.join(oauth)} {'are' if len(oauth) > 1 else 'is'} set, but this is a"
            f" single-workspace app: remove {'them' if len(oauth) > 1 else 'it'} and use"
            " SLACK_BOT_TOKEN"
        )
    # Half a workspace's credentials would start the sandbox silently.
    if "SLACK_BOT_TOKEN" not in cleaned:
        partial = [name for name in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET") if name in cleaned]
        if partial:
            raise UserError(
                f"setting SLACK_BOT_TOKEN: missing, though {' and '.join(partial)}"
                f" {'are' if len(partial) > 1 else 'is'} set; add the Bot User OAuth Token"
                " (xoxb-, OAuth & Permissions) to connect, or unset both for the sandbox"
            )
    try:
        return Settings.model_validate(cleaned)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        # Never echo the value: it may be a secret.
        raise UserError(f"setting {name}: {validation_message(first)}") from None


def _read_dotenv(path: Path) -> dict[str, str]:
    """The variables a `.env` file sets; a line python-dotenv cannot parse stops the start."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as error:
        raise UserError(
            f"{path}: cannot be read ({error.strerror}); check its permissions"
        ) from None
    # python-dotenv would only log a warning and skip the line, so the tokens on it would be lost
    # silently (and without SLACK_BOT_TOKEN the sandbox starts instead of the bot). A bare name
    # or a bare token (no `=`) is lost the same way.
    bindings = list(parse_stream(io.StringIO(text)))
    malformed = [
        binding.original.line
        for binding in bindings
        if binding.error or (binding.key is not None and binding.value is None)
    ]
    if malformed:
        # Only the line numbers: the line itself may hold a secret.
        lines = ", ".join(str(number) for number in malformed)
        raise UserError(
            f"{path} line{'s' if len(malformed) > 1 else ''} {lines}"
            f" {'are' if len(malformed) > 1 else 'is'} malformed: write NAME=value, one per"
            " line, with matching quotes around a value that has any"
        )
    for binding in bindings:
        if binding.key is not None:
            _check_name(path, binding.original.line, binding.key)
    return {
        key: value
        for key, value in dotenv_values(stream=io.StringIO(text)).items()
        if value is not None
    }


def _check_name(path: Path, line: int, name: str) -> None:
    """A `.env` name that is almost a setting's is a typo that would be ignored silently."""
    known = setting_names()
    if name in known or not name.upper().startswith(SETTING_PREFIXES):
        return
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.8)
    hint = f"did you mean {close[0]}?" if close else f"known settings: {', '.join(sorted(known))}"
    raise UserError(f"{path} line {line}: {name} is no setting ({hint})")


# Names in `.env` that look like ours: checked against the known settings.
SETTING_PREFIXES = ("SLACK_", "TRIAGE_", "OPENAI_")


def setting_names() -> frozenset[str]:
    """Every variable the bot reads (and the OAuth pair it refuses)."""
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    return frozenset({*aliases, *OAUTH_VARIABLES})


@contextmanager
def hidden_from_bolt() -> Iterator[None]:
    """Hide the variables Bolt would read from os.environ on its own, while an app is built."""
    hidden = {name: os.environ.pop(name) for name in BOLT_READS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)
