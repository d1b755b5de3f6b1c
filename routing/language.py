"""The language of a ticket, detected offline with py3langid (its model ships in the wheel).

py3langid is a maintained fork of langid.py (BSD-3-Clause): a naive Bayes model over byte n-grams,
4.6 MB, numpy only, deterministic, and about 0.4 ms per ticket. It is unreliable on a few words
("ok", "SSO broken"), so a probability below the configured minimum leaves the language unknown.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier

# Names for the languages an agent is most likely to see; others show as their code.
LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "pt": "Portuguese",
    "it": "Italian",
    "nl": "Dutch",
    "sv": "Swedish",
    "da": "Danish",
    "no": "Norwegian",
    "fi": "Finnish",
    "pl": "Polish",
    "cs": "Czech",
    "sk": "Slovak",
    "hu": "Hungarian",
    "ro": "Romanian",
    "el": "Greek",
    "tr": "Turkish",
    "ru": "Russian",
    "uk": "Ukrainian",
    "ar": "Arabic",
    "he": "Hebrew",
    "hi": "Hindi",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
    "id": "Indonesian",
    "vi": "Vietnamese",
    "th": "Thai",
}

# What the detector should not read: links, Slack mentions and emoji codes, references and numbers.
_NOISE = re.compile(r"<[^>\s]*>|https?://\S+|:[a-z0-9_+\-']+:|\b[\w.-]*\d[\w.-]*\b", re.IGNORECASE)


def language_name(code: str) -> str:
    """A language's English name ("es" -> "Spanish"), or its code when unknown."""
    return LANGUAGE_NAMES.get(code, code)


@dataclass(frozen=True)
class DetectedLanguage:
    """The detector's best language and its probability (normalised over the candidates)."""

    code: str
    probability: float


class LanguageDetector:
    """Detects a text's language among configured candidates; thread-safe, loads once."""

    def __init__(self, *, candidates: Sequence[str] = (), min_probability: float = 0.5) -> None:
        self._candidates = tuple(candidates)
        self._min_probability = min_probability
        self._identifier: Any = None
        self._loading = threading.Lock()

    def load(self) -> LanguageDetector:
        """Load the model now (a server's start-up) rather than on the first ticket; self."""
        self._model()
        return self

    def _model(self) -> Any:
        # Loaded on first use (about 0.5 s), so a process that never classifies never pays it.
        with self._loading:
            if self._identifier is None:
                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                known = set(identifier.labels)
                chosen = [code for code in self._candidates if code in known]
                if chosen:
                    identifier.set_languages(chosen)
                self._identifier = identifier
            return self._identifier

    def detect(self, text: str) -> DetectedLanguage | None:
        """The language of text, or None when there is too little to tell."""
        cleaned = _NOISE.sub(" ", text)
        if not any(character.isalpha() for character in cleaned):
            return None
        code, probability = self._model().classify(cleaned)
        if float(probability) < self._min_probability:
            return None
        return DetectedLanguage(code=str(code), probability=float(probability))
