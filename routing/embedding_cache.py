"""An embedder that remembers: evaluation embeds the same texts once per seed otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from routing.embedding import Embedder


class CachingEmbedder:
    """Wraps an Embedder and embeds each distinct text once."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self._cache: dict[str, npt.NDArray[np.float32]] = {}

    @property
    def dim(self) -> int:
        """The wrapped embedder's dimension."""
        return self._inner.dim

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of texts, computing only those not seen before."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            for text, vector in zip(missing, self._inner.encode(missing), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[text] for text in texts])
