"""The command line as a newcomer meets it: emoji, empty input, help, version, init-config."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.__main__ import main
from routing.config import load_config


def test_classify_prints_the_emoji_not_its_slack_name(capsys: pytest.CaptureFixture[str]) -> None:
    """The plain output shows the priority's emoji character and labels every field."""
    assert main(["classify", "The export button does nothing when I click it"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert ":large_" not in header
    assert header.startswith(("🟢", "🟡", "🟠", "🔴"))
    assert "category technical -> team engineering" in header
    assert "sentiment " in header
    assert "decided by the local model" in header


class _ClosedPipe(io.StringIO):
    """stdout after `| head -1` has gone: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_output_into_a_closed_pipe_ends_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`triage classify ... | head -1` stops without a traceback once head has read its line."""
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["classify", "I was charged twice", "The export button does nothing"]) == 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("stdin", ["", "\n  \n\t\n"])
def test_classify_with_nothing_to_classify_says_so(
    stdin: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty input is one line saying there was nothing to classify, exit 2."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["classify"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "nothing to classify" in captured.err


def test_version_names_the_program(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the program and its version and exits 0."""
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("triage 0.")


def test_every_eval_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`triage eval --help` explains every option, none is bare."""
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    for option in ("--text-col", "--label-col", "--train-split", "--test-split"):
        after = text.split(f"\n  {option}", 1)[1].split("\n  -", 1)[0]
        assert "default" in after, option


def test_init_config_writes_a_copy_that_works_on_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init-config writes the config and its examples; the copy classifies with --config."""
    target = tmp_path / "my-config"
    assert main(["init-config", str(target)]) == 0
    capsys.readouterr()
    assert sorted(path.name for path in target.iterdir()) == ["config.toml", "examples.jsonl"]
    config = target / "config.toml"
    assert main(["classify", "--json", "--config", str(config), "I was charged twice"]) == 0
    assert json.loads(capsys.readouterr().out)["team"] == "billing"


def test_init_config_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """init-config into a directory that has a config.toml refuses and changes nothing."""
    (tmp_path / "config.toml").write_text("mine", encoding="utf-8")
    assert main(["init-config", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == "mine"


def test_a_copied_config_without_its_examples_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config copied without examples.jsonl says how to get both."""
    assert main(["init-config", str(tmp_path)]) == 0
    (tmp_path / "examples.jsonl").unlink()
    capsys.readouterr()
    assert main(["classify", "--config", str(tmp_path / "config.toml"), "hello"]) == 2
    assert "init-config" in capsys.readouterr().err


def _uncomment_slack_section(text: str) -> str:
    head, marker, tail = text.partition("# [slack]\n")
    lines = (marker + tail).splitlines()
    return head + "\n".join(line.removeprefix("# ").removeprefix("#") for line in lines) + "\n"


@pytest.mark.parametrize("source", ["routing/defaults/config.toml", "configs/alternative.toml"])
def test_the_commented_slack_skeleton_is_a_valid_section(source: str, tmp_path: Path) -> None:
    """Uncommenting the config's [slack] skeleton gives a section for every team."""
    original = Path(__file__).resolve().parent.parent / source
    config = load_config(original)
    (tmp_path / config.examples_path.name).write_bytes(config.examples_path.read_bytes())
    copy = tmp_path / "config.toml"
    copy.write_text(_uncomment_slack_section(original.read_text(encoding="utf-8")), "utf-8")
    slack = load_config(copy).slack
    assert slack is not None
    assert set(slack.teams) == set(config.team_names)


def test_slack_without_a_section_points_at_a_copy_not_the_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens set but no [slack]: the fix is a copy of one's own, not editing the package."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-no-section")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-no-section")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "triage init-config DIR" in err
    assert "TRIAGE_CONFIG" in err


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err  # one line, no traceback
    return captured.err


def test_eval_with_shots_that_leave_nothing_to_test_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One row per label and no split: --shots takes them all; a message, not a traceback."""
    data = tmp_path / "few.csv"
    data.write_text("text,label\nmy card was charged,billing\nthe app crashes,technical\n")
    assert main(["eval", str(data), "--label-col", "label", "--shots", "2"]) == 2
    line = _error_line(capsys)
    assert "no rows left to test" in line
    assert "at least 2 rows" in line


def test_eval_on_a_folder_says_it_is_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder given as the data file is named as a folder, not as missing."""
    assert main(["eval", str(tmp_path)]) == 2
    assert "a folder, not a file" in _error_line(capsys)


def test_a_misspelt_top_level_key_is_named_not_the_field_it_hides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`default_priorty` is the typo to fix; "default_priority: Field required" follows from it."""
    assert main(["init-config", str(tmp_path / "cfg")]) == 0
    capsys.readouterr()
    path = tmp_path / "cfg" / "config.toml"
    text = path.read_text()
    assert 'default_priority = "low"' in text
    path.write_text(text.replace('default_priority = "low"', 'default_priorty = "low"'))
    assert main(["classify", "--config", str(path), "hi"]) == 2
    line = _error_line(capsys)
    assert "default_priorty: unknown key" in line
    assert "correct its spelling" in line


def test_a_value_out_of_bounds_says_the_bound_and_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """human_confidence = 7: "must be at most 1, got 7", not pydantic's "Input should be"."""
    assert main(["init-config", str(tmp_path / "cfg")]) == 0
    capsys.readouterr()
    path = tmp_path / "cfg" / "config.toml"
    text = path.read_text()
    assert "human_confidence = 0.62" in text
    path.write_text(text.replace("human_confidence = 0.62", "human_confidence = 7"))
    assert main(["classify", "--config", str(path), "hi"]) == 2
    line = _error_line(capsys)
    assert "thresholds.human_confidence: must be at most 1, got 7 (a number)" in line
    assert "Input should" not in line
