"""The pipeline's data: what comes in (Ticket), what each layer says (Decision), what goes out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Which layer made a decision. "fallback" is the rules-only answer when no classifier could run;
# "agent" is a person's correction.
DecisionSource = Literal["rules", "local", "llm_cheap", "llm_strong", "fallback", "agent"]


class Ticket(BaseModel):
    """One customer message, as the pipeline sees it: no Slack types."""

    model_config = ConfigDict(frozen=True)

    text: str
    author: str | None = None
    channel: str | None = None
    ts: str | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class LabeledExample(BaseModel):
    """A ticket whose labels an agent (or the shipped defaults) vouches for."""

    model_config = ConfigDict(frozen=True)

    text: str
    category: str
    priority: str | None = None
    team: str | None = None
    sentiment: str | None = None
    title: str | None = None


# Why a message needs no action: thanks, "fixed it, never mind", "ok", an emoji alone.
NoActionKind = Literal["thanks", "resolved", "acknowledgement", "emoji"]


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
    confidence: float = Field(ge=0.0, le=1.0)
    source: DecisionSource
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
            "needs_human": self.escalation.needs_human,
            "reasons": [reason.detail for reason in self.escalation.reasons],
            "reason_codes": [reason.code for reason in self.escalation.reasons],
            "teams": list(self.escalation.teams),
            "source": self.decision.source,
            "draft": self.draft.text,
            "language": self.decision.language,
            "no_action": self.decision.no_action,
            "parts": [
                {"team": part.team, "category": part.category, "text": part.text}
                for part in self.decision.parts
            ],
            "text": self.ticket.text,
        }
