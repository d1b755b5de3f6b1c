"""Measuring the classifier on a labeled data set: the engine behind `triage eval`."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from routing.config import (
    CategoryConfig,
    PriorityConfig,
    SentimentConfig,
    TriageConfig,
    validate_config,
)
from routing.errors import UserError
from routing.models import LabeledExample, Ticket, Triage

# A full confusion matrix is printed up to this many labels; beyond, the most confused pairs.
FULL_MATRIX_MAX_LABELS = 20
# How many of the most confused pairs are printed for a large taxonomy.
CONFUSED_PAIRS_SHOWN = 20
# How many names an error or a note lists before it says "and N more".
NAMES_SHOWN = 10


class PipelineLike(Protocol):
    """What evaluation needs of a pipeline: triage one ticket (routing.cascade.Pipeline fits)."""

    async def triage(self, ticket: Ticket) -> Triage:
        """Classify, escalate and draft one ticket."""
        ...


# Builds a pipeline for a taxonomy and the labeled examples it may learn from.
PipelineFactory: TypeAlias = Callable[[TriageConfig, list[LabeledExample]], PipelineLike]
# Called with (rows classified so far, rows to classify in all).
ProgressCallback: TypeAlias = Callable[[int, int], None]
# Which decided field is measured against the label column.
EvalField: TypeAlias = Literal["category", "priority", "sentiment", "team"]
EVAL_FIELDS: tuple[EvalField, ...] = ("category", "priority", "sentiment", "team")


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabeledRow:
    """One row of a data set: the text, its true label and its split ("" when it has none)."""

    text: str
    label: str
    split: str = ""
    # What examples are drawn per (--shots-by); "" means the label itself.
    group: str = ""
    # Labels of other fields, as (field, label) pairs (e.g. the priority column in a replay).
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def stratum(self) -> str:
        """The value examples are drawn per: the group when there is one, else the label."""
        return self.group or self.label


@dataclass(frozen=True)
class LabeledRows:
    """The rows of a data set that passed the filters, and what loading noticed."""

    source: str
    rows: tuple[LabeledRow, ...]
    has_split: bool
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """The distinct true labels, sorted."""
        return tuple(sorted({row.label for row in self.rows}))

    def split_counts(self) -> Counter[str]:
        """Rows per split value."""
        return Counter(row.split for row in self.rows)


def parse_where(items: Iterable[str]) -> dict[str, str]:
    """Turn repeated `column=value` arguments into a filter; a malformed one is a UserError."""
    where: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        column = column.strip()
        if not sep or not column:
            raise UserError(f"--where {item!r}: expected column=value, e.g. language=en")
        if column in where and where[column] != value:
            raise UserError(
                f"--where {column}= given twice ({where[column]!r} and {value!r}); "
                "a row must equal every filter, so give each column once"
            )
        where[column] = value
    return where


def load_dataset(
    path: Path | str,
    *,
    text_col: str = "text",
    label_col: str = "category",
    split_col: str | None = "split",
    where: Mapping[str, str] | None = None,
    split_required: bool = False,
    group_col: str | None = None,
    extra_cols: Mapping[str, str] | None = None,
    optional_extra_cols: Mapping[str, str] | None = None,
) -> LabeledRows:
    """Read a labeled .csv or .jsonl file, keeping the rows equal to every `where` filter.

    A file without split_col has no split (a note says so), unless split_required, when it is an
    error like any other missing column. Rows with a blank text or label are skipped and noted.
    group_col names a column whose values --shots draws examples per (e.g. banking77's intent while
    the label is the category it maps to).
    extra_cols maps another field to the column holding its label (a row's blank cell is no
    label); optional_extra_cols likewise, for columns used only when the file has them.
    Every problem with the file or the arguments is a UserError that says what to change.
    """
    source = Path(path)
    filters = dict(where or {})
    if not source.is_file():
        raise UserError(f"{source}: file not found; pass the path of a labeled .csv or .jsonl file")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        columns, records = _read_csv(source)
    elif suffix == ".jsonl":
        columns, records = _read_jsonl(source)
    else:
        raise UserError(
            f"{source}: unknown file type {source.suffix or '(none)'!r}; use a .csv or .jsonl file"
        )

    wanted = [("text", text_col), ("label", label_col)]
    if split_col is not None and split_required:
        wanted.append(("split", split_col))
    if group_col is not None:
        wanted.append(("--shots-by", group_col))
    wanted.extend(("--where", column) for column in filters)
    wanted.extend((f"{field} label", column) for field, column in (extra_cols or {}).items())
    for role, column in wanted:
        if column not in columns:
            raise UserError(
                f"{source}: no column {column!r} (the {role} column); "
                f"its columns are: {', '.join(columns) or '(none)'}"
            )
    has_split = split_col is not None and split_col in columns
    extras = dict(extra_cols or {})
    for field, column in (optional_extra_cols or {}).items():
        if column in columns and field not in extras:
            extras[field] = column
    notes: list[str] = []
    if split_col is not None and not has_split:
        notes.append(f"{source.name} has no column {split_col!r}: its rows have no split")

    kept: list[LabeledRow] = []
    blank = 0
    for record in records:
        if any(record.get(column, "") != value for column, value in filters.items()):
            continue
        text = record.get(text_col, "").strip()
        label = record.get(label_col, "").strip()
        if not text or not label:
            blank += 1
            continue
        split = record.get(split_col, "").strip() if has_split and split_col else ""
        group = record.get(group_col, "").strip() if group_col else ""
        extra = tuple(
            (field, value)
            for field, column in extras.items()
            if (value := record.get(column, "").strip())
        )
        kept.append(LabeledRow(text=text, label=label, split=split, group=group, extra=extra))

    if blank:
        notes.append(f"skipped {blank} row(s) with a blank {text_col!r} or {label_col!r}")
    if not kept:
        raise UserError(_no_rows_message(source, records, filters, text_col, label_col))
    return LabeledRows(
        source=str(source), rows=tuple(kept), has_split=has_split, notes=tuple(notes)
    )


def _no_rows_message(
    source: Path,
    records: Sequence[Mapping[str, str]],
    filters: Mapping[str, str],
    text_col: str,
    label_col: str,
) -> str:
    if not records:
        return f"{source}: the file has no rows"
    if not filters:
        return f"{source}: every row has a blank {text_col!r} or {label_col!r}"
    shown = " ".join(f"--where {column}={value}" for column, value in filters.items())
    hints = []
    for column in filters:
        common = Counter(record.get(column, "") for record in records).most_common(NAMES_SHOWN)
        hints.append(f"{column}: " + ", ".join(f"{value!r} ({n})" for value, n in common))
    return f"{source}: no rows left after {shown}; the most common values are " + "; ".join(hints)


def _read_csv(source: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with source.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            records = [
                {key: value or "" for key, value in row.items() if isinstance(key, str)}
                for row in reader
            ]
    except UnicodeDecodeError as error:
        raise UserError(f"{source}: not UTF-8 text ({error.reason}); save it as UTF-8") from error
    except csv.Error as error:
        raise UserError(f"{source}: not valid CSV ({error})") from error
    return columns, records


def _read_jsonl(source: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        lines = source.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{source}: not UTF-8 text ({error.reason}); save it as UTF-8") from error
    columns: dict[str, None] = {}
    records: list[dict[str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(
                f"{source}: line {number}: not valid JSON ({error.msg}); one object per line"
            ) from error
        if not isinstance(value, dict):
            raise UserError(f"{source}: line {number}: not a JSON object; one object per line")
        columns.update(dict.fromkeys(value))
        records.append({key: _as_text(item) for key, item in value.items()})
    return list(columns), records


def _as_text(value: Any) -> str:
    """Render a JSON value as a CSV cell would hold it: true/false, numbers, "" for null."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _split_names(spec: str) -> frozenset[str]:
    """Split names from an argument; several are separated by commas ("test,oos_test")."""
    return frozenset(name.strip() for name in spec.split(",") if name.strip())


# --- taxonomy --------------------------------------------------------------------------------


def sanitize_label(label: str) -> str:
    """Make a category name of a label: lower case, accents dropped, `_` for anything else."""
    text = unicodedata.normalize("NFKD", label)
    text = "".join(char for char in text if not unicodedata.combining(char)).lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text or not text[0].isalpha():
        text = f"label_{text}".rstrip("_")
    return text


def label_words(label: str) -> str:
    """Turn a label into words, the rubric of a category made from it."""
    return re.sub(r"[\s_\-]+", " ", label).strip().lower()


def category_names_for_labels(config: TriageConfig, labels: Iterable[str]) -> dict[str, str]:
    """Map each label to its category name: itself if a category, else its sanitised name.

    A label whose sanitised name is a category (`Billing` -> `billing`) is that category; names
    that would clash get `_2`, `_3`, ... The result does not depend on the order of labels.
    """
    return _names_for_labels(config.category_names, labels)


def _names_for_labels(names: Iterable[str], labels: Iterable[str]) -> dict[str, str]:
    """Map each label to a label name of a field: itself if one of names, else sanitised."""
    existing = set(names)
    unique = sorted(set(labels))
    mapping = {label: label for label in unique if label in existing}
    taken = set(existing)
    for label in unique:
        if label in mapping:
            continue
        base = sanitize_label(label)
        if base in existing and base not in mapping.values():
            mapping[label] = base
            continue
        name, number = base, 2
        while name in taken:
            name, number = f"{base}_{number}", number + 1
        taken.add(name)
        mapping[label] = name
    return mapping


def taxonomy_for_labels(
    config: TriageConfig, labels: Iterable[str], *, exact: bool = False
) -> TriageConfig:
    """Return the config with a category for every label (see category_names_for_labels).

    A new category's team is the fallback team and its rubric the label in words. With exact,
    the categories are exactly the labels': the config's other categories are dropped, with
    the hotword rules and drafting entries keyed by them. The result passes validate_config.
    """
    mapping = category_names_for_labels(config, labels)
    if not mapping:
        raise UserError("no labels to build a taxonomy from")
    label_of = {category: label for label, category in mapping.items()}
    categories = [
        category for category in config.categories if not exact or category.name in label_of
    ]
    present = {category.name for category in categories}
    for category_name in sorted(label_of, key=lambda name: label_of[name]):
        if category_name not in present:
            categories.append(
                CategoryConfig(
                    name=category_name,
                    team=config.fallback_team,
                    rubric=label_words(label_of[category_name]),
                )
            )
    kept = {category.name for category in categories}
    drafting = config.drafting
    updated = config.model_copy(
        update={
            "categories": tuple(categories),
            "rules": config.rules.model_copy(
                update={
                    "hotwords": tuple(
                        rule for rule in config.rules.hotwords if rule.category in kept
                    )
                }
            ),
            "drafting": drafting.model_copy(
                update={
                    "instructions": _keyed_by(drafting.instructions, kept),
                    "templates": _keyed_by(drafting.templates, kept),
                    "asks": {key: asks for key, asks in drafting.asks.items() if key in kept},
                    "question_categories": None
                    if drafting.question_categories is None
                    else tuple(name for name in drafting.question_categories if name in kept),
                    "languages": {},
                }
            ),
        }
    )
    validate_config(updated)
    return updated


def field_taxonomy_for_labels(
    config: TriageConfig, field: EvalField, labels: Iterable[str]
) -> TriageConfig:
    """Return the config whose priorities or sentiments are exactly the labels' names.

    A label that is already a label of the field keeps its config (rubric, phrases, flags); a
    new one gets its words as rubric. The default becomes the first label when the config's
    default is not among them. The categories stay as they are.
    """
    mapping = _names_for_labels(_field_labels(config, field), labels)
    if not mapping:
        raise UserError("no labels to build a taxonomy from")
    # The config's labels keep their order (priorities run from least to most urgent); new
    # ones follow, sorted.
    config_order = _field_labels(config, field)
    wanted = set(mapping.values())
    names = [name for name in config_order if name in wanted]
    names += sorted(wanted - set(names))
    if field == "priority":
        known_priorities = {level.name: level for level in config.priorities}
        priorities = tuple(
            known_priorities.get(name)
            or PriorityConfig(name=name, rubric=label_words(name), emoji=":white_circle:")
            for name in names
        )
        default = config.default_priority if config.default_priority in names else names[0]
        # Category caps name the config's priorities; they mean nothing for the new ones.
        categories = tuple(
            category
            if category.max_priority in (None, *names)
            else category.model_copy(update={"max_priority": None})
            for category in config.categories
        )
        updated = config.model_copy(
            update={"priorities": priorities, "default_priority": default, "categories": categories}
        )
    elif field == "sentiment":
        known = {sentiment.name: sentiment for sentiment in config.sentiments}
        sentiments = tuple(
            known.get(name) or SentimentConfig(name=name, rubric=label_words(name))
            for name in names
        )
        default = config.default_sentiment if config.default_sentiment in names else names[0]
        updated = config.model_copy(update={"sentiments": sentiments, "default_sentiment": default})
    else:
        raise UserError(f"--field {field}: only priority and sentiment labels can be replaced")
    validate_config(updated)
    return updated


def _keyed_by(entries: Mapping[str, str], categories: set[str]) -> dict[str, str]:
    return {key: value for key, value in entries.items() if key in categories or key == "default"}


# --- the report ------------------------------------------------------------------------------


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


# --- evaluation ------------------------------------------------------------------------------


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
        mapping = {name: name for name in _field_labels(config, field)}
        unknown = Counter(row.label for row in test if row.label not in mapping)
        if unknown:
            notes.append(
                f"{sum(unknown.values())} test row(s) have labels that are not {_PLURAL[field]} "
                f"of the config and count as errors (their needs-human rate is still shown): "
                + _counted(unknown)
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
            mapping = _names_for_labels(_field_labels(config, field), pool_labels)
            taxonomy = field_taxonomy_for_labels(config, field, pool_labels)
        runs = [
            _draw(pool, test_rows, mapping, shots=shots, rng=random.Random(seed), field=field)  # noqa: S311  # sampling, not security
            for seed in range(seeds)
        ]
        notes.extend(_shortage_notes(pool, shots, leave_one=test_rows is None))
        if test_rows is not None:
            unseen = Counter(row.label for row in test_rows if row.label not in mapping)
            if unseen:
                notes.append(
                    f"{sum(unseen.values())} test row(s) have labels with no example in "
                    f"split {train_split!r}, which cannot be predicted and count as errors: "
                    + _counted(unseen)
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


_PLURAL = {
    "category": "categories",
    "priority": "priorities",
    "sentiment": "sentiments",
    "team": "teams",
}


def _field_labels(config: TriageConfig, field: EvalField) -> tuple[str, ...]:
    if field == "priority":
        return tuple(level.name for level in config.priorities)
    if field == "sentiment":
        return tuple(sentiment.name for sentiment in config.sentiments)
    if field == "team":
        return tuple(team.name for team in config.teams)
    return config.category_names


def _split_rows(rows: LabeledRows, spec: str) -> tuple[LabeledRow, ...]:
    names = _split_names(spec)
    chosen = tuple(row for row in rows.rows if row.split in names)
    if not chosen:
        present = _counted(rows.split_counts())
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
        + _counted(short)
    ]


def _counted(counts: Mapping[str, int]) -> str:
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{name or '(blank)'} ({n})" for name, n in items[:NAMES_SHOWN])
    if len(items) > NAMES_SHOWN:
        text += f" and {len(items) - NAMES_SHOWN} more"
    return text


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


# --- output ----------------------------------------------------------------------------------


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
    cell = max(len(str(largest)), *(len(key) for key in keys))
    head = max(len(f"{key} {label}") for key, label in zip(keys, labels, strict=True))
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


class ProgressBar:
    """Progress on stderr: one line redrawn in place on a terminal, else a line every 10%.

    Use an instance as evaluate's progress callback. Nothing is written when the total is
    below min_total, as a short run needs no progress report.
    """

    def __init__(
        self,
        *,
        label: str = "classifying",
        stream: TextIO | None = None,
        min_total: int = 100,
        width: int = 30,
    ) -> None:
        self._label = label
        self._stream = stream
        self._min_total = min_total
        self._width = width
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = 0
        self._finished = False

    def _out(self) -> TextIO:
        # Resolved at each call, so a redirected sys.stderr (pytest's capture, say) is honoured.
        return self._stream if self._stream is not None else sys.stderr

    def _is_terminal(self) -> bool:
        try:
            return self._out().isatty()
        except ValueError:  # a closed stream
            return False

    def __call__(self, done: int, total: int) -> None:
        """Report that done of total rows are classified."""
        if total < self._min_total or total <= 0 or self._finished:
            return
        done = min(done, total)
        stream = self._out()
        if self._is_terminal():
            now = time.monotonic()
            if done < total and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            stream.write("\r" + self._bar(done, total, now))
            if done == total:
                stream.write("\n")
                self._finished = True
        else:
            decile = done * 10 // total
            if decile <= self._last_decile:
                return
            self._last_decile = decile
            stream.write(f"{self._label}: {decile * 10}% ({done}/{total})\n")
            self._finished = done == total
        stream.flush()

    def _bar(self, done: int, total: int, now: float) -> str:
        filled = self._width * done // total
        bar = "#" * filled + "." * (self._width - filled)
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f" eta {_duration((total - done) / rate)}" if rate > 0 and done < total else ""
        speed = f" {rate:.1f}/s" if rate > 0 else ""
        return f"{self._label} [{bar}] {100 * done // total:3d}% {done}/{total}{speed}{eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
