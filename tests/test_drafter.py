"""Offline drafts: per category, calibrated to sentiment, reusing references, never promising."""

from __future__ import annotations

import pytest

from routing.config import TriageConfig, load_config
from routing.drafter import TemplateDrafter, find_promise, find_reference
from routing.models import Decision


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


def _decision(
    category: str, sentiment: str = "neutral", priority: str = "low", confidence: float = 0.9
) -> Decision:
    config = load_config()
    return Decision(
        category=category,
        priority=priority,
        team=config.team_for(category),
        sentiment=sentiment,
        confidence=confidence,
        source="local",
    )


def test_frustrated_billing_draft_is_empathetic_and_repeats_the_order(config: TriageConfig) -> None:
    """A frustrated billing ticket gets an apology, the billing wording and its order number."""
    text = "I was charged twice. Order #ORD-2847."
    draft = TemplateDrafter(config).draft(text, _decision("billing", "frustrated", "high"))
    assert "I'm sorry for the trouble" in draft.text
    assert "billing team" in draft.text
    assert "ORD-2847" in draft.text
    assert draft.source == "template"


def test_question_draft_is_brief_and_neutral(config: TriageConfig) -> None:
    """A plain question gets a short reply with no apology."""
    draft = TemplateDrafter(config).draft("Does Pro include API access?", _decision("general"))
    assert "sorry" not in draft.text.lower()
    assert len(draft.text) < 200


def test_angry_critical_draft_mentions_escalation(config: TriageConfig) -> None:
    """An angry customer with a critical ticket hears that on-call people have it."""
    draft = TemplateDrafter(config).draft(
        "Everything is down", _decision("technical", "angry", "critical")
    )
    assert "I understand how disruptive" in draft.text
    assert "escalated" in draft.text


@pytest.mark.parametrize(
    "category", ["billing", "technical", "account", "feature_request", "general"]
)
@pytest.mark.parametrize("sentiment", ["neutral", "frustrated", "angry", "satisfied"])
def test_no_template_promises_anything(config: TriageConfig, category: str, sentiment: str) -> None:
    """No shipped template promises a refund, a date or an outcome."""
    draft = TemplateDrafter(config).draft("refund me by tomorrow", _decision(category, sentiment))
    assert find_promise(draft.text) is None, draft.text


@pytest.mark.parametrize(
    "text",
    [
        "We will refund the duplicate charge.",
        "You'll receive a refund shortly.",
        "Your refund has been issued.",
        "It will be fixed by tomorrow.",
        "We guarantee this won't happen again.",
        "Expect an answer within 24 hours.",
    ],
)
def test_promises_are_detected(text: str) -> None:
    """Refund, date and outcome promises are recognised."""
    assert find_promise(text) is not None


def test_reference_is_found() -> None:
    """Order-style references are picked out of the ticket."""
    assert find_reference("charged twice, Order #ORD-2847.") == "#ORD-2847"
    assert find_reference("invoice 123456 is wrong") == "invoice 123456"
    assert find_reference("no reference here") is None


def test_unsure_decision_gets_the_generic_draft(config: TriageConfig) -> None:
    """Below the confidence threshold the draft does not speak for a guessed category."""
    draft = TemplateDrafter(config).draft(
        "The thing in the settings looks odd.", _decision("account", confidence=0.1)
    )
    assert "account team" not in draft.text
    assert "The right team is looking at your message" in draft.text
