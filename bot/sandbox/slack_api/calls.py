"""The record of what the stand-in was asked: every Web API call, its payload and its answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as the stand-in received and answered it (the token is left out)."""

    method: str
    args: dict[str, Any]
    response: dict[str, Any]
    http_status: int
    at: float
    # chat.* posting without a top-level text: Slack accepts it, the README forbids it.
    missing_text: bool = False
    # Things Slack accepts silently but that are almost surely bugs (e.g. "orphan_thread_ts").
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether Slack would have answered ok: true."""
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """Slack's error code, None on success."""
        error = self.response.get("error")
        return error if isinstance(error, str) else None


class CallLog:
    """The calls answered, in order, and who is told of each one (a transcript, a recorder)."""

    def __init__(self) -> None:
        self.calls: list[RecordedCall] = []
        self._listeners: list[Callable[[RecordedCall], None]] = []

    def on_call(self, callback: Callable[[RecordedCall], None]) -> None:
        """Call callback(call) after every Web API call, failures included."""
        self._listeners.append(callback)

    def record(self, call: RecordedCall) -> None:
        """Keep a call and tell every listener; a listener that fails is logged, not raised."""
        self.calls.append(call)
        for listener in self._listeners:
            try:
                listener(call)
            except Exception:
                # A broken transcript printer must not turn a good answer into a 500.
                logger.exception("on_call listener failed for %s", call.method)

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls of one method, in order."""
        return [call for call in self.calls if call.method == method]
