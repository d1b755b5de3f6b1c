"""Errors named for who must act: the operator (UserError) or nobody but the logs (LayerError)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic_core import ErrorDetails


class TriageError(Exception):
    """Base of every error the pipeline raises on purpose."""


class UserError(TriageError):
    """Something the operator must fix: a config file, a data file, an argument."""


class ConfigError(UserError):
    """The config file or a file it names is wrong; the message names the file, field and fix."""

    def __init__(
        self,
        path: object,
        field: str,
        problem: str,
        fix: str,
        *,
        others: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """others: more problems of the same file as (field, problem, fix), told after it."""
        self.path = str(path)
        self.field = field
        self.problem = problem
        self.fix = fix
        self.others = tuple(others)
        where = f"{self.path}: {field}" if field else self.path
        message = f"{where}: {problem}. Fix: {fix}"
        # One line still (the command line prints errors as one): the others by field and
        # problem, their fixes told when they come first.
        shown = [f"{other} ({wrong})" for other, wrong, _ in self.others[:_MORE_PROBLEMS_SHOWN]]
        if len(self.others) > len(shown):
            shown.append(f"{len(self.others) - len(shown)} more")
        if shown:
            message += ". Also wrong: " + "; ".join(shown)
        super().__init__(message)


# A file with many problems (a wrong type in every entry) lists the first few; the operator
# sees the rest after fixing those.
_MORE_PROBLEMS_SHOWN = 5


class LayerError(TriageError):
    """A classifier layer could not give a usable decision; the cascade degrades, never raises."""


# What pydantic puts before the message of a ValueError or assert raised in a validator.
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


# pydantic's bounds and unknown keys, in an operator's words ("Input should be less than or
# equal to 1" reads like a stack trace to a support team). The value is never shown here: a
# setting's may be a secret.
_BOUNDS = {
    "greater_than": ("gt", "must be more than {}"),
    "greater_than_equal": ("ge", "must be at least {}"),
    "less_than": ("lt", "must be less than {}"),
    "less_than_equal": ("le", "must be at most {}"),
}
# The kinds whose value a config file may show beside the message (a config holds no secret).
BOUND_KINDS = frozenset(_BOUNDS)
_PLAIN = {
    "extra_forbidden": "unknown key",
    "float_parsing": "must be a number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
}


def validation_message(problem: ErrorDetails) -> str:
    """One pydantic problem's message in our words: without "Value error, " in front of it."""
    kind = problem["type"]
    if kind in _PLAIN:
        return _PLAIN[kind]
    bound = _BOUNDS.get(kind)
    context = problem.get("ctx") or {}
    if bound is not None and bound[0] in context:
        limit = context[bound[0]]
        # 1.0 reads as 1 to whoever wrote the file.
        return bound[1].format(f"{limit:g}" if isinstance(limit, float) else limit)
    message = problem["msg"]
    for prefix in _PYDANTIC_PREFIXES:
        message = message.removeprefix(prefix)
    return message


class StoreUnavailableError(TriageError):
    """The store refused a write after its bounded retries (locked, full, read-only, gone).

    The caller must not treat the input as handled: Slack's event is left unacknowledged (or
    answered 5xx) so that Slack delivers it again.
    """

    def __init__(self, what: str, cause: BaseException) -> None:
        self.what = what
        self.cause = cause
        super().__init__(f"{what}: {' '.join(str(cause).split()) or type(cause).__name__}")


class DeliveryRefusedError(TriageError):
    """Slack refused a post for good (the channel is gone, or the bot is not in it).

    Retrying cannot help: someone must fix the channel; `channel` and `code` say which and why.
    """

    def __init__(self, channel: str, code: str) -> None:
        self.channel = channel
        self.code = code
        super().__init__(f"Slack refused to post in {channel}: {code}")
