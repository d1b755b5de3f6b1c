"""Keyword rules: case-, accent- and whitespace-insensitive, on word boundaries."""

from __future__ import annotations

import pytest

from routing.config import load_config
from routing.rules import Rules, normalize


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules(load_config().rules)


def test_normalize_folds_case_accents_and_space() -> None:
    """Case, accents, dashes and runs of white space are folded."""
    assert normalize("  PRODUCTION\t\n  Döwn—ünïcode ") == "production down—unicode"
    assert normalize("data-loss") == "data loss"


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("This is URGENT", "urgent"),
        ("production   down since noon", "production down"),
        ("Prodúction\nDown", "production down"),
        ("we had DATA-LOSS overnight", "data loss"),
        ("GDPR request for my data", "gdpr"),
        ("KVKK kapsam\N{LATIN SMALL LETTER DOTLESS I}nda başvuru", "kvkk"),
        ("two outages this week", "outage"),
        ("please fix asap!!!", "asap"),
    ],
)
def test_forced_keywords_match_however_typed(rules: Rules, text: str, keyword: str) -> None:
    """Forced keywords match across case, accents, spacing and plurals."""
    assert keyword in rules.match(text).forced_keywords


@pytest.mark.parametrize("text", ["the urgently needed report", "gasap", "outageous", "dataloss"])
def test_forced_keywords_respect_word_boundaries(rules: Rules, text: str) -> None:
    """A keyword inside another word does not match."""
    assert rules.match(text).forced_keywords == ()


def test_hotword_decides_billing(rules: Rules) -> None:
    """Refund, chargeback and money back decide billing outright."""
    for text in ["I want a REFUND", "filed a Chargeback", "I want my Money  Back", "refunds?"]:
        match = rules.match(text)
        assert match.category == "billing", text
        assert match.hotwords


def test_no_rule_matches_plain_text(rules: Rules) -> None:
    """Ordinary text matches nothing."""
    match = rules.match("The export button does nothing when I click it.")
    assert match.category is None
    assert match.forced_keywords == ()


@pytest.mark.parametrize(
    "text",
    [
        "Not urgent: could you update our address?",
        "Quick one, not urgent at all.",
        "nothing urgent, just curious",
        "This is non-urgent",
        "it's not super urgent",
        "No outage on our side, the export is just slow",
    ],
)
def test_a_negated_forced_keyword_forces_nothing(rules: Rules, text: str) -> None:
    """'Not urgent', 'nothing urgent', 'non-urgent', 'no outage' say the opposite: no human."""
    assert rules.match(text).forced_keywords == ()


@pytest.mark.parametrize(
    "text",
    [
        "URGENT: the site is down",
        "I don't know if it counts, but it is urgent",
        "not urgent yesterday, urgent now",
        "We are not sure, urgent please",
    ],
)
def test_a_keyword_said_plainly_somewhere_still_forces(rules: Rules, text: str) -> None:
    """One plain occurrence is enough, whatever negation is elsewhere in the message."""
    assert rules.match(text).forced_keywords == ("urgent",)


@pytest.mark.parametrize(
    "text",
    [
        "The Zapier step 'Create Refund' fails with a missing field error.",
        'Searching "refund" in the inbox shows tickets of another workspace.',
        "Calling `refund()` in the SDK raises a TypeError.",
    ],
)
def test_a_quoted_hotword_is_a_name_not_the_topic(rules: Rules, text: str) -> None:
    """A UI label, a search term or a function name in quotes decides no category."""
    assert rules.match(text).category is None


def test_an_unquoted_hotword_still_decides_beside_quotes(rules: Rules) -> None:
    """Quotes elsewhere do not hide the ticket's own words."""
    assert rules.match("I clicked 'Cancel plan' and still want a refund.").category == "billing"
