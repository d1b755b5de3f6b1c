"""Learning from corrections: what one teaches, bulk loading, the replay, shots per field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.sandbox.shell import AGENT, ONCALL
from routing.cascade import build_pipeline
from routing.config import TriageConfig, load_config
from routing.corrections import Correction, correction_example
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from routing.errors import UserError
from routing.evaluation import LabeledRow, LabeledRows, evaluate
from routing.local import LocalClassifier
from routing.models import Decision, Draft, Escalation, LabeledExample, RuleMatch, Ticket, Triage
from routing.redact import redact
from routing.replay import replay_corrections
from tests.slack_harness import Harness, running_bot
from tests.test_evaluation import HAND, HAND_ANSWERS, FakeFactory

# Tickets that the default config's examples know nothing specific about, with the category an
# agent gives them (hand-written for these tests).
CORRECTED = [
    ("Our SAML assertion is rejected by the identity provider bridge.", "account"),
    ("The SCIM provisioning sync drops every user added since Monday.", "account"),
    ("Please add a Gantt chart view for the roadmap board.", "feature_request"),
    ("Where can I find the VAT number printed on your receipts?", "billing"),
    ("The webhook retries flood our endpoint with duplicate deliveries.", "technical"),
    ("Can the audit export include the approver's time zone?", "feature_request"),
]
PROBES = [
    "The SAML assertion keeps being rejected by our identity provider bridge.",
    "SCIM provisioning no longer syncs users we added this week.",
    "Could you add a Gantt chart view to the roadmap?",
    "Your webhook retries flood our endpoint with duplicates.",
]


@pytest.fixture(scope="module")
def embedder() -> CachingEmbedder:
    # One model for the module; the cache spares re-embedding the same texts per test.
    return CachingEmbedder(MiniLMEmbedder.load())


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
async def bot(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, embedder, config=config) as harness:
        yield harness


# --- what a correction teaches  ----------------------------------------------------------------


def test_a_correction_with_several_bad_fields_names_each_with_its_allowed_values(
    config: TriageConfig,
) -> None:
    """Every unknown label is named with the values it may take, not only the first one."""
    correction = Correction(category="foo", priority="high", team="baz", sentiment="qux")
    problem = correction.problem(config)
    assert problem is not None
    lines = problem.splitlines()
    assert lines == [
        f"Unknown category `foo`: use one of {', '.join(config.category_names)}.",
        f"Unknown team `baz`: use one of {', '.join(config.team_names)}.",
        f"Unknown sentiment `qux`: use one of {', '.join(config.sentiment_names)}.",
    ]
    assert Correction(category="billing", priority="high").problem(config) is None


def test_a_category_only_correction_teaches_no_priority_sentiment_or_team() -> None:
    """The example of a category-only correction has None for every field the agent left."""
    example = correction_example("charged twice", Correction(category="billing"))
    assert example == LabeledExample(text="charged twice", category="billing")
    assert (example.priority, example.sentiment, example.team) == (None, None, None)


def test_a_correction_is_learnt_redacted() -> None:
    """The example keeps the ticket's words as the classifier read them, without the card."""
    text = "Card 4111 1111 1111 1111 was charged twice, mail me at jo@example.com"
    example = correction_example(text, Correction(category="billing"))
    assert example.text == redact(text).text
    assert "4111" not in example.text
    assert "jo@example.com" not in example.text


async def test_a_reclassify_learns_now_what_a_restart_learns_from_the_store(bot: Harness) -> None:
    """The live example and the stored one are the same, redacted: no raw card in memory."""
    ticket_id = await bot.new_ticket("Card 4111 1111 1111 1111 was charged twice for one order")
    await bot.command(AGENT, f"reclassify #{ticket_id} category=account")
    (stored,) = await bot.store.corrections()
    learnt = bot.desk.pipeline._local.examples[-1]  # type: ignore[union-attr]  # the local model is installed for the tests
    assert learnt == stored
    assert "4111" not in learnt.text


async def test_a_category_only_reclassify_stores_no_priority(bot: Harness) -> None:
    """`/triage reclassify #n category=..` stores the category alone, not the bot's guesses."""
    ticket_id = await bot.new_ticket("Our quarterly statement from you looks odd")
    await bot.command(AGENT, f"reclassify #{ticket_id} category=account")
    (stored,) = await bot.store.corrections()
    assert stored.category == "account"
    assert (stored.priority, stored.sentiment, stored.team) == (None, None, None)


async def test_reclassify_sentiment_is_validated_stored_and_shown(bot: Harness) -> None:
    """`sentiment=angry` sets the ticket's sentiment, teaches only it, and says so."""
    ticket_id = await bot.new_ticket("We need 5 more seats on our plan")
    refused = await bot.command(AGENT, f"reclassify #{ticket_id} sentiment=furious")
    assert "Unknown sentiment `furious`" in refused
    assert await bot.store.corrections() == []
    answer = await bot.command(AGENT, f"reclassify #{ticket_id} sentiment=angry")
    assert "/ angry for" in answer
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    assert ticket.decision is not None
    assert (ticket.decision.sentiment, ticket.decision.source) == ("angry", "agent")
    (stored,) = await bot.store.corrections()
    assert (stored.sentiment, stored.category, stored.priority) == ("angry", None, None)


async def _notes_mentioning(bot: Harness, ticket_id: int, person: str) -> list[str]:
    """The thread notes under the ticket's posts that mention the person (pages that notify)."""
    notes = []
    for post in await bot.store.posts(ticket_id, active_only=False):
        notes += [
            reply["text"]
            for reply in bot.thread_of(post.channel, post.ts)
            if f"<@{person}>" in reply["text"]
        ]
    return notes


async def test_an_agents_downgrade_of_a_paged_outage_pages_no_one_again(bot: Harness) -> None:
    """`priority=high` on a paged outage stands: the outage words were read, no second page."""
    ticket_id = await bot.new_ticket(
        "Our whole company is down since 9am: nobody can sign in and every page returns 502."
    )
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    assert ticket.decision is not None
    assert ticket.decision.priority == "critical"
    paged = await _notes_mentioning(bot, ticket_id, ONCALL)
    assert paged
    await bot.command(AGENT, f"reclassify #{ticket_id} priority=high")
    await bot.desk.drain()
    assert await _notes_mentioning(bot, ticket_id, ONCALL) == paged
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    assert ticket.decision is not None
    assert ticket.escalation is not None
    assert (ticket.decision.priority, ticket.decision.confidence_of("priority")) == ("high", 1.0)
    assert not ticket.escalation.needs_human


# --- bulk loading -----------------------------------------------------------------------------


def test_loading_corrections_in_one_fit_decides_as_learning_them_one_by_one(
    embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """add_examples (one fit, as at start-up) and add_example per correction agree."""
    corrections = [LabeledExample(text=text, category=label) for text, label in CORRECTED]
    bulk = LocalClassifier(embedder=embedder, config=config, examples=config.load_examples())
    bulk.add_examples(corrections)
    sequential = LocalClassifier(embedder=embedder, config=config, examples=config.load_examples())
    for example in corrections:
        sequential.add_example(example)
    assert bulk.examples == sequential.examples
    for text, label in CORRECTED:
        assert bulk.classify_vector(bulk.embed(text)).category == label
        assert sequential.classify_vector(sequential.embed(text)).category == label
    for text in PROBES:
        assert (
            bulk.classify_vector(bulk.embed(text)).category
            == sequential.classify_vector(sequential.embed(text)).category
        ), text


async def test_start_learns_the_stored_corrections(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """A restarted bot decides a corrected kind of ticket the way the agent said, at once."""
    text, label = CORRECTED[0]
    async with running_bot(tmp_path, embedder, config=config) as first:
        await first.store.add_correction(
            LabeledExample(text=text, category=label), ticket_id=None, by=AGENT
        )
    async with running_bot(tmp_path, embedder, config=config) as again:
        ticket_id = await again.new_ticket(PROBES[0])
        ticket = await again.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.decision is not None
        assert ticket.decision.category == label


# --- the replay -------------------------------------------------------------------------------


class RecordingPipeline:
    """Decides fixed labels for every ticket and records what it is taught."""

    def __init__(self, config: TriageConfig, category: str, priority: str) -> None:
        self.config = config
        self.category = category
        self.priority = priority
        self.learnt: list[LabeledExample] = []

    async def triage(self, ticket: Ticket) -> Triage:
        """The fixed decision, needing a human when its confidence is low."""
        decision = Decision(
            category=self.category,
            priority=self.priority,
            team=self.config.team_for(self.category),
            sentiment=self.config.default_sentiment,
            confidence=0.95,
            source="local",
        )
        return Triage(
            ticket=ticket,
            redacted_text=ticket.text,
            rules=RuleMatch(),
            layers=(),
            decision=decision,
            escalation=Escalation(needs_human=False),
            draft=Draft(text="", source="template"),
        )

    def learn(self, example: LabeledExample) -> None:
        """Record the example."""
        self.learnt.append(example)


async def test_the_replayed_agent_names_only_the_wrong_fields(config: TriageConfig) -> None:
    """A right category and a wrong priority teach the priority alone; right rows teach nothing."""
    rows = LabeledRows(
        source="data.csv",
        rows=(
            LabeledRow(text="a", label="billing", extra=(("priority", "high"),)),
            LabeledRow(text="b", label="billing", extra=(("priority", "low"),)),
            LabeledRow(text="c", label="technical", extra=(("priority", "low"),)),
            LabeledRow(text="d", label="sales", extra=(("priority", "low"),)),
        ),
        has_split=False,
    )
    pipeline = RecordingPipeline(config, "billing", "low")
    report = await replay_corrections(rows, config=config, pipeline=pipeline, window=2)
    assert pipeline.learnt == [
        LabeledExample(text="a", priority="high"),
        LabeledExample(text="c", category="technical"),
    ]
    summary = report.summary_json()
    assert [w["accuracy"] for w in summary["windows"]] == [1.0, 0.0]
    assert [w["priority_accuracy"] for w in summary["windows"]] == [0.5, 1.0]
    assert [w["corrections"] for w in summary["windows"]] == [1, 1]
    assert any("not in the config" in note for note in summary["notes"])


def test_replay_command_prints_windows_and_a_correction_changes_the_next_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], embedder: CachingEmbedder
) -> None:
    """`triage eval --replay-corrections --json`: the corrected first row makes the second right."""
    first = "Our SAML assertion is rejected by the identity provider bridge."
    pipeline = build_pipeline(load_config(), embedder=embedder)
    decided = pipeline._local.classify_vector(pipeline._local.embed(first))  # type: ignore[union-attr]  # the local model is installed for the tests
    target = "account" if decided.category != "account" else "technical"
    data = tmp_path / "replay.csv"
    data.write_text(
        f'text,category\n"{first}",{target}\n"{PROBES[0]}",{target}\n',
        encoding="utf-8",
    )
    assert main(["eval", str(data), "--replay-corrections", "--window", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    windows = summary["windows"]
    assert [(w["n"], w["accuracy"], w["corrections"]) for w in windows] == [
        (1, 0.0, 1),
        (1, 1.0, 0),
    ]
    assert set(windows[0]) >= {"n", "accuracy", "needs_human_rate", "corrections"}
    assert "priority_accuracy" not in windows[0]
    assert sum(b["n"] for b in summary["confidence_bins"]["bins"]) == 2


def test_replay_shuffles_with_a_seed_and_limits_after_filtering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--seed shuffles, --limit keeps the first N rows left by --where, priority is measured."""
    data = tmp_path / "tickets.csv"
    lines = ["text,category,priority,language"]
    lines += [f"I was charged twice for order {i},billing,high,en" for i in range(6)]
    lines += [f"Mir wurde Bestellung {i} doppelt berechnet,billing,high,de" for i in range(6)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["eval", str(data), "--replay-corrections", "--json", "--where", "language=en"]
    assert main([*args, "--seed", "3", "--limit", "4", "--window", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["n"], summary["seed"]) == (4, 3)
    assert [w["n"] for w in summary["windows"]] == [3, 1]
    assert all("priority_accuracy" in w for w in summary["windows"])


# --- shots on other fields, and macro recall --------------------------------------------------


async def test_shots_on_sentiment_make_the_data_sets_labels_the_sentiments(
    config: TriageConfig,
) -> None:
    """--field sentiment --shots K: K examples per label carrying only the sentiment."""
    rows = LabeledRows(
        source="tweets.csv",
        rows=(
            *(LabeledRow(text=f"love it {i}", label="positive", split="val") for i in range(3)),
            *(LabeledRow(text=f"hate it {i}", label="negative", split="val") for i in range(3)),
            LabeledRow(text="love it again", label="positive", split="test"),
            LabeledRow(text="hate it again", label="negative", split="test"),
        ),
        has_split=True,
    )
    factory = FakeFactory()
    report = await evaluate(
        rows,
        config=config,
        make_pipeline=factory,
        shots=2,
        field="sentiment",
        train_split="val",
        test_split="test",
    )
    (pipeline,) = factory.built
    assert pipeline.config.sentiment_names == ("negative", "positive")
    assert pipeline.config.category_names == config.category_names
    assert len(pipeline.examples) == 4
    assert all(
        e.category is None and e.sentiment in ("negative", "positive") for e in pipeline.examples
    )
    assert report.n_test == 2
    assert "macro_recall" in report.summary_json()


async def test_shots_on_team_are_refused(config: TriageConfig) -> None:
    """The team follows the category, so --field team with --shots is a user error."""
    rows = LabeledRows(
        source="d.csv", rows=(LabeledRow(text="a", label="billing", split="train"),), has_split=True
    )
    with pytest.raises(UserError, match="--field team"):
        await evaluate(rows, config=config, make_pipeline=FakeFactory(), shots=1, field="team")


async def test_macro_recall_is_the_mean_recall_over_true_labels(config: TriageConfig) -> None:
    """Recall billing 2/3, technical 1/2, account 1: macro recall 13/18, in text and JSON."""
    report = await evaluate(
        HAND, config=config, make_pipeline=FakeFactory(HAND_ANSWERS), shots=None
    )
    assert report.macro_recall == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert report.summary_json()["macro_recall"] == round(13 / 18, 4)


# --- learning through the replay, on generated tickets ----------------------------------------

# One kind of ticket the default config calls billing (its "card" cue), which agents here file
# under account; written for these tests.
CARD_NOT_ARRIVED = [
    "My replacement card for order 1041 has still not arrived in the post.",
    "The new card I ordered last week (order 2290) hasn't arrived yet.",
    "Still waiting for my replacement card, order 3317, it never came.",
    "My card from order 4120 has not been delivered to me yet.",
    "Order 5518: the replacement card you sent has not reached me.",
    "I ordered a new card ten days ago (order 6034) and it is not here yet.",
]


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_one_correction_teaches_the_next_tickets_of_its_kind_over_a_cue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first card-not-arrived ticket is corrected to account; the next five come out account."""
    data = _csv(
        tmp_path / "cards.csv", "text,category", [f'"{t}",account' for t in CARD_NOT_ARRIVED]
    )
    assert main(["eval", str(data), "--replay-corrections", "--window", "1", "--json"]) == 0
    windows = json.loads(capsys.readouterr().out)["windows"]
    assert [(w["accuracy"], w["corrections"]) for w in windows] == [(0.0, 1)] + [(1.0, 0)] * 5


async def test_a_replayed_category_only_correction_leaves_priority_as_it_was(
    embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Replayed category-only corrections store no priority; the next ticket's priority stays."""
    rows = LabeledRows(
        source="cards.csv",
        rows=tuple(LabeledRow(text=text, label="account") for text in CARD_NOT_ARRIVED[:3]),
        has_split=False,
    )
    probe = Ticket(text=CARD_NOT_ARRIVED[5])
    pipeline = build_pipeline(config, embedder=embedder)
    before = (await pipeline.triage(probe)).decision
    report = await replay_corrections(rows, config=config, pipeline=pipeline, window=3)
    after = (await pipeline.triage(probe)).decision
    assert report.corrections >= 1
    assert (before.category, after.category) == ("billing", "account")
    assert after.priority == before.priority
    learnt = pipeline._local.examples[len(config.load_examples()) :]  # type: ignore[union-attr]  # the local model is installed for the tests
    assert len(learnt) == report.corrections
    assert {(example.priority, example.sentiment) for example in learnt} == {(None, None)}


async def test_confidence_does_not_grow_on_corrections_that_disagree(
    embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Look-alike tickets filed half account, half technical: the bot never grows sure of either."""
    labels = ["account", "technical", "technical", "account"] * 6
    rows = LabeledRows(
        source="noisy.csv",
        rows=tuple(
            LabeledRow(
                text=f"Ticket {n}: the card reader in the app shows error {100 + n}.", label=label
            )
            for n, label in enumerate(labels)
        ),
        has_split=False,
    )
    pipeline = build_pipeline(config, embedder=embedder)
    report = await replay_corrections(rows, config=config, pipeline=pipeline, window=8)
    first, *_, last = report.windows
    assert last.accuracy["category"] <= 0.75
    assert last.mean_confidence <= 0.7
    assert last.needs_human_rate >= first.needs_human_rate
