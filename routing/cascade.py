"""The decision pipeline: redact, rules, local classifier, optional LLM, escalation, draft."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypeVar

from routing.config import TriageConfig
from routing.cues import Cues, original_words
from routing.draft_checks import DraftRejected
from routing.drafter import TemplateDrafter
from routing.embedding import Embedder, Vector
from routing.escalation import escalate
from routing.injection import find_instruction
from routing.language import DetectedLanguage, LanguageDetector, language_name
from routing.local import LocalClassifier, hypothetical_question
from routing.models import (
    Decision,
    Draft,
    Escalation,
    EscalationReason,
    IssuePart,
    LabeledExample,
    LayerCall,
    RuleMatch,
    Ticket,
    Triage,
)
from routing.noise import Reading, read_message
from routing.parts import attach_short_marked, clauses, distinct_parts, marked_clauses
from routing.paste import told_words
from routing.redact import redact
from routing.rules import Rules, without_identifiers

logger = logging.getLogger(__name__)

# Confidence given to a category that a hotword decided; the rule is certain, the rest is not.
HOTWORD_CONFIDENCE = 0.9

# The most an offline decision on a message in a language the model cannot read may claim: below
# any sensible human_confidence, so such a ticket reaches a person unless a team per language is
# configured.
UNREAD_LANGUAGE_CONFIDENCE = 0.3

_T = TypeVar("_T")
_L = TypeVar("_L")

# What `_within` answers when the deadline passed first.
_LATE: Final = object()

# The most texts the local stage reads in one thread hop (one forward pass): a pass over 8-16
# short texts costs each about half of a pass of its own (the weights are walked once).
READ_BATCH: Final = 16

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

    async def draft(
        self, redacted_text: str, *, decision: Decision, model: str
    ) -> Draft | DraftRejected | None:
        """Draft a reply; None or DraftRejected (why, in fixed words) when the template is used."""
        ...


@dataclass(frozen=True)
class _Read:
    """What the local stage reads from a message off the event loop (see _read_texts)."""

    redacted: str
    # What the local classifier reads: the redacted text, or the customer's words around a
    # pasted log (routing.paste).
    told: str
    language: DetectedLanguage | None
    query: Vector | None  # the message's embedding; None without a local classifier
    pieces: list[tuple[str, bool]]  # its clauses that may be distinct asks


@dataclass
class _Reads:
    """Texts waiting for the local stage's thread on one event loop, and the task reading them."""

    loop: asyncio.AbstractEventLoop
    waiting: list[tuple[str, asyncio.Future[_Read]]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Start:
    """What the local stage found, kept for the model stage to refine from."""

    ticket: Ticket
    redacted: str
    rules: RuleMatch
    # The local classifier's call (or the rules-only fallback's), and its raw decision.
    layers: tuple[LayerCall, ...]
    decision: Decision
    unverified: str | None
    reading: Reading
    language: DetectedLanguage | None
    readable: bool
    # The offline parts of a multi-issue message, and the examples nearest to it (few-shot).
    parts: tuple[IssuePart, ...]
    nearest: tuple[LabeledExample, ...]


@dataclass(frozen=True)
class LocalTriage:
    """The local stage's triage, ready to post, and what the model stage refines it from."""

    triage: Triage
    start: _Start


@dataclass(frozen=True)
class Refinement:
    """The model stage's triage; answered is False when the model gave nothing in time."""

    triage: Triage
    answered: bool


class Pipeline:
    """Runs one ticket through every layer; holds the examples the classifier learns from."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        local: LocalClassifier | None,
        llm: LLMLayer | None = None,
        languages: LanguageDetector | None = None,
    ) -> None:
        self.config = config
        self._rules = Rules(config.rules)
        self._local = local
        self._llm = llm
        self._drafter = TemplateDrafter(config)
        self._priority_cues = Cues(config.priorities)
        # Read on a ticket the offline model cannot read: its category's words decide, or nobody.
        self._category_cues = Cues(config.categories)
        # Its model loads on first use (1-3 s); one detector may serve several pipelines.
        self._languages = languages or LanguageDetector(
            candidates=config.languages.candidates,
            min_probability=config.languages.min_probability,
        )
        self._reads: _Reads | None = None

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

    def urgency(self, text: str) -> int:
        """How urgent a text sounds before it is classified: a priority rank (0 the least).

        The rank of the most urgent priority whose cues are in it, the top one for a forced
        keyword: cheap, so the tickets waiting to be decided can be ordered by it.
        """
        if self.rules(text).forced_keywords:
            return len(self.config.priorities) - 1
        found = self._priority_cues.match(text).found
        return max((rank for rank, cues in enumerate(found) if cues), default=0)

    @property
    def refines(self) -> bool:
        """True when an LLM is configured: a local triage is then refined by the model stage."""
        return self._llm is not None

    async def triage(self, ticket: Ticket) -> Triage:
        """Classify, escalate and draft one ticket; never raises for a model's failure."""
        local = await self.triage_locally(ticket)
        if self._llm is None:
            return local.triage
        # The whole LLM layer (classifiers and draft) answers within this, or not at all.
        deadline = asyncio.get_running_loop().time() + self.config.llm.deadline_seconds
        return (await self.refine(local, deadline=deadline)).triage

    async def triage_locally(self, ticket: Ticket) -> LocalTriage:
        """The fast stage: redaction, rules, the local classifier, noise, escalation, offline draft.

        What `triage` decides with no LLM, and with an LLM what `refine` starts from.
        """
        rules = self.rules(ticket.text)
        layers: list[LayerCall] = []
        unverified: str | None = None
        reading = self._reading(ticket.text, rules)
        # Off the event loop, in one hop: redaction (a 40 KB message takes it a tenth of a
        # second), the language, the model's forward pass (the slow part) and the message's
        # pieces; so Slack's acks and the other workers never wait for them.
        read = await self._read(ticket.text)
        redacted, language = read.redacted, read.language
        readable = language is None or language.code in self.config.languages.offline

        nearest: list[LabeledExample] = []
        parts: tuple[IssuePart, ...] = ()
        if self._local is not None:
            assert read.query is not None  # noqa: S101  # embedded with a local classifier
            query = read.query
            decision = self._local.classify_vector(query, text=read.told)
            if read.told != redacted:
                decision = decision.model_copy(
                    update={
                        "reasons": (
                            *decision.reasons,
                            "a pasted log: read by the words around it and its first line",
                        )
                    }
                )
            layers.append(LayerCall(layer="local", decision=decision))
            if self._llm is not None:
                nearest = self._local.nearest_examples(query, self.config.llm.few_shot_examples)
            if readable and reading.no_action is None and len(read.pieces) >= 2:
                parts = await asyncio.to_thread(self._local_parts, read.pieces, decision.team)
        else:
            decision = self._rules_only_decision(rules)
            layers.append(LayerCall(layer="fallback", decision=decision))
            unverified = "the local model is not installed"
        start = _Start(
            ticket=ticket,
            redacted=redacted,
            rules=rules,
            layers=tuple(layers),
            decision=decision,
            unverified=unverified,
            reading=reading,
            language=language,
            readable=readable,
            parts=parts,
            nearest=tuple(nearest),
        )
        decided, escalation = self._conclude(start, decision, reading, parts, unverified)
        triage = Triage(
            ticket=ticket,
            redacted_text=redacted,
            rules=rules,
            layers=start.layers,
            decision=decided,
            escalation=escalation,
            draft=self._drafter.draft(redacted, decided),
        )
        return LocalTriage(triage=triage, start=start)

    async def refine(self, local: LocalTriage, *, deadline: float) -> Refinement:
        """The model stage: the LLM's classification (within the floors) and draft of a ticket.

        `deadline` is on the event loop's clock; past it no request is made. A model that gives
        no classification in time leaves the local triage as it is, saying so in its reasons.
        """
        start = local.start
        redacted, rules, reading = start.redacted, start.rules, start.reading
        decision, unverified, parts = start.decision, start.unverified, start.parts
        layers = list(start.layers)
        overruled: tuple[EscalationReason, ...] = ()
        if self._llm is not None and start.ticket.text.strip():
            floor = layers[0].decision if layers[0].layer == "local" else None
            decision, unverified = await self._ask_llm(
                redacted, decision, start.nearest, layers, unverified, deadline=deadline
            )
            if decision.source in ("llm_cheap", "llm_strong"):
                # What the rules and a confident local classifier know, the model cannot lower.
                decision, overruled = self._hold_floors(
                    decision, floor, rules, readable=start.readable
                )
                # The LLM read the whole message in any language: its parts stand. Its "no
                # action" stands unless a forced keyword is there, the noise filter found a
                # vague request, or the filter (which reads English well) sees a ticket in it.
                parts = _grounded_parts(
                    decision.parts,
                    redacted,
                    min_confidence=self.config.multi_issue.min_confidence,
                    max_parts=self.config.multi_issue.max_parts,
                )
                if decision.no_action is not None:
                    if (
                        rules.forced_keywords
                        or reading.vague
                        or (reading.no_action is None and start.readable)
                    ):
                        decision = decision.model_copy(update={"no_action": None})
                    else:
                        kind = reading.no_action or decision.no_action
                        reading = Reading(no_action=kind, vague=False)
            elif layers[-1].error == self._late():
                # No answer in time: what was decided without the model stands, as it was shown.
                said = f"the model did not answer ({self._late()}): the local decision stands"
                stood = local.triage.decision
                return Refinement(
                    triage=local.triage.model_copy(
                        update={
                            "layers": tuple(layers),
                            "decision": stood.model_copy(
                                update={"reasons": (*stood.reasons, said)}
                            ),
                        }
                    ),
                    answered=False,
                )
        decision, escalation = self._conclude(
            start, decision, reading, parts, unverified, overruled
        )
        draft, note = await self._draft(redacted, decision, deadline=deadline)
        if note is not None:
            # The card shows the decision's reasons: the agent reads why this draft is offline.
            decision = decision.model_copy(update={"reasons": (*decision.reasons, note)})
        return Refinement(
            triage=Triage(
                ticket=start.ticket,
                redacted_text=redacted,
                rules=rules,
                layers=tuple(layers),
                decision=decision,
                escalation=escalation,
                draft=draft,
            ),
            answered=True,
        )

    def _conclude(
        self,
        start: _Start,
        decision: Decision,
        reading: Reading,
        parts: tuple[IssuePart, ...],
        unverified: str | None,
        overruled: Sequence[EscalationReason] = (),
    ) -> tuple[Decision, Escalation]:
        """A layer's decision with the hotwords, noise, language and parts; and its escalation."""
        decision = self._apply_hotword(decision, start.rules)
        decision = self._finish(decision, reading, start.language, parts, text=start.redacted)
        escalation = escalate(
            start.ticket, decision, start.rules, self.config, unverified=unverified
        )
        escalation = self._finish_escalation(escalation, decision, reading, overruled)
        return decision, escalation

    def _reading(self, text: str, rules: RuleMatch) -> Reading:
        """The noise filter's view; a forced keyword ("urgent") is never noise."""
        if not self.config.noise.enabled or rules.forced_keywords:
            return Reading(vague=not rules.forced_keywords and read_message(text).vague)
        reading = read_message(text)
        if reading.no_action is not None and any(self._priority_cues.match(text).hits()[1:]):
            # The filter reads words; a cue of impact or scope above the lowest priority ("the
            # whole office", "someone else's invoices") says there is a problem in it after all.
            return Reading(vague=reading.vague)
        return reading

    async def _read(self, text: str) -> _Read:
        """What the local stage reads of a text, off the event loop.

        Texts asked for while a read is under way (a burst's tickets, decided by several
        workers) wait and are read together, in one thread hop and one forward pass.
        """
        loop = asyncio.get_running_loop()
        reads = self._reads
        if reads is None or reads.loop is not loop:
            reads = self._reads = _Reads(loop)  # a new loop: an old one's waiters are gone
        future: asyncio.Future[_Read] = loop.create_future()
        reads.waiting.append((text, future))
        if reads.reader is None or reads.reader.done():
            reads.reader = loop.create_task(self._read_waiting(reads))
        return await future

    async def _read_waiting(self, reads: _Reads) -> None:
        """Read the waiting texts a batch at a time until none wait."""
        batch: list[tuple[str, asyncio.Future[_Read]]] = []
        try:
            while reads.waiting:
                batch = [(t, f) for t, f in reads.waiting[:READ_BATCH] if not f.cancelled()]
                del reads.waiting[:READ_BATCH]
                if not batch:
                    continue
                try:
                    results = await asyncio.to_thread(self._read_texts, [t for t, _ in batch])
                except Exception:
                    # A text that cannot be read fails its own ticket only: each read alone.
                    for text, future in batch:
                        try:
                            (result,) = await asyncio.to_thread(self._read_texts, [text])
                        except Exception as error:
                            if not future.done():
                                future.set_exception(error)
                        else:
                            if not future.done():
                                future.set_result(result)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
                batch = []
        finally:
            # Stopped (the loop is closing): nobody waits on in silence.
            for _, future in [*batch, *reads.waiting]:
                future.cancel()
            reads.waiting.clear()

    def _read_texts(self, texts: Sequence[str]) -> list[_Read]:
        """What the local stage reads of each text: redaction, language, embedding, pieces.

        Run off the event loop; the texts' embeddings are one forward pass.
        """
        redacted = [redact(text).text for text in texts]
        told = [told_words(text) for text in redacted]
        languages = [self._languages.detect(text) for text in told]
        queries: Sequence[Vector | None] = (
            # A name in code is no topic for the model either ('refund_policy is not defined').
            list(self._local.embed_many([without_identifiers(words) for words in told]))
            if self._local is not None
            else [None] * len(told)
        )
        return [
            _Read(
                redacted=text,
                told=words,
                language=language,
                query=query,
                pieces=self._pieces(words),
            )
            for text, words, language, query in zip(redacted, told, languages, queries, strict=True)
        ]

    def _pieces(self, redacted: str) -> list[tuple[str, bool]]:
        """A message's clauses that may be distinct asks (fewer than two: none to classify)."""
        settings = self.config.multi_issue
        if not settings.enabled or self._local is None:
            return []
        pieces = attach_short_marked(marked_clauses(redacted), settings.min_words)
        while len(pieces) > settings.max_parts:
            # A very long message: neighbouring pieces joined, two by two, until few enough.
            pieces = [
                (" ".join(text for text, _ in pair), any(mark for _, mark in pair))
                for pair in (pieces[i : i + 2] for i in range(0, len(pieces), 2))
            ]
        return pieces

    def _local_parts(
        self, pieces: Sequence[tuple[str, bool]], whole_team: str
    ) -> tuple[IssuePart, ...]:
        """Distinct asks for different teams, each classified on its own (offline)."""
        assert self._local is not None  # noqa: S101  # only called with a local classifier
        settings = self.config.multi_issue
        if len(pieces) < 2:
            return ()
        vectors = self._local.embed_many([piece for piece, _ in pieces])
        # Each piece is read with its own cues, as the whole message is.
        decisions = [
            self._local.classify_vector(vector, text=piece)
            for vector, (piece, _) in zip(vectors, pieces, strict=True)
        ]
        return distinct_parts(
            pieces,
            decisions,
            whole_team=whole_team,
            min_confidence=settings.min_confidence,
            min_words=settings.min_words,
        )

    def _finish(
        self,
        decision: Decision,
        reading: Reading,
        language: DetectedLanguage | None,
        parts: tuple[IssuePart, ...],
        *,
        text: str,
    ) -> Decision:
        """The decision with what the noise filter, the language and the parts add to it."""
        config = self.config
        update: dict[str, object] = {"language": language.code if language else None}
        reasons = list(decision.reasons)
        if reading.no_action is not None or reading.vague:
            # Nothing to classify: the team that takes what fits nowhere gets it.
            team = config.noise.team if reading.no_action is not None else None
            update.update(self._fallback_labels(decision, team or config.fallback_team))
        if reading.no_action is not None:
            update["no_action"] = reading.no_action
            update["parts"] = ()
            update["priority"] = config.priority_names[0]
            satisfied = reading.no_action in ("thanks", "resolved", "praise")
            if satisfied and "satisfied" in config.sentiment_names:
                update["sentiment"] = "satisfied"
            elif not satisfied:
                update["sentiment"] = config.default_sentiment
            reasons.append(f"needs no action ({reading.no_action})")
            return decision.model_copy(update={**update, "reasons": tuple(reasons)})
        if reading.vague:
            reasons.append("asks for help without saying with what")
            parts = ()
        offline = decision.source not in ("llm_cheap", "llm_strong", "agent")
        if language is not None and language.code not in config.languages.offline and offline:
            name = language_name(language.code)
            team = config.languages.teams.get(language.code)
            if team is not None:
                update["team"] = team
                reasons.append(f"written in {name}: routed to {team} as [languages] says")
            else:
                # The English model's category is a guess: the category whose own words (the
                # cues, in the languages customers write) are in the ticket, else the team for
                # what fits nowhere; a person decides either way.
                cued = self._category_from_cues(decision, text)
                if cued is None:
                    update.update(self._fallback_labels(decision, config.fallback_team))
                    said = f"written in {name}: the offline model reads English only"
                else:
                    category, words = cued
                    update["category"] = category
                    update["team"] = config.team_for(category)
                    update["category_scores"] = {category: 1.0}
                    said_words = dict.fromkeys(original_words(text, word) for word in words)
                    quoted = ", ".join(f"'{word}'" for word in list(said_words)[:3])
                    said = (
                        f"written in {name}: category from its words {quoted}; the offline model"
                        " reads English only"
                    )
                update["confidence"] = min(decision.confidence, UNREAD_LANGUAGE_CONFIDENCE)
                update["priority"] = self._cued_priority(
                    decision.priority, str(update.get("category", decision.category)), text
                )
                update["confidences"] = {
                    field: min(value, UNREAD_LANGUAGE_CONFIDENCE)
                    for field, value in decision.all_confidences().items()
                    if field != "category"  # that one is `confidence`, capped above
                }
                reasons.append(said)
            parts = ()
        # The parts that stand, whatever the layer proposed (a model's are grounded first).
        update["parts"] = parts
        if parts:
            # The customer's first ask leads (parts come in the order the message gives them):
            # a whole-message guess drifts towards whichever ask has more words.
            lead = parts[0]
            if lead.team != decision.team or lead.category != decision.category:
                update["category"] = lead.category
                update["team"] = lead.team
            # Each part is sure on its own; the whole reads as a mix of them.
            update["confidence"] = max(decision.confidence, min(part.confidence for part in parts))
            reasons.append("several asks: " + ", ".join(f"{p.category} ({p.team})" for p in parts))
        return decision.model_copy(update={**update, "reasons": tuple(reasons)})

    def _category_from_cues(
        self, decision: Decision, text: str
    ) -> tuple[str, tuple[str, ...]] | None:
        """The category a ticket's own words name, and those words; None when they do not tell.

        Read on a ticket the offline model cannot read. The categories of the team for what fits
        nowhere ("general": a how-to, a thanks) count only when no other category is cued, so
        "how do I download an invoice" in German is billing. Of several, the decision's own
        category stands; several others, or none, tell nothing.
        """
        config = self.config
        found = self._category_cues.match(text).found
        cued = [
            (category.name, words)
            for category, words in zip(config.categories, found, strict=True)
            if words
        ]
        specific = [pair for pair in cued if config.team_for(pair[0]) != config.fallback_team]
        candidates = specific or cued
        for name, words in candidates:
            if name == decision.category:
                return name, words
        return candidates[0] if len(candidates) == 1 else None

    def _cued_priority(self, priority: str, category: str, text: str) -> str:
        """The priority of a ticket the offline model cannot read, from its words.

        The English model's guess stands only when that level's own cues (they include other
        languages' words) are in the ticket; else the most urgent level that is cued; else the
        default, so a Spanish how-to is no "high". Never above the category's ceiling.
        """
        config = self.config
        names = config.priority_names
        if hypothetical_question(text):
            # "Si nadie puede entrar, ¿a quién llamo?": what might happen, not what happens.
            return names[0]
        found = self._priority_cues.match(text).found
        if not found[names.index(priority)]:
            cued = [rank for rank, words in enumerate(found) if words]
            priority = names[max(cued)] if cued else config.default_priority
        ceiling = config.category(category).max_priority
        if ceiling is not None and names.index(priority) > names.index(ceiling):
            priority = ceiling
        return priority

    def _fallback_labels(self, decision: Decision, team: str) -> dict[str, object]:
        """Category and team for a message that no category describes: the given team's own."""
        config = self.config
        owned = [category.name for category in config.categories if category.team == team]
        # The decision's own category only when that category is the team's: an emoji that fits
        # nothing reaches the fallback team, but its best guess ("billing") is no category of it.
        mine = decision.team == team and config.team_for(decision.category) == team
        category = decision.category if mine or not owned else owned[0]
        return {
            "category": category,
            "team": team,
            "category_scores": {category: 1.0},
        }

    def _finish_escalation(
        self,
        escalation: Escalation,
        decision: Decision,
        reading: Reading,
        overruled: Sequence[EscalationReason] = (),
    ) -> Escalation:
        """The policy's verdict with the noise filter's, the language's and the parts' say.

        `overruled` are the floors the model ran into (routing/cascade.py's _hold_floors).
        """
        if decision.no_action is not None:
            # Nothing to do, nobody to page: the quiet post (or none) is all it gets.
            return Escalation(needs_human=False, reasons=(), teams=(decision.team,))
        reasons = [*escalation.reasons, *overruled]
        if len(decision.parts) > 1:
            # Each team gets its own part, each sure on its own: two categories close in the
            # whole message are the two asks, not a call a person must make.
            reasons = [reason for reason in reasons if reason.code != "close_call"]
        teams = list(escalation.teams or (decision.team,))
        if reading.vague:
            reasons.append(
                EscalationReason(
                    code="vague_request",
                    detail="the message asks for help without saying with what",
                )
            )
        language = decision.language
        if (
            language is not None
            and language not in self.config.languages.offline
            and language not in self.config.languages.teams
            and decision.source not in ("llm_cheap", "llm_strong", "agent")
        ):
            reasons.append(
                EscalationReason(
                    code="unsupported_language",
                    detail=(
                        f"written in {language_name(language)}: the offline model reads English "
                        "only, so the category is a guess"
                    ),
                )
            )
        for part in decision.parts:
            if part.team not in teams:
                teams.append(part.team)
        return Escalation(needs_human=bool(reasons), reasons=tuple(reasons), teams=tuple(teams))

    async def _ask_llm(
        self,
        redacted: str,
        best: Decision,
        nearest: Sequence[LabeledExample],
        layers: list[LayerCall],
        unverified: str | None,
        *,
        deadline: float,
    ) -> tuple[Decision, str | None]:
        assert self._llm is not None  # noqa: S101  # only called when an LLM is configured
        settings = self.config.llm
        # Examples include agents' corrections, which are customers' words: redact them too.
        examples = [
            example.model_copy(update={"text": _redacted(example.text)}) for example in nearest
        ]
        steps: list[tuple[Literal["llm_cheap", "llm_strong"], str | None]] = [
            ("llm_cheap", settings.cheap_model),
            ("llm_strong", settings.strong_model),
        ]
        for source, model in steps:
            if model is None:
                continue
            call = await self._within(
                deadline,
                self._llm.classify(redacted, examples=examples, model=model, source=source),
                late=LayerCall(layer=source, model=model, error=self._late()),
            )
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
        """A reply to a redacted ticket: the LLM's when configured and fit, else the template's."""
        draft, _ = await self._draft(redacted, decision, deadline=None)
        return draft

    async def _draft(
        self, redacted: str, decision: Decision, *, deadline: float | None
    ) -> tuple[Draft, str | None]:
        """The draft, and why it is the offline one when the LLM's could not be used."""
        settings = self.config.llm
        model = settings.cheap_model
        if self._llm is None or not settings.draft_replies or model is None:
            return self._drafter.draft(redacted, decision), None
        drafted = await self._within(
            deadline, self._llm.draft(redacted, decision=decision, model=model), late=_LATE
        )
        if isinstance(drafted, Draft):
            return drafted, None
        offline = self._drafter.draft(redacted, decision)
        if drafted is _LATE:
            logger.warning("LLM draft did not come in time (%s); offline draft", self._late())
            return (
                offline,
                f"the model's draft did not come in time ({self._late()}): offline draft",
            )
        if isinstance(drafted, DraftRejected):
            return offline, f"the model's draft was replaced by the offline one: {drafted.reason}"
        return offline, None

    async def _within(self, deadline: float | None, call: Awaitable[_T], *, late: _L) -> _T | _L:
        """The call's answer, or `late` when the deadline passes first (the call is cancelled)."""
        if deadline is None:
            return await call
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            if isinstance(call, Coroutine):
                call.close()  # never started: nothing to cancel
            return late
        try:
            async with asyncio.timeout(remaining):
                return await call
        except TimeoutError:
            return late

    def _late(self) -> str:
        return f"no answer within the {self.config.llm.deadline_seconds:g} s deadline"

    def _hold_floors(
        self, decision: Decision, local: Decision | None, rules: RuleMatch, *, readable: bool
    ) -> tuple[Decision, tuple[EscalationReason, ...]]:
        """The model's decision with the floors the rules and a confident local decision set.

        A priority below a sure local one (or below the local one when a forced keyword is in
        the ticket) is raised back to it; a category other than a sure local one keeps the local
        one. Either goes to a human with both answers. A local decision on a language the
        offline model cannot read is no floor: it is a guess.
        """
        if local is None or not readable:
            return decision, ()
        config = self.config
        floor = config.llm.local_floor
        reasons: list[EscalationReason] = []
        update: dict[str, object] = {}
        confidences = dict(decision.confidences)
        notes = list(decision.reasons)
        local_priority = local.confidence_of("priority")
        local_priority_sure = local_priority >= floor
        model_rank = config.priority_rank(decision.priority)
        local_rank = config.priority_rank(local.priority)
        if (local_priority_sure or rules.forced_keywords) and model_rank < local_rank:
            reasons.append(
                EscalationReason(
                    code="model_lowered_priority",
                    detail=f"the model says priority {decision.priority}, the local classifier"
                    f" {local.priority} ({local_priority:.2f}); kept {local.priority}",
                )
            )
            update["priority"] = local.priority
            confidences["priority"] = local_priority
            notes.append(f"priority held at the local classifier's {local.priority}")
        elif (
            local_priority_sure
            and model_rank > local_rank
            and config.priority(decision.priority).always_human
        ):
            # Raising is the model's right, but a page on its word alone shows the other answer.
            reasons.append(
                EscalationReason(
                    code="model_disagrees",
                    detail=f"the model says priority {decision.priority}, the local classifier"
                    f" {local.priority} ({local_priority:.2f})",
                )
            )
        if (
            local.confidence >= floor
            and not local.off_topic
            and decision.category != local.category
        ):
            reasons.append(
                EscalationReason(
                    code="model_disagrees",
                    detail=f"the model says category {decision.category}, the local classifier"
                    f" {local.category} ({local.confidence:.2f}); kept {local.category}",
                )
            )
            update.update(
                category=local.category,
                team=local.team,
                confidence=local.confidence,
                category_scores=local.category_scores,
            )
            confidences["team"] = local.confidence_of("team")
            notes.append(f"category held at the local classifier's {local.category}")
        update["confidences"] = confidences
        if not reasons:
            return decision, ()
        update["reasons"] = tuple(notes)
        return decision.model_copy(update=update), tuple(reasons)


def _grounded_parts(
    parts: Sequence[IssuePart], redacted: str, *, min_confidence: float, max_parts: int
) -> tuple[IssuePart, ...]:
    """The LLM's parts, each shown as the customer's own clause it overlaps most.

    Agents read a part as the customer's words, so the model's paraphrase never stands in for
    them. A part must be the customer's: most of its words in one clause of the ticket, one
    clause a part, as sure as a local part must be. A ticket that gives the model orders keeps
    no parts (a fooled model could send it to every team). Parts for fewer than two teams are
    no split.
    """
    if len({part.team for part in parts}) < 2 or find_instruction(redacted) is not None:
        return ()
    pieces = clauses(redacted) or [redacted]
    grounded: list[IssuePart] = []
    used: set[str] = set()
    for part in parts[:max_parts]:
        words = {word for word in _words(part.text) if len(word) > 3}
        best = max(pieces, key=lambda piece: len(words & set(_words(piece))))
        shared = len(words & set(_words(best)))
        if part.confidence < min_confidence or best in used or 2 * shared < len(words):
            continue
        used.add(best)
        grounded.append(part.model_copy(update={"text": best}))
    return tuple(grounded) if len({part.team for part in grounded}) >= 2 else ()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


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
    languages: LanguageDetector | None = None,
) -> Pipeline:
    """Wire the layers for a config; examples default to the config's labeled examples."""
    labeled = list(examples) if examples is not None else config.load_examples()
    local = (
        LocalClassifier(embedder=embedder, config=config, examples=labeled)
        if embedder is not None
        else None
    )
    return Pipeline(config=config, local=local, llm=llm, languages=languages)


# The same labeled examples are the nearest ones of ticket after ticket: each redacted once.
@functools.lru_cache(maxsize=4096)
def _redacted(text: str) -> str:
    """An example's text as redact() leaves it."""
    return redact(text).text
