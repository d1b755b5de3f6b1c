"""An agent's correction: what it changes in a decision, and what the classifier learns from it.

`/triage reclassify` (routing.desk) and the correction replay of `triage eval
--replay-corrections` (routing.replay) both go through these two functions, so a replayed
correction teaches exactly what an agent's does.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.config import TriageConfig
from routing.models import Decision, LabeledExample
from routing.redact import redact

CORRECTABLE_FIELDS = ("category", "priority", "team", "sentiment")


@dataclass(frozen=True)
class Correction:
    """The labels an agent set (or confirmed by naming them); None for what they left alone."""

    category: str | None = None
    priority: str | None = None
    team: str | None = None
    sentiment: str | None = None

    @property
    def empty(self) -> bool:
        """True when the agent named no field."""
        return all(getattr(self, field) is None for field in CORRECTABLE_FIELDS)

    def problem(self, config: TriageConfig) -> str | None:
        """What is wrong with the correction for this taxonomy (each unknown label), or None.

        Every bad field is named at once, so the agent fixes the command in one go.
        """
        problems = [
            f"Unknown {field} `{value}`: use one of {', '.join(allowed)}."
            for field, allowed in (
                ("category", config.category_names),
                ("priority", config.priority_names),
                ("team", config.team_names),
                ("sentiment", config.sentiment_names),
            )
            if (value := getattr(self, field)) is not None and value not in allowed
        ]
        return "\n".join(problems) or None


def corrected_decision(old: Decision, correction: Correction, config: TriageConfig) -> Decision:
    """The decision after the correction: the agent's labels, the rest kept from the old one.

    A new category brings its default team unless the agent named a team too.
    """
    category = correction.category or old.category
    team = correction.team or (config.team_for(category) if correction.category else old.team)
    # What the agent named is certain; the fields left are still the bot's guesses.
    confidences = dict(old.confidences)
    for field, named in (
        ("priority", correction.priority),
        ("sentiment", correction.sentiment),
        ("team", correction.team or correction.category),
    ):
        if named is not None:
            confidences[field] = 1.0
    return old.model_copy(
        update={
            "category": category,
            "priority": correction.priority or old.priority,
            "team": team,
            "sentiment": correction.sentiment or old.sentiment,
            "confidence": 1.0,
            "confidences": confidences,
            "source": "agent",
            "off_topic": False,
            "flagged": False,
            "category_scores": {category: 1.0},
            "reasons": ("reclassified by an agent",),
        }
    )


def correction_example(text: str, correction: Correction) -> LabeledExample:
    """The labeled example an agent's correction teaches: only the fields the agent named.

    A category-only correction teaches no priority, sentiment or team: the bot's own guesses for
    those were never confirmed by anyone, and learning them would make the bot more sure of its
    own mistakes. The text is learnt redacted, as the ticket was classified and as the store
    keeps it: the classifier learns the same vector now and after a restart, and a learnt
    example shown to an LLM as a few-shot example carries no customer's card or address.
    """
    return LabeledExample(
        text=redact(text).text,
        category=correction.category,
        priority=correction.priority,
        team=correction.team,
        sentiment=correction.sentiment,
    )
