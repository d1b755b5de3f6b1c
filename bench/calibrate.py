"""Fit the local classifier's confidence on public data: P(right) from margin and fit.

Runs the same evaluation as `triage eval` (10 examples per label, 3 seeds) on banking77 and on
CLINC150 (in-scope test plus the out-of-scope test rows, which are always wrong), records each
decision's margin and fit, and fits a logistic regression of "the category was right" on them.
Prints the coefficients for routing/local.py's CALIBRATION and how well they separate right
from wrong answers. Not run in CI; takes a few minutes on 2 cores.

    .venv/bin/python bench/calibrate.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from routing.evaluation import category_names_for_labels, evaluate, load_dataset
from routing.local import calibrated_confidence
from routing.models import LabeledExample, Ticket, Triage


class RecordingPipeline:
    """Wraps a pipeline and keeps the local layer's raw signals for every ticket."""

    def __init__(self, inner: Pipeline, sink: list[tuple[str, str, float, float]]) -> None:
        self._inner = inner
        self._sink = sink

    async def triage(self, ticket: Ticket) -> Triage:
        """Triage as usual, recording (text, predicted category, margin, fit)."""
        triage = await self._inner.triage(ticket)
        local = triage.layers[0].decision
        assert local is not None
        assert local.margin is not None
        assert local.fit is not None
        self._sink.append((ticket.text, local.category, local.margin, local.fit))
        return triage


async def collect(
    path: Path, *, test_split: str, embedder: CachingEmbedder, config: TriageConfig
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Features (margin, fit) and right/wrong labels for one dataset, 10 shots, 3 seeds."""
    rows = load_dataset(path, text_col="text", label_col="intent", split_col="split")
    truth = {row.text: row.label for row in rows.rows}
    mapping = category_names_for_labels(
        config, sorted({row.label for row in rows.rows if row.split == "train"})
    )
    records: list[tuple[str, str, float, float]] = []

    def make(eval_config: TriageConfig, examples: list[LabeledExample]) -> RecordingPipeline:
        return RecordingPipeline(
            build_pipeline(eval_config, embedder=embedder, examples=examples), records
        )

    await evaluate(
        rows, config=config, make_pipeline=make, shots=10, seeds=3, test_split=test_split
    )
    features = np.array([[margin, fit] for _, _, margin, fit in records])
    right = np.array(
        [1.0 if mapping.get(truth[text]) == predicted else 0.0 for text, predicted, _, _ in records]
    )
    return features, right


def fit_logistic(
    features: npt.NDArray[np.float64], right: npt.NDArray[np.float64]
) -> tuple[float, float, float]:
    """Coefficients (a, b, c) of P(right) = sigmoid(a * margin + b * fit + c), by Newton steps."""
    design = np.hstack([features, np.ones((len(features), 1))])
    weights = np.zeros(3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ weights))
        gradient = design.T @ (right - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-6 * np.eye(3)
        weights += np.linalg.solve(hessian, gradient)
    return float(weights[0]), float(weights[1]), float(weights[2])


def auroc(scores: Sequence[float], right: npt.NDArray[np.float64]) -> float:
    """Probability that a random right answer has higher confidence than a random wrong one."""
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = np.asarray(right) == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared"
    )
    args = parser.parse_args()
    datasets = args.shared / "datasets"
    config = load_config()
    embedder = CachingEmbedder(MiniLMEmbedder.load())
    # banking77's test split; CLINC150's in-scope and out-of-scope test rows.
    sources = [
        (datasets / "banking77" / "banking77.csv", "test"),
        (datasets / "clinc150_oos" / "clinc150.csv", "test,oos_test"),
    ]
    parts = [
        asyncio.run(collect(path, test_split=split, embedder=embedder, config=config))
        for path, split in sources
    ]
    features = np.vstack([part[0] for part in parts])
    right = np.concatenate([part[1] for part in parts])
    a, b, c = fit_logistic(features, right)
    confidence = [calibrated_confidence(m, f, (a, b, c)) for m, f in features]
    bins = np.linspace(0, 1, 11)
    reliability = []
    for low, high in itertools.pairwise(bins):
        chosen = [
            i
            for i, value in enumerate(confidence)
            if low <= value < high or (high == 1 and value == 1)
        ]
        if chosen:
            reliability.append(
                {
                    "confidence": f"{low:.1f}-{high:.1f}",
                    "n": len(chosen),
                    "accuracy": round(float(right[chosen].mean()), 3),
                }
            )
    print(
        json.dumps(
            {
                "n": len(right),
                "accuracy": round(float(right.mean()), 4),
                "calibration": [round(a, 3), round(b, 3), round(c, 3)],
                "auroc": round(auroc(confidence, right), 4),
                "reliability": reliability,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
