"""Time to learn one correction, to classify one ticket, and to load stored corrections.

Run: `nice .venv/bin/python bench/bench_learning.py` (prints one JSON object). The classifier is
the real LocalClassifier with the default config; the examples' vectors come from a stand-in
embedder (random unit vectors, fixed per text) so that 10,000 examples need no hour of model
time: the figures are the learning and scoring cost, without the model pass of the one new
ticket (about 9 ms, BENCHMARKS.md). "before" replays the earlier way of learning one example
(a warm-started refit on every example: a batch as large as all of them, 60 steps).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

import routing.local as local
from routing.config import load_config
from routing.local import LocalClassifier
from routing.models import LabeledExample

SIZES = (10, 1_000, 10_000)
DIM = 384


class RandomEmbedder:
    """A unit vector per text, the same for the same text: the model's shape, not its cost."""

    dim = DIM

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors for texts."""
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        return np.stack(rows) if rows else np.zeros((0, DIM), dtype=np.float32)


def _examples(n: int, start: int = 0) -> list[LabeledExample]:
    config = load_config()
    rng = np.random.default_rng(start)
    return [
        LabeledExample(
            text=f"ticket {start + i}",
            category=config.category_names[int(rng.integers(len(config.category_names)))],
            priority=config.priority_names[int(rng.integers(len(config.priority_names)))],
            sentiment=config.sentiment_names[int(rng.integers(len(config.sentiment_names)))],
        )
        for i in range(n)
    ]


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def measure(size: int, *, before: bool) -> dict[str, float]:
    """Median ms to learn one more example and to classify one ticket, at size examples."""
    config = load_config()
    saved = (local.INCREMENT_BATCH, local.INCREMENT_STEPS)
    if before:
        local.INCREMENT_BATCH, local.INCREMENT_STEPS = 10**9, 60
    try:
        classifier = LocalClassifier(embedder=RandomEmbedder(), config=config, examples=[])
        started = time.perf_counter()
        classifier.add_examples(_examples(size))
        load_ms = (time.perf_counter() - started) * 1000
        fresh = iter(_examples(1_000, start=10**6))
        repeat = 5 if before and size >= 10_000 else 30
        learn = _median_ms(lambda: classifier.add_example(next(fresh)), repeat)
        query = RandomEmbedder().encode(["a new ticket"])[0]
        classify = _median_ms(lambda: classifier.classify_vector(query), 200)
    finally:
        local.INCREMENT_BATCH, local.INCREMENT_STEPS = saved
    return {"load_all_ms": round(load_ms, 1), "learn_one_ms": learn, "classify_ms": classify}


def main() -> None:
    """Print the figures at each size, now and the earlier way."""
    # As the bot does (bot/__main__.py): one BLAS thread for this small matrix work.
    threadpool_limits(limits=1)
    result = {
        str(size): {"now": measure(size, before=False), "before": measure(size, before=True)}
        for size in SIZES
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
