"""Cue word classes (`{name}` from [cue_words]), the sentence gap `**`, and general rules.

The rules of severity written with them: a whole kind of request failing, a group's work stopped,
nothing coming through, many records emptied, a restricted page open without a sign-in, and
someone whose access ended still getting in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.config import expand_cue_words, load_config
from routing.cues import Cues, cue_pattern, normalize_for_cues
from routing.errors import ConfigError
from tests.config_variants import write_variant


def _matches(cue: str, text: str) -> bool:
    return cue_pattern(cue).search(normalize_for_cues(text)) is not None


def _critical_cues(text: str) -> tuple[str, ...]:
    config = load_config()
    found = Cues(config.priorities).match(text).found
    return found[config.priority_rank("critical")]


def test_a_word_class_is_written_out_as_a_choice() -> None:
    classes = {"scope": ("every", "all of our"), "thing": ("sync", "job")}
    assert (
        expand_cue_words("{scope} {thing} + down", classes)
        == "[every|all of our] [sync|job] + down"
    )
    assert expand_cue_words("plain [a|b]", classes) == "plain [a|b]"


def test_a_cue_naming_an_unlisted_class_is_a_config_error(tmp_path: Path) -> None:
    path = write_variant(
        tmp_path, '"{whole} {flows} ** {failure}",', '"{whole} {flowz} ** {failure}",'
    )
    with pytest.raises(ConfigError, match="flowz"):
        load_config(path)


def test_a_class_phrase_with_cue_syntax_is_a_config_error(tmp_path: Path) -> None:
    path = write_variant(tmp_path, 'whole = ["every", ', 'whole = ["[every|each]", ')
    with pytest.raises(ConfigError, match=r"cue_words\.whole"):
        load_config(path)


def test_the_sentence_gap_spans_a_clause_but_not_a_sentence() -> None:
    """`**` is up to eight words of the same sentence; `*` stays three."""
    assert _matches("every call ** failing", "every call to the orders endpoint is failing")
    assert not _matches("every call * failing", "every call to the orders endpoint is failing")
    assert not _matches("every call ** failing", "We checked every call. The import is failing.")
    assert not _matches(
        "every call ** failing",
        "every call we made this week to your team about it ended up failing",
    )


@pytest.mark.parametrize(
    "text",
    [
        "All API requests to /v1/orders are failing with 503 since the release.",
        "Every sync errors out since this morning, on every workspace.",
        "Our entire warehouse team is idle because the scanner app won't load.",
        "Nothing is arriving in the shared inbox since 9am.",
        "The migration wiped about 600 of our contacts.",
        "After the merge roughly 900 deals are blank in the pipeline view.",
        "The board is set to private, but a colleague's phone opened it without logging in and "
        "could see every card.",
        "Our former office manager was offboarded in March, yet the audit trail shows her logged "
        "in this morning.",
        "There are no records at all for last week in the timesheet view. They were there on "
        "Friday.",
        "Niemand im Lager kann sich anmelden, seit heute früh.",
        "The resident portal says 'unavailable' to all our tenants since noon.",
    ],
)
def test_general_rules_of_severity_find_an_incident(text: str) -> None:
    assert _critical_cues(text)


@pytest.mark.parametrize(
    "text",
    [
        "Our card payment failed, and the API answers 429 for every call since the upgrade.",
        "We lost about 20 minutes on this yesterday, can you explain the new filter?",
        "We deleted 40 of our old projects, how do we restore one of them?",
        "The export failed once; every other export this week went through.",
        "How do I make a private board visible to a client?",
        "Dana left the company last month, please remove her seat.",
        # How often, typed for emphasis, is no scope.
        "The editor drops my bullet points when I paste, they are gone. Every. Single. Time.",
    ],
)
def test_general_rules_of_severity_leave_ordinary_tickets_alone(text: str) -> None:
    assert not _critical_cues(text)
