"""The `/triage` slash command: acked at once, answered privately once the work is done."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.commands import USAGE, run_command
from bot.listeners.actions import FAILED
from bot.services import Services
from routing.desk import ActionRefusedError

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to /triage (declared in manifest.yml)."""

    @app.command("/triage")
    async def on_triage(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        text = command.get("text") or ""
        try:
            answer = await run_command(services.desk, user=command["user_id"], text=text)
        except ActionRefusedError as refused:
            answer = refused.message
        except Exception:
            # Only the sub-command's name: the rest may be a link or a person.
            name = (text.split() or ["help"])[0].lower()
            logger.exception("/triage %s failed", name if name in USAGE else "?")
            answer = FAILED
        await respond(text=answer, response_type="ephemeral")
