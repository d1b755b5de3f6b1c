"""Evaluation engine: loading labeled files, taxonomies from labels, shots, metrics and output."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from routing.config import TriageConfig, load_config
from routing.errors import UserError
from routing.evaluation import (
    EvalReport,
    LabeledRow,
    LabeledRows,
    ProgressBar,
    category_names_for_labels,
    evaluate,
    format_report,
    load_dataset,
    parse_where,
    taxonomy_for_labels,
)
from routing.models import (
    Decision,
    Draft,
    Escalation,
    EscalationReason,
    LabeledExample,
    LayerCall,
    RuleMatch,
    Ticket,
    Triage,
)


class FakePipeline:
    """A stand-in pipeline: a fixed answer per text, else the category of the most similar example.

    Similarity is the number of shared words; with none shared, the first category is given and
    the ticket goes to a human. Every ticket it sees is recorded.
    """

    def __init__(
        self,
        config: TriageConfig,
        examples: Sequence[LabeledExample],
        answers: Mapping[str, tuple[str, bool]],
    ) -> None:
        self.config = config
        self.examples = list(examples)
        self.answers = answers
        self.seen: list[str] = []

    def _guess(self, text: str) -> tuple[str, bool]:
        if text in self.answers:
            return self.answers[text]
        words = set(text.lower().split())
        best, overlap = self.config.category_names[0], 0
        for example in self.examples:
            shared = len(words & set(example.text.lower().split()))
            if shared > overlap and example.category is not None:
                best, overlap = example.category, shared
        return best, overlap == 0

    async def triage(self, ticket: Ticket) -> Triage:
        """Record the ticket and answer with a whole Triage for the guessed category."""
        self.seen.append(ticket.text)
        category, human = self._guess(ticket.text)
        decision = Decision(
            category=category,
            priority=self.config.default_priority,
            team=self.config.team_for(category),
            sentiment=self.config.default_sentiment,
            confidence=0.5,
            source="local",
        )
        return Triage(
            ticket=ticket,
            redacted_text=ticket.text,
            rules=RuleMatch(),
            layers=(LayerCall(layer="local", decision=decision),),
            decision=decision,
            escalation=Escalation(
                needs_human=human,
                reasons=(
                    (EscalationReason(code="model_flagged", detail="the fake said so"),)
                    if human
                    else ()
                ),
            ),
            draft=Draft(text="", source="template"),
        )


class FakeFactory:
    """Builds FakePipelines and keeps each one, so a test can read what it was given and saw."""

    def __init__(self, answers: Mapping[str, tuple[str, bool]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.built: list[FakePipeline] = []

    def __call__(self, config: TriageConfig, examples: list[LabeledExample]) -> FakePipeline:
        """Build a pipeline for a taxonomy and its examples, and keep it."""
        pipeline = FakePipeline(config, examples, self.answers)
        self.built.append(pipeline)
        return pipeline


def _rows(*rows: tuple[str, str, str], has_split: bool = True) -> LabeledRows:
    return LabeledRows(
        source="data.csv",
        rows=tuple(LabeledRow(text=text, label=label, split=split) for text, label, split in rows),
        has_split=has_split,
    )


def _write_csv(path: Path, header: str, lines: Sequence[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


HAND = _rows(
    ("a", "billing", ""),
    ("b", "billing", ""),
    ("c", "billing", ""),
    ("d", "technical", ""),
    ("e", "technical", ""),
    ("f", "account", ""),
    has_split=False,
)
HAND_ANSWERS = {
    "a": ("billing", False),
    "b": ("billing", False),
    "c": ("technical", True),
    "d": ("technical", False),
    "e": ("account", True),
    "f": ("account", False),
}


async def test_metrics_match_a_hand_computed_example(config: TriageConfig) -> None:
    """Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix are exact."""
    report = await evaluate(
        HAND, config=config, make_pipeline=FakeFactory(HAND_ANSWERS), shots=None, seeds=1
    )
    assert report.n_test == 6
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0.5) / 3)
    assert report.accuracy_std == 0.0
    by_label = {m.label: (m.precision, m.recall, m.f1, m.support) for m in report.per_label}
    assert by_label["account"] == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert by_label["billing"] == pytest.approx((1.0, 2 / 3, 0.8, 3))
    assert by_label["technical"] == pytest.approx((0.5, 0.5, 0.5, 2))
    assert report.confusion_labels == ("account", "billing", "technical")
    assert report.confusion == ((1, 0, 0), (0, 2, 1), (1, 0, 1))


async def test_needs_human_rate_overall_and_per_true_label(config: TriageConfig) -> None:
    """The needs-human rate is the share of test rows flagged, overall and per true label."""
    report = await evaluate(
        HAND, config=config, make_pipeline=FakeFactory(HAND_ANSWERS), shots=None
    )
    assert report.needs_human_rate == pytest.approx(2 / 6)
    rates = {m.label: m.needs_human_rate for m in report.per_label}
    assert rates == pytest.approx({"account": 0.0, "billing": 1 / 3, "technical": 0.5})


async def test_without_shots_the_configs_examples_are_used(config: TriageConfig) -> None:
    """Without --shots the pipeline gets the config's own examples and classifies every row."""
    factory = FakeFactory(HAND_ANSWERS)
    report = await evaluate(HAND, config=config, make_pipeline=factory, shots=None, seeds=3)
    assert len(factory.built) == 1
    assert factory.built[0].examples == config.load_examples()
    assert sorted(factory.built[0].seen) == ["a", "b", "c", "d", "e", "f"]
    assert report.seeds == 1
    assert report.n_examples == len(config.load_examples())
    assert any("ran once" in note for note in report.notes)


async def test_predictions_are_compared_as_the_datasets_own_labels(config: TriageConfig) -> None:
    """A label renamed to fit the name pattern is mapped back before it is compared."""
    rows = _rows(
        ("refund missing", "Refund_not_showing_up", "train"),
        ("where is my refund", "Refund_not_showing_up", "test"),
    )
    factory = FakeFactory({"where is my refund": ("refund_not_showing_up", False)})
    report = await evaluate(rows, config=config, make_pipeline=factory, shots=1)
    assert report.accuracy == 1.0
    assert [m.label for m in report.per_label] == ["Refund_not_showing_up"]
    assert factory.built[0].config.category_names == ("refund_not_showing_up",)


async def test_without_shots_the_config_is_evaluated_as_it_is(config: TriageConfig) -> None:
    """Without --shots the taxonomy is the config's; a label it lacks counts as an error."""
    rows = _rows(
        ("I was charged twice", "billing", "test"),
        ("what is the weather", "oos", "test"),
    )
    factory = FakeFactory(
        {"I was charged twice": ("billing", False), "what is the weather": ("general", True)}
    )
    report = await evaluate(rows, config=config, make_pipeline=factory, shots=None)
    assert factory.built[0].config.category_names == config.category_names
    assert report.accuracy == 0.5
    oos = next(m for m in report.per_label if m.label == "oos")
    assert oos.needs_human_rate == 1.0
    assert any("not categories of the config" in note for note in report.notes)


async def test_field_measures_the_decided_priority(config: TriageConfig) -> None:
    """--field priority compares the decided priority (the fake always says the default)."""
    rows = _rows(
        ("how do I export", config.default_priority, "test"),
        ("everything is down", "critical", "test"),
        ("meh", "someday", "test"),
    )
    report = await evaluate(
        rows, config=config, make_pipeline=FakeFactory(), shots=None, field="priority"
    )
    assert report.accuracy == pytest.approx(1 / 3)
    assert {m.label for m in report.per_label} >= {config.default_priority, "critical"}
    assert any("someday (1)" in note and "not priorities" in note for note in report.notes)


SPLIT_ROWS = _rows(
    *[(f"card lost {i}", "lost_card", "train") for i in range(5)],
    *[(f"top up failed {i}", "top_up_failed", "train") for i in range(5)],
    *[(f"exchange rate {i}", "exchange_rate", "train") for i in range(5)],
    ("card lost again", "lost_card", "test"),
    ("top up failed again", "top_up_failed", "test"),
    ("exchange rate today", "exchange_rate", "test"),
    ("rate for dollars", "exchange_rate", "val"),
)


def _drawn(factory: FakeFactory) -> list[list[str]]:
    return [sorted(example.text for example in pipeline.examples) for pipeline in factory.built]


async def test_shots_draw_k_per_label_from_the_train_split_only(config: TriageConfig) -> None:
    """With --shots 2 each seed gets 2 examples per label, all from the train split."""
    factory = FakeFactory()
    report = await evaluate(SPLIT_ROWS, config=config, make_pipeline=factory, shots=2, seeds=3)
    train = {row.text for row in SPLIT_ROWS.rows if row.split == "train"}
    assert len(factory.built) == 3
    for pipeline in factory.built:
        per_label: dict[str, int] = {}
        for example in pipeline.examples:
            assert example.text in train
            assert example.category is not None
            per_label[example.category] = per_label.get(example.category, 0) + 1
        assert per_label == {"exchange_rate": 2, "lost_card": 2, "top_up_failed": 2}
        assert sorted(pipeline.seen) == [
            "card lost again",
            "exchange rate today",
            "top up failed again",
        ]
    assert report.n_test == 3
    assert report.n_examples == 6
    assert report.seeds == 3
    assert report.accuracy == 1.0


async def test_shots_are_deterministic_per_seed_and_differ_across_seeds(
    config: TriageConfig,
) -> None:
    """The same seed draws the same examples every run; different seeds draw different ones."""
    first, second = FakeFactory(), FakeFactory()
    await evaluate(SPLIT_ROWS, config=config, make_pipeline=first, shots=2, seeds=3)
    await evaluate(SPLIT_ROWS, config=config, make_pipeline=second, shots=2, seeds=3)
    assert _drawn(first) == _drawn(second)
    assert len({tuple(drawn) for drawn in _drawn(first)}) == 3


async def test_with_shots_the_taxonomy_is_exactly_the_datasets_labels(
    config: TriageConfig,
) -> None:
    """With --shots the pipeline's categories are the dataset's labels and nothing else."""
    factory = FakeFactory()
    await evaluate(SPLIT_ROWS, config=config, make_pipeline=factory, shots=1)
    taxonomy = factory.built[0].config
    assert taxonomy.category_names == ("exchange_rate", "lost_card", "top_up_failed")
    assert taxonomy.rules.hotwords == ()
    assert set(taxonomy.drafting.templates) == {"default"}


async def test_no_split_column_with_shots_leaves_the_other_rows_as_test(
    config: TriageConfig,
) -> None:
    """Without a split column, K rows per label are examples and every other row is a test row."""
    rows = _rows(
        *[(f"card lost {i}", "lost_card", "") for i in range(4)],
        *[(f"exchange rate {i}", "exchange_rate", "") for i in range(3)],
        has_split=False,
    )
    factory = FakeFactory()
    report = await evaluate(rows, config=config, make_pipeline=factory, shots=2, seeds=2)
    everything = sorted(row.text for row in rows.rows)
    for pipeline in factory.built:
        examples = [example.text for example in pipeline.examples]
        assert len(examples) == 4
        assert not set(examples) & set(pipeline.seen)
        assert sorted([*examples, *pipeline.seen]) == everything
    assert report.n_test == 3
    assert report.notes == ()


async def test_short_labels_give_what_they_have_and_are_noted(config: TriageConfig) -> None:
    """A label with fewer than K+1 rows gives all but one (at least one) as examples, noted."""
    rows = _rows(
        *[(f"card lost {i}", "lost_card", "") for i in range(5)],
        ("exchange rate a", "exchange_rate", ""),
        ("exchange rate b", "exchange_rate", ""),
        ("only one", "single", ""),
        has_split=False,
    )
    factory = FakeFactory()
    report = await evaluate(rows, config=config, make_pipeline=factory, shots=3)
    counts: dict[str, int] = {}
    for example in factory.built[0].examples:
        assert example.category is not None
        counts[example.category] = counts.get(example.category, 0) + 1
    assert counts == {"lost_card": 3, "exchange_rate": 1, "single": 1}
    assert report.n_test == 3
    assert report.notes == (
        "2 label(s) have fewer than 4 rows; examples taken per label: "
        "exchange_rate (1), single (1)",
    )


async def test_test_labels_without_examples_are_noted_with_their_human_rate(
    config: TriageConfig,
) -> None:
    """A test label absent from the train split (CLINC's oos) counts as wrong, rate readable."""
    oos = (
        LabeledRow(text="what is the capital of peru", label="oos", split="oos_test"),
        LabeledRow(text="play some jazz", label="oos", split="oos_test"),
    )
    rows = LabeledRows(source="clinc.csv", rows=(*SPLIT_ROWS.rows, *oos), has_split=True)
    report = await evaluate(
        rows, config=config, make_pipeline=FakeFactory(), shots=1, test_split="test,oos_test"
    )
    assert report.n_test == 5
    assert report.accuracy == pytest.approx(3 / 5)
    metrics = next(m for m in report.per_label if m.label == "oos")
    assert (metrics.support, metrics.recall, metrics.needs_human_rate) == (2, 0.0, 1.0)
    assert any("oos (2)" in note for note in report.notes)


async def test_a_missing_split_is_an_error_listing_the_splits(config: TriageConfig) -> None:
    """Asking for a split the file lacks names the splits it has."""
    with pytest.raises(UserError, match=r"no rows in split 'dev'.*train \(15\), test \(3\)"):
        await evaluate(
            SPLIT_ROWS, config=config, make_pipeline=FakeFactory(), shots=1, test_split="dev"
        )


async def test_concurrency_gives_the_same_report(config: TriageConfig) -> None:
    """Classifying several rows at once changes nothing in the report."""
    one = await evaluate(SPLIT_ROWS, config=config, make_pipeline=FakeFactory(), shots=2, seeds=2)
    many = await evaluate(
        SPLIT_ROWS, config=config, make_pipeline=FakeFactory(), shots=2, seeds=2, concurrency=4
    )
    assert one == many


async def test_progress_counts_every_row_of_every_seed(config: TriageConfig) -> None:
    """The progress callback sees 1..total, where total counts the test rows of all seeds."""
    calls: list[tuple[int, int]] = []
    await evaluate(
        SPLIT_ROWS,
        config=config,
        make_pipeline=FakeFactory(),
        shots=1,
        seeds=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(done, 6) for done in range(1, 7)]


def test_labels_outside_the_taxonomy_become_categories(config: TriageConfig) -> None:
    """Unknown labels are added as categories: sanitised name, fallback team, rubric in words."""
    labels = ["Refund_not_showing_up", "card_arrival", "billing"]
    taxonomy = taxonomy_for_labels(config, labels)
    assert taxonomy.category_names == (
        *config.category_names,
        "refund_not_showing_up",
        "card_arrival",
    )
    added = taxonomy.category("refund_not_showing_up")
    assert (added.team, added.rubric) == ("support", "refund not showing up")
    assert taxonomy.category("billing") == config.category("billing")
    assert category_names_for_labels(config, labels) == {
        "Refund_not_showing_up": "refund_not_showing_up",
        "billing": "billing",
        "card_arrival": "card_arrival",
    }


def test_exact_taxonomy_for_banking_style_labels(config: TriageConfig) -> None:
    """With exact, 77-style intents are the only categories; config-only entries go."""
    labels = [f"intent_{i}" for i in range(77)]
    taxonomy = taxonomy_for_labels(config, labels, exact=True)
    assert len(taxonomy.categories) == 77
    assert taxonomy.rules.hotwords == ()
    assert taxonomy.rules.force_human == config.rules.force_human
    assert set(taxonomy.drafting.instructions) == set()


def test_partly_overlapping_labels_keep_rubrics_and_drop_unused_rules(
    config: TriageConfig,
) -> None:
    """Labels shared with the config keep its rubric; rules and drafts of dropped ones go."""
    taxonomy = taxonomy_for_labels(config, ["technical", "account", "sales"], exact=True)
    assert taxonomy.category_names == ("technical", "account", "sales")
    assert taxonomy.category("technical") == config.category("technical")
    assert taxonomy.category("sales").rubric == "sales"
    assert taxonomy.rules.hotwords == ()  # the refund hotword decided billing, now dropped
    assert set(taxonomy.drafting.templates) == {"technical", "account", "default"}
    assert set(taxonomy.drafting.instructions) == {"technical", "account"}

    with_billing = taxonomy_for_labels(config, ["billing", "cancellation"], exact=True)
    assert with_billing.rules.hotwords == config.rules.hotwords
    assert with_billing.category("billing").rubric == config.category("billing").rubric


def test_clashing_and_odd_labels_get_distinct_valid_names(config: TriageConfig) -> None:
    """Labels that sanitise alike get suffixes; accents, spaces and digits are handled."""
    mapping = category_names_for_labels(
        config, ["Billing", "billing", "Technical Support", "Zahlungsverzögerung", "42"]
    )
    assert mapping == {
        "42": "label_42",
        "Billing": "billing_2",
        "Technical Support": "technical_support",
        "Zahlungsverzögerung": "zahlungsverzogerung",
        "billing": "billing",
    }
    assert category_names_for_labels(config, ["Billing"]) == {"Billing": "billing"}


def test_csv_and_jsonl_load_the_same_rows(tmp_path: Path) -> None:
    """A CSV file and a JSONL file with the same content give the same rows."""
    csv_path = _write_csv(
        tmp_path / "data.csv",
        "id,split,text,intent",
        ['1,train,"Card lost, help",lost_card', "2,test,Rate today?,exchange_rate"],
    )
    jsonl_path = tmp_path / "data.jsonl"
    jsonl_path.write_text(
        "\n".join(
            json.dumps(record)
            for record in [
                {"id": 1, "split": "train", "text": "Card lost, help", "intent": "lost_card"},
                {"id": 2, "split": "test", "text": "Rate today?", "intent": "exchange_rate"},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    from_csv = load_dataset(csv_path, text_col="text", label_col="intent", split_col="split")
    from_jsonl = load_dataset(jsonl_path, text_col="text", label_col="intent", split_col="split")
    expected = (
        LabeledRow(text="Card lost, help", label="lost_card", split="train"),
        LabeledRow(text="Rate today?", label="exchange_rate", split="test"),
    )
    assert from_csv.rows == expected
    assert from_jsonl.rows == expected
    assert from_csv.has_split
    assert from_csv.labels == ("exchange_rate", "lost_card")


def test_where_keeps_only_rows_equal_to_every_filter(tmp_path: Path) -> None:
    """--where language=en keeps the English rows; JSON values compare as their text."""
    path = tmp_path / "tickets.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(record)
            for record in [
                {"body": "Login broken", "queue": "IT", "language": "en", "in_scope": True},
                {"body": "Login kaputt", "queue": "IT", "language": "de", "in_scope": True},
                {"body": "Invoice wrong", "queue": "Billing", "language": "en", "in_scope": False},
            ]
        ),
        encoding="utf-8",
    )
    english = load_dataset(
        path, text_col="body", label_col="queue", split_col=None, where={"language": "en"}
    )
    assert [row.text for row in english.rows] == ["Login broken", "Invoice wrong"]
    assert not english.has_split
    in_scope = load_dataset(
        path,
        text_col="body",
        label_col="queue",
        split_col=None,
        where={"language": "en", "in_scope": "true"},
    )
    assert [row.text for row in in_scope.rows] == ["Login broken"]


def test_where_that_keeps_nothing_lists_the_values(tmp_path: Path) -> None:
    """A filter that leaves no rows is an error that shows the values the column has."""
    path = _write_csv(tmp_path / "t.csv", "text,queue,language", ["a,IT,en", "b,IT,de", "c,IT,en"])
    with pytest.raises(UserError, match=r"no rows left after --where language=fr.*'en' \(2\)"):
        load_dataset(path, text_col="text", label_col="queue", where={"language": "fr"})


def test_missing_column_error_lists_the_columns(tmp_path: Path) -> None:
    """Naming a column the file lacks is an error listing the columns it has."""
    path = _write_csv(tmp_path / "b.csv", "id,split,text,intent", ["1,train,hi,greet"])
    with pytest.raises(
        UserError, match=r"no column 'category' \(the label column\); .*: id, split, text, intent"
    ):
        load_dataset(path, text_col="text", label_col="category")
    with pytest.raises(UserError, match=r"no column 'lang' \(the --where column\)"):
        load_dataset(path, text_col="text", label_col="intent", where={"lang": "en"})


def test_missing_split_column_is_a_note_unless_required(tmp_path: Path) -> None:
    """A file without the split column has no split; an explicit --split-col makes it an error."""
    path = _write_csv(tmp_path / "n.csv", "text,intent", ["hi,greet"])
    rows = load_dataset(path, text_col="text", label_col="intent", split_col="split")
    assert not rows.has_split
    assert rows.notes == (
        "n.csv has no column 'split', so every row is a test row"
        " (with --shots, the examples are drawn from them and the rest are tested)",
    )
    with pytest.raises(UserError, match=r"no column 'split' \(the split column\)"):
        load_dataset(path, text_col="text", label_col="intent", split_required=True)


def test_missing_file_and_unknown_type_are_clear_errors(tmp_path: Path) -> None:
    """A missing file and a file that is neither CSV nor JSONL are UserErrors saying so."""
    with pytest.raises(UserError, match="file not found"):
        load_dataset(tmp_path / "nope.csv", text_col="text", label_col="intent")
    other = tmp_path / "data.parquet"
    other.write_bytes(b"PAR1")
    with pytest.raises(UserError, match=r"unknown file type '\.parquet'; use a \.csv or \.jsonl"):
        load_dataset(other, text_col="text", label_col="intent")


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    """A line that is not a JSON object is an error naming the line."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "intent": "x"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 2: not a JSON object"):
        load_dataset(path, text_col="text", label_col="intent")


def test_blank_rows_are_skipped_and_noted(tmp_path: Path) -> None:
    """Rows with a blank text or label are skipped, and the count is noted."""
    path = _write_csv(tmp_path / "b.csv", "text,intent", ["hi,greet", ",greet", "yo,"])
    rows = load_dataset(path, text_col="text", label_col="intent", split_col=None)
    assert [row.text for row in rows.rows] == ["hi"]
    assert rows.notes == ("skipped 2 row(s) with a blank 'text' or 'intent'",)


def test_parse_where_reads_column_value_pairs() -> None:
    """--where arguments become a dict; a malformed one is an error."""
    assert parse_where(["language=en", "type=Incident"]) == {"language": "en", "type": "Incident"}
    assert parse_where(["note=a=b"]) == {"note": "a=b"}
    with pytest.raises(UserError, match="expected column=value"):
        parse_where(["language"])


async def test_summary_json_has_the_fields_the_cli_promises(config: TriageConfig) -> None:
    """--json output has accuracy, macro_f1, n_test and needs_human_rate as numbers."""
    report = await evaluate(
        HAND, config=config, make_pipeline=FakeFactory(HAND_ANSWERS), shots=None
    )
    summary = report.summary_json()
    assert summary["accuracy"] == 0.6667
    assert summary["macro_f1"] == 0.6556
    assert summary["n_test"] == 6
    assert summary["needs_human_rate"] == 0.3333
    assert summary["per_label"]["billing"]["needs_human_rate"] == 0.3333
    assert json.loads(json.dumps(summary)) == summary


async def test_format_report_shows_the_full_matrix_for_few_labels(config: TriageConfig) -> None:
    """The text report has the headline figures, a per-label table and the whole matrix."""
    report = await evaluate(
        HAND, config=config, make_pipeline=FakeFactory(HAND_ANSWERS), shots=None
    )
    lines = format_report(report).splitlines()
    examples = len(load_config().load_examples())
    assert lines[0] == f"data.csv: 6 test rows, the config's {examples} examples, 1 seed"
    assert "  accuracy     0.667" in lines
    assert "  macro-F1     0.656" in lines
    assert "  needs human  0.333" in lines
    assert "billing        1.000   0.667  0.800        3        0.333" in lines
    assert "Confusion matrix (rows: true label, columns: predicted):" in lines
    assert "[1] account     1   0   0" in lines
    assert "[2] billing     0   2   1" in lines


def _report_with_labels(count: int) -> EvalReport:
    labels = tuple(f"label_{i:02d}" for i in range(count))
    matrix = [[0] * count for _ in range(count)]
    for i in range(count):
        matrix[i][i] = 5
        matrix[i][(i + 1) % count] = i + 1
    return EvalReport(
        dataset="big.csv",
        shots=10,
        seeds=2,
        n_test=100,
        n_examples=10 * count,
        accuracy=0.5,
        accuracy_std=0.01,
        macro_f1=0.5,
        macro_f1_std=0.01,
        macro_recall=0.5,
        needs_human_rate=0.2,
        per_seed_accuracy=(0.49, 0.51),
        per_label=(),
        confusion_labels=labels,
        confusion=tuple(tuple(row) for row in matrix),
    )


def test_format_report_lists_the_most_confused_pairs_for_many_labels() -> None:
    """Beyond 20 labels the report lists the 20 most confused pairs, largest first."""
    text = format_report(_report_with_labels(25))
    lines = text.splitlines()
    start = lines.index("Most confused pairs (true -> predicted; counts summed over 2 seeds):")
    pairs = lines[start + 1 : start + 21]
    assert pairs[0] == "  label_24 -> label_00  25"
    assert pairs[-1] == "  label_05 -> label_06   6"
    assert "0.500 ± 0.010" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_writes_a_line_per_ten_percent_off_a_terminal() -> None:
    """Off a terminal the bar writes one line at each 10% step, and nothing for small runs."""
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, min_total=100)
    for done in range(1, 201):
        bar(done, 200)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "classifying: 10% (20/200)"
    assert lines[-1] == "classifying: 100% (200/200)"

    quiet = io.StringIO()
    small = ProgressBar(stream=quiet, min_total=100)
    for done in range(1, 51):
        small(done, 50)
    assert quiet.getvalue() == ""


def test_progress_bar_redraws_one_line_on_a_terminal() -> None:
    """On a terminal the bar redraws in place with carriage returns and ends with a newline."""
    stream = _Terminal()
    bar = ProgressBar(stream=stream, min_total=1)
    for done in range(1, 301):
        bar(done, 300)
    text = stream.getvalue()
    last = text.rsplit("\r", 1)[1]
    assert text.startswith("\rclassifying [")
    assert last.startswith("classifying [" + "#" * 30 + "] 100% 300/300")
    assert last.endswith("\n")
    assert text.count("\n") == 1


async def test_shots_by_a_column_draws_k_per_group(config: TriageConfig) -> None:
    """--shots-by intent draws K examples per intent, labeled with the mapped category."""
    rows = _rows(
        *[(f"lost card {i}", "account", "train") for i in range(3)],
        *[(f"card arrival {i}", "account", "train") for i in range(3)],
        *[(f"refund {i}", "billing", "train") for i in range(3)],
        ("lost card again", "account", "test"),
    )
    grouped = LabeledRows(
        source=rows.source,
        rows=tuple(dataclasses.replace(row, group=row.text.rsplit(" ", 1)[0]) for row in rows.rows),
        has_split=True,
    )
    factory = FakeFactory()
    await evaluate(grouped, config=config, make_pipeline=factory, shots=2)
    examples = factory.built[0].examples
    assert len(examples) == 6
    assert (
        sorted(str(example.category) for example in examples) == ["account"] * 4 + ["billing"] * 2
    )


def test_shots_by_column_must_exist(tmp_path: Path) -> None:
    """A --shots-by column that does not exist is named in the error."""
    path = _write_csv(tmp_path / "d.csv", "text,category", ["hello,general"])
    with pytest.raises(UserError, match=r"no column 'intent' \(the --shots-by column\)"):
        load_dataset(path, group_col="intent")


async def test_report_counts_why_rows_went_to_a_human(config: TriageConfig) -> None:
    """The report gives the share of rows each escalation reason fired for."""
    rows = _rows(("a", "billing", "test"), ("b", "billing", "test"))
    factory = FakeFactory({"a": ("billing", True), "b": ("billing", False)})
    report = await evaluate(rows, config=config, make_pipeline=factory, shots=None)
    assert report.needs_human_rate == 0.5
    assert report.needs_human_reasons == {"model_flagged": 0.5}
    assert "why          model_flagged 0.500" in format_report(report)
    assert report.summary_json()["needs_human_reasons"] == {"model_flagged": 0.5}
