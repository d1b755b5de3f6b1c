"""Buttons on team posts and the modals they open."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.services import Services
from routing.desk import ActionRefusedError

logger = logging.getLogger(__name__)

FAILED: Final = (
    "That did not work: Slack or the bot failed. Try again; the details are in the bot's log."
)
NOTHING_CHANGED: Final = "Nothing changed."
# views.open refuses a trigger_id that is over 3 seconds old or already used.
_TRIGGER_ERRORS: Final = frozenset({"expired_trigger_id", "exchanged_trigger_id"})
_LABELS: Final = ("category", "priority", "team")


def _post(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The channel and ts of the message whose button was pressed."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return (str(channel) if channel else None), (str(ts) if ts else None)


def _modal_ticket(view: dict[str, Any]) -> tuple[int, str | None]:
    """The ticket a modal was opened for, and the public id it was opened with."""
    metadata = json.loads(view["private_metadata"])
    public_id = metadata.get("public_id")
    return int(metadata["ticket_id"]), public_id if isinstance(public_id, str) else None


def register(app: AsyncApp, services: Services) -> None:
    """Listen to Approve & send, Edit, Reclassify, Escalate and the two modals."""
    desk = services.desk

    async def tell(respond: AsyncRespond, text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    async def failed(respond: AsyncRespond, what: str, ticket_id: int) -> None:
        # The line names the action and the ticket, never customer text; the traceback says why.
        logger.exception("%s on ticket %s failed", what, ticket_id)
        await tell(respond, FAILED)

    async def open_modal(
        client: AsyncWebClient,
        respond: AsyncRespond,
        *,
        trigger_id: str,
        view: dict[str, Any],
        button: str,
        ticket_id: int,
    ) -> None:
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as refused:
            code = refused.response.get("error")
            logger.warning("views.open for %s on ticket %s failed: %s", button, ticket_id, code)
            if code in _TRIGGER_ERRORS:
                await tell(
                    respond, f"Slack closed the window before it opened; press {button} again."
                )
            else:
                await tell(respond, FAILED)

    async def pressed(
        body: dict[str, Any], respond: AsyncRespond, action: str
    ) -> tuple[int, str] | None:
        """The button's ticket and public id; None once the person is told why there is none."""
        channel, ts = _post(body)
        try:
            return await desk.ticket_for_button(
                str(body["actions"][0].get("value") or ""),
                channel=channel,
                ts=ts,
                user=body["user"]["id"],
                action=action,
            )
        except ActionRefusedError as refused:
            await tell(respond, refused.message)
        except Exception:
            logger.exception("finding the ticket of a button (%s) failed", action)
            await tell(respond, FAILED)
        return None

    @app.action(render.APPROVE_ACTION)
    async def on_approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        found = await pressed(body, respond, "approve the reply")
        if found is None:
            return
        ticket_id, _ = found
        try:
            await desk.approve(ticket_id, user=body["user"]["id"])
        except ActionRefusedError as refused:
            await tell(respond, refused.message)
        except Exception:
            await failed(respond, "approve", ticket_id)

    @app.action(render.ESCALATE_ACTION)
    async def on_escalate(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        found = await pressed(body, respond, "escalate")
        if found is None:
            return
        ticket_id, _ = found
        try:
            await desk.escalate(ticket_id, user=body["user"]["id"])
        except ActionRefusedError as refused:
            await tell(respond, refused.message)
        except Exception:
            await failed(respond, "escalate", ticket_id)

    @app.action(render.EDIT_ACTION)
    async def on_edit(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        found = await pressed(body, respond, "edit the reply")
        if found is None:
            return
        ticket_id, public_id = found
        try:
            draft = await desk.draft_for_edit(ticket_id, user=body["user"]["id"])
        except ActionRefusedError as refused:
            await tell(respond, refused.message)
            return
        except Exception:
            await failed(respond, "edit", ticket_id)
            return
        await open_modal(
            client,
            respond,
            trigger_id=body["trigger_id"],
            view=render.edit_modal(ticket_id, draft, public_id=public_id),
            button="Edit",
            ticket_id=ticket_id,
        )

    @app.action(render.RECLASSIFY_ACTION)
    async def on_reclassify(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        found = await pressed(body, respond, "reclassify")
        if found is None:
            return
        ticket_id, public_id = found
        try:
            decision = await desk.decision_for_agent(ticket_id, user=body["user"]["id"])
        except ActionRefusedError as refused:
            await tell(respond, refused.message)
            return
        except Exception:
            await failed(respond, "reclassify", ticket_id)
            return
        view = render.reclassify_modal(
            ticket_id,
            services.config,
            public_id=public_id,
            category=decision.category,
            priority=decision.priority,
            team=decision.team,
        )
        await open_modal(
            client,
            respond,
            trigger_id=body["trigger_id"],
            view=view,
            button="Reclassify",
            ticket_id=ticket_id,
        )

    async def answer(user: str, text: str) -> None:
        # A modal has no response_url: the answer goes by DM, if Slack takes even that.
        try:
            await desk.notify(user, text)
        except Exception:
            logger.exception("could not tell %s how their modal went", user)

    @app.view(render.EDIT_VIEW)
    async def on_edit_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = view["state"]["values"][render.DRAFT_BLOCK][render.DRAFT_INPUT].get("value") or ""
        if not text.strip():
            await ack(response_action="errors", errors={render.DRAFT_BLOCK: "Write a reply."})
            return
        await ack()
        user = body["user"]["id"]
        ticket_id, public_id = _modal_ticket(view)
        try:
            await desk.ticket_for_modal(ticket_id, public_id, user=user, action="approve the reply")
            await desk.approve(ticket_id, user=user, text=text)
        except ActionRefusedError as refused:
            await answer(user, refused.message)
        except Exception:
            logger.exception("sending the edited reply of ticket %s failed", ticket_id)
            await answer(user, FAILED)

    @app.view(render.RECLASSIFY_VIEW)
    async def on_reclassify_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        await ack()
        values = view["state"]["values"]

        def chosen(name: str) -> str | None:
            option = values.get(name, {}).get(name, {}).get("selected_option")
            return str(option["value"]) if option else None

        user = body["user"]["id"]
        metadata = json.loads(view["private_metadata"])
        ticket_id, public_id = _modal_ticket(view)
        preset = metadata.get("preset") or {}
        # Only what the agent changed: an unchanged team left None follows a new category.
        changed = {
            name: value
            for name in _LABELS
            if (value := chosen(name)) is not None and value != preset.get(name)
        }
        if not changed:
            await answer(user, NOTHING_CHANGED)
            return
        try:
            await desk.ticket_for_modal(ticket_id, public_id, user=user, action="reclassify")
            outcome = await desk.reclassify(
                ticket_id,
                user=user,
                category=changed.get("category"),
                priority=changed.get("priority"),
                team=changed.get("team"),
            )
        except ActionRefusedError as refused:
            outcome = refused.message
        except Exception:
            logger.exception("reclassifying ticket %s failed", ticket_id)
            outcome = FAILED
        await answer(user, outcome)
