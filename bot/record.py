"""`triage run --record FILE`: every Web API call the bot makes, one JSON line each.

A line is `{"method", "channel", "text", "thread_ts", "user", "ok"}` (and `"error"`, Slack's
error code or the exception's name, when the call failed): the text as sent, blocks omitted.
The recording happens in one place, `RecordingWebClient.api_call`, which every client the bot
builds goes through: the desk's, the listeners' (Bolt makes one per request, which
`record_listener_calls` swaps for a recording copy) and Socket Mode's connection opener.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from aiohttp import FormData
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from routing.errors import UserError

# The arguments a line keeps, in this order.
FIELDS = ("channel", "text", "thread_ts", "user")


class CallRecorder:
    """An open record file; each `write` is one line, flushed, so a crash keeps what was sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as error:
            # A path the user typed: one line naming it, as for every other setting.
            raise UserError(
                f"--record {self.path}: cannot append to it ({error.strerror}); name a file in a "
                "folder that exists and the bot may write to"
            ) from error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, method: str, arguments: dict[str, Any], *, ok: bool, error: str | None) -> None:
        """Append one call's line."""
        if self._file is None:
            return
        line: dict[str, Any] = {"method": method}
        line.update({name: arguments.get(name) for name in FIELDS})
        line["ok"] = ok
        if error is not None:
            line["error"] = error
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()


class RecordingWebClient(AsyncWebClient):
    """An AsyncWebClient that records each call's outcome (raised errors are recorded too)."""

    def __init__(self, *, recorder: CallRecorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | FormData | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        """Make the call, then write its line (ok, or the error it ended with)."""
        arguments = {**(params or {}), **(data if isinstance(data, dict) else {}), **(json or {})}
        try:
            response = await super().api_call(
                api_method,
                http_verb=http_verb,
                files=files,
                data=data,
                params=params,
                json=json,
                headers=headers,
                auth=auth,
            )
        except SlackApiError as error:
            code = error.response.get("error") if error.response is not None else None
            self.recorder.write(api_method, arguments, ok=False, error=str(code))
            raise
        except Exception as error:
            self.recorder.write(api_method, arguments, ok=False, error=type(error).__name__)
            raise
        self.recorder.write(api_method, arguments, ok=bool(response.get("ok")), error=None)
        return response


def recording_copy(client: AsyncWebClient, recorder: CallRecorder) -> RecordingWebClient:
    """The same client (token, URL, session, retries), recording its calls."""
    return RecordingWebClient(
        recorder=recorder,
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        session=client.session,
        trust_env_in_session=client.trust_env_in_session,
        headers=client.headers,
        team_id=client.default_params.get("team_id"),
        logger=client.logger,
        retry_handlers=client.retry_handlers,
    )


def recording(client: AsyncWebClient, recorder: CallRecorder | None) -> AsyncWebClient:
    """The client itself without a recorder, else its recording copy."""
    return client if recorder is None else recording_copy(client, recorder)


def record_listener_calls(recorder: CallRecorder) -> Any:
    """A Bolt middleware that gives each listener a recording copy of its per-request client."""

    async def middleware(context: AsyncBoltContext, next_: Any) -> Any:
        if context.client is not None and not isinstance(context.client, RecordingWebClient):
            context["client"] = recording_copy(context.client, recorder)
        return await next_()

    return middleware
