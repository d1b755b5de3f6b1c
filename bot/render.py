"""Tickets, notes and modals as Block Kit and mrkdwn; all escaping of customer text lives here.

Customer text is escaped (`&`, `<`, `>`), so `<!channel>`, `<!here>`, `<@U...>` and
`<!subteam^...>` typed by a customer show as text and notify nobody. Everything is cut to Block
Kit's limits; the rest of a long message stays behind the permalink to the original.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from routing.config import TriageConfig
from routing.desk import DirectPage, Note, StatusReport, TicketCard
from routing.language import language_name
from routing.models import DECIDED_BY

# Block Kit's limits (../shared/slack/README.md).
SECTION_TEXT_LIMIT: Final = 3000
FALLBACK_TEXT_LIMIT: Final = 4000
MODAL_TITLE_LIMIT: Final = 24
PRIVATE_METADATA_LIMIT: Final = 3000
# A customer's text shown in a notification preview.
PREVIEW_CHARS: Final = 150
# The first line of a ticket in an on-call DM.
SUMMARY_CHARS: Final = 120
# A field whose confidence is below this is named as unsure on the post (0.6 is where a
# calibrated confidence means "wrong almost half the time").
UNSURE_BELOW: Final = 0.6

APPROVE_ACTION: Final = "ticket_approve"
EDIT_ACTION: Final = "ticket_edit"
RECLASSIFY_ACTION: Final = "ticket_reclassify"
ESCALATE_ACTION: Final = "ticket_escalate"
EDIT_VIEW: Final = "ticket_edit_view"
RECLASSIFY_VIEW: Final = "ticket_reclassify_view"
DRAFT_BLOCK: Final = "draft"
DRAFT_INPUT: Final = "draft_text"
# The event_type of the metadata on every team post: finds a ticket's post after a crash.
TICKET_METADATA: Final = "triage_ticket"
# The event_type of the metadata on every page note: finds a page in its thread after a crash
# or an answer that came too late.
PAGE_METADATA: Final = "triage_page"
# The event_type of the metadata on every on-call DM: finds a DM page in the bot's DM with that
# person before it is sent again.
DIRECT_PAGE_METADATA: Final = "triage_direct_page"
# A page's escalation reasons, cut to this much so the mentions always have room.
DETAILS_CHARS: Final = 1000

_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")
# A Slack user id, the only thing ever put inside <@...>.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")

Block = dict[str, Any]


def escape(text: str) -> str:
    """Slack mrkdwn escaping: exactly &, < and >, which is what disarms mentions and links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int, *, more: str = "") -> str:
    """Cut already-escaped text to limit characters (with `more` appended when cut)."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(more))]
    # Never leave half an entity ("&am"): Slack would show it raw.
    return _PARTIAL_ENTITY.sub("", cut) + more


def quote(text: str, limit: int, *, link: str | None = None) -> str:
    """Customer text as an escaped mrkdwn quote of at most limit characters."""
    body = "\n".join(f"&gt; {line}" for line in escape(text).splitlines() or [""])
    more = f"\n… (cut: <{link}|read the whole message>)" if link else "\n… (cut)"
    return fit(body, limit, more=more)


def mention(person: str) -> str:
    """A mention of a user (U..., W...) or a user group (S...) by id."""
    return f"<!subteam^{person}>" if person.startswith("S") else f"<@{person}>"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def _section(text: str, *, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text, 3000)}]}


def card_message(card: TicketCard) -> tuple[str, list[Block]]:
    """A team post: the fallback text and the blocks."""
    decision = card.decision
    # A moved post names where the ticket went; a live one, the team whose channel it is in.
    team = decision.team if card.moved_to else card.team
    headline = (
        f"{card.emoji} *{escape(decision.priority.upper())}*"
        f" · category {escape(decision.category)} → team {escape(team)}"
        f" · sentiment {escape(decision.sentiment)}"
        f" · confidence {decision.confidence:.2f}"
        f"{unsure_note(decision.unsure_fields(UNSURE_BELOW))} · ticket #{card.ticket_id}"
    )
    blocks: list[Block] = [_section(headline, block_id=f"ticket-{card.ticket_id}")]
    state = _state_line(card)
    if state:
        blocks.append(_section(state))
    model = _model_line(card)
    if model:
        blocks.append(_context(model))
    if decision.no_action is not None:
        blocks.append(
            _section(
                f":zzz: *No action needed* ({escape(decision.no_action)}): nobody was paged;"
                " approve the acknowledgement or leave it."
            )
        )
    if card.part is not None:
        others = sorted({part.team for part in decision.parts} - {card.team})
        also = f" (the rest went to {escape(', '.join(others))})" if others else ""
        label = f":jigsaw: *{escape(card.team)}'s part of this message*{also}:"
        blocks.append(_section(f"{label}\n{quote(card.part, SECTION_TEXT_LIMIT - len(label) - 1)}"))
    if card.escalation.needs_human:
        reasons = "; ".join(reason.detail for reason in card.escalation.reasons)
        blocks.append(_section(fit(f":rotating_light: *Needs a human:* {escape(reasons)}", 3000)))
    if card.credentials:
        blocks.append(_section(_credentials_line(card.credentials)))
    source = f"<{card.permalink}|original message>" if card.permalink else "original message"
    why = "; ".join(decision.reasons)
    decided = DECIDED_BY[decision.source]
    blocks.append(_context(f"{source} · decided by {decided} · {escape(why)}"))
    blocks.append(_section(quote(card.text, SECTION_TEXT_LIMIT, link=card.permalink)))
    for team, link in card.related:
        blocks.append(_context(f"Also posted to {escape(team)}: <{link}|see that post>"))
    if card.language is not None and card.language != "en":
        written = f"Written in {escape(language_name(card.language))} ({escape(card.language)})."
        if card.english_draft and card.draft_status == "pending":
            written += " The draft is in English: translate it before you approve it."
        blocks.append(_context(f":globe_with_meridians: {written}"))
    sent = card.draft_status in ("sending", "sent")
    # A withdrawn ticket's unsent draft is dropped with it: nothing will ever be sent.
    if card.draft is not None and (sent or not card.withdrawn):
        label = "*Draft reply* (nothing is sent until an agent approves):"
        if sent:
            label = "*Reply sent:*"
        elif card.draft_status == "rejected":
            label = "*Rejected draft:*"
        body = quote(card.draft, SECTION_TEXT_LIMIT - len(label) - 1)
        blocks.append(_section(f"{label}\n{body}", block_id=DRAFT_BLOCK))
    buttons = _buttons(card)
    if buttons:
        blocks.append({"type": "actions", "block_id": "ticket_actions", "elements": buttons})
    preview = fit(escape(" ".join(card.text.split())), PREVIEW_CHARS, more="…")
    fallback = (
        f"{card.emoji} {decision.priority.upper()} {decision.category} ticket #{card.ticket_id}"
        f" for {card.team}: {preview}"
    )
    if decision.no_action is not None:
        fallback = f"No action needed: ticket #{card.ticket_id} for {card.team}: {preview}"
    return fit(fallback, FALLBACK_TEXT_LIMIT), blocks


# What each kind of credential a customer posted is called, and what they are asked to do.
_CREDENTIALS: Final = {
    "secret": ("a secret (a key, token or password)", "ask them to rotate it"),
    "card": ("a card number", "ask them to have the card blocked"),
}


def _credentials_line(kinds: Sequence[str]) -> str:
    """The guardrail note on a card whose message held a secret or a card number (redacted)."""
    named = [_CREDENTIALS[kind] for kind in kinds if kind in _CREDENTIALS]
    what = " and ".join(name for name, _ in named)
    ask = "; ".join(action for _, action in named)
    return (
        f":closed_lock_with_key: *The customer posted {what}* in the channel (hidden here):"
        f" {ask}, and do not repeat it in the reply."
    )


def unsure_note(unsure: dict[str, float]) -> str:
    """' · unsure: priority 0.41, sentiment 0.35', or nothing when every field is sure."""
    if not unsure:
        return ""
    return " · unsure: " + ", ".join(f"{field} {value:.2f}" for field, value in unsure.items())


def _state_line(card: TicketCard) -> str | None:
    if card.withdrawn:
        sent = card.draft_status in ("sending", "sent")
        after = "" if sent else "; no reply will be sent"
        return f":wastebasket: *Withdrawn:* the customer deleted their message{after}."
    if card.moved_to:
        by = f" by {mention(card.moved_by)}" if card.moved_by else " after the customer's edit"
        return f":arrow_right: *Moved to <#{card.moved_to}>*{by}."
    if card.draft_status in ("sending", "sent") and card.decided_by:
        return f":white_check_mark: *Sent by {mention(card.decided_by)}*"
    if card.draft_status == "rejected" and card.decided_by:
        return f":x: *Draft rejected by {mention(card.decided_by)}*"
    return None


def _model_line(card: TicketCard) -> str | None:
    """Where the model stage is, on a live post: the decision shown is the local one."""
    if card.withdrawn or card.moved_to:
        return None
    if card.model == "pending":
        return (
            ":hourglass_flowing_sand: *Model pending:* this is the local classifier's decision;"
            " this post is updated when the model answers."
        )
    if card.model == "late":
        return (
            ":warning: *The model did not answer* within the deadline: the local classifier's"
            " decision stands."
        )
    return None


def _buttons(card: TicketCard) -> list[Block]:
    if card.withdrawn or card.moved_to:
        return []
    # The ticket's public id, which no recreated database hands out again (a number it does).
    value = card.public_id or str(card.ticket_id)
    buttons: list[Block] = []
    if card.draft_status == "pending":
        buttons += [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": _plain("Approve & send", 75),
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": EDIT_ACTION,
                "text": _plain("Edit", 75),
                "value": value,
            },
        ]
    buttons += [
        {
            "type": "button",
            "action_id": RECLASSIFY_ACTION,
            "text": _plain("Reclassify", 75),
            "value": value,
        },
        {
            "type": "button",
            "action_id": ESCALATE_ACTION,
            "text": _plain("Escalate", 75),
            "style": "danger",
            "value": value,
        },
    ]
    return buttons


def note_text(note: Note) -> str:
    """A thread note: mentions first (they are the point of a page), then words, then a quote.

    The words are the desk's own mrkdwn; the details (escalation reasons) and the quote may
    carry customer or model text, and are escaped.
    """
    details = escape("; ".join(note.details))
    parts = [" ".join(mention(person) for person in note.mentions), note.text, details]
    text = " ".join(part for part in parts if part)
    if note.quote is not None:
        text += "\n" + quote(note.quote, SECTION_TEXT_LIMIT)
    return fit(text, FALLBACK_TEXT_LIMIT)


def note_texts(note: Note) -> list[str]:
    """A note as Slack takes it: one text, or several when the mentions do not fit in one.

    Each text holds whole mentions (never half of one) followed by the words and the details,
    so every part says why: a page to 400 people is several notes, each with the reason.
    """
    whole = note_text(note)
    mentions = [mention(person) for person in note.mentions]
    if len(" ".join([*mentions, note.text])) <= FALLBACK_TEXT_LIMIT - DETAILS_CHARS:
        return [whole]
    details = fit(escape("; ".join(note.details)), DETAILS_CHARS, more="…")
    rest = " ".join(part for part in (note.text, details) if part)
    if note.quote is not None:
        rest += "\n" + quote(note.quote, SECTION_TEXT_LIMIT - len(rest) - DETAILS_CHARS)
    room = FALLBACK_TEXT_LIMIT - len(rest) - 1
    texts: list[str] = []
    chunk: list[str] = []
    for person in mentions:
        if chunk and len(" ".join([*chunk, person])) > room:
            texts.append(" ".join(chunk) + " " + rest)
            chunk = []
        chunk.append(person)
    if chunk:
        texts.append(" ".join(chunk) + " " + rest)
    return texts


def page_text(page: DirectPage) -> str:
    """An on-call DM: priority, ticket, customer and the message's first line, then why and where.

    The customer is named by a mention of their id, as pages name people; it cannot notify
    them, since a DM's only members are the bot and the person paged. Their words are escaped.
    """
    lines = [line for line in page.text.splitlines() if line.strip()] or [""]
    summary = fit(escape(" ".join(lines[0].split())), SUMMARY_CHARS, more="…")
    customer = ""
    if page.customer is not None:
        customer = (
            f" from {mention(page.customer)}"
            if _USER_ID.fullmatch(page.customer)
            else f" from {escape(page.customer)}"
        )
    head = (
        f"{page.emoji} *{escape(page.priority.upper())}* ticket #{page.ticket_id}"
        f" for {escape(page.team)}{customer}: {summary}"
    )
    parts = [head]
    if page.reasons:
        parts.append(f"Needs a human: {escape('; '.join(page.reasons))}")
    more = "" if len(lines) == 1 else " (the whole message is in the post)"
    parts.append(f"<{page.link}|Open the team post>{more}" if page.link else "")
    return fit("\n".join(part for part in parts if part), FALLBACK_TEXT_LIMIT)


def status_text(status: StatusReport) -> str:
    """`/triage status`: the desk's lines, with the reasons (which may quote customers) escaped."""
    lines = list(status.head)
    if status.reasons:
        lines.append(f"Needs a human: {escape('; '.join(status.reasons))}")
    return fit("\n".join([*lines, *status.tail]), FALLBACK_TEXT_LIMIT)


def reply_text(draft: str) -> str:
    """An approved reply as posted to the customer: escaped, so it can mention no one."""
    return fit(escape(draft), FALLBACK_TEXT_LIMIT)


def edit_modal(ticket_id: int, draft: str, *, public_id: str) -> dict[str, Any]:
    """The Edit modal: the draft in a text box; submitting sends it."""
    return {
        "type": "modal",
        "callback_id": EDIT_VIEW,
        "private_metadata": json.dumps({"ticket_id": ticket_id, "public_id": public_id}),
        "title": _plain(f"Reply to #{ticket_id}", MODAL_TITLE_LIMIT),
        "submit": _plain("Send", MODAL_TITLE_LIMIT),
        "close": _plain("Cancel", MODAL_TITLE_LIMIT),
        "blocks": [
            {
                "type": "input",
                "block_id": DRAFT_BLOCK,
                "label": _plain("Reply to the customer", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": DRAFT_INPUT,
                    "multiline": True,
                    "initial_value": draft[:3000],
                    "max_length": 3000,
                },
            }
        ],
    }


def reclassify_modal(
    ticket_id: int,
    config: TriageConfig,
    *,
    public_id: str,
    category: str,
    priority: str,
    team: str,
) -> dict[str, Any]:
    """The Reclassify modal: a menu per label, preset to the current decision."""

    def menu(name: str, label: str, options: Sequence[str], current: str) -> Block:
        choices = [{"text": _plain(option, 75), "value": option} for option in options[:100]]
        initial = next((choice for choice in choices if choice["value"] == current), None)
        element: Block = {"type": "static_select", "action_id": name, "options": choices}
        if initial is not None:
            element["initial_option"] = initial
        return {"type": "input", "block_id": name, "label": _plain(label, 2000), "element": element}

    # What the menus start at, so the submission can pass on only what the agent changed:
    # an unchanged team must stay None, or the desk never derives it from a new category.
    metadata = json.dumps(
        {
            "ticket_id": ticket_id,
            "public_id": public_id,
            "preset": {"category": category, "priority": priority, "team": team},
        }
    )
    if len(metadata) > PRIVATE_METADATA_LIMIT:
        # Only absurdly long label names get here; without a preset every menu counts as chosen.
        metadata = json.dumps({"ticket_id": ticket_id, "public_id": public_id})
    return {
        "type": "modal",
        "callback_id": RECLASSIFY_VIEW,
        "private_metadata": metadata,
        "title": _plain(f"Reclassify #{ticket_id}", MODAL_TITLE_LIMIT),
        "submit": _plain("Reclassify", MODAL_TITLE_LIMIT),
        "close": _plain("Cancel", MODAL_TITLE_LIMIT),
        "blocks": [
            menu("category", "Category", config.category_names, category),
            menu("priority", "Priority", config.priority_names, priority),
            menu("team", "Team", config.team_names, team),
        ],
    }
