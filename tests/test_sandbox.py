"""The sandbox as a newcomer types into it: its transcript, its shell, and the on-call DM.

The sandbox runs the real app, listeners, desk and store against the Slack stand-in; these tests
use a rules-only pipeline (no model to load), since what they check is not the classification.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import pytest

from bot import render
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, Sandbox, open_sandbox, run_sandbox
from bot.settings import Settings, load_settings
from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.desk import DirectPage, TicketCard
from routing.errors import UserError
from routing.models import DECIDED_BY, Decision, DecisionSource, Escalation


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(environ={}, dotenv_path=tmp_path / "no.env")


def _rules_only(config: TriageConfig) -> Pipeline:
    return build_pipeline(config, embedder=None)


@asynccontextmanager
async def _sandbox(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> AsyncIterator[tuple[Sandbox, io.StringIO]]:
    out = io.StringIO()
    async with open_sandbox(
        settings,
        config,
        out=out,
        database=tmp_path / "sandbox.sqlite3",
        pipeline=_rules_only(config),
        post_rate_per_second=math.inf,
    ) as sandbox:
        yield sandbox, out


async def _type(sandbox: Sandbox, *lines: str) -> None:
    for line in lines:
        await sandbox.line(line)


def _posts_to(sandbox: Sandbox, channel: str) -> list[dict[str, Any]]:
    calls = sandbox.slack_api.calls_to("chat.postMessage")
    return [call.args for call in calls if call.ok and call.args.get("channel") == channel]


def _card(**changes: Any) -> TicketCard:
    decision = Decision(
        category="billing",
        priority="high",
        team="billing",
        sentiment="frustrated",
        confidence=0.83,
        source="local",
        reasons=("closest labels: billing, account",),
    )
    fields: dict[str, Any] = {
        "ticket_id": 1,
        "team": "billing",
        "channel": "C0BILLING",
        "emoji": ":large_orange_circle:",
        "text": "I was charged twice this month",
        "author": CUSTOMER,
        "permalink": "https://sandbox.slack.com/archives/C0INTAKE/p1700000000000100",
        "decision": decision,
        "escalation": Escalation(needs_human=False),
        "draft": "Hi, we are checking the charges.",
        "draft_status": "pending",
        "decided_by": None,
    }
    return TicketCard(**(fields | changes))


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks of a recorded call, whether sent as JSON text or as a list."""
    blocks = args["blocks"]
    loaded: list[dict[str, Any]] = json.loads(blocks) if isinstance(blocks, str) else blocks
    return loaded


def _all_text(blocks: list[dict[str, Any]]) -> str:
    texts = [str(block.get("text", {}).get("text", "")) for block in blocks]
    texts += [str(e.get("text", "")) for b in blocks for e in b.get("elements", []) if "text" in e]
    return "\n".join(texts)


# --- the transcript ---------------------------------------------------------------------


def test_the_card_headline_labels_each_field() -> None:
    """The headline says which value is the category, the team, the sentiment, the confidence."""
    _, blocks = render.card_message(_card())
    headline = blocks[0]["text"]["text"]
    assert "*HIGH*" in headline
    assert "category billing → team billing" in headline
    assert "sentiment frustrated" in headline
    assert "confidence 0.83" in headline


def test_the_card_says_who_decided_in_words() -> None:
    """'decided by the local model', never 'decided by local'; every source has words."""
    _, blocks = render.card_message(_card())
    context = _all_text(blocks)
    assert "decided by the local model" in context
    assert "decided by local " not in context
    assert set(get_args(DecisionSource)) == set(DECIDED_BY)
    cheap = _card(decision=_card().decision.model_copy(update={"source": "llm_cheap"}))
    assert "decided by the LLM (cheap model)" in _all_text(render.card_message(cheap)[1])


def test_a_withdrawn_tickets_card_shows_no_draft_but_keeps_a_sent_reply() -> None:
    """Withdrawn: no 'Draft reply' and no buttons; a reply already sent still shows as sent."""
    _, blocks = render.card_message(_card(withdrawn=True))
    text = _all_text(blocks)
    assert "Withdrawn" in text
    assert "no reply will be sent" in text
    assert "Draft reply" not in text
    assert "checking the charges" not in text
    assert all(block["type"] != "actions" for block in blocks)
    _, sent = render.card_message(_card(withdrawn=True, draft_status="sent", decided_by=AGENT))
    assert "*Reply sent:*" in _all_text(sent)


async def test_a_withdrawn_ticket_shows_no_pending_draft_in_slack_or_status(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """After the customer deletes their message, the post and /triage status drop the draft."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, "Where can I find the API docs?", "/delete #1", "/triage status #1")
        (update,) = [c.args for c in sandbox.slack_api.calls_to("chat.update") if c.ok]
        blocks = _blocks(update)
        assert "Withdrawn" in _all_text(blocks)
        assert all(block.get("block_id") != render.DRAFT_BLOCK for block in blocks)
        (status,) = [r for r in sandbox.slack_api.responses if "Ticket #1" in str(r.get("text"))]
        assert "Ticket #1: withdrawn" in status["text"]
        assert "Draft:" not in status["text"]
    transcript = out.getvalue()
    withdrawn = transcript[transcript.index("deletes ticket #1") :]
    assert "Draft reply" not in withdrawn
    assert "Draft: pending" not in withdrawn


async def test_usage_lines_keep_their_angle_brackets(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """/triage help sends `<team>` escaped (Slack would eat it as a link) and shows it as typed."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, "/triage help", "/help")
        (answer,) = sandbox.slack_api.responses
        assert "/triage oncall &lt;team&gt;" in answer["text"]
        assert "<team>" not in answer["text"]
    transcript = out.getvalue()
    assert "`/triage status <ticket # or message link>`" in transcript
    assert "/edit #N <new reply>" in transcript


async def test_log_lines_go_to_the_log_file_not_among_the_transcript(
    tmp_path: Path,
    settings: Settings,
    config: TriageConfig,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A WARNING logged in the sandbox reaches neither stdout nor stderr, only the log file."""
    # What `triage run` sets up: a root handler on stderr.
    terminal = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(terminal)
    log = tmp_path / "sandbox.log"
    try:
        status = await run_sandbox(
            settings,
            config,
            stdin=io.StringIO("I was charged twice\n/as customer :white_check_mark: #1\n"),
            out=sys.stdout,
            log_path=log,
            pipeline=_rules_only(config),
        )
        assert terminal in root.handlers  # put back when the sandbox stopped
    finally:
        root.removeHandler(terminal)
    assert status == 0
    captured = capsys.readouterr()
    assert "Only agents can" in captured.out  # the refusal itself is in the transcript
    assert "may not approve" not in captured.out
    assert "may not approve" not in captured.err
    assert "may not approve the reply" in log.read_text(encoding="utf-8")
    assert f"Log messages go to {log}." in captured.out
    assert f"1 warning logged in {log}." in captured.out


@pytest.mark.parametrize(
    ("database", "record", "said"),
    [
        ("", None, "setting TRIAGE_DB"),  # TRIAGE_DB names a folder
        ("gone/triage.sqlite3", None, "setting TRIAGE_DB"),
        (None, "", "--record"),  # --record names a folder
    ],
)
async def test_a_database_or_record_file_it_cannot_use_stops_the_sandbox_before_its_banner(
    tmp_path: Path, config: TriageConfig, database: str | None, record: str | None, said: str
) -> None:
    """The operator sees one error line, not a welcome that an error then contradicts."""
    environ = {} if database is None else {"TRIAGE_DB": str(tmp_path / database)}
    settings = load_settings(environ=environ, dotenv_path=tmp_path / "no.env")
    out = io.StringIO()
    with pytest.raises(UserError, match=said):
        await run_sandbox(
            settings,
            config,
            stdin=io.StringIO("I was charged twice\n"),
            out=out,
            log_path=tmp_path / "sandbox.log",
            pipeline=_rules_only(config),
            record=None if record is None else tmp_path / record,
        )
    assert out.getvalue() == ""


# --- the on-call DM ---------------------------------------------------------------------


async def test_the_oncall_dm_says_what_the_ticket_is(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """The DM has priority, ticket, customer, the escaped first line cut short, why, the post."""
    first = "Checkout fails for all our users <!channel> " + "and the cart empties itself " * 8
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await sandbox.customer_message(first + "\nSecond line with details")
        await sandbox.desk.drain()
        await _type(sandbox, "/triage reclassify #1 priority=critical")
        (dm,) = _posts_to(sandbox, f"D{ONCALL[1:]}")  # the IM conversations.open gave
        (post,) = await sandbox.desk.store.posts(1)
    text = dm["text"]
    head = text.splitlines()[0]
    assert head.startswith(f":red_circle: *CRITICAL* ticket #1 for {post.team} from <@{CUSTOMER}>:")
    assert "Checkout fails for all our users &lt;!channel&gt;" in head
    assert "<!channel>" not in text
    summary = head.split(f"<@{CUSTOMER}>: ", 1)[1]
    assert summary.endswith("…")
    assert len(summary) <= render.SUMMARY_CHARS
    assert "Second line" not in text
    assert "Needs a human:" in text
    assert "priority is critical" in text
    link = f"https://sandbox.slack.com/archives/{post.channel}/p{post.ts.replace('.', '')}"
    assert f"<{link}|Open the team post>" in text
    assert f"[DM to @oncall] 🔴 *CRITICAL* ticket #1 for {post.team} from @customer:" in (
        out.getvalue()
    )


def test_the_oncall_dm_names_only_a_user_id_as_a_mention() -> None:
    """A customer that is not a Slack user id is shown as escaped text, never inside <@...>."""
    page = DirectPage(
        ticket_id=3,
        team="support",
        priority="critical",
        emoji=":red_circle:",
        customer="<!here>",
        text="Down again",
        reasons=(),
        link=None,
    )
    text = render.page_text(page)
    assert "from &lt;!here&gt;: Down again" in text
    assert "<!here>" not in text
    assert "<@" not in text


# --- the shell --------------------------------------------------------------------------


async def test_an_unknown_user_id_or_name_is_a_new_customer(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """`/as U0OTHERCUST ...` and `/as bob ...` make those customers' tickets; nothing is lost."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(
            sandbox,
            "I was charged twice",
            "/as U0OTHERCUST Where can I find the API docs?",
            "/as bob My invoice is wrong",
            "/as U0OTHERCUST /reply #2 Still looking",
        )
        tickets = [await sandbox.desk.store.ticket(n) for n in (1, 2, 3)]
        assert [t.author if t else None for t in tickets] == [CUSTOMER, "U0OTHERCUST", "U0BOB"]
        assert [r.text for r in await sandbox.desk.store.replies(2)] == ["Still looking"]
    transcript = out.getvalue()
    assert "@U0OTHERCUST: Where can I find the API docs?  (ticket #2)" in transcript
    assert "@bob: My invoice is wrong  (ticket #3)" in transcript


async def test_reply_change_and_delete_act_as_the_tickets_author(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """`/reply #n` on bob's ticket is bob's reply: stored on his ticket and shown to the team."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, "/as bob My invoice is wrong", "/reply #1 Still wrong today")
        assert [r.text for r in await sandbox.desk.store.replies(1)] == ["Still wrong today"]
    assert "@bob: Still wrong today" in out.getvalue()


async def test_a_failing_line_says_so_and_the_sandbox_goes_on(
    tmp_path: Path,
    settings: Settings,
    config: TriageConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line that raises prints one line; the tickets stay and the next lines work."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, "I was charged twice")
        add_message = sandbox.slack_api.add_message

        def refuse(*args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ValueError("the stand-in refuses this one")

        sandbox.slack_api.add_message = refuse  # type: ignore[method-assign]  # one failing line
        await _type(sandbox, "/reply #1 hello?")
        sandbox.slack_api.add_message = add_message  # type: ignore[method-assign]
        await _type(sandbox, "My invoice is wrong", "/reply #1 still there?")
        assert [r.text for r in await sandbox.desk.store.replies(1)] == ["still there?"]
    lines = out.getvalue().splitlines()
    failed = [line for line in lines if "that line failed" in line]
    assert failed == [
        "   (sandbox: that line failed: ValueError: the stand-in refuses this one; go on)"
    ]
    assert "[#intake] @customer: My invoice is wrong  (ticket #2)" in lines
    assert "a line of 16 characters failed" in caplog.text  # never the line: a customer's text
    assert "hello?" not in caplog.text


async def test_edit_and_reply_text_reaches_the_customer_verbatim(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """Apostrophes, quotes and spacing in /edit and /reply text are kept as typed."""
    edited = "We've refunded it, it's   done \"today\""
    async with _sandbox(tmp_path, settings, config) as (sandbox, _):
        await _type(sandbox, "I was charged twice", f"/edit #1 {edited}")
        ticket = await sandbox.desk.store.ticket(1)
        assert ticket is not None
        replies = sandbox.slack_api.thread(ticket.channel, ticket.ts)[1:]
        assert [reply["text"] for reply in replies] == [render.reply_text(edited)]
        await _type(sandbox, "/reply #1 Thanks, it's fine, we're   good")
        stored = await sandbox.desk.store.replies(1)
        assert [reply.text for reply in stored] == ["Thanks, it's fine, we're   good"]


async def test_lines_starting_with_colon_or_slash_that_are_no_command_are_messages(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """':( the app crashes' and '/usr/bin is missing' are customers' tickets, word for word."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, ":( the app crashes", "/usr/bin is missing", ":tada: thanks all")
        texts = [(await sandbox.desk.store.ticket(n)) for n in (1, 2, 3)]
        assert [t.text if t else None for t in texts] == [
            ":( the app crashes",
            "/usr/bin is missing",
            ":tada: thanks all",
        ]
    assert "sandbox:" not in out.getvalue()


async def test_edit_on_a_rejected_ticket_submits_nothing_into_another_tickets_modal(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """/edit of a rejected draft opens no modal, says so, and sends nothing to any customer."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(
            sandbox,
            "I was charged twice",
            "My invoice is wrong",
            "/edit #1 Refund on its way",
            ":x: #2",
            "/edit #2 We are on it",
        )
        first, second = [await sandbox.desk.store.ticket(n) for n in (1, 2)]
        assert first is not None
        assert second is not None
        assert [r["text"] for r in sandbox.slack_api.thread(first.channel, first.ts)[1:]] == [
            "Refund on its way"
        ]
        assert sandbox.slack_api.thread(second.channel, second.ts)[1:] == []
        draft = await sandbox.desk.store.draft(2)
        assert draft is not None
        assert draft.status == "rejected"
        assert _posts_to(sandbox, AGENT) == []  # no "already sent" DM from a wrong submission
    transcript = out.getvalue()
    assert "The draft for ticket #2 was rejected" in transcript
    assert "no Edit modal opened for ticket #2" in transcript
    assert "submits the edited reply: We are on it" not in transcript


async def test_ticket_numbers_are_ascii_digits_and_never_overflow(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """An Arabic-Indic digit or a 23-digit number is no ticket: said, nothing sent."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, "I was charged twice")
        await _type(sandbox, "/approve #\u0661", "/approve #99999999999999999999999")
        # No reply went to the customer's thread: nothing was approved.
        assert not [
            call
            for call in sandbox.slack_api.calls_to("chat.postMessage")
            if call.args.get("channel") == INTAKE and call.args.get("thread_ts")
        ]
    text = out.getvalue()
    assert "no ticket '#\u0661'" in text
    assert "OverflowError" not in text


async def test_a_mistyped_action_is_said_and_makes_no_ticket(
    tmp_path: Path, settings: Settings, config: TriageConfig
) -> None:
    """'/aprove #1' is a typo of /approve, not a customer's ticket; /as posts it if meant."""
    async with _sandbox(tmp_path, settings, config) as (sandbox, out):
        await _type(sandbox, "I was charged twice", "/aprove #1", "/Approve #1", "/escalte")
        assert await sandbox.desk.store.ticket(2) is None
        draft = await sandbox.desk.store.draft(1)
        assert draft is not None
        assert draft.status == "pending"
        await _type(sandbox, "/as customer /aprove #1", "/usr is full", "/frobnicate #1")
        texts = [(await sandbox.desk.store.ticket(n)) for n in (2, 3, 4)]
        assert [t.text if t else None for t in texts] == [
            "/aprove #1",
            "/usr is full",
            "/frobnicate #1",
        ]
    transcript = out.getvalue()
    assert "(sandbox: /aprove is no action; did you mean /approve? /help lists them." in transcript
    assert "(sandbox: /Approve is no action; did you mean /approve?" in transcript
    assert "(sandbox: /escalte is no action; did you mean /escalate?" in transcript
    assert "/frobnicate is no action" not in transcript
