"""Slack's wire format as the stand-in needs it: limits, argument parsing, errors, the reference.

A method handler raises `SlackError` to answer `ok: false`; the helpers read arguments the way
Slack does, whether they came in a query string, a form or a JSON body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any

MAX_TEXT_CHARS = 40_000
RECOMMENDED_TEXT_CHARS = 4_000
MAX_MARKDOWN_TEXT_CHARS = 12_000
MAX_VIEW_BYTES = 250_000
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
# Which Slack error a missing required argument produces, in order of preference; the first
# one the method's reference lists wins, else Slack's generic invalid_arguments.
MISSING_ARGUMENT_ERRORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "channel": ("channel_not_found",),
        "user": ("user_not_found", "user_not_in_channel"),
        "usergroup": ("no_such_subteam",),
        "ts": ("message_not_found", "thread_not_found"),
        "message_ts": ("message_not_found",),
        "timestamp": ("no_item_specified", "message_not_found"),
        "name": ("invalid_name",),
    }
)
TS_PATTERN = re.compile(r"^\d{10}\.\d{6}$")
TRIGGER_PATTERN = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")
EMOJI_PATTERN = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")

# A Web API method: its arguments and the call's warnings list in, the fields of its ok answer out.
Handler = Callable[[dict[str, Any], list[str]], dict[str, Any]]


class SlackError(Exception):
    """Answer the call with ok: false and this error (and HTTP status, headers, extra fields)."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = extra


def missing_field(name: str) -> dict[str, Any]:
    """The response_metadata Slack adds when a required argument is missing."""
    return {"response_metadata": {"messages": [f"[ERROR] missing required field: {name}"]}}


def blank(value: Any) -> bool:
    """True for an argument that is absent, or a string of nothing but spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


def flag(value: Any) -> bool:
    """A Slack boolean argument: JSON true, or "true" / "1" from a query string or form."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def int_arg(value: Any, default: int, *, low: int, high: int) -> int:
    """An integer argument clamped to [low, high]; default when absent or not a number."""
    try:
        number = int(value) if value is not None else default
    except (TypeError, ValueError):
        number = default
    return max(low, min(high, number))


def ts_micros(ts: str) -> int:
    """A message ts in microseconds."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0")[:6] or "0")


def ts_bound(value: Any, error: str) -> int | None:
    """A history bound (oldest / latest) in microseconds, None when absent."""
    if blank(value):
        return None
    try:
        return ts_micros(str(value))
    except ValueError:
        raise SlackError(error) from None


def format_ts(micros: int) -> str:
    """Microseconds as Slack's ts: epoch seconds with 6 decimals."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def json_arg(args: dict[str, Any], name: str, error: str) -> Any:
    """A JSON-valued argument; a form or query string carries it as a JSON string."""
    value = args.get(name)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError(error) from None
        args[name] = value
    return value


def load_reference() -> dict[str, dict[str, Any]]:
    """Slack's method reference, from the copy packaged with the bot (CI has no /work/shared)."""
    folder = resources.files("bot.sandbox").joinpath("reference", "methods")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }
