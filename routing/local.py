"""The offline classifier: sentence embeddings compared with labeled examples and rubrics.

Each field (category, priority, sentiment) is scored by two things that fail differently:
a softmax-regression head fitted on the labeled examples and the rubrics (good at weighing many
examples), and the similarity to the nearest example of each label (good at a single, very close
example, such as an agent's fresh correction). On banking77 with 10 examples per intent the sum
beats either alone (bench/ and BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from routing.config import LabelConfig, TriageConfig
from routing.embedding import SEGMENT_TOKENS, Embedder, TokenCounter, estimate_tokens
from routing.models import Decision, LabeledExample
from routing.parts import segments

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
# Steps when refitting after one more example, starting from the previous weights.
WARM_START_STEPS = 60
# Softmax temperature turning scores into the per-category probabilities stored for audit and
# for the close-call check.
TEMPERATURE = 0.05
# Confidence = sigmoid(a * margin + b * fit + c), where margin is the top score minus the second
# and fit the best similarity to any example or rubric; fitted by bench/calibrate.py.
CALIBRATION = (13.29, 5.325, -4.229)
# Weight of the priorities seen among the predicted category's examples.
PRIORITY_PRIOR_WEIGHT = 0.3
# A team other than the category's default is taken from an example only when it is this close.
TEAM_OVERRIDE_SIMILARITY = 0.8


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


class _Field:
    """One label space: rubric vectors, the examples that carry this field, and a fitted head."""

    def __init__(self, labels: Sequence[LabelConfig], embedder: Embedder) -> None:
        self.labels = tuple(label.name for label in labels)
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
        self._fitted = False
        self._example_labels = np.zeros(0, dtype=np.int64)

    def fit(self, example_vectors: Matrix, example_labels: Sequence[str | None]) -> None:
        """Refit the head on the examples that carry this field, plus the rubrics."""
        # -1 marks an example that does not carry this field (e.g. no priority given).
        self._example_labels = np.array(
            [self._index.get(label, -1) if label is not None else -1 for label in example_labels],
            dtype=np.int64,
        )
        carried = self._example_labels >= 0
        vectors = np.vstack([example_vectors[carried], self.descriptions])
        targets = np.concatenate([self._example_labels[carried], self._owners])
        fitted_before = self._fitted
        self._head = fit_softmax_head(
            vectors,
            targets,
            len(self.labels),
            start=self._head if fitted_before else None,
            steps=WARM_START_STEPS if fitted_before else HEAD_STEPS,
        )
        self._fitted = True

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
        return FieldScores(
            described=described, nearest=nearest, scores=head + NEAREST_WEIGHT * nearest
        )


@dataclass(frozen=True)
class FieldScores:
    """One field's view of a ticket, per label in config order."""

    # Best similarity to the label's rubric and phrases.
    described: npt.NDArray[np.float64]
    # Best similarity to its examples, rubric and phrases.
    nearest: npt.NDArray[np.float64]
    # The regression head's score plus NEAREST_WEIGHT times nearest.
    scores: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Evidence:
    """What the category decision rests on."""

    ranked: tuple[str, ...]
    scores: npt.NDArray[np.float64]
    similarities: Vector
    # Top score minus the second; the best similarity to any example or phrase.
    margin: float
    fit: float


def calibrated_confidence(
    margin: float, fit: float, calibration: tuple[float, float, float] = CALIBRATION
) -> float:
    """Probability that the top label is right, from the score margin and the best similarity."""
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
        self._vectors: Matrix = (
            embedder.encode([example.text for example in self._examples])
            if self._examples
            else np.zeros((0, embedder.dim), dtype=np.float32)
        )
        self._categories = _Field(config.categories, embedder)
        self._priorities = _Field(config.priorities, embedder)
        self._sentiments = _Field(config.sentiments, embedder)
        self._refit()

    @property
    def examples(self) -> tuple[LabeledExample, ...]:
        """The labeled examples in use, corrections included."""
        return tuple(self._examples)

    def add_example(self, example: LabeledExample) -> None:
        """Learn from one more labeled example; the next classification already uses it."""
        self._examples.append(example)
        self._vectors = np.vstack([self._vectors, self._embedder.encode([example.text])])
        self._refit()

    def _refit(self) -> None:
        examples = self._examples
        self._categories.fit(self._vectors, [example.category for example in examples])
        self._priorities.fit(self._vectors, [example.priority for example in examples])
        self._sentiments.fit(self._vectors, [example.sentiment for example in examples])
        # Counted once per refit, not per ticket.
        self._priority_prior = self._priority_priors()

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
        vectors = self._embedder.encode(pieces)
        weights = np.array([self.count_tokens(piece) for piece in pieces], dtype=np.float32)
        combined: Vector = (weights[:, None] * vectors).sum(axis=0)
        combined /= max(float(np.linalg.norm(combined)), 1e-12)
        return combined

    def embed_many(self, texts: Sequence[str]) -> Matrix:
        """Embeddings of several texts (a message's parts) in one batch; long ones in segments."""
        if not texts:
            return np.zeros((0, self._embedder.dim), dtype=np.float32)
        vectors: Matrix = self._embedder.encode(list(texts))
        for position, text in enumerate(texts):
            if self.count_tokens(text) > SEGMENT_TOKENS + 2:
                vectors[position] = self.embed(text)
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

    def evidence(self, query: Vector) -> Evidence:
        """Category scores and the two signals confidence is calibrated on."""
        similarities: Vector = self._vectors @ query
        categories = self._categories.score(query, similarities)
        scores = categories.scores
        order = np.argsort(-scores, kind="stable")
        margin = float(scores[order[0]] - scores[order[1]]) if len(order) > 1 else 1.0
        fit = max(
            float(similarities.max()) if similarities.size else -1.0,
            float(categories.described.max()),
        )
        ranked = tuple(self._categories.labels[int(i)] for i in order)
        return Evidence(
            ranked=ranked, scores=scores, similarities=similarities, margin=margin, fit=fit
        )

    def classify_vector(self, query: Vector) -> Decision:
        """Classify an already embedded ticket."""
        evidence = self.evidence(query)
        best = evidence.ranked[0]
        similarities = evidence.similarities
        off_topic = evidence.fit < self._config.thresholds.off_topic_similarity
        reasons = [f"closest labels: {', '.join(evidence.ranked[:2])}"]
        if off_topic:
            reasons.append(f"best similarity to any example or phrase is only {evidence.fit:.2f}")
        priority = self._priority(query, similarities, category=best, off_topic=off_topic)
        return Decision(
            category=best,
            priority=priority,
            team=self._team_for(best, similarities),
            sentiment=self._sentiments.labels[
                int(np.argmax(self._sentiments.score(query, similarities).scores))
            ],
            confidence=calibrated_confidence(evidence.margin, evidence.fit),
            source="local",
            category_scores=dict(
                zip(self._categories.labels, _softmax(evidence.scores), strict=True)
            ),
            off_topic=off_topic,
            reasons=tuple(reasons),
            margin=evidence.margin,
            fit=evidence.fit,
        )

    def _priority(
        self, query: Vector, similarities: Vector, *, category: str, off_topic: bool
    ) -> str:
        field = self._priorities
        scored = field.score(query, similarities)
        scores = scored.scores
        # What the category's examples say is typical, unless the category is a mere guess.
        if not off_topic:
            scores = scores + PRIORITY_PRIOR_WEIGHT * self._priority_prior[category]
        allowed = np.ones(len(field.labels), dtype=bool)
        # The config may cap a category's priority ("requests are low"); labels are ordered.
        ceiling = self._config.category(category).max_priority
        if ceiling is not None:
            allowed[self._config.priority_rank(ceiling) + 1 :] = False
        # A level that needs evidence (critical) is given only to a ticket close to one of its
        # examples or phrases; otherwise the next best level, and forced keywords still page.
        for position, level in enumerate(self._config.priorities):
            if level.min_similarity is not None and scored.nearest[position] < level.min_similarity:
                allowed[position] = False
        if not allowed.any():
            allowed[0] = True
        return field.labels[int(np.argmax(np.where(allowed, scores, -np.inf)))]

    def _priority_priors(self) -> dict[str, npt.NDArray[np.float64]]:
        # How often each priority occurs among the examples of each category, smoothed: feature
        # requests are rarely urgent, outages rarely low, whatever the wording.
        positions = {name: i for i, name in enumerate(self._priorities.labels)}
        counts = {name: np.ones(len(positions)) for name in self._config.category_names}
        for example in self._examples:
            if example.category in counts and example.priority in positions:
                counts[example.category][positions[example.priority]] += 1
        return {category: row / row.sum() for category, row in counts.items()}

    def _team_for(self, category: str, similarities: Vector) -> str:
        # The team follows the category unless a very similar example of it says otherwise.
        candidates = [
            (float(similarities[i]), example.team)
            for i, example in enumerate(self._examples)
            if example.category == category and example.team is not None
        ]
        if candidates:
            similarity, team = max(candidates)
            if similarity >= TEAM_OVERRIDE_SIMILARITY and team is not None:
                return team
        return self._config.team_for(category)


def _softmax(scores: npt.NDArray[np.float64]) -> list[float]:
    values = scores / TEMPERATURE
    values = values - values.max()
    exps = np.exp(values)
    return [float(x) for x in exps / exps.sum()]
