"""Emoji on team posts: the approve emoji sends the draft, the reject emoji drops it."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    """Listen to reaction_added (the manifest subscribes it; reactions:read)."""
    desk = services.desk

    @app.event("reaction_added")
    async def on_reaction(event: dict[str, Any], body: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message" or not event.get("user"):
            return
        if not await desk.first_delivery(body.get("event_id")):
            return
        await desk.react(
            user=event["user"],
            reaction=event.get("reaction", ""),
            channel=item["channel"],
            ts=item["ts"],
        )
