"""A strict local stand-in of the Slack Web API and of Socket Mode, for tests and the sandbox.

It serves `/api/<method>` on 127.0.0.1 in Slack's wire format, so the real
`slack_sdk.web.async_client.AsyncWebClient` (and Bolt on top of it) talks to it unchanged. It is
strict where Slack is: required arguments come from Slack's own method reference (packaged in
`reference/methods/`), channels, users, messages and triggers must exist, Block Kit limits are
enforced, and chat.postMessage is rate limited per channel with a real 429 and Retry-After.
Every call is recorded with its payload and answer, failures included.

The parts: server.py (`SlackStandIn`: HTTP, authentication, dispatch), workspace.py (channels,
people, messages, threads, ids), the method families chat.py, conversations.py, directory.py
and views.py, faults.py (the post rate limit and injected failures), calls.py (the record of
calls), socket_mode.py, and wire.py (Slack's errors, limits and argument parsing).
"""

from bot.sandbox.slack_api.calls import RecordedCall
from bot.sandbox.slack_api.server import SlackStandIn

__all__ = ["RecordedCall", "SlackStandIn"]
