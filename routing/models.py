"""The pipeline's data: what comes in (Ticket), what each layer says (Decision), what goes out."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routing.redact import shown_to_agents

# The fields of a decision that each carry a confidence.
CONFIDENCE_FIELDS = ("category", "priority", "sentiment", "team")

# Which layer made a decision. "fallback" is the rules-only answer when no classifier could run;
# "agent" is a person's correction.
DecisionSource = Literal["rules", "local", "llm_cheap", "llm_strong", "fallback", "agent"]

# Who made a decision, as a sentence's object: "decided by the local model".
DECIDED_BY: dict[DecisionSource, str] = {
    "rules": "the rules",
    "local": "the local model",
    "llm_cheap": "the LLM (cheap model)",
    "llm_strong": "the LLM (strong model)",
    "fallback": "the rules alone (no model ran)",
    "agent": "an agent",
}


# Control characters a message may not carry into the store, a terminal or a model: all of C0
# but tab, newline and carriage return, and DEL (ESC among them: terminal escape sequences).
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = dict.fromkeys((*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))


def clean_text(text: str) -> str:
    """Text every encoder and terminal takes: lone surrogates become U+FFFD, controls go.

    A lone surrogate cannot be written as UTF-8 (the store, Slack and the tokenizer refuse it).
    """
    if text.isascii() and text.isprintable():
        return text
    return _SURROGATE.sub("\ufffd", text).translate(_CONTROL)


class Ticket(BaseModel):
    """One customer message, as the pipeline sees it: no Slack types."""

    model_config = ConfigDict(frozen=True)

    text: str
    author: str | None = None
    channel: str | None = None
    ts: str | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("text")
    @classmethod
    def _clean(cls, text: str) -> str:
        return clean_text(text)


class LabeledExample(BaseModel):
    """A ticket whose labels an agent (or the shipped defaults) vouches for.

    A field is None when nobody vouched for it: an agent who corrected only the priority taught
    no category, and the classifier learns nothing about the category from that example.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    category: str | None = None
    priority: str | None = None
    team: str | None = None
    sentiment: str | None = None
    title: str | None = None


# Why a message needs no action: thanks, "fixed it, never mind", "ok", an emoji alone.
NoActionKind = Literal["thanks", "resolved", "acknowledgement", "emoji", "praise"]


class IssuePart(BaseModel):
    """One distinct ask in a message with several, and the team it belongs to."""

    model_config = ConfigDict(frozen=True)

    text: str
    category: str
    team: str
    confidence: float = Field(ge=0.0, le=1.0)


class Decision(BaseModel):
    """One layer's classification of a ticket, in the configured taxonomy."""

    model_config = ConfigDict(frozen=True)

    category: str
    priority: str
    team: str
    sentiment: str
    # How likely the category is right.
    confidence: float = Field(ge=0.0, le=1.0)
    source: DecisionSource
    # How likely each field is right, for the fields in CONFIDENCE_FIELDS; a field a layer did
    # not rate falls back to `confidence` (see confidence_of).
    confidences: dict[str, float] = Field(default_factory=dict)
    # Scores per category (higher is better), for the close-call check and the audit trail.
    category_scores: dict[str, float] = Field(default_factory=dict)
    # True when the layer itself says a human should look (the LLM's flag, an off-topic ticket).
    flagged: bool = False
    off_topic: bool = False
    reasons: tuple[str, ...] = ()
    # The local classifier's raw signals, kept for audit and for calibrating confidence:
    # top score minus the second, and the best similarity to any example or label phrase.
    margin: float | None = None
    fit: float | None = None
    # The message's language (ISO 639-1), or None when too short or mixed to tell.
    language: str | None = None
    # Set when the message needs no action (routing/noise.py says which kind).
    no_action: NoActionKind | None = None
    # Two or more distinct asks for different teams, each with its part of the message.
    parts: tuple[IssuePart, ...] = ()

    def part_for(self, team: str) -> IssuePart | None:
        """The part of a multi-issue message that is this team's, if the message was split."""
        return next((part for part in self.parts if part.team == team), None)

    def confidence_of(self, field: str) -> float:
        """How likely one field (category, priority, sentiment, team) is right."""
        if field == "category":
            return self.confidence
        return self.confidences.get(field, self.confidence)

    def all_confidences(self) -> dict[str, float]:
        """Every field's confidence, in CONFIDENCE_FIELDS order."""
        return {field: self.confidence_of(field) for field in CONFIDENCE_FIELDS}

    def unsure_fields(self, below: float) -> dict[str, float]:
        """The fields whose confidence is below a threshold, with their confidence."""
        return {field: value for field, value in self.all_confidences().items() if value < below}

    def runner_up(self) -> tuple[str, float] | None:
        """The second-best category and its score, if the layer scored more than one."""
        ranked = sorted(self.category_scores.items(), key=lambda item: item[1], reverse=True)
        others = [item for item in ranked if item[0] != self.category]
        return others[0] if others else None


class RuleMatch(BaseModel):
    """What the keyword rules found in a ticket."""

    model_config = ConfigDict(frozen=True)

    category: str | None = None
    hotwords: tuple[str, ...] = ()
    forced_keywords: tuple[str, ...] = ()


class LayerCall(BaseModel):
    """The record of one layer's run: its decision or why it had none, and what it cost."""

    model_config = ConfigDict(frozen=True)

    layer: DecisionSource
    decision: Decision | None = None
    error: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None


EscalationCode = Literal[
    "critical_priority",
    "low_confidence",
    "forced_keyword",
    "model_flagged",
    "high_priority_uncertain",
    "close_call",
    "unverified",
    "off_topic",
    "empty_message",
    "vague_request",
    "unsupported_language",
    "impact_cue",
    # The LLM and a confident local decision disagree, or the LLM lowered the priority (the
    # detail gives both answers); the message tries to instruct the model.
    "model_disagrees",
    "model_lowered_priority",
    "instructs_model",
]


class EscalationReason(BaseModel):
    """One reason a ticket needs a human, in words an on-call person understands."""

    model_config = ConfigDict(frozen=True)

    code: EscalationCode
    detail: str


class Escalation(BaseModel):
    """The escalation policy's verdict: whether a human must look, why, and which teams."""

    model_config = ConfigDict(frozen=True)

    needs_human: bool
    reasons: tuple[EscalationReason, ...] = ()
    teams: tuple[str, ...] = ()


class Draft(BaseModel):
    """A reply for an agent to approve; never sent on its own."""

    model_config = ConfigDict(frozen=True)

    text: str
    source: Literal["template", "llm"]
    model: str | None = None


class Triage(BaseModel):
    """The whole outcome for one ticket: every layer's output, the final decision, and the draft."""

    model_config = ConfigDict(frozen=True)

    ticket: Ticket
    redacted_text: str
    rules: RuleMatch
    layers: tuple[LayerCall, ...]
    decision: Decision
    escalation: Escalation
    draft: Draft

    def summary(self) -> dict[str, object]:
        """The flat record the command line prints with --json."""
        return {
            "category": self.decision.category,
            "priority": self.decision.priority,
            "team": self.decision.team,
            "sentiment": self.decision.sentiment,
            "confidence": round(self.decision.confidence, 3),
            "confidences": {
                field: round(value, 3) for field, value in self.decision.all_confidences().items()
            },
            "needs_human": self.escalation.needs_human,
            "reasons": [reason.detail for reason in self.escalation.reasons],
            "reason_codes": [reason.code for reason in self.escalation.reasons],
            "teams": list(self.escalation.teams),
            "source": self.decision.source,
            "draft": self.draft.text,
            "language": self.decision.language,
            "no_action": self.decision.no_action,
            "parts": [
                {"team": part.team, "category": part.category, "text": shown_to_agents(part.text)}
                for part in self.decision.parts
            ],
            # Printed and piped to files: the redacted copy, as a post shows it.
            "text": shown_to_agents(self.ticket.text),
        }
