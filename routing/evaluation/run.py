"""Running an evaluation: draw examples, classify the test rows, score the predictions."""

from __future__ import annotations

import asyncio
import random
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from routing.config import TriageConfig
from routing.errors import UserError
from routing.evaluation.datasets import LabeledRow, LabeledRows, counted, split_names
from routing.evaluation.labels import (
    PLURAL,
    EvalField,
    category_names_for_labels,
    field_labels,
    field_taxonomy_for_labels,
    names_for_labels,
    taxonomy_for_labels,
)
from routing.evaluation.progress import ProgressCallback
from routing.evaluation.report import EvalReport, LabelMetrics
from routing.models import LabeledExample, Ticket, Triage


class PipelineLike(Protocol):
    """What evaluation needs of a pipeline: triage one ticket (routing.cascade.Pipeline fits)."""

    async def triage(self, ticket: Ticket) -> Triage:
        """Classify, escalate and draft one ticket."""
        ...


# Builds a pipeline for a taxonomy and the labeled examples it may learn from.
PipelineFactory: TypeAlias = Callable[[TriageConfig, list[LabeledExample]], PipelineLike]


@dataclass(frozen=True)
class _Run:
    """One seed's examples and test rows."""

    examples: tuple[LabeledExample, ...]
    test: tuple[LabeledRow, ...]


@dataclass(frozen=True)
class _Outcome:
    """One seed's true labels, predictions (as the data set's labels) and human flags."""

    truth: tuple[str, ...]
    predicted: tuple[str, ...]
    human: tuple[bool, ...]
    # The escalation reason codes of each row.
    reasons: tuple[tuple[str, ...], ...] = ()


async def evaluate(
    rows: LabeledRows,
    *,
    config: TriageConfig,
    make_pipeline: PipelineFactory,
    shots: int | None,
    seeds: int = 1,
    train_split: str = "train",
    test_split: str = "test",
    progress: ProgressCallback | None = None,
    concurrency: int = 1,
    field: EvalField = "category",
    limit: int | None = None,
) -> EvalReport:
    """Classify the test rows and measure the predictions against the true labels.

    With shots, each seed draws up to `shots` examples per label (random.Random(seed)) from the
    train split, or from all rows when there is no split (the rest are then the test rows), and
    the taxonomy is exactly the labels that have examples. Without shots, the config is used as
    it is, with its own examples (labels it lacks count as errors), and the test split (all
    rows when there is no split) is classified once. Split arguments may name several splits,
    separated by commas. Predictions are compared as the dataset's own label names.

    field chooses what is measured: the category, priority, sentiment or team the pipeline
    decided. With shots and a field other than the category, that field's labels become the
    data set's labels (the categories stay the config's) and the examples carry only that field.
    limit keeps the first that many test rows.
    """
    if shots is not None and shots < 1:
        raise UserError(f"--shots {shots}: give at least 1 example per label")
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: give at least 1 seed")
    if concurrency < 1:
        raise UserError(f"concurrency {concurrency}: must be at least 1")
    if field == "team" and shots is not None:
        raise UserError(
            "--field team follows the category: drop --shots, or measure the category with "
            "--shots and a column of categories"
        )
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: give at least 1 row")

    notes = list(rows.notes)
    if shots is None:
        test = _split_rows(rows, test_split) if rows.has_split else rows.rows
        # The config is evaluated as it is: a label it does not have can never be predicted.
        taxonomy = config
        mapping = {name: name for name in field_labels(config, field)}
        unknown = Counter(row.label for row in test if row.label not in mapping)
        if unknown:
            notes.append(
                f"{sum(unknown.values())} test row(s) have labels that are not {PLURAL[field]} "
                f"of the config and count as errors (their needs-human rate is still shown): "
                + counted(unknown)
            )
        runs = [_Run(examples=tuple(taxonomy.load_examples()), test=test)]
        if seeds > 1:
            notes.append("without --shots nothing is drawn at random: ran once, not per seed")
    else:
        pool = _split_rows(rows, train_split) if rows.has_split else rows.rows
        test_rows = _split_rows(rows, test_split) if rows.has_split else None
        pool_labels = sorted({row.label for row in pool})
        if field == "category":
            mapping = category_names_for_labels(config, pool_labels)
            taxonomy = taxonomy_for_labels(config, pool_labels, exact=True)
        else:
            mapping = names_for_labels(field_labels(config, field), pool_labels)
            taxonomy = field_taxonomy_for_labels(config, field, pool_labels)
        runs = [
            _draw(pool, test_rows, mapping, shots=shots, rng=random.Random(seed), field=field)  # noqa: S311  # sampling, not security
            for seed in range(seeds)
        ]
        if not any(run.test for run in runs):
            # Each label's rows all went to its examples: nothing is left to measure.
            raise UserError(
                f"{rows.source}: no rows left to test: each label has one row, which --shots"
                " takes as its example; give labels at least 2 rows (one is kept for the"
                " test), or a split column with train and test rows"
            )
        notes.extend(_shortage_notes(pool, shots, leave_one=test_rows is None))
        if test_rows is not None:
            unseen = Counter(row.label for row in test_rows if row.label not in mapping)
            if unseen:
                notes.append(
                    f"{sum(unseen.values())} test row(s) have labels with no example in "
                    f"split {train_split!r}, which cannot be predicted and count as errors: "
                    + counted(unseen)
                )
    renamed = sorted(label for label, category in mapping.items() if label != category)
    if renamed:
        notes.append(
            f"{len(renamed)} label(s) renamed to fit the category name pattern, e.g. "
            + ", ".join(f"{label!r} -> {mapping[label]!r}" for label in renamed[:3])
        )

    if limit is not None:
        runs = [_Run(examples=run.examples, test=run.test[:limit]) for run in runs]
    label_of = {category: label for label, category in mapping.items()}
    total = sum(len(run.test) for run in runs)
    counter = _Tally(total, progress)
    outcomes: list[_Outcome] = []
    for run in runs:
        pipeline = make_pipeline(taxonomy, list(run.examples))
        outcomes.append(
            await _classify(pipeline, run.test, label_of, counter, concurrency, field=field)
        )
    return _report(rows.source, outcomes, runs, shots=shots, notes=notes)


def _split_rows(rows: LabeledRows, spec: str) -> tuple[LabeledRow, ...]:
    names = split_names(spec)
    chosen = tuple(row for row in rows.rows if row.split in names)
    if not chosen:
        present = counted(rows.split_counts())
        raise UserError(f"{rows.source}: no rows in split {spec!r}; its splits are: {present}")
    return chosen


def _draw(
    pool: Sequence[LabeledRow],
    test: Sequence[LabeledRow] | None,
    mapping: Mapping[str, str],
    *,
    shots: int,
    rng: random.Random,
    field: EvalField = "category",
) -> _Run:
    """Up to `shots` examples per label; with no test split, every other row is a test row."""
    by_stratum: dict[str, list[int]] = {}
    for index, row in enumerate(pool):
        by_stratum.setdefault(row.stratum, []).append(index)
    chosen: list[int] = []
    for stratum in sorted(by_stratum):
        indexes = by_stratum[stratum]
        chosen.extend(rng.sample(indexes, _take(len(indexes), shots, leave_one=test is None)))
    examples = tuple(
        LabeledExample.model_validate({"text": pool[index].text, field: mapping[pool[index].label]})
        for index in chosen
    )
    if test is None:
        drawn = set(chosen)
        test = [row for index, row in enumerate(pool) if index not in drawn]
    return _Run(examples=examples, test=tuple(test))


def _take(available: int, shots: int, *, leave_one: bool) -> int:
    """Examples to draw from a label's rows: shots, fewer when short, but at least one."""
    usable = available - 1 if leave_one else available
    return min(shots, max(1, usable))


def _shortage_notes(pool: Sequence[LabeledRow], shots: int, *, leave_one: bool) -> list[str]:
    counts = Counter(row.stratum for row in pool)
    short = Counter(
        {
            label: _take(n, shots, leave_one=leave_one)
            for label, n in counts.items()
            if _take(n, shots, leave_one=leave_one) < shots
        }
    )
    if not short:
        return []
    needed = f"{shots + 1} rows" if leave_one else f"{shots} rows in the train split"
    return [
        f"{len(short)} label(s) have fewer than {needed}; examples taken per label: "
        + counted(short)
    ]


class _Tally:
    """Counts classified rows across seeds and reports them to the progress callback."""

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def tick(self) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress(self.done, self.total)


async def _classify(
    pipeline: PipelineLike,
    test: Sequence[LabeledRow],
    label_of: Mapping[str, str],
    counter: _Tally,
    concurrency: int,
    *,
    field: EvalField,
) -> _Outcome:
    gate = asyncio.Semaphore(concurrency)

    async def one(row: LabeledRow) -> tuple[str, bool, tuple[str, ...]]:
        async with gate:
            triage = await pipeline.triage(Ticket(text=row.text))
        counter.tick()
        decided = str(getattr(triage.decision, field))
        codes = tuple(reason.code for reason in triage.escalation.reasons)
        return label_of.get(decided, decided), triage.escalation.needs_human, codes

    results = await asyncio.gather(*(one(row) for row in test))
    return _Outcome(
        truth=tuple(row.label for row in test),
        predicted=tuple(predicted for predicted, _, _ in results),
        human=tuple(human for _, human, _ in results),
        reasons=tuple(codes for _, _, codes in results),
    )


@dataclass(frozen=True)
class _SeedScores:
    accuracy: float
    macro_f1: float
    macro_recall: float
    needs_human_rate: float
    # label -> (precision, recall, f1, support, needs-human rate or None)
    per_label: dict[str, tuple[float, float, float, int, float | None]]


def _scores(outcome: _Outcome, labels: Sequence[str]) -> _SeedScores:
    n = len(outcome.truth)
    pairs = list(zip(outcome.truth, outcome.predicted, strict=True))
    support = Counter(outcome.truth)
    predicted = Counter(outcome.predicted)
    correct = Counter(truth for truth, guess in pairs if truth == guess)
    human = Counter(truth for truth, flag in zip(outcome.truth, outcome.human, strict=True) if flag)
    per_label: dict[str, tuple[float, float, float, int, float | None]] = {}
    for label in labels:
        precision = correct[label] / predicted[label] if predicted[label] else 0.0
        recall = correct[label] / support[label] if support[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rate = human[label] / support[label] if support[label] else None
        per_label[label] = (precision, recall, f1, support[label], rate)
    true_labels = [label for label in labels if support[label]]
    return _SeedScores(
        accuracy=sum(correct.values()) / n if n else 0.0,
        macro_f1=statistics.fmean(per_label[label][2] for label in true_labels)
        if true_labels
        else 0.0,
        macro_recall=statistics.fmean(per_label[label][1] for label in true_labels)
        if true_labels
        else 0.0,
        needs_human_rate=sum(outcome.human) / n if n else 0.0,
        per_label=per_label,
    )


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _report(
    dataset: str,
    outcomes: Sequence[_Outcome],
    runs: Sequence[_Run],
    *,
    shots: int | None,
    notes: Sequence[str],
) -> EvalReport:
    truths = sorted({label for outcome in outcomes for label in outcome.truth})
    only_predicted = sorted(
        {label for outcome in outcomes for label in outcome.predicted} - set(truths)
    )
    labels = [*truths, *only_predicted]
    scores = [_scores(outcome, labels) for outcome in outcomes]

    per_label: list[LabelMetrics] = []
    for label in labels:
        rows = [score.per_label[label] for score in scores]
        rates = [row[4] for row in rows if row[4] is not None]
        per_label.append(
            LabelMetrics(
                label=label,
                precision=statistics.fmean(row[0] for row in rows),
                recall=statistics.fmean(row[1] for row in rows),
                f1=statistics.fmean(row[2] for row in rows),
                support=round(statistics.fmean(row[3] for row in rows)),
                needs_human_rate=statistics.fmean(rates) if rates else None,
            )
        )

    position = {label: index for index, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for outcome in outcomes:
        for truth, guess in zip(outcome.truth, outcome.predicted, strict=True):
            matrix[position[truth]][position[guess]] += 1

    accuracies = [score.accuracy for score in scores]
    f1s = [score.macro_f1 for score in scores]
    reason_counts: Counter[str] = Counter()
    for outcome in outcomes:
        for codes in outcome.reasons:
            reason_counts.update(set(codes))
    tested = sum(len(outcome.truth) for outcome in outcomes) or 1
    reasons = {
        code: count / tested
        for code, count in sorted(reason_counts.items(), key=lambda item: -item[1])
    }
    return EvalReport(
        dataset=dataset,
        shots=shots,
        seeds=len(outcomes),
        n_test=round(statistics.fmean(len(run.test) for run in runs)),
        n_examples=round(statistics.fmean(len(run.examples) for run in runs)),
        accuracy=statistics.fmean(accuracies),
        accuracy_std=_std(accuracies),
        macro_f1=statistics.fmean(f1s),
        macro_f1_std=_std(f1s),
        macro_recall=statistics.fmean(score.macro_recall for score in scores),
        needs_human_rate=statistics.fmean(score.needs_human_rate for score in scores),
        needs_human_reasons=reasons,
        per_seed_accuracy=tuple(accuracies),
        per_label=tuple(per_label),
        confusion_labels=tuple(labels),
        confusion=tuple(tuple(row) for row in matrix),
        notes=tuple(notes),
    )
