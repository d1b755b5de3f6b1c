"""Log records for the operator: never the text of a customer's message."""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class WithheldMessageFormatter(logging.Formatter):
    """Tracebacks with their frames but without exception messages.

    A failure's message can quote what it failed on: a UnicodeEncodeError or a pydantic
    ValidationError carries the customer's text, an SDK error the request. The frames say where
    it happened, the type what; Slack's error code is kept, since it is Slack's word, not theirs.
    """

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802  # logging's name
        """The traceback's frames and each exception's type, with its message left out."""
        _, error, _ = ei
        if error is None:
            return ""
        parts: list[str] = []
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            frames = "".join(traceback.format_tb(current.__traceback__))
            parts.append(f"Traceback (most recent call last):\n{frames}{describe(current)}")
            current = current.__cause__ or current.__context__
        return "\n\nwhile handling it, this one:\n".join(reversed(parts))


def describe(error: BaseException) -> str:
    """An exception's type, and Slack's error code when it has one; never its message."""
    response = getattr(error, "response", None)
    getter = getattr(response, "get", None)  # slack_sdk's response is dict-like
    code = getter("error") if callable(getter) else None
    suffix = f" ({code})" if isinstance(code, str) else ""
    return f"{type(error).__name__}{suffix} (message withheld: it may quote a customer)"
