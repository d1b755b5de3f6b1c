"""What an evaluation measured (EvalReport) and its rendering for a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A full confusion matrix is printed up to this many labels; beyond, the most confused pairs.
FULL_MATRIX_MAX_LABELS = 20
# How many of the most confused pairs are printed for a large taxonomy.
CONFUSED_PAIRS_SHOWN = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelMetrics(_Frozen):
    """One label's figures, each the mean over seeds; support counts test rows in one seed."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    # Share of this label's test rows sent to a human; None for a label with no test rows.
    needs_human_rate: float | None


class EvalReport(_Frozen):
    """What an evaluation measured; rates and scores are means over seeds."""

    dataset: str
    shots: int | None
    seeds: int
    # Test rows classified, and labeled examples given to the pipeline, per seed.
    n_test: int
    n_examples: int
    accuracy: float
    # Sample standard deviation over seeds (0.0 for one seed).
    accuracy_std: float
    # Mean F1 over the labels with test rows; a label only ever predicted does not count in it.
    macro_f1: float
    macro_f1_std: float
    # Mean recall over the labels with test rows (TweetEval's headline figure for sentiment).
    macro_recall: float
    needs_human_rate: float
    # Share of test rows each escalation reason fired for (a row can have several), mean over seeds.
    needs_human_reasons: dict[str, float] = Field(default_factory=dict)
    per_seed_accuracy: tuple[float, ...]
    # Every true label (sorted), then the labels only predicted (sorted).
    per_label: tuple[LabelMetrics, ...]
    # Rows are true labels, columns predicted ones, in confusion_labels order; counts are
    # summed over all seeds.
    confusion_labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    notes: tuple[str, ...] = ()

    def summary_json(self) -> dict[str, Any]:
        """Return the record `triage eval --json` prints."""
        return {
            "dataset": self.dataset,
            "accuracy": round(self.accuracy, 4),
            "accuracy_std": round(self.accuracy_std, 4),
            "macro_f1": round(self.macro_f1, 4),
            "macro_f1_std": round(self.macro_f1_std, 4),
            "macro_recall": round(self.macro_recall, 4),
            "n_test": self.n_test,
            "n_examples": self.n_examples,
            "needs_human_rate": round(self.needs_human_rate, 4),
            "needs_human_reasons": {
                code: round(rate, 4) for code, rate in self.needs_human_reasons.items()
            },
            "seeds": self.seeds,
            "shots": self.shots,
            "per_seed_accuracy": [round(value, 4) for value in self.per_seed_accuracy],
            "per_label": {
                metrics.label: {
                    "precision": round(metrics.precision, 4),
                    "recall": round(metrics.recall, 4),
                    "f1": round(metrics.f1, 4),
                    "support": metrics.support,
                    "needs_human_rate": (
                        None
                        if metrics.needs_human_rate is None
                        else round(metrics.needs_human_rate, 4)
                    ),
                }
                for metrics in self.per_label
            },
            "confusion": {
                "labels": list(self.confusion_labels),
                "matrix": [list(row) for row in self.confusion],
                "summed_over_seeds": self.seeds,
            },
            "notes": list(self.notes),
        }


def format_report(report: EvalReport) -> str:
    """Render the report as aligned text for a terminal."""
    shots = f"{report.shots} shots per label ({report.n_examples} examples)"
    setup = shots if report.shots is not None else f"the config's {report.n_examples} examples"
    seeds = f"{report.seeds} seed{'s' if report.seeds != 1 else ''}"
    lines = [
        f"{Path(report.dataset).name}: {report.n_test} test rows, {setup}, {seeds}",
        "",
        f"  accuracy     {report.accuracy:.3f}"
        + (f" ± {report.accuracy_std:.3f} (std over seeds)" if report.seeds > 1 else ""),
        f"  macro-F1     {report.macro_f1:.3f}"
        + (f" ± {report.macro_f1_std:.3f}" if report.seeds > 1 else ""),
        f"  macro-recall {report.macro_recall:.3f}",
        f"  needs human  {report.needs_human_rate:.3f}",
    ]
    if report.needs_human_reasons:
        lines.append(
            "  why          "
            + ", ".join(f"{code} {rate:.3f}" for code, rate in report.needs_human_reasons.items())
        )
    lines.append("")
    width = max([len("label"), *(len(metrics.label) for metrics in report.per_label)])
    lines.append(f"{'label':<{width}}  precision  recall     f1  support  needs human")
    for metrics in report.per_label:
        rate = "-" if metrics.needs_human_rate is None else f"{metrics.needs_human_rate:.3f}"
        lines.append(
            f"{metrics.label:<{width}}  {metrics.precision:>9.3f}  {metrics.recall:>6.3f}"
            f"  {metrics.f1:>5.3f}  {metrics.support:>7}  {rate:>11}"
        )
    lines.append("")
    summed = f"; counts summed over {report.seeds} seeds" if report.seeds > 1 else ""
    if len(report.confusion_labels) <= FULL_MATRIX_MAX_LABELS:
        lines.append(f"Confusion matrix (rows: true label, columns: predicted{summed}):")
        lines.extend(_matrix_lines(report))
    else:
        lines.append(f"Most confused pairs (true -> predicted{summed}):")
        lines.extend(_confused_pair_lines(report))
    if report.notes:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in report.notes)
    return "\n".join(lines)


def _matrix_lines(report: EvalReport) -> list[str]:
    labels = report.confusion_labels
    keys = [f"[{index}]" for index in range(1, len(labels) + 1)]
    largest = max((count for row in report.confusion for count in row), default=0)
    cell = max([len(str(largest)), *(len(key) for key in keys)])
    head = max((len(f"{key} {label}") for key, label in zip(keys, labels, strict=True)), default=0)
    lines = [" " * head + "".join(f" {key:>{cell}}" for key in keys)]
    for key, label, row in zip(keys, labels, report.confusion, strict=True):
        name = f"{key} {label}"
        lines.append(f"{name:<{head}}" + "".join(f" {count:>{cell}}" for count in row))
    return lines


def _confused_pair_lines(report: EvalReport) -> list[str]:
    labels = report.confusion_labels
    pairs = sorted(
        (
            (-count, labels[i], labels[j])
            for i, row in enumerate(report.confusion)
            for j, count in enumerate(row)
            if i != j and count
        ),
    )[:CONFUSED_PAIRS_SHOWN]
    if not pairs:
        return ["  (none)"]
    true_width = max(len(true) for _, true, _ in pairs)
    guess_width = max(len(guess) for _, _, guess in pairs)
    count_width = len(str(-pairs[0][0]))
    return [
        f"  {true:<{true_width}} -> {guess:<{guess_width}}  {-negative:>{count_width}}"
        for negative, true, guess in pairs
    ]
