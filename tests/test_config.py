"""Config loading: the shipped files load, and every kind of mistake names file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.config import default_config_path, load_config
from routing.errors import ConfigError
from tests.config_variants import write_variant

REPO = Path(__file__).resolve().parent.parent
ALTERNATIVE = REPO / "configs" / "alternative.toml"


def test_default_config_has_the_briefs_taxonomy() -> None:
    """The packaged config has the brief's categories, ordered priorities and seven examples."""
    config = load_config()
    assert config.category_names == (
        "billing",
        "technical",
        "account",
        "feature_request",
        "general",
    )
    assert config.priority_names == ("low", "medium", "high", "critical")
    assert config.team_for("account") == "account_management"
    assert config.priority("critical").always_human
    examples = config.load_examples()
    # The brief's seven examples come first; the product's own follow them.
    assert [example.title for example in examples[:2]] == ["Double charge", "Broken export button"]
    assert len(examples) > 100


def test_alternative_config_loads_with_its_own_taxonomy() -> None:
    """The second example config defines six categories, six teams and three priorities."""
    config = load_config(ALTERNATIVE)
    assert config.category_names == (
        "billing",
        "technical",
        "sales",
        "bug",
        "cancellation",
        "other",
    )
    assert config.priority_names == ("low", "medium", "high")
    assert set(config.team_names) == {
        "billing_support",
        "tech_support",
        "sales",
        "core_eng",
        "account_ops",
        "triage",
    }
    assert {example.category for example in config.load_examples()} == set(config.category_names)


def test_unknown_team_in_category_names_field_and_fix(tmp_path: Path) -> None:
    """A category pointing at a team that does not exist is refused with the field and the fix."""
    path = write_variant(tmp_path, 'team = "billing"', 'team = "finance"')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "categories[0].team" in message
    assert "'finance'" in message
    assert "Fix:" in message


def test_duplicate_label_is_refused(tmp_path: Path) -> None:
    """Two categories with one name are refused, naming the duplicate."""
    path = write_variant(tmp_path, 'name = "general"', 'name = "billing"')
    with pytest.raises(ConfigError, match=r"categories: duplicate label 'billing'"):
        load_config(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError naming the path."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="file not found") as caught:
        load_config(missing)
    assert str(missing) in str(caught.value)


def test_malformed_toml_is_refused(tmp_path: Path) -> None:
    """Broken TOML syntax is reported as such, with the file's path."""
    path = tmp_path / "config.toml"
    path.write_text("[[categories]\nname = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_misspelt_key_is_refused(tmp_path: Path) -> None:
    """An unknown key is named so a typo does not silently fall back to a default."""
    path = write_variant(tmp_path, "human_confidence = 0.6", "human_confidance = 0.6")
    with pytest.raises(ConfigError, match=r"thresholds\.human_confidance.*remove the key"):
        load_config(path)


BILLING_TEAM = 'name = "billing"\ndescription = "Payments, invoices, refunds"'
EXAMPLES_LINE = 'examples = "examples.jsonl"'
FORCE_HUMAN_LINE = next(
    line
    for line in default_config_path().read_text(encoding="utf-8").splitlines()
    if line.startswith("force_human = [")
)
# The floor is refit with the examples; the test needs its line, not its value.
HUMAN_CONFIDENCE_LINE = next(
    line
    for line in default_config_path().read_text(encoding="utf-8").splitlines()
    if line.startswith("human_confidence = ")
)


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (
            BILLING_TEAM,
            BILLING_TEAM.replace('"billing"', "5"),
            r"teams\[0\]\.name: expected a string",
        ),
        (
            HUMAN_CONFIDENCE_LINE,
            'human_confidence = "high"',
            r"human_confidence: expected a num",
        ),
        (FORCE_HUMAN_LINE, 'force_human = "urgent"', r"force_human: expected a list"),
        (EXAMPLES_LINE, "examples = 5", r"examples: expected a file name in quotes, got 5"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_field_the_type_and_the_value(
    tmp_path: Path, old: str, new: str, said: str
) -> None:
    """A wrong type says which field, what it expects and what it got, not a generic error."""
    with pytest.raises(ConfigError, match=said):
        load_config(write_variant(tmp_path, old, new))


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        # TOML tells "0.6" from 0.6: a quoted number is a mistake to name, not to guess at.
        (HUMAN_CONFIDENCE_LINE, 'human_confidence = "0.6"', r"expected a number, got '0.6'"),
        (HUMAN_CONFIDENCE_LINE, "human_confidence = true", r"expected a number, got true"),
        ("min_words = 4", 'min_words = "4"', r"min_words: expected a whole number, got '4'"),
        ("min_words = 4", "min_words = 4.5", r"min_words: expected a whole number, got 4.5"),
        ("always_human = true", 'always_human = "yes"', r"always_human: expected true or false"),
        ("always_human = true", "always_human = 1", r"always_human: expected true or false"),
    ],
)
def test_a_number_or_flag_written_as_another_type_is_refused(
    tmp_path: Path, old: str, new: str, said: str
) -> None:
    """A quoted number or a flag written as a word would be silently converted: refuse it."""
    with pytest.raises(ConfigError, match=said):
        load_config(write_variant(tmp_path, old, new))


def test_a_whole_number_for_a_number_field_is_fine(tmp_path: Path) -> None:
    """`human_confidence = 1` is a number as TOML writes it, not a mistake."""
    config = load_config(write_variant(tmp_path, HUMAN_CONFIDENCE_LINE, "human_confidence = 1"))
    assert config.thresholds.human_confidence == 1.0


def test_a_wrong_type_is_told_first_even_when_examples_is_missing(tmp_path: Path) -> None:
    """`[[teams]] name = 5` in a file without examples is named first; the missing key after."""
    path = tmp_path / "config.toml"
    path.write_text("[[teams]]\nname = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    told_first, also = message.split(". Also wrong: ")
    assert told_first.endswith(
        "teams[0].name: expected a string in quotes, got 5 (a number)."
        " Fix: write a string in quotes"
    )
    assert also.startswith("examples (missing); categories (Field required)")
    assert "at least 1 item" not in message


def test_examples_written_under_a_table_says_where_it_went(tmp_path: Path) -> None:
    """TOML puts a key after [table] into that table: the error says so and how to move it."""
    path = write_variant(tmp_path, EXAMPLES_LINE, "")
    path.write_text(path.read_text(encoding="utf-8") + "\n" + EXAMPLES_LINE + "\n", "utf-8")
    with pytest.raises(
        ConfigError, match=r"examples: missing at the top; it is inside \["
    ) as caught:
        load_config(path)
    assert "move the examples line above the first [table] header" in str(caught.value)


def test_missing_examples_file_is_refused(tmp_path: Path) -> None:
    """A config whose examples file is missing fails at load, naming the examples field."""
    path = write_variant(tmp_path, 'examples = "examples.jsonl"', 'examples = "gone.jsonl"')
    with pytest.raises(ConfigError, match=r"examples: file not found"):
        load_config(path)


def test_example_with_label_outside_taxonomy_names_the_line(tmp_path: Path) -> None:
    """A labeled example with an unknown category is refused with its line number."""
    path = write_variant(tmp_path, 'default_priority = "low"', 'default_priority = "low"')
    examples = tmp_path / "examples.jsonl"
    examples.write_text(
        examples.read_text(encoding="utf-8") + '{"text": "hi", "category": "refunds"}\n',
        encoding="utf-8",
    )
    line = len(examples.read_text(encoding="utf-8").splitlines())
    with pytest.raises(ConfigError, match=rf"line {line}\.category.*'refunds'"):
        load_config(path).load_examples()


def test_template_with_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    """A drafting template using an unknown placeholder fails at load, not at the first ticket."""
    path = write_variant(tmp_path, "{greeting}{ack}Thanks for your message", "{name}Thanks")
    with pytest.raises(ConfigError, match=r"drafting\.templates\.general"):
        load_config(path)


def test_hotword_for_unknown_category_is_refused(tmp_path: Path) -> None:
    """A hotword rule must name a configured category."""
    path = write_variant(tmp_path, 'category = "billing" }', 'category = "money" }')
    with pytest.raises(ConfigError, match=r"rules\.hotwords\[0\]\.category"):
        load_config(path)


@pytest.mark.parametrize(
    ("cue", "problem"),
    [
        ("invoice|charged]", r"a '\|' outside \[\.\.\.\]"),
        ("[invoice|charged", r"a '\[' that is never closed"),
        ("[invoice||charged]", "an empty choice"),
        ("[] + [invoice]", "an empty choice"),
        ("[a|[b|c]]", r"a '\[' inside another"),
        ("invoice] + paid", r"a '\]' with no '\['"),
    ],
)
def test_malformed_cue_is_refused_naming_the_label_and_cue(
    tmp_path: Path, cue: str, problem: str
) -> None:
    """A cue whose brackets or bars would make it literal words that never match is refused."""
    path = write_variant(tmp_path, 'cues = ["[invoice|', f'cues = ["{cue}", "[invoice|')
    with pytest.raises(ConfigError, match=rf"categories\[0\]\.cues: cue 1 .*{problem}") as caught:
        load_config(path)
    assert str(path) in str(caught.value)
