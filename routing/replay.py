"""Replaying agents' corrections over a labeled file: `triage eval --replay-corrections`.

Each row, in order, is classified with what has been learnt so far; when the decision is wrong
on a labeled field, a simulated agent corrects it the way `/triage reclassify` does (through
routing.corrections, the same code path): naming only the fields that were wrong, so a ticket
whose category was right teaches no category. The report says, per window of rows, how accurate
each labeled field was, how many tickets went to a human and how many corrections were made,
and at the end how accurate each confidence bin was.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from routing.config import TriageConfig
from routing.corrections import Correction, correction_example
from routing.errors import UserError
from routing.evaluation import EVAL_FIELDS, EvalField, LabeledRows, ProgressCallback
from routing.models import LabeledExample, Ticket, Triage

# Confidence bins of the closing table: [0.0, 0.1), ..., [0.9, 1.0].
BINS = 10


class LearningPipeline(Protocol):
    """What a replay needs of a pipeline (routing.cascade.Pipeline fits): triage and learn."""

    async def triage(self, ticket: Ticket) -> Triage:
        """Classify, escalate and draft one ticket."""
        ...

    def learn(self, example: LabeledExample) -> None:
        """Use a labeled example from the next ticket on."""
        ...


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReplayWindow(_Frozen):
    """One window of consecutive rows."""

    first_row: int
    n: int
    # Per labeled field, the share of this window's rows whose decision had it right.
    accuracy: dict[str, float]
    needs_human_rate: float
    corrections: int
    # Mean confidence of the decisions, beside the category accuracy it should track.
    mean_confidence: float


class ConfidenceBin(_Frozen):
    """Decisions whose confidence fell in [low, high): how many, and how many were right."""

    low: float
    high: float
    n: int
    accuracy: float | None
    mean_confidence: float | None


class ReplayReport(_Frozen):
    """What a replay measured."""

    dataset: str
    seed: int | None
    n: int
    window: int
    # The labeled fields, the measured one first.
    fields: tuple[str, ...]
    # Which field the confidence bins measure (the category when labeled).
    binned_field: str
    windows: tuple[ReplayWindow, ...]
    bins: tuple[ConfidenceBin, ...]
    corrections: int
    notes: tuple[str, ...] = ()

    def summary_json(self) -> dict[str, Any]:
        """The record `triage eval --replay-corrections --json` prints."""
        windows = []
        for window in self.windows:
            record: dict[str, Any] = {"first_row": window.first_row, "n": window.n}
            for field, value in window.accuracy.items():
                record[_accuracy_key(field)] = round(value, 4)
            record["needs_human_rate"] = round(window.needs_human_rate, 4)
            record["corrections"] = window.corrections
            record["mean_confidence"] = round(window.mean_confidence, 4)
            windows.append(record)
        return {
            "dataset": self.dataset,
            "seed": self.seed,
            "n": self.n,
            "window": self.window,
            "fields": list(self.fields),
            "corrections": self.corrections,
            "windows": windows,
            "confidence_bins": {
                "field": self.binned_field,
                "bins": [
                    {
                        "low": round(b.low, 2),
                        "high": round(b.high, 2),
                        "n": b.n,
                        "accuracy": None if b.accuracy is None else round(b.accuracy, 4),
                        "mean_confidence": None
                        if b.mean_confidence is None
                        else round(b.mean_confidence, 4),
                    }
                    for b in self.bins
                ],
            },
            "notes": list(self.notes),
        }


def _accuracy_key(field: str) -> str:
    # The brief's JSON names: "accuracy" is the category's, the others are prefixed.
    return "accuracy" if field == "category" else f"{field}_accuracy"


def _allowed(config: TriageConfig, field: str) -> tuple[str, ...]:
    return {
        "category": config.category_names,
        "priority": config.priority_names,
        "sentiment": config.sentiment_names,
        "team": config.team_names,
    }[field]


def replay_order(rows: LabeledRows, *, seed: int | None, limit: int | None) -> list[int]:
    """The row positions to replay: file order, or shuffled by seed; then the first limit."""
    order = list(range(len(rows.rows)))
    if seed is not None:
        random.Random(seed).shuffle(order)  # noqa: S311  # sampling, not security
    if limit is not None:
        order = order[:limit]
    return order


async def replay_corrections(
    rows: LabeledRows,
    *,
    config: TriageConfig,
    pipeline: LearningPipeline,
    field: EvalField = "category",
    window: int = 100,
    seed: int | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
) -> ReplayReport:
    """Replay the rows in order, correcting every wrong decision as an agent would.

    rows' label is the field's; their extra labels (priority, sentiment, ...) are measured and
    corrected too. pipeline must have `triage(ticket)` and `learn(example)` (routing.cascade's
    Pipeline, built from the config and its own examples).
    """
    if window < 1:
        raise UserError(f"--window {window}: give at least 1 row per window")
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: give at least 1 row")
    order = replay_order(rows, seed=seed, limit=limit)
    notes = list(rows.notes)
    truths: list[dict[str, str]] = []
    for position in order:
        row = rows.rows[position]
        truth: dict[str, str] = {field: row.label}
        truth.update((name, label) for name, label in row.extra if name != field)
        truths.append(truth)
    candidates: list[str] = [field, *(name for name in EVAL_FIELDS if name != field)]
    fields = [name for name in candidates if any(name in truth for truth in truths)]
    unknown: dict[str, int] = {}
    for truth in truths:
        for name, value in truth.items():
            if value not in _allowed(config, name):
                unknown[name] = unknown.get(name, 0) + 1
    for name, count in unknown.items():
        notes.append(
            f"{count} row(s) have a {name} label that is not in the config: they count as "
            f"wrong and no agent can correct that {name}"
        )

    right: dict[str, list[bool]] = {name: [] for name in fields}
    labeled: dict[str, list[bool]] = {name: [] for name in fields}
    human: list[bool] = []
    corrected: list[bool] = []
    confidence: list[float] = []
    total = len(order)
    for done, (position, truth) in enumerate(zip(order, truths, strict=True), start=1):
        row = rows.rows[position]
        triage = await pipeline.triage(Ticket(text=row.text))
        decision = triage.decision
        wrong: dict[str, str] = {}
        for name in fields:
            known = truth.get(name)
            labeled[name].append(known is not None)
            is_right = known is not None and str(getattr(decision, name)) == known
            right[name].append(is_right)
            if known is not None and not is_right and known in _allowed(config, name):
                wrong[name] = known
        human.append(triage.escalation.needs_human)
        confidence.append(decision.confidence)
        # The agent names what was wrong, exactly as with `/triage reclassify #n field=..`.
        correction = Correction(**wrong)
        corrected.append(not correction.empty)
        if not correction.empty:
            pipeline.learn(correction_example(row.text, correction))
        if progress is not None:
            progress(done, total)

    windows = []
    for start in range(0, total, window):
        stop = min(start + window, total)
        accuracy = {}
        for name in fields:
            counted = [right[name][i] for i in range(start, stop) if labeled[name][i]]
            if counted:
                accuracy[name] = sum(counted) / len(counted)
        windows.append(
            ReplayWindow(
                first_row=start + 1,
                n=stop - start,
                accuracy=accuracy,
                needs_human_rate=sum(human[start:stop]) / (stop - start),
                corrections=sum(corrected[start:stop]),
                mean_confidence=sum(confidence[start:stop]) / (stop - start),
            )
        )
    binned = "category" if "category" in fields else fields[0]
    bins = _bins(confidence, right[binned], labeled[binned])
    return ReplayReport(
        dataset=rows.source,
        seed=seed,
        n=total,
        window=window,
        fields=tuple(fields),
        binned_field=binned,
        windows=tuple(windows),
        bins=bins,
        corrections=sum(corrected),
        notes=tuple(notes),
    )


def _bins(
    confidence: Sequence[float], right: Sequence[bool], labeled: Sequence[bool]
) -> tuple[ConfidenceBin, ...]:
    members: list[list[int]] = [[] for _ in range(BINS)]
    for index, value in enumerate(confidence):
        if labeled[index]:
            members[min(int(value * BINS), BINS - 1)].append(index)
    result = []
    for number, indexes in enumerate(members):
        result.append(
            ConfidenceBin(
                low=number / BINS,
                high=(number + 1) / BINS,
                n=len(indexes),
                accuracy=sum(right[i] for i in indexes) / len(indexes) if indexes else None,
                mean_confidence=sum(confidence[i] for i in indexes) / len(indexes)
                if indexes
                else None,
            )
        )
    return tuple(result)


def format_replay(report: ReplayReport) -> str:
    """Render a replay as aligned text for a terminal."""
    order = f"shuffled with seed {report.seed}" if report.seed is not None else "in file order"
    lines = [
        f"{Path(report.dataset).name}: {report.n} rows replayed {order}, windows of "
        f"{report.window}; {report.corrections} corrections in all",
        "",
    ]
    head = "rows          " + "".join(f"{name:>11}" for name in report.fields)
    lines.append(head + "  needs human  corrections  mean confidence")
    for window in report.windows:
        span = f"{window.first_row}-{window.first_row + window.n - 1}"
        cells = "".join(
            f"{window.accuracy[name]:>11.3f}" if name in window.accuracy else f"{'-':>11}"
            for name in report.fields
        )
        lines.append(
            f"{span:<14}{cells}  {window.needs_human_rate:>11.3f}  {window.corrections:>11}"
            f"  {window.mean_confidence:>15.3f}"
        )
    lines.append("")
    lines.append(f"Accuracy of the {report.binned_field} per confidence bin (all rows):")
    lines.append("  confidence      rows  accuracy  mean confidence")
    for b in report.bins:
        if not b.n:
            continue
        lines.append(
            f"  {b.low:.1f}-{b.high:.1f}    {b.n:>8}  {b.accuracy or 0.0:>8.3f}"
            f"  {b.mean_confidence or 0.0:>15.3f}"
        )
    if report.notes:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in report.notes)
    return "\n".join(lines)
