"""The decision pipeline: redact, rules, local classifier, optional LLM, escalation, draft."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Literal, Protocol

from routing.config import TriageConfig
from routing.drafter import TemplateDrafter
from routing.embedding import Embedder
from routing.escalation import escalate
from routing.local import LocalClassifier
from routing.models import (
    Decision,
    Draft,
    LabeledExample,
    LayerCall,
    RuleMatch,
    Ticket,
    Triage,
)
from routing.redact import redact
from routing.rules import Rules

logger = logging.getLogger(__name__)

# Confidence given to a category that a hotword decided; the rule is certain, the rest is not.
HOTWORD_CONFIDENCE = 0.9

# What an LLM failure may say in an escalation reason: a few plain words, a status, a field name.
_FAILURE_KIND = re.compile(r"[A-Za-z0-9 _().,:/-]{1,80}")


class LLMLayer(Protocol):
    """What the cascade needs of an LLM: classify with examples, and draft."""

    async def classify(
        self,
        redacted_text: str,
        *,
        examples: Sequence[LabeledExample],
        model: str,
        source: Literal["llm_cheap", "llm_strong"],
    ) -> LayerCall:
        """Classify redacted text; never raises, puts failures in LayerCall.error."""
        ...

    async def draft(self, redacted_text: str, *, decision: Decision, model: str) -> Draft | None:
        """Draft a reply, or None when the template should be used."""
        ...


class Pipeline:
    """Runs one ticket through every layer; holds the examples the classifier learns from."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        local: LocalClassifier | None,
        llm: LLMLayer | None = None,
    ) -> None:
        self.config = config
        self._rules = Rules(config.rules)
        self._local = local
        self._llm = llm
        self._drafter = TemplateDrafter(config)

    @property
    def offline_only(self) -> bool:
        """True when no LLM is configured."""
        return self._llm is None

    def learn(self, example: LabeledExample) -> None:
        """Use a corrected ticket as a labeled example from the next ticket on."""
        if self._local is not None:
            self._local.add_example(example)

    def learn_many(self, examples: Sequence[LabeledExample]) -> None:
        """Learn many labeled examples at once (stored corrections at start-up): one fit."""
        if self._local is not None:
            self._local.add_examples(examples)

    def rules(self, text: str) -> RuleMatch:
        """What the keyword rules find in a text."""
        return self._rules.match(text)

    async def triage(self, ticket: Ticket) -> Triage:
        """Classify, escalate and draft one ticket; never raises for a model's failure."""
        redacted = redact(ticket.text).text
        rules = self.rules(ticket.text)
        layers: list[LayerCall] = []
        unverified: str | None = None

        nearest: list[LabeledExample] = []
        if self._local is not None:
            # The model's forward pass is the slow part: off the event loop, so Slack's acks and
            # the other workers never wait for it.
            query = await asyncio.to_thread(self._local.embed, redacted)
            decision = self._local.classify_vector(query, text=redacted)
            layers.append(LayerCall(layer="local", decision=decision))
            if self._llm is not None:
                nearest = self._local.nearest_examples(query, self.config.llm.few_shot_examples)
        else:
            decision = self._rules_only_decision(rules)
            layers.append(LayerCall(layer="fallback", decision=decision))
            unverified = "the local model is not installed"

        if self._llm is not None and ticket.text.strip():
            decision, unverified = await self._ask_llm(
                redacted, decision, nearest, layers, unverified
            )

        decision = self._apply_hotword(decision, rules)
        escalation = escalate(ticket, decision, rules, self.config, unverified=unverified)
        draft = await self.draft(redacted, decision)
        return Triage(
            ticket=ticket,
            redacted_text=redacted,
            rules=rules,
            layers=tuple(layers),
            decision=decision,
            escalation=escalation,
            draft=draft,
        )

    async def _ask_llm(
        self,
        redacted: str,
        best: Decision,
        nearest: Sequence[LabeledExample],
        layers: list[LayerCall],
        unverified: str | None,
    ) -> tuple[Decision, str | None]:
        assert self._llm is not None  # noqa: S101  # only called when an LLM is configured
        settings = self.config.llm
        # Examples include agents' corrections, which are customers' words: redact them too.
        examples = [
            example.model_copy(update={"text": redact(example.text).text}) for example in nearest
        ]
        steps: list[tuple[Literal["llm_cheap", "llm_strong"], str | None]] = [
            ("llm_cheap", settings.cheap_model),
            ("llm_strong", settings.strong_model),
        ]
        for source, model in steps:
            if model is None:
                continue
            call = await self._llm.classify(redacted, examples=examples, model=model, source=source)
            layers.append(call)
            if call.decision is None:
                # Keep the best decision so far; a human must check it. The reason reaches agents
                # in Slack, so it carries only the kind of failure, never the model's words.
                failure = _failure_kind(call.error)
                logger.warning(
                    "LLM layer %s failed (%s); keeping the %s decision",
                    source,
                    failure,
                    best.source,
                )
                return best, f"{source} failed: {failure}"
            best, unverified = call.decision, None
            if best.confidence >= self.config.thresholds.strong_model_below:
                break
        return best, unverified

    def _apply_hotword(self, decision: Decision, rules: RuleMatch) -> Decision:
        if rules.category is None or decision.source == "fallback":
            return decision
        words = ", ".join(f"'{word}'" for word in rules.hotwords)
        return decision.model_copy(
            update={
                "category": rules.category,
                "team": self.config.team_for(rules.category)
                if rules.category != decision.category
                else decision.team,
                "confidence": max(decision.confidence, HOTWORD_CONFIDENCE),
                "confidences": {
                    **decision.confidences,
                    "team": max(decision.confidence_of("team"), HOTWORD_CONFIDENCE),
                },
                "category_scores": {rules.category: 1.0},
                "source": "rules",
                "off_topic": False,
                "reasons": (*decision.reasons, f"hotword {words} decides {rules.category}"),
            }
        )

    def _rules_only_decision(self, rules: RuleMatch) -> Decision:
        config = self.config
        fallback_categories = [c.name for c in config.categories if c.team == config.fallback_team]
        category = rules.category or (fallback_categories or list(config.category_names))[0]
        reasons = (f"hotword decides {category}",) if rules.category else ("no classifier ran",)
        return Decision(
            category=category,
            priority=config.default_priority,
            team=config.team_for(category),
            sentiment=config.default_sentiment,
            confidence=HOTWORD_CONFIDENCE if rules.category else 0.0,
            source="fallback",
            category_scores={category: 1.0},
            reasons=reasons,
        )

    async def draft(self, redacted: str, decision: Decision) -> Draft:
        """A reply to a redacted ticket: the LLM's when configured, else the template's."""
        settings = self.config.llm
        model = settings.cheap_model
        if self._llm is not None and settings.draft_replies and model is not None:
            drafted = await self._llm.draft(redacted, decision=decision, model=model)
            if drafted is not None:
                return drafted
        return self._drafter.draft(redacted, decision)


def _failure_kind(error: str | None) -> str:
    """An LLM layer's error as fit for agents and logs: plain words only, and short.

    The LLM layer already reports only the kind of failure in fixed words; this is a backstop so
    that no other implementation can put a mention (`<!channel>`, `<@U...>`), a link, an email
    address or a long quote of the ticket into a page note.
    """
    if error is None or not _FAILURE_KIND.fullmatch(error):
        return "unusable answer"
    return error


def build_pipeline(
    config: TriageConfig,
    *,
    embedder: Embedder | None,
    examples: Sequence[LabeledExample] | None = None,
    llm: LLMLayer | None = None,
) -> Pipeline:
    """Wire the layers for a config; examples default to the config's labeled examples."""
    labeled = list(examples) if examples is not None else config.load_examples()
    local = (
        LocalClassifier(embedder=embedder, config=config, examples=labeled)
        if embedder is not None
        else None
    )
    return Pipeline(config=config, local=local, llm=llm)
