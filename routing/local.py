"""The offline classifier: sentence embeddings compared with labeled examples and rubrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from routing.config import LabelConfig, TriageConfig
from routing.embedding import Embedder
from routing.models import Decision, LabeledExample

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

# How many of a label's nearest examples are averaged into its score.
NEIGHBOURS_PER_LABEL = 3
# Weight of the rubric against the examples for a label that has both.
RUBRIC_WEIGHT = 0.25
# A label with no example is scored by its rubric alone, less this, so examples win ties.
RUBRIC_ONLY_PENALTY = 0.05
# Softmax temperature turning cosine scores into per-label probabilities.
TEMPERATURE = 0.05
# Confidence = sigmoid(a * margin + b * top_score + c), fitted by bench/calibrate.py on
# banking77 and CLINC150 (see BENCHMARKS.md). margin = top score - second score (cosine units).
CALIBRATION = (30.0, 6.0, -4.0)
# A team other than the category's default is taken from an example only when it is this close.
TEAM_OVERRIDE_SIMILARITY = 0.8


def _humanize(name: str) -> str:
    return name.replace("_", " ")


@dataclass(frozen=True)
class LabelScores:
    """Scores for every label of one field, best first."""

    labels: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def best(self) -> str:
        """The top label."""
        return self.labels[0]

    @property
    def margin(self) -> float:
        """Top score minus the second (the whole top score when there is one label)."""
        return self.scores[0] - (self.scores[1] if len(self.scores) > 1 else 0.0)


class _Field:
    """One label space (category, priority or sentiment): rubric vectors and example indexes."""

    def __init__(self, name: str, labels: Sequence[LabelConfig], embedder: Embedder) -> None:
        self.name = name
        self.labels = tuple(label.name for label in labels)
        rubric_texts = [label.rubric or _humanize(label.name) for label in labels]
        self.rubrics: Matrix = embedder.encode(rubric_texts)

    def score(
        self,
        query: Vector,
        similarities: Vector,
        example_labels: Sequence[str | None],
    ) -> LabelScores:
        rubric_scores = self.rubrics @ query
        scores: list[float] = []
        for index, label in enumerate(self.labels):
            mine = np.array(
                [similarities[i] for i, value in enumerate(example_labels) if value == label],
                dtype=np.float32,
            )
            rubric = float(rubric_scores[index])
            if mine.size == 0:
                scores.append(rubric - RUBRIC_ONLY_PENALTY)
                continue
            top = np.sort(mine)[::-1][:NEIGHBOURS_PER_LABEL]
            example_score = float(top.mean())
            scores.append((1 - RUBRIC_WEIGHT) * example_score + RUBRIC_WEIGHT * rubric)
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        return LabelScores(
            labels=tuple(self.labels[i] for i in order),
            scores=tuple(scores[i] for i in order),
        )


def calibrated_confidence(margin: float, top_score: float) -> float:
    """Probability that the top label is right, from the margin and the top score."""
    a, b, c = CALIBRATION
    return 1.0 / (1.0 + math.exp(-(a * margin + b * top_score + c)))


class LocalClassifier:
    """Scores labels by similarity to labeled examples and rubrics; learns a new example at once."""

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
        self._categories = _Field("category", config.categories, embedder)
        self._priorities = _Field("priority", config.priorities, embedder)
        self._sentiments = _Field("sentiment", config.sentiments, embedder)

    @property
    def examples(self) -> tuple[LabeledExample, ...]:
        """The labeled examples in use, corrections included."""
        return tuple(self._examples)

    def add_example(self, example: LabeledExample) -> None:
        """Learn from one more labeled example; the next classification already uses it."""
        vector = self._embedder.encode([example.text])
        self._examples.append(example)
        self._vectors = np.vstack([self._vectors, vector])

    def nearest_examples(self, text: str, k: int) -> list[LabeledExample]:
        """The k labeled examples most similar to text, most similar first."""
        if k <= 0 or not self._examples:
            return []
        similarities = self._vectors @ self._embedder.encode([text])[0]
        order = np.argsort(-similarities)[:k]
        return [self._examples[int(i)] for i in order]

    def classify(self, text: str) -> Decision:
        """Category, priority, team and sentiment of text, with a calibrated confidence."""
        return self.classify_vector(self._embedder.encode([text])[0])

    def classify_vector(self, query: Vector) -> Decision:
        """Classify an already embedded ticket."""
        similarities: Vector = self._vectors @ query
        examples = self._examples
        category = self._categories.score(query, similarities, [e.category for e in examples])
        priority = self._priorities.score(query, similarities, [e.priority for e in examples])
        sentiment = self._sentiments.score(query, similarities, [e.sentiment for e in examples])

        best_example = float(similarities.max()) if similarities.size else -1.0
        best_rubric = float((self._categories.rubrics @ query).max())
        fit = max(best_example, best_rubric)
        off_topic = fit < self._config.thresholds.off_topic_similarity
        confidence = calibrated_confidence(category.margin, category.scores[0])
        probabilities = _softmax(category.scores)
        reasons = [f"nearest labels: {', '.join(category.labels[:2])}"]
        if off_topic:
            reasons.append(f"best similarity {fit:.2f} to any example or rubric")
        return Decision(
            category=category.best,
            priority=priority.best,
            team=self._team_for(category.best, similarities),
            sentiment=sentiment.best,
            confidence=confidence,
            source="local",
            category_scores=dict(zip(category.labels, probabilities, strict=True)),
            off_topic=off_topic,
            reasons=tuple(reasons),
        )

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


def _softmax(scores: Sequence[float]) -> list[float]:
    values = np.array(scores, dtype=np.float64) / TEMPERATURE
    values -= values.max()
    exps = np.exp(values)
    return [float(x) for x in exps / exps.sum()]
