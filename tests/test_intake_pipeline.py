"""The offline pipeline on noise, vague requests, multi-issue, languages and long messages."""

from __future__ import annotations

import pytest

from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding import MiniLMEmbedder
from routing.models import Ticket
from routing.parts import marked_clauses, sentences
from tests.slack_harness import LANGUAGES

MULTI = (
    "I can't log in since this morning, and separately our last invoice charged us for 20 seats"
    " instead of 12."
)

# A long, hand-written report about a slow dashboard whose last lines are about a double charge.
_DASHBOARD = [
    "Hello, I am writing on behalf of our operations team about the reporting dashboard.",
    "Since the release last week the dashboard takes a very long time to render the weekly charts.",
    "When we open the analytics tab the spinner keeps turning for two or three minutes.",
    "Sometimes the page gives up with a timeout and we have to reload it several times.",
    "We tried Chrome, Firefox and Edge on different laptops and the behaviour is the same.",
    "Our network team checked the office connection and found nothing unusual there.",
    "The browser console shows several slow requests to the metrics endpoint.",
    "Exporting a chart to PDF takes far longer than before and sometimes gives an empty file.",
    "We have around forty people who look at these charts every morning before the stand-up.",
    "For now we work around it by exporting raw data to spreadsheets, which is tedious.",
]
_DOUBLE_CHARGE = (
    "One more thing, unrelated to the dashboard: we were charged twice for our subscription this"
    " month. Two identical payments of 499 dollars left our card on the same day, and we only have"
    " one invoice."
)


def long_message(length: int = 6580) -> str:
    """About `length` characters of dashboard report, then the double charge."""
    paragraphs: list[str] = []
    position = 0
    while sum(len(p) + 2 for p in paragraphs) + len(_DOUBLE_CHARGE) < length:
        first = _DASHBOARD[position % len(_DASHBOARD)]
        second = _DASHBOARD[(position * 3 + 1) % len(_DASHBOARD)]
        paragraphs.append(f"{first} {second}" if position % 2 else first)
        position += 1
    return "\n\n".join([*paragraphs, _DOUBLE_CHARGE])


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


@pytest.fixture(scope="module")
def pipeline(embedder: MiniLMEmbedder, config: TriageConfig) -> Pipeline:
    return build_pipeline(config, embedder=embedder, languages=LANGUAGES)


def _with(config: TriageConfig, **sections: dict[str, object]) -> TriageConfig:
    """The config with some fields of some sections changed."""
    update = {
        name: getattr(config, name).model_copy(update=fields) for name, fields in sections.items()
    }
    return config.model_copy(update=update)


# --- noise --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for the quick fix yesterday, everything works great now!",
        "never mind, fixed it",
        "ok",
        "👍",
        "all good now, thanks!",
        "¡Muchas gracias, ya funciona!",
        "The new editor is fantastic, our writers love it",
    ],
)
async def test_a_message_that_needs_no_action_pages_nobody_and_gets_an_acknowledgement(
    pipeline: Pipeline, text: str
) -> None:
    """No action needed: no human, lowest priority, a short thank-you draft asking for nothing."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.no_action is not None
    assert not triage.escalation.needs_human
    assert triage.decision.priority == "low"
    assert triage.decision.team == "support"
    assert "steps" not in triage.draft.text
    assert "please share" not in triage.draft.text.lower()
    assert "Thanks for letting us know" in triage.draft.text
    assert triage.summary()["no_action"] == triage.decision.no_action


async def test_praise_is_satisfied_and_needs_no_action(pipeline: Pipeline) -> None:
    """Praise that names a feature and asks nothing is a satisfied customer, not a bug report."""
    triage = await pipeline.triage(Ticket(text="Amazing work on the calendar sync, we love it!"))
    assert triage.decision.no_action == "praise"
    assert triage.decision.sentiment == "satisfied"
    assert "needs no action (praise)" in triage.decision.reasons


async def test_a_thank_you_that_still_reports_a_problem_is_a_ticket(pipeline: Pipeline) -> None:
    """A thank-you that says it is still broken is classified and drafted like any report."""
    triage = await pipeline.triage(Ticket(text="Thanks, but the export is still broken"))
    assert triage.decision.no_action is None
    assert triage.decision.category == "technical"


@pytest.mark.parametrize(
    "text", ["thanks, that fixed it for some users", "All good, it works with a workaround"]
)
async def test_a_resolution_with_a_cue_of_impact_is_a_ticket(pipeline: Pipeline, text: str) -> None:
    """A resolution the filter passes is still a ticket when a priority cue finds a problem."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.no_action is None
    assert "needs no action" not in " ".join(triage.decision.reasons)


async def test_a_forced_keyword_is_never_noise(pipeline: Pipeline) -> None:
    """A forced keyword keeps its page even in a message of thanks."""
    triage = await pipeline.triage(Ticket(text="thanks, urgent"))
    assert triage.decision.no_action is None
    assert triage.escalation.needs_human


@pytest.mark.parametrize("text", ["Can you help me?", "hello??", "anyone there?"])
async def test_a_vague_request_goes_to_a_human_and_is_asked_what_is_wrong(
    pipeline: Pipeline, text: str
) -> None:
    """A request for help with no detail reaches a human, and the draft asks what it is about."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.escalation.needs_human
    assert "vague_request" in [reason.code for reason in triage.escalation.reasons]
    assert triage.decision.no_action is None
    assert "what you need help with" in triage.draft.text


# --- multi-issue --------------------------------------------------------------------------------


def test_the_splitter_keeps_references_decimals_and_abbreviations_whole() -> None:
    """Sentences end at real sentence ends, not inside INV-2024-118, 12.50, v2.3.1 or "e.g."."""
    text = "Invoice INV-2024-118 shows 12.50 per seat, e.g. for v2.3.1. Also the export fails!"
    assert sentences(text) == [
        "Invoice INV-2024-118 shows 12.50 per seat, e.g. for v2.3.1.",
        "Also the export fails!",
    ]
    assert marked_clauses(MULTI) == [
        ("I can't log in since this morning", False),
        ("separately our last invoice charged us for 20 seats instead of 12.", True),
    ]


async def test_two_asks_for_two_teams_go_to_both_each_with_its_part(pipeline: Pipeline) -> None:
    """A login problem and, separately, a wrong invoice: account and billing, each its part."""
    triage = await pipeline.triage(Ticket(text=MULTI))
    parts = {part.team: part.text for part in triage.decision.parts}
    assert set(parts) == {"account_management", "billing"}
    assert "log in" in parts["account_management"]
    assert "invoice" in parts["billing"]
    assert set(triage.escalation.teams) == {"account_management", "billing"}
    assert triage.decision.part_for(triage.decision.team) is not None
    assert not triage.escalation.needs_human
    assert "passed the rest of your message to our" in triage.draft.text


@pytest.mark.parametrize(
    "text",
    [
        "The export button does nothing when I click it. Tried Firefox and Chrome, same issue.",
        "I was charged twice this month. Order #ORD-2847. I also checked my bank statement.",
        "Our dashboard is slow. We tried another browser. The charts take minutes to load.",
    ],
)
async def test_one_problem_told_in_several_sentences_is_one_ticket(
    pipeline: Pipeline, text: str
) -> None:
    """Several sentences about one matter are not split, whatever a lone sentence might suggest."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.parts == ()
    assert triage.escalation.teams == (triage.decision.team,)


# --- languages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "team"),
    [
        ("No puedo iniciar sesión desde esta mañana, la contraseña no funciona.", "es", "account_management"),  # noqa: E501
        ("ログインできません。パスワードをリセットしても駄目です。", "ja", "account_management"),
        ("Meine Rechnung ist falsch, wir wurden zweimal belastet.", "de", "billing"),
        ("今日はいい天気ですね。", "ja", "support"),
        ("Hola, ¿qué tal el fin de semana?", "es", "support"),
    ],
)  # fmt: skip
async def test_a_ticket_the_offline_model_cannot_read_goes_to_a_human_unsure(
    pipeline: Pipeline, text: str, language: str, team: str
) -> None:
    """Not English: the language is kept, confidence is capped and a human decides.

    The team is the one category its own words name (routing/cascade.py), else the fallback's.
    """
    triage = await pipeline.triage(Ticket(text=text))
    decision = triage.decision
    assert decision.language == language
    assert decision.confidence <= 0.3
    assert decision.team == team
    assert triage.escalation.needs_human
    assert "unsupported_language" in [reason.code for reason in triage.escalation.reasons]
    assert triage.summary()["language"] == language


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("¿Cómo puedo cambiar la contraseña de mi cuenta?", "account"),
        ("Wie kann ich eine Rechnung als PDF herunterladen?", "billing"),
        ("Unser gesamtes Team bekommt seit 8 Uhr nur noch Fehler 503.", "technical"),
        ("La plataforma está caída para todo nuestro equipo, nadie puede trabajar.", "technical"),
        ("请问如何修改账户的密码？", "account"),  # noqa: RUF001  # a Chinese question mark
        ("결제가 두 번 되었습니다. 환불해 주세요.", "billing"),
    ],
)
async def test_an_unread_language_s_category_comes_from_its_own_words(
    pipeline: Pipeline, text: str, category: str
) -> None:
    """The words that decided are named; the category is still a guess for a person."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == category
    assert triage.decision.team == pipeline.config.team_for(category)
    assert any("category from its words '" in reason for reason in triage.decision.reasons)
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("¿Cómo puedo cambiar la contraseña de mi cuenta?", "low"),
        ("Wie kann ich eine Rechnung als PDF herunterladen?", "low"),
        ("La plataforma está caída para todo nuestro equipo, nadie puede trabajar.", "critical"),
        ("Unser gesamtes Team bekommt seit 8 Uhr nur noch Fehler 503.", "critical"),
        ("社員全員がログインできません。", "critical"),
        ("Nous avons été prélevés deux fois ce mois-ci.", "high"),
    ],
)
async def test_an_unread_languages_priority_comes_from_its_cues_not_the_english_model(
    pipeline: Pipeline, text: str, priority: str
) -> None:
    """A Spanish or German how-to is no 'high'; an outage's words in Spanish stay critical."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == priority
    assert triage.escalation.needs_human


async def test_english_is_detected_and_changes_nothing(pipeline: Pipeline) -> None:
    """An English ticket is marked en and routed as before."""
    triage = await pipeline.triage(Ticket(text="The dashboard keeps throwing a 500 error."))
    assert triage.decision.language == "en"
    assert triage.decision.team == "engineering"
    assert "unsupported_language" not in [reason.code for reason in triage.escalation.reasons]


async def test_a_team_per_language_from_config_takes_the_ticket(
    embedder: MiniLMEmbedder, config: TriageConfig
) -> None:
    """With [languages] teams = {es = "billing"}, a Spanish ticket goes there, no language page."""
    spanish = _with(config, languages={"teams": {"es": "billing"}})
    pipeline = build_pipeline(spanish, embedder=embedder, languages=LANGUAGES)
    triage = await pipeline.triage(
        Ticket(text="No puedo iniciar sesión desde esta mañana, la contraseña no funciona.")
    )
    assert triage.decision.team == "billing"
    assert "unsupported_language" not in [reason.code for reason in triage.escalation.reasons]


async def test_a_language_template_drafts_in_that_language(
    embedder: MiniLMEmbedder, config: TriageConfig
) -> None:
    """A configured per-language template is used, with its greeting and signature."""
    drafting = config.drafting.model_copy(
        update={
            "languages": {"es": {"default": "{greeting}Gracias{reference}.\n\n{closing}"}},
            "greetings": {"es": "Hola,"},
            "signatures": {"es": "El equipo"},
        }
    )
    pipeline = build_pipeline(
        config.model_copy(update={"drafting": drafting}), embedder=embedder, languages=LANGUAGES
    )
    triage = await pipeline.triage(
        Ticket(text="La factura INV-2024-118 está mal, nos cobraron dos veces este mes.")
    )
    assert triage.draft.text == "Hola,\n\nGracias (INV-2024-118).\n\nEl equipo"


# --- long messages ------------------------------------------------------------------------------


async def test_a_long_messages_last_paragraph_counts(
    pipeline: Pipeline, embedder: MiniLMEmbedder
) -> None:
    """A 6,580-character report whose last lines are a double charge involves billing."""
    text = long_message()
    assert len(text) >= 6500
    assert embedder.count_tokens(text) > 256
    # Read as the model's window alone, the message is about the dashboard only.
    truncated = pipeline._local.classify_vector(embedder.encode([text])[0])  # type: ignore[union-attr]  # built with a model
    assert truncated.category != "billing"
    triage = await pipeline.triage(Ticket(text=text))
    assert "billing" in triage.escalation.teams
    billing = triage.decision.part_for("billing")
    assert billing is not None
    assert "charged twice" in billing.text
    assert triage.decision.team == "engineering"


def test_a_long_text_is_embedded_from_all_its_segments(
    pipeline: Pipeline, embedder: MiniLMEmbedder
) -> None:
    """Over the window, the vector is the length-weighted mean of segments that each fit it."""
    local = pipeline._local
    assert local is not None
    text = long_message()
    segments = local.segments(text)
    assert len(segments) > 1
    assert all(embedder.count_tokens(segment) <= 256 for segment in segments)
    assert "charged twice" in segments[-1]
    whole = local.embed(text)
    first_window = embedder.encode([text])[0]
    assert float(whole @ first_window) < 0.999
    assert abs(float(whole @ whole) - 1.0) < 1e-5
    short = "The export fails."
    assert local.segments(short) == [short]
    assert float(local.embed(short) @ embedder.encode([short])[0]) > 0.9999
