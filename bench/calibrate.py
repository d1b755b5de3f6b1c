"""Fit the local classifier's confidence on public data: P(right) from margin and fit.

Runs the same evaluation as `triage eval` (10 examples per label, 3 seeds) on banking77 and on
CLINC150 (in-scope test plus the out-of-scope test rows, which are always wrong), records each
decision's margin and fit, and fits a logistic regression of "the category was right" on them.
Prints the coefficients for routing/local.py's CALIBRATION and how well they separate right
from wrong answers. Not run in CI; takes a few minutes on 2 cores.

    .venv/bin/python bench/calibrate.py [--shared ../shared]

With --fields it fits the priority and sentiment confidences instead (FIELD_CALIBRATION), on the
hand-written tickets of bench/data/handwritten_tickets.jsonl with the default config:
P(right) = sigmoid(a * margin + b * fit + c * cued + d), and reports their AUROC out of fold
(5 folds), so the figure is not measured on the rows the coefficients were fitted on.

    .venv/bin/python bench/calibrate.py --fields [--file FILE]
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
from routing.local import LocalClassifier, calibrated_confidence
from routing.models import LabeledExample, Ticket, Triage
from routing.redact import redact


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


def fit_ridge_logistic(
    features: npt.NDArray[np.float64], right: npt.NDArray[np.float64], *, ridge: float = 1.0
) -> npt.NDArray[np.float64]:
    """Weights (one per feature, then the bias) of an L2-penalised logistic regression.

    The penalty keeps a feature that happens to separate a small sample (a cue) from an
    infinite weight; the bias is not penalised.
    """
    design = np.hstack([features, np.ones((len(features), 1))])
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    weights = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ weights))
        gradient = design.T @ (right - p) - penalty @ weights
        hessian = (
            design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-6 * np.eye(len(weights))
        )
        weights += np.linalg.solve(hessian, gradient)
    return weights


def category_calibration(path: Path, clinc: Path, *, oos_weight: float = 0.5) -> dict[str, object]:
    """Fit the default config's category calibration and check it.

    Fitted on the hand-written tickets (right or wrong) and CLINC150's out-of-scope validation
    rows (always wrong, weighted oos_weight); checked on the out-of-scope test rows.
    """
    config = load_config()
    embedder = MiniLMEmbedder.load()
    local = LocalClassifier(embedder=embedder, config=config, examples=config.load_examples())
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    oos = load_dataset(clinc, text_col="text", label_col="intent", split_col="split")

    def features(texts: Sequence[str]) -> tuple[npt.NDArray[np.float64], list[str]]:
        out, predicted = [], []
        for text, vector in zip(texts, embedder.encode(list(texts)), strict=True):
            evidence = local.evidence(vector, text)
            out.append([evidence.margin, evidence.fit])
            predicted.append(evidence.ranked[0])
        return np.array(out), predicted

    texts = [redact(row["text"]).text for row in rows]
    tickets, predicted = features(texts)
    right = np.array([p == row["category"] for p, row in zip(predicted, rows, strict=True)], float)
    val, _ = features([row.text for row in oos.rows if row.split == "oos_val"])
    test, _ = features([row.text for row in oos.rows if row.split == "oos_test"])
    design = np.vstack([tickets, val])
    target = np.concatenate([right, np.zeros(len(val))])
    weight = np.concatenate([np.ones(len(tickets)), np.full(len(val), oos_weight)])
    full = np.hstack([design, np.ones((len(design), 1))])
    weights = np.zeros(3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-full @ weights))
        gradient = full.T @ ((target - p) * weight)
        hessian = full.T @ (full * (weight * p * (1 - p))[:, None]) + 1e-6 * np.eye(3)
        weights += np.linalg.solve(hessian, gradient)
    a, b, c = (float(w) for w in weights)
    human = config.thresholds.human_confidence

    def below(features: npt.NDArray[np.float64]) -> float:
        return float(np.mean([calibrated_confidence(m, f, (a, b, c)) < human for m, f in features]))

    return {
        "category_calibration": [round(a, 3), round(b, 3), round(c, 3)],
        "tickets_below_human_confidence": round(below(tickets), 3),
        "clinc_oos_test_below_human_confidence": round(below(test), 3),
        "auroc_tickets": round(
            auroc([calibrated_confidence(m, f, (a, b, c)) for m, f in tickets], right), 3
        ),
    }


def field_records(path: Path) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Per field (priority, sentiment): features (margin, fit, cued) and right/wrong labels."""
    config = load_config()
    embedder = MiniLMEmbedder.load()
    local = LocalClassifier(embedder=embedder, config=config, examples=config.load_examples())
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    features: dict[str, list[list[float]]] = {"priority": [], "sentiment": []}
    right: dict[str, list[float]] = {"priority": [], "sentiment": []}
    for row in rows:
        text = redact(row["text"]).text
        evidence, priority, sentiment = local.explain(local.embed(text), text)
        for field, choice in (("priority", priority), ("sentiment", sentiment)):
            features[field].append([choice.margin, evidence.fit, float(choice.cued)])
            right[field].append(1.0 if choice.label == row[field] else 0.0)
    return {field: (np.array(features[field]), np.array(right[field])) for field in features}


# The features each field's confidence uses, as columns of (margin, fit, cued): on the
# hand-written tickets fit adds nothing out of fold, and the sentiment's cue neither.
FIELD_FEATURES = {"priority": [0, 2], "sentiment": [0]}
RIDGE = 0.1


def fields_main(path: Path) -> None:
    """Fit FIELD_CALIBRATION and print it with its AUROC per field, out of fold and in sample."""
    out: dict[str, object] = {}
    for field, (all_features, right) in field_records(path).items():
        columns = FIELD_FEATURES[field]
        features = all_features[:, columns]
        folds = np.arange(len(right)) % 5
        held_out = np.zeros(len(right))
        for fold in range(5):
            train = folds != fold
            weights = fit_ridge_logistic(features[train], right[train], ridge=RIDGE)
            design = np.hstack([features[~train], np.ones((int((~train).sum()), 1))])
            held_out[~train] = 1 / (1 + np.exp(-design @ weights))
        weights = fit_ridge_logistic(features, right, ridge=RIDGE)
        design = np.hstack([features, np.ones((len(right), 1))])
        coefficients = [0.0, 0.0, 0.0, round(float(weights[-1]), 3)]
        for column, weight in zip(columns, weights[:-1], strict=True):
            coefficients[column] = round(float(weight), 3)
        out[field] = {
            "n": len(right),
            "accuracy": round(float(right.mean()), 3),
            "calibration (margin, fit, cued, bias)": coefficients,
            "auroc_out_of_fold": round(auroc(list(held_out), right), 3),
            "auroc_in_sample": round(auroc(list(design @ weights), right), 3),
        }
    print(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared"
    )
    parser.add_argument("--fields", action="store_true", help="fit FIELD_CALIBRATION instead")
    parser.add_argument(
        "--file",
        type=Path,
        default=Path(__file__).resolve().parent / "data" / "handwritten_tickets.jsonl",
    )
    args = parser.parse_args()
    if args.fields:
        fields_main(args.file)
        clinc = args.shared / "datasets" / "clinc150_oos" / "clinc150.csv"
        print(json.dumps(category_calibration(args.file, clinc), indent=2))
        return
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
