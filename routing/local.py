"""The offline classifier: sentence embeddings compared with labeled examples and rubrics.

Each field (category, priority, sentiment) is scored by two things that fail differently:
a softmax-regression head fitted on the labeled examples and the rubrics (good at weighing many
examples), and the similarity to the nearest example of each label (good at a single, very close
example, such as an agent's fresh correction). On banking77 with 10 examples per intent the sum
beats either alone (bench/ and BENCHMARKS.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from routing.config import LabelConfig, TriageConfig
from routing.cues import CueMatch, Cues
from routing.embedding import SEGMENT_TOKENS, Embedder, TokenCounter, estimate_tokens
from routing.models import Decision, LabeledExample
from routing.parts import segments
from routing.rules import without_identifiers
from routing.tone import ToneModel, lexicon_features

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

# Weight of the nearest example's similarity against the regression head's score.
NEAREST_WEIGHT = 0.5
# A label with no example is scored by its rubric, less this, so a real example wins a tie.
RUBRIC_ONLY_PENALTY = 0.05
# Softmax-regression fit: logit scale, steps, step size and L2 penalty (tuned on banking77).
HEAD_SCALE = 20.0
HEAD_STEPS = 300
HEAD_LEARNING_RATE = 1.0
HEAD_L2 = 1e-3
# Learning one more example: this many warm-started steps on a batch of the new example and at
# most INCREMENT_BATCH - 1 others drawn at random, so the cost stays flat however many examples
# there are (a full refit of 1,150 examples took 140 ms; 10,000 would take seconds).
INCREMENT_STEPS = 30
INCREMENT_BATCH = 256
# An agent's correction is the best evidence about the tickets close to it: per label, the
# weighted share of the `neighbours` nearest corrections carrying it, each weighted by
# exp((similarity - the closest's) / temperature) and by a soft step at min_similarity, is added
# to the scores times `weight`.


@dataclass(frozen=True)
class Vote:
    """How the corrections (learnt examples) near a ticket vote on one field's labels."""

    weight: float = 3.0
    neighbours: int = 32
    temperature: float = 0.1
    min_similarity: float = 0.5
    gate_width: float = 0.03
    prior: float = 0.2


# The category: the closest corrections decide (banking77's intents are clean and fine-grained).
CATEGORY_VOTE = Vote()
# The priority: a local-majority vote (temperature 1.0, weight 6) looked better replaying the
# local classifier alone on support_tickets but not through the full cascade (BENCHMARKS.md).
PRIORITY_VOTE = Vote()
SENTIMENT_VOTE = Vote()
# Softmax temperature turning scores into the per-category probabilities stored for audit and
# for the close-call check.
TEMPERATURE = 0.05
# Confidence = sigmoid(a * margin + b * fit + c), where margin is the top score minus the second
# and fit the best similarity to any example or rubric; fitted by bench/calibrate.py.
CALIBRATION = (13.29, 5.325, -4.229)
# A config's calibration may weigh nearness too: sigmoid(a * margin + b * fit + n * nearness + c),
# nearness being the mean similarity of the NEARNESS_EXAMPLES closest shipped examples. One close
# example (fit) is often a chance paraphrase; several close ones tell a ticket from trivia better
# (CLINC150 out-of-scope rows against the blind tickets: AUROC 0.959 against fit's 0.938).
NEARNESS_EXAMPLES = 5
# Confidence is pulled towards the share of the ticket's nearest labeled examples that carry the
# decided category: confidence = (sum of w * agrees + NEIGHBOUR_PRIOR * calibrated) /
# (sum of w + NEIGHBOUR_PRIOR) over the NEIGHBOURS nearest examples, with
# w = exp((similarity - best similarity to any example or phrase) / NEIGHBOUR_TEMPERATURE).
# Examples far from the ticket weigh nothing and the calibrated margin decides; where many close
# examples disagree (noisy corrections) the bot cannot grow sure, however many it has.
NEIGHBOURS = 8
# At most this many of a long message's segments are embedded (each is one model pass).
MAX_SEGMENTS = 12
NEIGHBOUR_TEMPERATURE = 0.05
NEIGHBOUR_PRIOR = 1.0
# An example counts as a neighbour from about this similarity on (a soft step this wide).
NEIGHBOUR_MIN_SIMILARITY = 0.7
NEIGHBOUR_GATE_WIDTH = 0.03
# Priority and sentiment confidence = sigmoid(a * margin + b * fit + c * cued + d), where margin
# is the field's top score minus its best allowed rival, fit as above, and cued 1 when a cue of
# the chosen label is in the ticket; fitted by `bench/calibrate.py --fields` on the hand-written
# tickets (fit added nothing out of fold, nor did the sentiment's cue).
FIELD_CALIBRATION: dict[str, tuple[float, float, float, float]] = {
    "priority": (2.666, 0.0, 2.577, -0.18),
    "sentiment": (2.43, 0.0, 0.0, 0.915),
}
# Added to the default sentiment (neutral) when no sentiment cue is in the ticket: a plain
# question reads as calm (bench/handwritten.py).
PLAIN_SENTIMENT_BONUS = 0.3
# Weight of the tone experts' log-probabilities (routing/tone.py) in the sentiment's scores,
# whose head and nearest-example terms are in units of HEAD_SCALE logits (tuned on TweetEval's
# validation rows left out of the drawn examples, and on topic-disjoint folds of them, for
# sentiment and emotion alike; bench/data/dev_tickets.jsonl checked). 0.2 with a lexicon weight
# of 2 before: the same lexicon weight against the head, a centroid weight 4 times lower.
TONE_WEIGHT = 0.8
# Weight of the priorities seen among the predicted category's examples.
PRIORITY_PRIOR_WEIGHT = 0.3
# A team other than the category's default is taken from an example only when it is this close.
TEAM_OVERRIDE_SIMILARITY = 0.8


# Shouting: three or more words of two or more capital letters in a row ("THIS IS BROKEN",
# not one "URGENT" or "SSO"), or three exclamation marks.
_SHOUTING = re.compile(r"(?:\b[A-Z]{2,}[A-Z'!?.,]*\s+){2,}[A-Z]{2,}\b|!{3,}")


# A question about what would happen, or how to do something to one's own account, reports
# nothing: "what should I do if our API key leaked?", "how do I lock my account when I go on
# holiday?". One sentence, a question, and none of the words that say it is happening now.
_HYPOTHETICAL = re.compile(
    r"^(?:(?:what|how|who|where|when|which|is|are|can|could|will|would|do|does|should)\b"
    r"[^?]*?\b(?:if|in case|in the event of|during (?:an?|any))\b|if\b|in case\b|what if\b"
    # The same in the languages customers write most: "si nadie puede entrar, ¿a quién llamo?",
    # "was passiert, wenn niemand sich anmelden kann?", "如果所有用户都无法登录...".
    r"|(?:si|se|wenn|falls|als|qu(?:e|é) pasa si|que se passe-t-il si|et si|was passiert,? wenn"
    r"|was tun,? wenn|o que acontece se|cosa succede se|wat gebeurt er als)\b"
    r"|[^?]*(?:如果|假如|要是|万一|萬一|場合は|경우에?는?))"
)
# A question about where to see, set or read something ("how can I see which payments were
# declined?", "where can I see who is locked out?", "what does 'access denied' mean?") asks about
# the product: its words of impact are what it wants to see, not what happened.
_LOOKUP_QUESTION = re.compile(
    r"(?:how (?:do|can|could|would) (?:i|we)|where (?:do|can|could) (?:i|we)|is there a way to"
    r"|can (?:i|we))(?: quickly| easily)? (?:see|find|view|list|look up|filter|search|set|set up"
    r"|schedule|configure|get notified|be notified|get a list|get a report|check who|check which)"
    r"\b(?! out\b)"
    r"|\bwhat does\b[^?.!]{0,60}\bmean\b"
    r"|(?:is there|are there|do you have|can (?:i|we) get|could (?:i|we) get)(?: a| an| any)?"
    r" (?:report|list|listing|export|overview|summary)s?\b",
    re.IGNORECASE,
)
# Of those, the ones that ask what words mean or for a list of things: nothing in them is
# happening to anyone, so their priority is the lowest ("is there a report of all pages that
# return 404?", "what does the 'access denied' label mean?").
_ABOUT_WORDS_OR_A_LIST = re.compile(
    r"\bwhat does\b[^?.!]{0,60}\bmean\b"
    r"|^(?:is there|are there|do you have|can (?:i|we) get|could (?:i|we) get)(?: a| an| any)?"
    r" (?:report|list|listing|export|overview|summary)s?\b"
)
_LOOKUP_OPENING = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|morning|quick question|question|small question|one question)"
    r"(?: there| team| all| folks)?\W+)*"
)
_OWN_ACTION = re.compile(
    r"^(?:how (?:do|can|should) (?:i|we)|can (?:i|we)|is it possible to|is there a way to)"
    r" (?:lock|freeze|suspend|pause|deactivate|archive|disable|block|schedule|close)\b"
)
# After the condition, only a question may follow a comma ("if a file is deleted, can you ...").
_AFTER_CONDITION = re.compile(
    r",(?!\s*(?:can|could|will|would|do|does|is|are|how|what|who|where|should|shall|am|may"
    r"|\u00bf|a qui[eé]n|qu[eé]|c[oó]mo|wer|was|wie|qui|que|comment|quem|o que|como|chi|cosa"
    r"|come|wie|wat|hoe)(?:\b|\s|$))"
)
_HAPPENING = re.compile(
    r"\b(?:right now|currently|at the moment|since|this morning|today|yesterday|tonight|again"
    # "still" of what persists, not of a what-if's question ("if SSO is down, can we still log
    # in?").
    r"|already|just now|as we speak|(?<!can we )(?<!can i )(?<!could we )(?<!could i )"
    r"(?<!will we )(?<!will i )(?<!would we )(?<!would i )still|keeps?|kept|hacked|stranger"
    r"|not me|wasn't me|urgent"
    r"|asap|ahora|hoy|ayer|desde|jetzt|heute|gestern|seit|maintenant|aujourd'hui|hier|depuis|agora"
    r"|hoje|ontem|adesso|oggi|ieri|nu|vandaag|gisteren|sinds)\b"
    r"|今日|昨日|今朝|現在|现在|今天|昨天|目前|지금|오늘|어제"
)


# What a customer puts before a what-if to say it is one ("Quick question:", "Hypothetically,",
# "For our security review:") and after it ("Just curious for a doc.", "Asking for our runbook."):
# the question is still the one sentence that counts.
_HYPOTHETICAL_OPENING = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|morning|quick question|question|small question|one question"
    r"|just curious|out of curiosity|curious|hypothetically(?: speaking)?|purely hypothetically"
    r"|theoretically|in theory|for (?:our|a|the|my) (?:security review|audit|docs?|documentation"
    r"|runbook|questionnaire|compliance review)|(?:just )?wondering)(?: there| team| all| folks)?"
    r"\W+)*"
)
# A question about how incidents are handled in general ("do you have an SLA for outages?", "how
# do you handle a leaked API key?", "is there a status page for outages?") reports none.
_PROCESS_QUESTION = re.compile(
    r"^(?:(?:do|does) you (?:have|offer|publish) (?:an?|any|some) (?:sla|policy|process|plan"
    r"|procedure|runbook|status page|guarantee|notification)s?\b"
    r"|how (?:do|would|will|does) (?:you|your team|your company) (?:usually |normally |typically )?"
    r"(?:handle|deal with|respond to|communicate|notify (?:us|customers) (?:of|about))"
    r" (?:an?|any|the|such|your)\b"
    r"|how (?:are|is) (?:an? |any )?[\w -]{1,30} (?:usually |normally |typically )?"
    r"(?:handled|dealt with|communicated)\?$"
    r"|is there (?:an?|any) (?:status page|sla|policy|process|history|log) (?:for|of|where|that)\b"
    # How the product is kept safe ("do you test for XSS?", "is your API protected against
    # IDOR?", "how do you prevent SQL injection?"): a security review's question, no finding.
    r"|(?:do|does) (?:you|your team|your company) (?:\w+ )?(?:test|scan|check|audit|protect|guard"
    r"|defend|screen) (?:for|against)\b"
    r"|(?:do|does) (?:you|your \w+) have (?:any |some )?(?:protection|safeguards?|defen[cs]es?"
    r"|mitigations?|checks?) (?:against|for)\b"
    r"|(?:is|are) (?:you|your|the) [\w -]{0,30}(?:protected|safe|secure|hardened|vulnerable|tested)"
    r" (?:against|from|to|for)\b"
    r"|how (?:do|does|would|will) (?:you|your team|your company) (?:\w+ )?(?:prevent|mitigate"
    r"|protect against|guard against|defend against|test for)\b)"
)
_HYPOTHETICAL_ASIDE = re.compile(
    r"(?<=\?) (?:just |purely )?(?:curious|wondering|asking)"
    r"(?: (?:for|about) (?:a|an|our|the|my) [\w-]+(?: [\w-]+)?)?[.!]?$"
)


def hypothetical_question(text: str) -> bool:
    """True for one sentence that asks what would happen, or how to lock one's own account."""
    folded = _folded(text).lstrip("\u00bf\u00a1 ")
    # The words of now are read in the whole text, the aside and the opening included.
    if _HAPPENING.search(folded):
        return False
    folded = _HYPOTHETICAL_ASIDE.sub("", folded)
    folded = _HYPOTHETICAL_OPENING.sub("", folded, count=1)
    if not _one_question(folded):
        return False
    if _OWN_ACTION.match(folded):
        return "," not in folded and not re.search(r"\b(?:someone|somebody)\b", folded)
    if _PROCESS_QUESTION.match(folded):
        return True
    return _HYPOTHETICAL.match(folded) is not None and not _AFTER_CONDITION.search(folded)


def _folded(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").replace("\uff1f", "?").split())


def _one_question(folded: str) -> bool:
    """True for a folded text that is one sentence, ending with a question mark."""
    return folded.endswith("?") and not re.search(r"[.!?]\s|[\u3002\uff01]", folded[:-1])


def opens_with_lookup(text: str) -> bool:
    """True when the message opens by asking where to see, set or read something."""
    # A question told after a report ("we were charged for 12 seats, 2) also how do I set up
    # ...?") is a second ask, not what the ticket opens with.
    opening = _LOOKUP_OPENING.sub("", _folded(text), count=1)
    return _LOOKUP_QUESTION.match(opening) is not None


def lookup_question(text: str) -> bool:
    """True for one sentence that asks where to see, set or read something, told as nothing now."""
    folded = _folded(text)
    return _one_question(folded) and not _HAPPENING.search(folded) and opens_with_lookup(folded)


def asks_about_words_or_for_a_list(text: str) -> bool:
    """True for a lookup question that asks what words mean, or for a report or list."""
    opening = _LOOKUP_OPENING.sub("", _folded(text), count=1)
    return lookup_question(text) and _ABOUT_WORDS_OR_A_LIST.search(opening) is not None


def shouts(text: str) -> bool:
    """True when the text shouts: whole words in capitals, or '!!!'."""
    return _SHOUTING.search(text) is not None


def _humanize(name: str) -> str:
    return name.replace("_", " ")


def fit_softmax_head(
    vectors: Matrix,
    targets: npt.NDArray[np.int64],
    n_labels: int,
    *,
    start: Matrix | None = None,
    steps: int = HEAD_STEPS,
) -> Matrix:
    """Weights (dim, n_labels) of an L2-regularised softmax regression, by gradient descent.

    start warm-starts from earlier weights, so learning one more example needs few steps.
    """
    weights = (
        np.zeros((vectors.shape[1], n_labels), dtype=np.float32) if start is None else start.copy()
    )
    if vectors.shape[0] == 0:
        return weights
    one_hot = np.eye(n_labels, dtype=np.float32)[targets]
    bias = np.zeros(n_labels, dtype=np.float32)
    inputs = vectors.astype(np.float32)
    for _ in range(steps):
        logits = HEAD_SCALE * (inputs @ weights) + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        gradient = (probabilities - one_hot) / len(inputs)
        weights -= HEAD_LEARNING_RATE * (HEAD_SCALE * inputs.T @ gradient + HEAD_L2 * weights)
        bias -= HEAD_LEARNING_RATE * gradient.sum(axis=0)
    return weights


class _Rows:
    """Rows appended one at a time into a buffer that doubles: appending stays O(1)."""

    def __init__(self, width: int | None, dtype: type[np.generic]) -> None:
        shape = (16,) if width is None else (16, width)
        self._buffer: npt.NDArray[Any] = np.zeros(shape, dtype=dtype)
        self.count = 0

    @property
    def rows(self) -> npt.NDArray[Any]:
        """The rows so far (a view, valid until the next append)."""
        return self._buffer[: self.count]

    def extend(self, rows: npt.NDArray[Any]) -> None:
        """Append rows (a matrix for a matrix buffer, a vector for a vector buffer)."""
        needed = self.count + len(rows)
        if needed > len(self._buffer):
            capacity = max(needed, 2 * len(self._buffer))
            grown = np.zeros((capacity, *self._buffer.shape[1:]), dtype=self._buffer.dtype)
            grown[: self.count] = self._buffer[: self.count]
            self._buffer = grown
        self._buffer[self.count : needed] = rows
        self.count = needed


class _Field:
    """One label space: rubric vectors, the examples that carry this field, and a fitted head."""

    def __init__(self, labels: Sequence[LabelConfig], embedder: Embedder, vote: Vote) -> None:
        self.labels = tuple(label.name for label in labels)
        self.vote = vote
        self._index = {name: position for position, name in enumerate(self.labels)}
        # Every label is described by its rubric (or its name) and its phrases.
        descriptions: list[str] = []
        owners: list[int] = []
        for position, label in enumerate(labels):
            for text in (label.rubric or _humanize(label.name), *label.phrases):
                descriptions.append(text)
                owners.append(position)
        self.descriptions: Matrix = embedder.encode(descriptions)
        self._owners = np.array(owners, dtype=np.int64)
        self._head: Matrix = np.zeros((self.descriptions.shape[1], len(self.labels)), np.float32)
        # Per example, its label's position, or -1 when it does not carry this field.
        self._labels = _Rows(None, np.int64)
        # The positions of the examples that carry this field, for drawing learning batches.
        self._carried = _Rows(None, np.int64)
        self._rng = np.random.default_rng(0)
        # Examples from this index on were learnt (agents' corrections), not shipped.
        self.shipped = 0

    def position(self, label: str | None) -> int | None:
        """A label's position in config order, or None for no label or an unknown one."""
        return None if label is None else self._index.get(label)

    @property
    def _example_labels(self) -> npt.NDArray[np.int64]:
        labels: npt.NDArray[np.int64] = self._labels.rows
        return labels

    def _positions(self, example_labels: Sequence[str | None]) -> npt.NDArray[np.int64]:
        # -1 marks an example that does not carry this field (e.g. no priority given).
        return np.array(
            [self._index.get(label, -1) if label is not None else -1 for label in example_labels],
            dtype=np.int64,
        )

    def fit(self, example_vectors: Matrix, example_labels: Sequence[str | None]) -> None:
        """Fit the head afresh on every example that carries this field, plus the rubrics."""
        positions = self._positions(example_labels)
        self._labels = _Rows(None, np.int64)
        self._labels.extend(positions)
        self._carried = _Rows(None, np.int64)
        self._carried.extend(np.flatnonzero(positions >= 0))
        carried = positions >= 0
        vectors = np.vstack([example_vectors[carried], self.descriptions])
        targets = np.concatenate([positions[carried], self._owners])
        self._head = fit_softmax_head(vectors, targets, len(self.labels))

    def learn(self, example_vectors: Matrix, label: str | None) -> None:
        """Learn the last row of example_vectors (every example so far) at a flat cost.

        A few warm-started steps on the new example and a bounded random batch of the others and
        of the rubrics: the head moves towards the new example without forgetting the rest.
        """
        index = len(example_vectors) - 1
        position = self._positions([label])
        self._labels.extend(position)
        if position[0] < 0:
            return
        self._carried.extend(np.array([index], dtype=np.int64))
        pool = self._carried.count - 1 + len(self._owners)
        drawn = self._rng.choice(pool, size=min(pool, INCREMENT_BATCH - 1), replace=False)
        # Draws below the number of other carried examples are examples, the rest rubrics.
        others = self._carried.count - 1
        from_examples = self._carried.rows[drawn[drawn < others]]
        from_rubrics = drawn[drawn >= others] - others
        vectors = np.vstack(
            [
                example_vectors[[index, *from_examples.tolist()]],
                self.descriptions[from_rubrics],
            ]
        )
        targets = np.concatenate(
            [position, self._labels.rows[from_examples], self._owners[from_rubrics]]
        )
        self._head = fit_softmax_head(
            vectors, targets, len(self.labels), start=self._head, steps=INCREMENT_STEPS
        )

    def description_similarities(self, query: Vector) -> npt.NDArray[np.float64]:
        """Per label, the best similarity of query to the label's rubric and phrases."""
        best = np.full(len(self.labels), -1.0)
        np.maximum.at(best, self._owners, (self.descriptions @ query).astype(np.float64))
        return best

    def score(self, query: Vector, similarities: Vector) -> FieldScores:
        """Score every label of this field for one ticket (similarities: to each example)."""
        described = self.description_similarities(query)
        # A label known only from its rubric and phrases loses RUBRIC_ONLY_PENALTY, so a real
        # example wins a tie.
        nearest = described - RUBRIC_ONLY_PENALTY
        for position in range(len(self.labels)):
            mine = similarities[self._example_labels == position]
            if mine.size:
                nearest[position] = max(float(mine.max()), float(described[position]))
        head: npt.NDArray[np.float64] = (query @ self._head).astype(np.float64)
        learnt = self.learnt_vote(similarities)
        return FieldScores(
            described=described,
            nearest=nearest,
            scores=head + NEAREST_WEIGHT * nearest + learnt,
            learnt=learnt,
        )

    def learnt_vote(self, similarities: Vector) -> npt.NDArray[np.float64]:
        """Per label, what the close learnt examples (corrections) add to its score (see Vote)."""
        vote = np.zeros(len(self.labels))
        # The carried examples' indices ascend: the learnt ones are the tail from `shipped` on.
        carried = self._carried.rows
        learnt = carried[int(np.searchsorted(carried, self.shipped)) :]
        if not learnt.size:
            return vote
        params = self.vote
        pool = similarities[learnt]
        k = min(params.neighbours, learnt.size)
        nearest = np.argpartition(-pool, k - 1)[:k]
        close = pool[nearest].astype(np.float64)
        gate = 1.0 / (1.0 + np.exp(-(close - params.min_similarity) / params.gate_width))
        weights = np.exp((close - close.max()) / params.temperature) * gate
        np.add.at(vote, self._example_labels[learnt[nearest]], weights)
        vote *= params.weight / (float(weights.sum()) + params.prior)
        return vote


@dataclass(frozen=True)
class FieldScores:
    """One field's view of a ticket, per label in config order."""

    # Best similarity to the label's rubric and phrases.
    described: npt.NDArray[np.float64]
    # Best similarity to its examples, rubric and phrases.
    nearest: npt.NDArray[np.float64]
    # The regression head's score plus NEAREST_WEIGHT times nearest plus learnt.
    scores: npt.NDArray[np.float64]
    # What the learnt examples' vote adds to each label's score (learnt_vote).
    learnt: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Evidence:
    """What the category decision rests on."""

    ranked: tuple[str, ...]
    scores: npt.NDArray[np.float64]
    similarities: Vector
    # Top score minus the second; the best similarity to any example or phrase.
    margin: float
    fit: float
    # The top label's score minus the best other's without the learnt examples' vote: what the
    # calibration was fitted on (the vote's say in confidence is neighbour_confidence's).
    unlearnt_margin: float
    # Mean similarity of the NEARNESS_EXAMPLES closest shipped examples (corrections would make
    # it grow as they pile up; their say is neighbour_confidence's); fit when there are none.
    nearness: float


def calibrated_confidence(
    margin: float,
    fit: float,
    calibration: Sequence[float] = CALIBRATION,
    nearness: float | None = None,
) -> float:
    """Probability that the top label is right, from the score margin and the similarities.

    calibration is (a, b, c) for sigmoid(a * margin + b * fit + c), or (a, b, n, c) when
    nearness counts as well (then nearness must be given).
    """
    if len(calibration) == 4:
        a, b, n, c = calibration
        if nearness is None:
            raise ValueError("a calibration that weighs nearness needs the nearness")
        return 1.0 / (1.0 + math.exp(-(a * margin + b * fit + n * nearness + c)))
    a, b, c = calibration
    return 1.0 / (1.0 + math.exp(-(a * margin + b * fit + c)))


class LocalClassifier:
    """Scores labels from labeled examples and rubrics; learns a new example at once."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        config: TriageConfig,
        examples: Sequence[LabeledExample],
    ) -> None:
        self._embedder = embedder
        self._config = config
        self._examples: list[LabeledExample] = list(examples)
        # The examples the classifier was built with (the config's); the rest were learnt since.
        self._shipped = len(self._examples)
        self._rows = _Rows(embedder.dim, np.float32)
        if self._examples:
            self._rows.extend(embedder.encode([example.text for example in self._examples]))
        self._categories = _Field(config.categories, embedder, CATEGORY_VOTE)
        self._priorities = _Field(config.priorities, embedder, PRIORITY_VOTE)
        self._sentiments = _Field(config.sentiments, embedder, SENTIMENT_VOTE)
        for field in (self._categories, self._priorities, self._sentiments):
            field.shipped = self._shipped
        self._category_cues = Cues(config.categories)
        self._priority_cues = Cues(config.priorities)
        self._sentiment_cues = Cues(config.sentiments)
        self._refit()

    @property
    def _vectors(self) -> Matrix:
        vectors: Matrix = self._rows.rows
        return vectors

    @property
    def examples(self) -> tuple[LabeledExample, ...]:
        """The labeled examples in use, corrections included."""
        return tuple(self._examples)

    def add_example(self, example: LabeledExample) -> None:
        """Learn from one more labeled example; the next classification already uses it.

        The cost does not grow with the number of examples (see _Field.learn).
        """
        self._examples.append(example)
        self._rows.extend(self._embedder.encode([example.text]))
        vectors = self._vectors
        self._categories.learn(vectors, example.category)
        self._priorities.learn(vectors, example.priority)
        self._sentiments.learn(vectors, example.sentiment)
        self._learn_tone([example], vectors[-1:])
        self._team_positions.extend(self._team_positions_of([example]))
        self._count_priority(example)
        if example.category in self._priority_counts:
            row = self._priority_counts[example.category]
            self._priority_prior[example.category] = row / row.sum()

    def add_examples(self, examples: Sequence[LabeledExample]) -> None:
        """Learn many labeled examples at once (stored corrections at start-up): one fit."""
        if not examples:
            return
        self._examples.extend(examples)
        self._rows.extend(self._embedder.encode([example.text for example in examples]))
        self._refit()

    def _refit(self) -> None:
        examples = self._examples
        vectors = self._vectors
        self._categories.fit(vectors, [example.category for example in examples])
        self._priorities.fit(vectors, [example.priority for example in examples])
        self._sentiments.fit(vectors, [example.sentiment for example in examples])
        self._tone = ToneModel(len(self._sentiments.labels), self._embedder.dim)
        self._learn_tone(examples, vectors)
        # Per example, its team's position in config order, or -1 when it names none.
        self._team_positions = _Rows(None, np.int64)
        self._team_positions.extend(self._team_positions_of(examples))
        self._priority_counts = {
            name: np.ones(len(self._priorities.labels)) for name in self._config.category_names
        }
        for example in examples:
            self._count_priority(example)
        self._priority_prior = {
            name: row / row.sum() for name, row in self._priority_counts.items()
        }

    def _learn_tone(self, examples: Sequence[LabeledExample], vectors: Matrix) -> None:
        # Only the examples that carry a sentiment are read by the lexicon.
        carried = [
            (index, position)
            for index, example in enumerate(examples)
            if (position := self._sentiments.position(example.sentiment)) is not None
        ]
        if not carried:
            return
        # The lexicon reads 0.3 ms a text: 3 s for 10,000 stored corrections at start.
        indexes = [index for index, _ in carried]
        self._tone.add(
            vectors[indexes],
            np.stack([lexicon_features(examples[index].text) for index in indexes]),
            np.array([position for _, position in carried], dtype=np.int64),
        )

    def neighbour_confidence(
        self,
        calibrated: float,
        similarities: Vector,
        category: str,
        fit: float,
        *,
        field: str = "category",
    ) -> float:
        """The calibrated confidence, pulled towards the nearest examples' agreement.

        For the category every example counts (the config's only as near-paraphrases); for the
        priority only learnt corrections, whose labels the calibration never saw.
        """
        scored = self._categories if field == "category" else self._priorities
        carried = np.flatnonzero(scored._example_labels >= 0)
        if field != "category":
            carried = carried[carried >= self._shipped]
        if not carried.size:
            return calibrated
        k = min(NEIGHBOURS, carried.size)
        pool = similarities[carried]
        nearest = np.argpartition(-pool, k - 1)[:k]
        close = pool[nearest]
        weights = np.exp((close - fit) / NEIGHBOUR_TEMPERATURE)
        # Of the config's own examples only near-paraphrases count: they are few and chosen to
        # differ, so a merely related one says little (counting it halved most confidences).
        # Learnt corrections count as they are: where they crowd and disagree, the labels are
        # noisy and the bot must not grow sure.
        shipped = carried[nearest] < self._shipped
        weights[shipped] /= 1.0 + np.exp(
            -(close[shipped] - NEIGHBOUR_MIN_SIMILARITY) / NEIGHBOUR_GATE_WIDTH
        )
        agrees = scored._example_labels[carried[nearest]] == scored.position(category)
        agreeing = float(weights[agrees].sum())
        # At most 1: float32 sums of the agreeing part and of the whole can round either way.
        return min(
            1.0,
            (agreeing + NEIGHBOUR_PRIOR * calibrated) / (float(weights.sum()) + NEIGHBOUR_PRIOR),
        )

    def _team_positions_of(self, examples: Sequence[LabeledExample]) -> npt.NDArray[np.int64]:
        teams = {name: position for position, name in enumerate(self._config.team_names)}
        return np.array([teams.get(example.team or "", -1) for example in examples], dtype=np.int64)

    def _count_priority(self, example: LabeledExample) -> None:
        # How often each priority occurs among the examples of each category, smoothed: feature
        # requests are rarely urgent, outages rarely low, whatever the wording. Counted as
        # examples arrive, not per ticket.
        counts = self._priority_counts.get(example.category or "")
        position = self._priorities.position(example.priority)
        if counts is not None and position is not None:
            counts[position] += 1

    def embed(self, text: str) -> Vector:
        """A ticket's embedding: classify it and find its nearest examples from one pass.

        A text longer than the model's window (256 tokens) is read whole: in segments of
        sentences that fit it, whose vectors are averaged by their length, so a last paragraph
        counts as much as the first.
        """
        pieces = self.segments(text)
        if len(pieces) <= 1:
            vector: Vector = self._embedder.encode([text])[0]
            return vector
        if len(pieces) > MAX_SEGMENTS:
            # Slack's longest message is about 40 segments (3 s of model time): first, last and
            # evenly between. The rules and cues still read every word.
            picks = np.unique(np.linspace(0, len(pieces) - 1, MAX_SEGMENTS).round().astype(int))
            pieces = [pieces[int(index)] for index in picks]
        vectors = self._embedder.encode(pieces)
        weights = np.array([self.count_tokens(piece) for piece in pieces], dtype=np.float32)
        combined: Vector = (weights[:, None] * vectors).sum(axis=0)
        combined /= max(float(np.linalg.norm(combined)), 1e-12)
        return combined

    def embed_many(self, texts: Sequence[str]) -> Matrix:
        """Each text's `embed`: those that fit the window in one batch, long ones in segments.

        A forward pass of its own costs a short text about twice its share of a batched one.
        """
        vectors: Matrix = np.zeros((len(texts), self._embedder.dim), dtype=np.float32)
        fits = [i for i, text in enumerate(texts) if self.count_tokens(text) <= SEGMENT_TOKENS + 2]
        if fits:
            vectors[fits] = self._embedder.encode([texts[i] for i in fits])
        for position in sorted(set(range(len(texts))) - set(fits)):
            vectors[position] = self.embed(texts[position])
        return vectors

    def count_tokens(self, text: str) -> int:
        """The model's tokens in text, or a safe estimate when the embedder cannot count."""
        if isinstance(self._embedder, TokenCounter):
            return self._embedder.count_tokens(text)
        return estimate_tokens(text)

    def segments(self, text: str) -> list[str]:
        """The text as one piece when it fits the model's window, else in segments that do."""
        if self.count_tokens(text) <= SEGMENT_TOKENS + 2:
            return [text]
        # Counted without [CLS] and [SEP]: each segment gets its own.
        return segments(text, lambda piece: self.count_tokens(piece) - 2, SEGMENT_TOKENS)

    def nearest_examples(self, query: Vector, k: int) -> list[LabeledExample]:
        """The k labeled examples most similar to an embedded ticket, most similar first."""
        if k <= 0 or not self._examples:
            return []
        similarities = self._vectors @ query
        order = np.argsort(-similarities, kind="stable")[:k]
        return [self._examples[int(i)] for i in order]

    def evidence(self, query: Vector, text: str = "") -> Evidence:
        """Category scores and the two signals confidence is calibrated on.

        text is the ticket's (redacted) text, for the categories' cues; none when empty.
        """
        similarities: Vector = self._vectors @ query
        categories = self._categories.score(query, similarities)
        scores = self._with_cues(
            categories.scores,
            # A name in code is no topic ('"refund_policy is not defined" when I click save'):
            # as for the hotwords (routing.rules). A quoted message's words still count
            # ("gives me 'Export failed'").
            self._category_cues.match(without_identifiers(text)),
            self._config.categories,
        )
        order = np.argsort(-scores, kind="stable")
        margin = float(scores[order[0]] - scores[order[1]]) if len(order) > 1 else 1.0
        fit = max(
            float(similarities.max()) if similarities.size else -1.0,
            float(categories.described.max()),
        )
        ranked = tuple(self._categories.labels[int(i)] for i in order)
        shipped = similarities[: self._shipped]
        nearness = float(np.sort(shipped)[-NEARNESS_EXAMPLES:].mean()) if shipped.size else fit
        return Evidence(
            ranked=ranked,
            scores=scores,
            similarities=similarities,
            margin=margin,
            fit=fit,
            unlearnt_margin=_margin_of(
                int(order[0]), scores - categories.learnt, np.ones(len(order), bool)
            ),
            nearness=nearness,
        )

    def classify_vector(self, query: Vector, text: str = "") -> Decision:
        """Classify an already embedded ticket; text (redacted) is read for the labels' cues."""
        config = self._config
        evidence, priority, sentiment = self.explain(query, text)
        best = evidence.ranked[0]
        similarities = evidence.similarities
        off_topic = evidence.fit < config.thresholds.off_topic_similarity
        reasons = [f"closest labels: {', '.join(evidence.ranked[:2])}"]
        if off_topic:
            reasons.append(f"best similarity to any example or phrase is only {evidence.fit:.2f}")
        reasons.extend(priority.reasons)
        confidence = self.neighbour_confidence(
            calibrated_confidence(
                evidence.unlearnt_margin,
                evidence.fit,
                config.thresholds.category_calibration or CALIBRATION,
                evidence.nearness,
            ),
            similarities,
            best,
            evidence.fit,
        )
        # A ticket that fits no category goes to the team the config names for that.
        team = config.fallback_team if off_topic else self._team_for(best, similarities)
        return Decision(
            category=best,
            priority=priority.label,
            team=team,
            sentiment=sentiment.label,
            confidence=confidence,
            confidences={
                "priority": self.neighbour_confidence(
                    field_confidence("priority", priority, evidence.fit),
                    similarities,
                    priority.label,
                    evidence.fit,
                    field="priority",
                ),
                "sentiment": field_confidence("sentiment", sentiment, evidence.fit),
                # The team follows the category (or the fallback when none fits).
                "team": confidence,
            },
            source="local",
            category_scores=dict(
                zip(self._categories.labels, _softmax(evidence.scores), strict=True)
            ),
            off_topic=off_topic,
            reasons=tuple(reasons),
            margin=evidence.margin,
            fit=evidence.fit,
        )

    def explain(self, query: Vector, text: str = "") -> tuple[Evidence, FieldChoice, FieldChoice]:
        """What a decision rests on: the category evidence, the priority and sentiment chosen."""
        evidence = self.evidence(query, text)
        off_topic = evidence.fit < self._config.thresholds.off_topic_similarity
        priority = self._priority(
            query,
            evidence.similarities,
            text,
            category=evidence.ranked[0],
            off_topic=off_topic,
        )
        return (
            evidence,
            priority,
            self._sentiment(query, evidence.similarities, text, priority=priority.label),
        )

    def _with_cues(
        self,
        scores: npt.NDArray[np.float64],
        cues: CueMatch,
        labels: Sequence[LabelConfig],
    ) -> npt.NDArray[np.float64]:
        hits = np.array(cues.hits(), dtype=np.float64)
        if not hits.any():
            return scores
        default = self._config.thresholds.cue_weight
        weights = np.array(
            [default if label.cue_weight is None else label.cue_weight for label in labels]
        )
        return scores + weights * hits

    def _priority(
        self,
        query: Vector,
        similarities: Vector,
        text: str,
        *,
        category: str,
        off_topic: bool,
    ) -> FieldChoice:
        config = self._config
        field = self._priorities
        scored = field.score(query, similarities)
        cues = self._priority_cues.match(text)
        if lookup_question(text):
            # "Where can I see which users are locked out?": the words of impact are what the
            # question wants to see. Only a cue of an outage or a breach still counts.
            last = len(cues.found) - 1
            cues = CueMatch(
                found=tuple(
                    found if index in (0, last) else () for index, found in enumerate(cues.found)
                )
            )
        elif cues.hits()[0] and any(cues.hits()[1:]) and not opens_with_lookup(text):
            # The lowest level's cues are how questions and requests are asked ("can we get the
            # difference back?"); a cue of impact in the same ticket says what it reports.
            cues = CueMatch(found=((), *cues.found[1:]))
        scores = self._with_cues(scored.scores, cues, config.priorities)
        # What the category's examples say is typical, unless the category is a mere guess.
        if not off_topic:
            scores = scores + PRIORITY_PRIOR_WEIGHT * self._priority_prior[category]
        allowed = np.ones(len(field.labels), dtype=bool)
        # The config may cap a category's priority ("requests are low"); labels are ordered.
        # Cues of impact and scope lift the cap: a feature request that reports an outage is not
        # low.
        ceiling = config.category(category).max_priority
        hits = cues.hits()
        if ceiling is not None:
            rank = config.priority_rank(ceiling)
            if not any(hits[rank + 1 :]):
                allowed[rank + 1 :] = False
        reasons: list[str] = []
        for level, hit in zip(config.priorities, hits, strict=True):
            if hit and level.cue_ceiling is not None:
                rank = config.priority_rank(level.cue_ceiling)
                if not any(hits[rank + 1 :]) and allowed[rank + 1 :].any():
                    if int(np.argmax(np.where(allowed, scores, -np.inf))) > rank:
                        reasons.append(
                            f"at most {level.cue_ceiling}: {level.name} cues and none above"
                        )
                    allowed[rank + 1 :] = False
        if hypothetical_question(text) and allowed[1:].any():
            # What might happen is not what happens: a question's priority is the lowest (a
            # critical cue in it still asks a person to check, routing/escalation.py).
            reasons.append(f"{field.labels[0]}: a question about what would happen")
            allowed[1:] = False
        elif asks_about_words_or_for_a_list(text) and allowed[1:].any():
            # Asking what "access denied" means, or for a list of failed pages, reports no
            # failure (a critical cue in it still asks a person to check).
            reasons.append(f"{field.labels[0]}: a question about words or for a list")
            allowed[1:] = False
        # A level that asks for evidence (min_similarity) is given only to a ticket close to one
        # of its examples or phrases, or with one of its cues; a demotion is said, not silent.
        for position, level in enumerate(config.priorities):
            if (
                level.min_similarity is not None
                and scored.nearest[position] < level.min_similarity
                and not hits[position]
            ):
                if allowed[position] and position == int(
                    np.argmax(np.where(allowed, scores, -np.inf))
                ):
                    reasons.append(
                        f"{level.name} not given: nearest {level.name} example at "
                        f"{scored.nearest[position]:.2f} (< {level.min_similarity:.2f})"
                    )
                allowed[position] = False
        if not allowed.any():
            allowed[0] = True
        choice = _choose(field.labels, scores, allowed, cues)
        # Its confidence is calibrated on the margin without the corrections' vote; the vote's
        # say is neighbour_confidence's (they agree, or the bot cannot grow sure).
        unlearnt = _margin_of(field.labels.index(choice.label), scores - scored.learnt, allowed)
        choice = FieldChoice(label=choice.label, margin=unlearnt, cued=choice.cued)
        found = cues.found[field.labels.index(choice.label)]
        if found:
            quoted = ", ".join(f"'{cue}'" for cue in found[:3])
            reasons.append(f"{choice.label}: {quoted}")
        return FieldChoice(
            label=choice.label,
            margin=choice.margin,
            cued=choice.cued,
            reasons=tuple(reasons),
        )

    def _sentiment(
        self,
        query: Vector,
        similarities: Vector,
        text: str,
        *,
        priority: str | None = None,
    ) -> FieldChoice:
        field = self._sentiments
        cues = self._sentiment_cues.match(text)
        shouting = shouts(text)
        if shouting:
            # Shouting is a cue of the labels that need one (angry), as their words would be.
            cues = CueMatch(
                found=tuple(
                    found or (("shouting",) if sentiment.requires_cue else ())
                    for found, sentiment in zip(cues.found, self._config.sentiments, strict=True)
                )
            )
        scored = field.score(query, similarities).scores + TONE_WEIGHT * self._tone.log_probs(
            query, text
        )
        scores = self._with_cues(scored, cues, self._config.sentiments)
        # No word of feeling at all: the calm default, unless the examples clearly say otherwise.
        # But no word of feeling in a ticket whose priority pages people (an outage, lost data) is
        # no plain question: the examples decide, without the calm default's bonus (dev and
        # handwritten sets: sentiment 0.791 -> 0.813 and 0.878 -> 0.902).
        paging = priority is not None and self._config.priority(priority).always_human
        hits = cues.hits()
        # The absence of every cue says "calm" only when the other labels have cues to be absent
        # (the config's do; labels taken from a data set's column have none).
        cued_labels = any(
            sentiment.cues
            for sentiment in self._config.sentiments
            if sentiment.name != self._config.default_sentiment
        )
        if not any(hits) and not paging and cued_labels:
            scores[field.labels.index(self._config.default_sentiment)] += PLAIN_SENTIMENT_BONUS
        allowed = np.array(
            [
                not sentiment.requires_cue or hit
                for sentiment, hit in zip(self._config.sentiments, hits, strict=True)
            ],
            dtype=bool,
        )
        if not allowed.any():
            allowed[:] = True
        return _choose(field.labels, scores, allowed, cues)

    def _team_for(self, category: str, similarities: Vector) -> str:
        # The team follows the category unless a very similar example of it says otherwise.
        # Vectorised over the examples: a loop over 10,000 of them cost 6 ms a ticket.
        position = self._categories.position(category)
        if position is None:
            return self._config.team_for(category)
        mine = (self._categories._example_labels == position) & (self._team_positions.rows >= 0)
        if mine.any():
            closest = int(np.argmax(np.where(mine, similarities, -np.inf)))
            if float(similarities[closest]) >= TEAM_OVERRIDE_SIMILARITY:
                return self._config.team_names[int(self._team_positions.rows[closest])]
        return self._config.team_for(category)


@dataclass(frozen=True)
class FieldChoice:
    """The label chosen for one field, and what its confidence is computed from."""

    label: str
    # Its score minus the best other allowed label's (1.0 when it is the only one allowed).
    margin: float
    # True when one of its cues is in the ticket.
    cued: bool
    reasons: tuple[str, ...] = ()


def _choose(
    labels: Sequence[str],
    scores: npt.NDArray[np.float64],
    allowed: npt.NDArray[np.bool_],
    cues: CueMatch,
) -> FieldChoice:
    masked = np.where(allowed, scores, -np.inf)
    order = np.argsort(-masked, kind="stable")
    top = int(order[0])
    second = masked[int(order[1])] if len(order) > 1 else -np.inf
    margin = float(masked[top] - second) if np.isfinite(second) else 1.0
    return FieldChoice(label=labels[top], margin=margin, cued=cues.hits()[top])


def _margin_of(top: int, scores: npt.NDArray[np.float64], allowed: npt.NDArray[np.bool_]) -> float:
    """scores[top] minus the best other allowed score (1.0 when no other is allowed)."""
    others = np.where(allowed, scores, -np.inf)
    others[top] = -np.inf
    best = float(others.max()) if len(others) else -np.inf
    return float(scores[top] - best) if np.isfinite(best) else 1.0


def field_confidence(
    field: str,
    choice: FieldChoice,
    fit: float,
    calibration: dict[str, tuple[float, float, float, float]] | None = None,
) -> float:
    """Probability that a field's label is right, from its margin, the fit and its cues."""
    a, b, c, d = (calibration or FIELD_CALIBRATION)[field]
    return 1.0 / (1.0 + math.exp(-(a * choice.margin + b * fit + c * choice.cued + d)))


def _softmax(scores: npt.NDArray[np.float64]) -> list[float]:
    values = scores / TEMPERATURE
    values = values - values.max()
    exps = np.exp(values)
    return [float(x) for x in exps / exps.sum()]
