"""Taxonomy and policy, loaded from one TOML file and checked before anything runs."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from routing.errors import BOUND_KINDS, ConfigError, validation_message
from routing.models import LabeledExample

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"

# TOML tells 0.6 from "0.6" and true from 1: a value of the other kind is a mistake to name, not
# one to convert silently (a whole number still counts as a number).
Number = Annotated[float, Strict()]
Whole = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]


class _Strict(BaseModel):
    # Unknown keys are typos more often than not: reject them with the field's name.
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelConfig(_Strict):
    """A label with a rubric: a yes/no question that describes it, used by the classifiers."""

    name: str = Field(pattern=NAME_PATTERN)
    rubric: str = ""
    # Short phrases in a customer's words that are typical of the label. The local classifier
    # treats them like examples, so a taxonomy with few labeled examples still has words to go on.
    phrases: tuple[str, ...] = ()
    # Words that, found in a ticket, add thresholds.cue_weight to this label's score (matched
    # like the rules; `*` stands for up to three words): "nobody * can log in", "leaked", "😡".
    cues: tuple[str, ...] = ()
    # This label's own bonus for a cue, instead of thresholds.cue_weight (e.g. angry over
    # frustrated when a message has both kinds of words).
    cue_weight: Number | None = Field(default=None, ge=0.0, le=5.0)

    @field_validator("cues")
    @classmethod
    def _well_formed_cues(cls, cues: tuple[str, ...]) -> tuple[str, ...]:
        # A cue with a stray bracket or bar is read as literal words and never matches: say so.
        for number, cue in enumerate(cues, 1):
            problem = _cue_problem(cue)
            if problem:
                shown = cue if len(cue) <= 40 else cue[:37] + "..."
                raise ValueError(f"cue {number} ({shown!r}) {problem}")
        return cues


def _cue_problem(cue: str) -> str | None:
    """What is wrong with a cue's `[a|b]`, `*` and ` + ` syntax, or None."""
    if not cue.strip():
        return "is blank"
    depth = 0
    for character in cue:
        if character == "[":
            depth += 1
            if depth > 1:
                return "has a '[' inside another: write [a|b] groups side by side"
        elif character == "]":
            depth -= 1
            if depth < 0:
                return "has a ']' with no '[' before it"
        elif character == "|" and depth == 0:
            return "has a '|' outside [...]: write alternatives as [a|b]"
    if depth:
        return "has a '[' that is never closed"
    for group in re.findall(r"\[([^\]]*)\]", cue):
        if any(not choice.strip() for choice in group.split("|")):
            return "has an empty choice: '[]', '[|', '||' or '|]'"
    if any(not part.strip() for part in cue.split(" + ")):
        return "has an empty side of ' + '"
    return None


class SentimentConfig(LabelConfig):
    """A sentiment label."""

    # Given only when one of its cues is in the ticket, or the ticket shouts (whole words in
    # capitals, "!!!"): an outage told calmly is not angry, however close it sits to angry
    # examples (a new user's audit: "Down since 9am" and a calm 503 report came back angry).
    requires_cue: Flag = False


class CategoryConfig(LabelConfig):
    """A category and the team that owns it by default."""

    team: str
    # The most urgent priority a ticket of this category can get (e.g. requests are "low").
    max_priority: str | None = None


class PriorityConfig(LabelConfig):
    """A priority level; the list is ordered from least to most urgent."""

    emoji: str
    # Every ticket at this priority goes to a human (the brief's "critical").
    always_human: Flag = False
    # Below this confidence a ticket at this priority goes to a human (the brief's "high").
    min_confidence: Number | None = Field(default=None, ge=0.0, le=1.0)
    # The local classifier gives this priority only to a ticket at least this similar to one of
    # its examples or phrases, or with one of its cues; a demotion is stated in the reasons.
    min_similarity: Number | None = Field(default=None, ge=-1.0, le=1.0)
    # A ticket with one of this level's cues and none of a level above `cue_ceiling` is at most
    # `cue_ceiling`: "fails now and then, retries get through" is degraded, not an outage, however
    # close it reads to one.
    cue_ceiling: str | None = None


class TeamConfig(_Strict):
    """A team that receives tickets."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""


class HotwordRule(_Strict):
    """Words that decide a category outright, before any classifier."""

    words: tuple[str, ...] = Field(min_length=1)
    category: str


class RulesConfig(_Strict):
    """Keyword rules: hotwords decide a category, forced keywords send the ticket to a human."""

    hotwords: tuple[HotwordRule, ...] = ()
    force_human: tuple[str, ...] = ()

    @field_validator("force_human")
    @classmethod
    def _no_blank_keywords(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        if any(not word.strip() for word in words):
            raise ValueError("a keyword is blank")
        return words


class ThresholdsConfig(_Strict):
    """The numbers the escalation policy and the cascade decide by."""

    # Below this confidence a ticket goes to a human.
    human_confidence: Number = Field(default=0.6, ge=0.0, le=1.0)
    # Two categories whose scores are closer than this are a close call: notify both teams.
    close_margin: Number = Field(default=0.05, ge=0.0, le=1.0)
    # The strong LLM is asked only when the cheap one's confidence stays below this.
    strong_model_below: Number = Field(default=0.75, ge=0.0, le=1.0)
    # Best cosine similarity to any example or rubric below which a ticket fits no category.
    # 0.2, not 0.25: 0.25 marked 15% of English support tickets off-topic (0.2: 4%) and sent only
    # 0.6% more of CLINC150's out-of-scope rows to a human; low confidence catches most of them.
    off_topic_similarity: Number = Field(default=0.2, ge=-1.0, le=1.0)
    # Category confidence = sigmoid(a * margin + b * fit + c), or with four numbers
    # sigmoid(a * margin + b * fit + n * nearness + c) (routing/local.py), fitted for this
    # config's examples by `bench/calibrate.py --category`; unset, the built-in fit of
    # routing/local.py (banking77 and CLINC150 with 10 examples per label).
    category_calibration: (
        tuple[Number, Number, Number] | tuple[Number, Number, Number, Number] | None
    ) = None
    # Added to a label's score when one of its cues is in the ticket (see routing/cues.py).
    cue_weight: Number = Field(default=0.3, ge=0.0, le=5.0)


class LLMConfig(_Strict):
    """An OpenAI-compatible endpoint; used only when the operator also sets an API key."""

    base_url: str | None = None
    cheap_model: str | None = None
    strong_model: str | None = None
    timeout_seconds: Number = Field(default=20.0, gt=0)
    max_retries: Whole = Field(default=2, ge=0, le=10)
    few_shot_examples: Whole = Field(default=8, ge=0, le=50)
    draft_replies: Flag = True
    # Which server this is, for how structured output is asked for (README, "The LLM layer");
    # "auto" tells it from base_url's host, and unknown hosts are probed.
    provider: Literal[
        "auto",
        "openai",
        "groq",
        "cerebras",
        "openrouter",
        "together",
        "ollama",
        "vllm",
        "llama.cpp",
        "generic",
    ] = "auto"
    # The most tokens one answer may take: a classification is a small JSON object; a draft is
    # two to five sentences (a small model ran to 3,718 tokens without a limit).
    classify_max_tokens: Whole = Field(default=300, ge=16, le=16384)
    draft_max_tokens: Whole = Field(default=400, ge=16, le=16384)
    # The whole LLM layer's time per ticket (both classifiers and the draft with its retry);
    # past it the local decision and the offline draft stand, marked for a human.
    deadline_seconds: Number = Field(default=30.0, gt=0, le=600)
    # Tickets the model refines at once per replica (each one call at a time); more wait in
    # a queue, the most urgent first. Their posts never wait: they go out on the local decision.
    concurrent_calls: Whole = Field(default=8, ge=1, le=256)
    # A local decision at least this sure is a floor the model cannot lower (its priority) or
    # overrule without a human (its category).
    local_floor: Number = Field(default=0.8, ge=0.0, le=1.0)


# Template keys besides the categories: the generic one, a message that needs no action, and a
# request for help that says nothing yet.
SPECIAL_TEMPLATES = ("default", "no_action", "vague", "question")

# What an offline draft may ask the customer for, when the ticket does not already give it.
AskKind = Literal["started", "steps", "error", "reference"]


class DraftingConfig(_Strict):
    """Per-category guidance for drafts: LLM instructions and offline templates."""

    # What an LLM drafter is told for each category.
    instructions: dict[str, str] = Field(default_factory=dict)
    # Offline templates; {greeting}, {ack}, {reference}, {asks}, {team} and {closing} are filled
    # in by the drafter. Keys: categories, "default", "no_action" and "vague".
    templates: dict[str, str] = Field(default_factory=dict)
    signature: str = "The support team"
    # Offline templates per language (ISO 639-1), keyed like templates: [drafting.languages.es].
    # A ticket in a language with none gets the English draft, marked for the agent.
    languages: dict[str, dict[str, str]] = Field(default_factory=dict)
    # The greeting and sign-off per language, for those templates.
    greetings: dict[str, str] = Field(default_factory=dict)
    signatures: dict[str, str] = Field(default_factory=dict)
    # Per category, what its drafts ask for ({asks}) unless the ticket already gives it.
    asks: dict[str, tuple[AskKind, ...]] = Field(default_factory=dict)
    # Categories whose questions get the "question" template ("Our X team will answer it
    # here"); None: every category.
    question_categories: tuple[str, ...] | None = None


class NoiseConfig(_Strict):
    """Messages that need no action: thanks, "ok", "never mind, fixed it", an emoji alone."""

    enabled: Flag = True
    # "quiet": one post in the team's channel marked "no action needed", nobody paged;
    # "none": the ticket is stored with its draft and posted nowhere.
    post: Literal["quiet", "none"] = "quiet"
    # The team that gets the quiet post; by default fallback_team.
    team: str | None = None


class MultiIssueConfig(_Strict):
    """A message with distinct asks for different teams goes to each of them."""

    enabled: Flag = True
    # A part counts only when the classifier is at least this sure of it on its own, and only when
    # the customer announced it ("..., and separately ...", "Also, ...") or the whole message is
    # of its team: a stray sentence of context is no second ticket.
    min_confidence: Number = Field(default=0.85, ge=0.0, le=1.0)
    # Parts shorter than this many words join their neighbour ("Hi team,", "Thanks!").
    min_words: Whole = Field(default=4, ge=1)
    # A long message cut into more pieces than this has neighbouring pieces joined, so at most
    # this many are classified (one batch of short texts: about the cost of the whole message).
    max_parts: Whole = Field(default=120, ge=2)


class LanguagesConfig(_Strict):
    """Languages: which ones the offline model reads, and where the others go."""

    # The offline embedding model (all-MiniLM-L6-v2) is trained on English only.
    offline: tuple[str, ...] = ("en",)
    # A team per language for tickets the offline model cannot read, e.g. {es = "support"}.
    teams: dict[str, str] = Field(default_factory=dict)
    # Below this probability from the detector the language is unknown (and English assumed).
    min_probability: Number = Field(default=0.5, ge=0.0, le=1.0)
    # The detector chooses among these (ISO 639-1); fewer candidates read short texts better.
    candidates: tuple[str, ...] = (
        "en", "de", "fr", "es", "pt", "it", "nl", "sv", "da", "no", "fi", "pl", "cs", "sk",
        "hu", "ro", "el", "tr", "ru", "uk", "ar", "he", "hi", "ja", "zh", "ko", "id", "vi", "th",
    )  # fmt: skip


# Slack ids, checked by shape so a channel name or a pasted mention fails at start-up, not later.
CHANNEL_ID_PATTERN = r"^[CG][A-Z0-9]{2,}$"
# People are users (U..., W... on Enterprise Grid) or user groups (S...).
PEOPLE_ID_PATTERN = r"^[UWS][A-Z0-9]{2,}$"
EMOJI_NAME_PATTERN = r"^[a-z0-9_+\-']+$"


class TeamChannelConfig(_Strict):
    """Where a team's tickets go, who may act on them, and who is paged."""

    channel: str = Field(pattern=CHANNEL_ID_PATTERN)
    agents: tuple[str, ...] = ()
    oncall: tuple[str, ...] = ()

    @field_validator("agents", "oncall")
    @classmethod
    def _people_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        return _check_people(ids)


def _check_people(ids: tuple[str, ...]) -> tuple[str, ...]:
    for person in ids:
        if not re.fullmatch(PEOPLE_ID_PATTERN, person):
            raise ValueError(f"{person!r} is not a user id (U..., W...) or user-group id (S...)")
    return ids


class SlackConfig(_Strict):
    """Channels, agents and on-call: which conversations the bot reads and who may act."""

    # Channels whose top-level messages become tickets (often Slack Connect channels).
    intake_channels: tuple[str, ...] = Field(min_length=1)
    # One table per team: [slack.teams.billing] channel = "C...", agents = [...], oncall = [...].
    teams: dict[str, TeamChannelConfig] = Field(default_factory=dict)
    # Paged for teams with no on-call of their own.
    fallback_oncall: tuple[str, ...] = ()
    approve_reaction: str = Field(default="white_check_mark", pattern=EMOJI_NAME_PATTERN)
    reject_reaction: str = Field(default="x", pattern=EMOJI_NAME_PATTERN)
    # Tickets classified at once; more wait in the queue (they are stored already). Posting
    # has one queue per team channel, the most urgent first.
    workers: Whole = Field(default=4, ge=1, le=64)
    # Seconds between two posts in one channel, kept by every replica together (Slack takes
    # about one a second a channel); the most urgent tickets' posts go at once. 0: unpaced.
    post_spacing_seconds: Number = Field(default=1.0, ge=0.0, le=60.0)
    # Where the bot tells the operator what failed and what to fix (a store that refuses
    # writes, a channel Slack refuses posts in); unset: the fallback team's channel.
    ops_channel: str | None = Field(default=None, pattern=CHANNEL_ID_PATTERN)

    @field_validator("intake_channels")
    @classmethod
    def _channel_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for channel in ids:
            if not re.fullmatch(CHANNEL_ID_PATTERN, channel):
                raise ValueError(f"{channel!r} is not a channel id (C... or G...)")
        return ids

    @field_validator("fallback_oncall")
    @classmethod
    def _fallback_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        return _check_people(ids)


# `{name}` in a cue: one of the phrases listed under that name in [cue_words].
CUE_WORD_CLASS = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def expand_cue_words(cue: str, classes: Mapping[str, Sequence[str]]) -> str:
    """A cue with each `{name}` written out as `[phrase|phrase|...]` from [cue_words].

    So one general rule ("{scope} * {flows} + {failure}") says what a list of enumerated
    phrasings said before, and every rule that names a class gains its new words at once.
    """

    def written_out(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in classes:
            raise ValueError(f"cue {cue!r} names {{{name}}}, which [cue_words] does not list")
        return "[" + "|".join(classes[name]) + "]"

    return CUE_WORD_CLASS.sub(written_out, cue)


class TriageConfig(_Strict):
    """The whole configuration: taxonomy, rules, thresholds, LLM, drafting and Slack."""

    # Named lists of phrases that cues use as `{name}` (scope words, kinds of records, ...).
    cue_words: dict[str, tuple[str, ...]] = {}
    source: Path
    examples_path: Path
    categories: tuple[CategoryConfig, ...] = Field(min_length=1)
    priorities: tuple[PriorityConfig, ...] = Field(min_length=1)
    teams: tuple[TeamConfig, ...] = Field(min_length=1)
    sentiments: tuple[SentimentConfig, ...] = Field(min_length=1)
    default_priority: str
    default_sentiment: str
    fallback_team: str
    rules: RulesConfig = RulesConfig()
    thresholds: ThresholdsConfig = ThresholdsConfig()
    llm: LLMConfig = LLMConfig()
    drafting: DraftingConfig = DraftingConfig()
    noise: NoiseConfig = NoiseConfig()
    multi_issue: MultiIssueConfig = MultiIssueConfig()
    languages: LanguagesConfig = LanguagesConfig()
    # None when the file has no [slack] section: fine offline and in the sandbox, not in Slack.
    slack: SlackConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _written_out_cue_words(cls, raw: Any) -> Any:
        # Expanded before the labels are checked, so a `{name}` cue is checked as written out.
        if not isinstance(raw, dict) or not isinstance(raw.get("cue_words"), dict):
            return raw
        classes = {
            str(name): tuple(str(phrase) for phrase in phrases)
            for name, phrases in raw["cue_words"].items()
            if isinstance(phrases, list | tuple)
        }
        for name, phrases in classes.items():
            if not phrases or any(
                not phrase.strip() or set(phrase) & set("[]|+{}") for phrase in phrases
            ):
                raise ValueError(f"cue_words.{name} must list plain phrases (no [ ] | + {{ }})")
        expanded = dict(raw)
        for field in ("categories", "priorities", "sentiments"):
            labels = raw.get(field)
            if not isinstance(labels, list):
                continue
            expanded[field] = [
                {**label, "cues": [expand_cue_words(str(cue), classes) for cue in label["cues"]]}
                if isinstance(label, dict) and isinstance(label.get("cues"), list)
                else label
                for label in labels
            ]
        return expanded

    @property
    def category_names(self) -> tuple[str, ...]:
        """Category names in config order."""
        return tuple(category.name for category in self.categories)

    @property
    def priority_names(self) -> tuple[str, ...]:
        """Priority names from least to most urgent."""
        return tuple(priority.name for priority in self.priorities)

    @property
    def team_names(self) -> tuple[str, ...]:
        """Team names in config order."""
        return tuple(team.name for team in self.teams)

    @property
    def sentiment_names(self) -> tuple[str, ...]:
        """Sentiment names in config order."""
        return tuple(sentiment.name for sentiment in self.sentiments)

    def category(self, name: str) -> CategoryConfig:
        """The category called name."""
        return next(category for category in self.categories if category.name == name)

    def priority(self, name: str) -> PriorityConfig:
        """The priority called name."""
        return next(priority for priority in self.priorities if priority.name == name)

    def team_for(self, category: str) -> str:
        """The team that owns a category by default."""
        return self.category(category).team

    def priority_rank(self, name: str) -> int:
        """0 for the least urgent priority, rising with urgency."""
        return self.priority_names.index(name)

    def load_examples(self) -> list[LabeledExample]:
        """The labeled examples named by the config, checked against the taxonomy."""
        return load_examples(self.examples_path, self)


def default_config_path() -> Path:
    """The config file shipped with the package (the brief's taxonomy)."""
    return Path(str(resources.files("routing") / "defaults" / "config.toml"))


def load_config(path: Path | str | None = None) -> TriageConfig:
    """Read, validate and cross-check a config file; every problem is a ConfigError."""
    config_path = Path(path) if path is not None else default_config_path()
    try:
        raw = tomllib.loads(_read_text(config_path, "pass --config (or TRIAGE_CONFIG) a TOML file"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            config_path, "", f"not valid TOML ({error})", "correct the syntax"
        ) from error
    except RecursionError:
        # tomllib recurses per nesting level: a file of [[[[... is no config.
        raise ConfigError(
            config_path, "", "nested too deeply to be a config", "correct the syntax"
        ) from None

    examples = raw.pop("examples", None)
    examples_problem = _examples_problem(examples, raw)
    # Without a usable examples path the rest is still checked: a wrong type beside it is
    # the problem to tell, not hidden behind the missing key.
    usable = isinstance(examples, str) and not examples_problem
    raw["examples_path"] = (config_path.parent / examples).resolve() if usable else "."
    raw["source"] = config_path
    problems: list[tuple[str, str, str]] = []
    config: TriageConfig | None = None
    try:
        config = TriageConfig.model_validate(raw)
    except ValidationError as error:
        problems = [
            (_dotted(each["loc"]), _problem_for(each), _fix_for(each))
            for each in _ordered_errors(error)
        ]
    if examples_problem:
        problem, fix = examples_problem
        if problem.startswith("missing at the top"):
            # The same line, also an unknown key of the table it landed in: tell it once.
            problems = [each for each in problems if not each[0].endswith(".examples")]
        # After wrong values and misspelt keys (which often explain it), before missing fields.
        missing_at = next(
            (at for at, each in enumerate(problems) if each[1] == "Field required"),
            len(problems),
        )
        problems.insert(missing_at, ("examples", problem, fix))
    if problems:
        (field, problem, fix), *others = problems
        raise ConfigError(config_path, field, problem, fix, others=others)
    assert config is not None  # noqa: S101  # validated above, or a problem was raised
    validate_config(config)
    if not config.examples_path.is_file():
        missing = "a directory" if config.examples_path.is_dir() else "file not found"
        raise ConfigError(
            config_path,
            "examples",
            f"{missing}: {config.examples_path}",
            "point examples at a JSONL file of labeled tickets (`triage init-config DIR`"
            " writes a config together with its examples)",
        )
    return config


def _ordered_errors(error: ValidationError) -> list[ErrorDetails]:
    """The errors in the order to tell them: misspelt keys, wrong values, missing fields.

    A misspelt key explains a "Field required" beside it, and a wrong value is more often
    the cause of a problem than a missing field.
    """

    def rank(each: ErrorDetails) -> int:
        return 0 if each["type"] == "extra_forbidden" else 2 if each["type"] == "missing" else 1

    errors = error.errors()
    # pydantic checks a list's length after dropping the entries that failed: "teams: at
    # least 1 item" beside "teams[0].name: ..." only echoes the entry's own problem.
    echoes = [
        each
        for each in errors
        if each["type"] == "too_short"
        and any(other["loc"][: len(each["loc"])] == each["loc"] != other["loc"] for other in errors)
    ]
    return sorted((each for each in errors if each not in echoes), key=rank)


def _examples_problem(examples: object, raw: dict[str, Any]) -> tuple[str, str] | None:
    """What is wrong with the top-level `examples` key, as (problem, fix), or None."""
    if isinstance(examples, str) and examples:
        return None
    fix = 'set examples = "path/to/examples.jsonl" (relative to the config file)'
    if examples is not None:
        return f"expected a file name in quotes, got {_shown_value(examples)}", fix
    # TOML puts a key written after a [table] header into that table.
    for key, value in raw.items():
        tables = value if isinstance(value, list) else [value]
        if any(isinstance(table, dict) and "examples" in table for table in tables):
            return (
                f"missing at the top; it is inside [{key}] (a key after a [table] header"
                " belongs to that table)",
                "move the examples line above the first [table] header",
            )
    return "missing", fix


def _read_text(path: Path, fix_missing: str) -> str:
    """A file's text; missing, a directory, unreadable or not UTF-8 is a ConfigError."""
    if path.is_dir():
        raise ConfigError(path, "", "a directory, not a file", fix_missing)
    if not path.is_file():
        raise ConfigError(path, "", "file not found", fix_missing)
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", "not UTF-8 text", "save the file as UTF-8") from error
    except OSError as error:
        raise ConfigError(
            path, "", f"cannot be read ({error.strerror})", "check the file's permissions"
        ) from error


def _dotted(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]" if parts else f"[{part}]"]
        else:
            parts.append(part)
    return ".".join(parts)


# pydantic's error types for a value of the wrong type, and what the field expects.
_EXPECTED = {
    "string_type": "a string in quotes",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "tuple_type": "a list in [brackets]",
    "list_type": "a list in [brackets]",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _shown_value(value: object) -> str:
    """A config value as the operator wrote it, short, with the kind of value it is."""
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "a string"}
    kind = next((name for type_, name in kinds.items() if isinstance(value, type_)), None)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    shown = repr(value) if not isinstance(value, bool) else str(value).lower()
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{shown} ({kind})" if kind else shown


def _problem_for(error: ErrorDetails) -> str:
    """A pydantic problem in the operator's words: a wrong type names what was expected."""
    expected = _EXPECTED.get(error["type"])
    if expected is not None:
        return f"expected {expected}, got {_shown_value(error['input'])}"
    if error["type"] in BOUND_KINDS:
        return f"{validation_message(error)}, got {_shown_value(error['input'])}"
    return validation_message(error)


def _fix_for(error: Any) -> str:
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return "remove the key or correct its spelling"
    if kind == "missing":
        return "add the field"
    if kind == "string_pattern_mismatch":
        return "use lower-case letters, digits and underscores, starting with a letter"
    if kind in _EXPECTED:
        return f"write {_EXPECTED[kind]}"
    return "correct the value"


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen:
            repeated.append(name)
        seen.add(name)
    return repeated


def validate_config(config: TriageConfig) -> None:
    """Check what the schema alone cannot: names that refer to each other (ConfigError).

    load_config runs it; run it too on a config built or changed in code.
    """
    path = config.source
    for field, names in (
        ("categories", config.category_names),
        ("priorities", config.priority_names),
        ("teams", config.team_names),
        ("sentiments", config.sentiment_names),
    ):
        repeated = _duplicates(names)
        if repeated:
            raise ConfigError(
                path, field, f"duplicate label {repeated[0]!r}", "give each label a unique name"
            )
    teams = set(config.team_names)
    for index, category in enumerate(config.categories):
        if category.team not in teams:
            raise ConfigError(
                path,
                f"categories[{index}].team",
                f"unknown team {category.team!r} for category {category.name!r}",
                f"use one of {sorted(teams)} or add a [[teams]] entry named {category.team!r}",
            )
    # Fields that name a priority: a category's ceiling, a level's cue ceiling.
    named_priorities = [
        (f"categories[{index}].max_priority", category.max_priority)
        for index, category in enumerate(config.categories)
    ] + [
        (f"priorities[{index}].cue_ceiling", level.cue_ceiling)
        for index, level in enumerate(config.priorities)
    ]
    for field, name in named_priorities:
        if name is not None and name not in config.priority_names:
            raise ConfigError(
                path,
                field,
                f"unknown priority {name!r}",
                f"use one of {list(config.priority_names)}",
            )
    categories = set(config.category_names)
    for index, rule in enumerate(config.rules.hotwords):
        if rule.category not in categories:
            raise ConfigError(
                path,
                f"rules.hotwords[{index}].category",
                f"unknown category {rule.category!r}",
                f"use one of {sorted(categories)}",
            )
    for field, value, allowed in (
        ("default_priority", config.default_priority, config.priority_names),
        ("default_sentiment", config.default_sentiment, config.sentiment_names),
        ("fallback_team", config.fallback_team, config.team_names),
    ):
        if value not in allowed:
            raise ConfigError(
                path, field, f"unknown label {value!r}", f"use one of {list(allowed)}"
            )
    keyed_by_category: list[tuple[str, Iterable[str], Iterable[str]]] = [
        ("drafting.instructions", config.drafting.instructions, ("default",)),
        ("drafting.asks", config.drafting.asks, ()),
        ("drafting.question_categories", config.drafting.question_categories or (), ()),
        ("drafting.templates", config.drafting.templates, SPECIAL_TEMPLATES),
        *(
            (f"drafting.languages.{language}", templates, SPECIAL_TEMPLATES)
            for language, templates in config.drafting.languages.items()
        ),
    ]
    for field, keyed, special in keyed_by_category:
        unknown = sorted(set(keyed) - categories - set(special))
        if unknown:
            raise ConfigError(
                path,
                f"{field}.{unknown[0]}",
                "not a category",
                f"use one of {sorted(categories)}"
                + (f" or {' / '.join(map(repr, special))}" if special else ""),
            )
    for field, team in (
        ("noise.team", config.noise.team),
        *((f"languages.teams.{code}", team) for code, team in config.languages.teams.items()),
    ):
        if team is not None and team not in config.team_names:
            raise ConfigError(
                path, field, f"unknown team {team!r}", f"use one of {list(config.team_names)}"
            )
    _check_templates(config)
    if config.slack is not None:
        _check_slack(config, config.slack)


def _check_slack(config: TriageConfig, slack: SlackConfig) -> None:
    path = config.source
    for team in slack.teams:
        if team not in config.team_names:
            raise ConfigError(
                path,
                f"slack.teams.{team}",
                f"unknown team {team!r}",
                f"use one of {list(config.team_names)}",
            )
    missing = [team for team in config.team_names if team not in slack.teams]
    if missing:
        # All of them at once: one restart per missing table is a slow way to learn the list.
        raise ConfigError(
            path,
            f"slack.teams.{missing[0]}" if len(missing) == 1 else "slack.teams",
            f"missing: every team needs a channel (none for {', '.join(missing)})",
            "add " + ", ".join(f'[slack.teams.{team}] with channel = "C..."' for team in missing),
        )
    channels = [settings.channel for settings in slack.teams.values()]
    overlap = sorted(set(channels) & set(slack.intake_channels))
    if overlap:
        raise ConfigError(
            path,
            "slack.intake_channels",
            f"{overlap[0]} is also a team channel",
            "post tickets to team channels other than the intake channels",
        )
    if slack.approve_reaction == slack.reject_reaction:
        raise ConfigError(
            path,
            "slack.reject_reaction",
            "the same emoji as approve_reaction",
            "choose two different emoji",
        )


TEMPLATE_FIELDS = {
    "greeting": "",
    "ack": "",
    "reference": "",
    "asks": "",
    "team": "",
    "closing": "",
}


def _check_templates(config: TriageConfig) -> None:
    drafting = config.drafting
    keyed = [("drafting.templates", drafting.templates)] + [
        (f"drafting.languages.{language}", templates)
        for language, templates in drafting.languages.items()
    ]
    for field, templates in keyed:
        for category, template in templates.items():
            try:
                template.format(**TEMPLATE_FIELDS)
            except (KeyError, IndexError, ValueError) as error:
                raise ConfigError(
                    config.source,
                    f"{field}.{category}",
                    f"bad placeholder ({error!r})",
                    "use only {greeting}, {ack}, {reference}, {asks}, {team} and {closing};"
                    " write braces as {{ }}",
                ) from error


def load_examples(path: Path, config: TriageConfig) -> list[LabeledExample]:
    """Read labeled examples from JSONL; a bad line is a ConfigError naming the line and field."""
    text = _read_text(path, "point examples at an existing JSONL file")
    allowed = {
        "category": set(config.category_names),
        "priority": set(config.priority_names),
        "team": set(config.team_names),
        "sentiment": set(config.sentiment_names),
    }
    examples: list[LabeledExample] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = LabeledExample.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            raise ConfigError(
                path, f"line {number}", f"not valid JSON ({error.msg})", "one JSON object per line"
            ) from error
        except ValidationError as error:
            first = _ordered_errors(error)[0]
            raise ConfigError(
                path,
                f"line {number}.{_dotted(first['loc'])}",
                _problem_for(first),
                _fix_for(first),
            ) from error
        if not example.text.strip():
            raise ConfigError(path, f"line {number}.text", "empty text", "give the example text")
        for field, names in allowed.items():
            value = getattr(example, field)
            if value is not None and value not in names:
                raise ConfigError(
                    path,
                    f"line {number}.{field}",
                    f"label {value!r} is not in the taxonomy of {config.source}",
                    f"use one of {sorted(names)}",
                )
        examples.append(example)
    return examples
