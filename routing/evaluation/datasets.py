"""Labeled data sets: reading .csv and .jsonl files into rows, with filters and notes."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routing.errors import UserError

# How many names an error or a note lists before it says "and N more".
NAMES_SHOWN = 10


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
        missing = "a folder, not a file" if source.is_dir() else "file not found"
        raise UserError(f"{source}: {missing}; pass the path of a labeled .csv or .jsonl file")
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
        notes.append(
            f"{source.name} has no column {split_col!r}, so every row is a test row"
            " (with --shots, the examples are drawn from them and the rest are tested)"
        )

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


def split_names(spec: str) -> frozenset[str]:
    """Split names from an argument; several are separated by commas ("test,oos_test")."""
    return frozenset(name.strip() for name in spec.split(",") if name.strip())


def counted(counts: Mapping[str, int]) -> str:
    """Name and count the most common entries: "a (3), b (1)", then "and N more"."""
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{name or '(blank)'} ({n})" for name, n in items[:NAMES_SHOWN])
    if len(items) > NAMES_SHOWN:
        text += f" and {len(items) - NAMES_SHOWN} more"
    return text
