"""A second opinion on tone: the centroid of each sentiment's examples, and a lexicon.

The sentiment field's softmax head on MiniLM embeddings weighs every dimension of meaning, and
meaning is mostly topic: on TweetEval it stayed at 0.52-0.54 macro-recall whatever its fit. Two
experts that read tone more directly are multiplied in (their log-probabilities added):

- the centroid of each label's examples (cosine, softmax at CENTROID_TEMPERATURE): a prototype
  averages the topics of 100 tweets away and keeps what they share;
- VADER's lexicon and rules (vaderSentiment, MIT, its lexicon ships in the wheel; tuned on
  social media text) read as a few numbers per message, scored per label by a linear
  discriminant (class means, one shared covariance shrunk towards its diagonal).

Both are kept as sums over the examples, so learning one more example costs the same however
many there are, and both give every label the same prior (macro-recall, not the majority class).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float64]

# Softmax temperature of the cosine to each label's centroid.
CENTROID_TEMPERATURE = 0.05
# Weight of the lexicon's log-probabilities against the centroids' (with local.TONE_WEIGHT 0.8:
# centroid 0.8, lexicon 0.8 against the head; chosen on TweetEval's validation rows of both
# data sets, BENCHMARKS.md "Regression checks and tone").
LEXICON_WEIGHT = 1.0
# The shared covariance is shrunk this far towards its diagonal (few examples, 16 features).
SHRINKAGE = 0.3
# The experts speak only when every label has this many examples. A prototype and a discriminant
# of ten or thirty support tickets are mostly topic: with the shipped examples (angry 11,
# satisfied 10, frustrated 31) they cost bench/data/dev_tickets.jsonl's sentiment 0.81 -> 0.73,
# and so does a gate at 30 (only the cues and the head decide there).
MIN_EXAMPLES = 50

# Words as VADER's lexicon spells them (its emoticons too); hashtags read as words.
_WORD = re.compile(r"[a-z']+|[:;=][-']?[)(dpo/\\|]|<3")


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    # Reads its 7,500-entry lexicon from the package once (about 30 ms).
    return SentimentIntensityAnalyzer()


FEATURES = 16

# Sentences, for the compound score of each: "Thanks for the fix. But it is broken again."
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")

# "\u2019" written out as six characters (some exports and APIs escape that way).
_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")
# Typographic quotes as VADER's rules spell them: its negations are "don't", "isn't", ..., so
# "I don\u2019t like it" (a phone's or a Mac's apostrophe) read as liking it.
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
# Emoji whose name in VADER's table carries no valence ("pouting face"), as a word that does.
_EMOJI_WORDS = {
    "😡": "angry",
    "🤬": "angry",
    "😠": "angry",
    "😤": "annoyed",
    "🙄": "annoyed",
    "😩": "weary",
    "👎": "bad",
    "🙏": "thanks",
    "👍": "good",
    "🎉": "celebrate",
}


def lexicon_text(text: str) -> str:
    r"""The text as the lexicon reads it: escapes and entities decoded, quotes made plain.

    Slack escapes &, < and > as entities; "\u2019"-style escapes are decoded; emoji that VADER
    scores as neutral but that carry a feeling become a word of that feeling.
    """
    text = html.unescape(_ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), text))
    text = text.translate(_QUOTES)
    for emoji, word in _EMOJI_WORDS.items():
        if emoji in text:
            text = text.replace(emoji, f" {word} ")
    return text


def lexicon_features(text: str) -> Floats:
    """VADER's scores of a text and of its sentences, and what its lexicon words add up to.

    16 numbers: the whole text's four scores, the lexicon words' sums, counts and extremes, '!'
    and '?', and the compound score of its most positive, most negative and last sentence (a
    complaint after a thank-you is a complaint).
    """
    analyzer = _analyzer()
    text = lexicon_text(text)
    scores = analyzer.polarity_scores(text)
    lexicon = analyzer.lexicon
    values = [
        lexicon[word] for word in _WORD.findall(text.lower().replace("#", " ")) if word in lexicon
    ]
    positive = [value for value in values if value > 0]
    negative = [-value for value in values if value < 0]
    sentences = [piece for piece in _SENTENCE_BREAK.split(text) if piece.strip()]
    if len(sentences) > 1:
        by_sentence = [analyzer.polarity_scores(piece)["compound"] for piece in sentences]
    else:
        by_sentence = [scores["compound"]]
    return np.array(
        [
            scores["neg"],
            scores["neu"],
            scores["pos"],
            scores["compound"],
            sum(positive) / 4,
            sum(negative) / 4,
            len(positive) / 3,
            len(negative) / 3,
            max(values, default=0.0) / 4,
            min(values, default=0.0) / 4,
            float(bool(values)),
            min(text.count("!"), 3) / 3,
            min(text.count("?"), 3) / 3,
            max(by_sentence),
            min(by_sentence),
            by_sentence[-1],
        ],
        dtype=np.float64,
    )


class ToneModel:
    """Per label: the sum of its examples' embeddings and the moments of their lexicon features."""

    def __init__(self, n_labels: int, dim: int) -> None:
        self._counts = np.zeros(n_labels)
        self._vector_sums = np.zeros((n_labels, dim))
        self._feature_sums = np.zeros((n_labels, FEATURES))
        self._outer_sums = np.zeros((n_labels, FEATURES, FEATURES))
        self._fitted: tuple[Matrix, Floats, Floats] | None = None

    @property
    def ready(self) -> bool:
        """True when every label has MIN_EXAMPLES examples (and there are two labels or more)."""
        return len(self._counts) > 1 and bool((self._counts >= MIN_EXAMPLES).all())

    def add(self, vectors: Matrix, features: Floats, positions: npt.NDArray[np.int64]) -> None:
        """Count examples: their embeddings, lexicon features and label positions."""
        for vector, row, position in zip(vectors, features, positions, strict=True):
            self._counts[position] += 1
            self._vector_sums[position] += vector
            self._feature_sums[position] += row
            self._outer_sums[position] += np.outer(row, row)
        self._fitted = None

    def _fit(self) -> tuple[Matrix, Floats, Floats]:
        if self._fitted is None:
            counts = self._counts[:, None]
            centroids = self._vector_sums / counts
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            means = self._feature_sums / counts
            # The within-label scatter pooled over the labels, shrunk towards its diagonal.
            scatter = self._outer_sums.sum(axis=0) - np.einsum(
                "k,ki,kj->ij", self._counts, means, means
            )
            covariance = scatter / self._counts.sum()
            diagonal = np.diag(np.diag(covariance)) + 1e-4 * np.eye(FEATURES)
            precision = np.linalg.inv((1 - SHRINKAGE) * covariance + SHRINKAGE * diagonal)
            self._fitted = (centroids.astype(np.float32), means, precision)
        return self._fitted

    def log_probs(self, query: Vector, text: str) -> Floats:
        """Per label, the two experts' log-probabilities added; zeros until the model is ready."""
        if not self.ready:
            return np.zeros(len(self._counts))
        centroids, means, precision = self._fit()
        cosine = (centroids @ query).astype(np.float64) / CENTROID_TEMPERATURE
        offsets = lexicon_features(text)[None, :] - means
        lexicon = -0.5 * np.einsum("kd,de,ke->k", offsets, precision, offsets)
        return _log_softmax(cosine) + LEXICON_WEIGHT * _log_softmax(lexicon)


def _log_softmax(values: Floats) -> Floats:
    shifted = values - values.max()
    result: Floats = shifted - np.log(np.exp(shifted).sum())
    return result
