"""Redaction end to end: every kind of secret in one message, through the bot, LLM and store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.sandbox.shell import AGENT
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from routing.llm import LLMClassifier, build_openai_client
from tests.slack_harness import running_bot
from tests.standins.openai_server import OpenAIStandIn, Scripted, reply_json, reply_text

# Each kind as a customer may write it, and the pieces of it that must never leave the ticket.
SECRETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "accented email": ("jan\u00e9.d\u0153@ex\u00e4mple.com", ("jan\u00e9", "ex\u00e4mple")),
    "email with a zero-width space": ("mar\u200bia@example.org", ("maria@", "mar\u200bia")),
    "spelt-out email": ("john.smith [at] example [dot] net", ("john.smith",)),
    "national phone": ("020 7946 0958", ("7946",)),
    "card with em dashes": ("4111\u20141111\u20141111\u20141111", ("4111",)),
    "full-width card": (
        "\uff15\uff15\uff15\uff15 \uff15\uff15\uff15\uff15 \uff15\uff15\uff15\uff15 "
        "\uff14\uff14\uff14\uff14",
        ("\uff15\uff15\uff15\uff15", "\uff14\uff14\uff14\uff14"),
    ),
    "lowercase IBAN": ("gb82west12345698765432", ("west1234", "98765432")),
    "spaced SSN": ("536 90 4399", ("4399",)),
    "NINO": ("QQ 12 34 56 C", ("QQ 12",)),
    "Aadhaar": ("2341 2341 2346", ("2346",)),
    "Chinese password": ("\u5bc6\u7801\u662fabc12345", ("abc12345",)),
    "German password": ("Passwort: Geheim123!", ("Geheim123",)),
    "one-time code": ("the code is 482913", ("482913",)),
    "AWS key": ("AKIAIOSFODNN7EXAMPLE", ("IOSFODNN",)),
    "Slack token": ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", ("AbCdEfGh",)),
    "OpenAI key": ("sk-proj-abcdefghijklmnopqrstuvwxyz123456", ("abcdefghijklmnop",)),
    "JWT": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        ("eyJhbGci", "dozjgNry"),
    ),
    "private key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7BFUp\n-----END RSA PRIVATE KEY-----",
        ("MIIEow", "q7BFUp"),
    ),
    "connection string": ("postgres://app:S3cr3tPw@db.example.com/prod", ("S3cr3tPw",)),
    "bearer token": ("Authorization: bearer 9f8e7d6c5b4a39281706", ("9f8e7d6c5b4a",)),
}
# What the drafts reuse, so it must reach the model whole.
KEPT = ("INV-2024-118", "#A-55231")


def _message() -> str:
    lines = ["Invoice INV-2024-118 and order #A-55231 are wrong. Details:"]
    lines += [f"- {kind}: {value}" for kind, (value, _) in SECRETS.items()]
    return "\n".join(lines)


def _model(body: dict[str, Any]) -> Scripted:
    if not body.get("response_format"):
        return reply_text("Hi, thanks for the details about INV-2024-118; we are checking.")
    answer = {
        "category": "billing",
        "priority": "medium",
        "team": "billing",
        "sentiment": "neutral",
        "confidence": 0.95,
        "needs_human": False,
        "reason": "An invoice question.",
    }
    return reply_json(answer)


def _leaks(where: str, kept: str) -> list[str]:
    return [
        f"{kind} ({piece!r}) in {where}"
        for kind, (_, pieces) in SECRETS.items()
        for piece in pieces
        if piece in kept
    ]


async def test_every_kind_of_secret_reaches_the_model_and_the_store_redacted(
    tmp_path: Path,
    embedder: CachingEmbedder,
    openai_server: OpenAIStandIn,
    store_location: Path | str,
) -> None:
    """The LLM, the audit log and the corrections hold placeholders; the ticket keeps the text."""
    config: TriageConfig = load_config()
    config = config.model_copy(update={"llm": config.llm.model_copy(update={"max_retries": 0})})
    openai_server.default = _model
    client = build_openai_client(
        api_key="test", base_url=openai_server.url, timeout_seconds=5, max_retries=0
    )
    text = _message()
    edited = text + "\nAny news?"
    try:
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            llm=LLMClassifier(client=client, config=config),
            database=store_location,
        ) as bot:
            ts = await bot.customer_says(text)
            await bot.desk.drain()
            ticket_id = await bot.ticket_for(ts)
            assert await bot.customer_edits(ts, edited, previous=text) == 200
            await bot.desk.drain()
            answer = await bot.command(AGENT, f"reclassify #{ticket_id} category=technical")
            assert "now technical" in answer
            audit = await bot.store.audit_log(ticket_id)
            corrections = await bot.store.corrections()
            ticket = await bot.store.ticket(ticket_id)
    finally:
        await client.close()

    sent = json.dumps(openai_server.requests, ensure_ascii=False)
    assert len(openai_server.requests) >= 4  # classified and drafted, before and after the edit
    kept_in_store = json.dumps(
        [[entry.before, entry.after] for entry in audit]
        + [example.text for example in corrections],
        ensure_ascii=False,
    )
    assert {entry.action for entry in audit} >= {"edited", "reclassified"}
    assert any("Any news?" in example.text for example in corrections)
    leaks = _leaks("the LLM requests", sent) + _leaks("the audit log or corrections", kept_in_store)
    assert leaks == []
    for placeholder in ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[NATIONAL_ID]", "[SECRET]"):
        assert placeholder in sent
        assert placeholder in kept_in_store
    for reference in KEPT:
        assert reference in sent
    assert ticket is not None
    assert ticket.text == edited  # the ticket itself keeps what the customer wrote


async def test_what_the_bot_writes_to_slack_shows_a_customers_card_redacted(
    tmp_path: Path, embedder: CachingEmbedder
) -> None:
    """Team posts, thread notes and DM pages show [CARD]; the stored ticket keeps the number."""
    text = (
        "Outage: the whole site is down for all users since 9am, and you charged us twice"
        " on card 4111 1111 1111 1111"
    )
    async with running_bot(tmp_path, embedder, config=load_config()) as bot:
        ts = await bot.customer_says(text)
        await bot.desk.drain()
        await bot.customer_says("the card 5555 5555 5555 4444 was declined too", thread_ts=ts)
        await bot.desk.drain()
        ticket = await bot.store.ticket(await bot.ticket_for(ts))
        calls = [call for call in bot.slack.calls if call.method.startswith("chat.")]
        written = json.dumps(
            [call.args for call in calls],
            ensure_ascii=False,
        )
    assert ticket is not None
    assert ticket.text == text  # the ticket itself keeps what the customer wrote
    dms = [call for call in calls if str(call.args.get("channel", "")).startswith("D")]
    assert dms  # a critical ticket: its on-call got a DM too
    assert "twice on card [CARD]" in written
    assert "the card [CARD] was declined" in written
    assert "4111" not in written
    assert "5555" not in written


async def test_a_card_names_a_secret_or_card_number_the_customer_posted(
    tmp_path: Path, embedder: CachingEmbedder
) -> None:
    """A pasted live key or card is hidden, and its post asks the agent to have it replaced."""
    key = "sk_live_51HxYzAbCdEfGhIjKlMnOpQrStUv"
    async with running_bot(tmp_path, embedder, config=load_config()) as bot:
        with_key = await bot.new_ticket(f"Webhooks fail, here is our API key {key} to check")
        with_card = await bot.new_ticket("You charged my card 4111 1111 1111 1111 twice")
        plain = await bot.new_ticket("You charged us twice for the March invoice")
        posts = {
            ticket_id: [
                json.dumps(post, ensure_ascii=False)
                for post in bot.all_ticket_posts()
                if post["metadata"]["event_payload"]["ticket_id"] == ticket_id
            ]
            for ticket_id in (with_key, with_card, plain)
        }
    (key_post,) = posts[with_key]
    assert "The customer posted a secret" in key_post
    assert "rotate it" in key_post
    assert "51HxYz" not in key_post
    (card_post,) = posts[with_card]
    assert "The customer posted a card number" in card_post
    assert "4111 1111" not in card_post  # (a ts or permalink may hold the digits 4111)
    (plain_post,) = posts[plain]
    assert "The customer posted" not in plain_post
