"""Tone: the centroid and lexicon experts, the calm default, and support messages' sentiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.__main__ import main
from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from routing.evaluation import field_taxonomy_for_labels
from routing.local import LocalClassifier
from routing.models import LabeledExample, Ticket
from routing.tone import MIN_EXAMPLES, lexicon_features, lexicon_text

THINGS = (
    "phone",
    "coffee",
    "team",
    "movie",
    "weekend",
    "concert",
    "garden",
    "book",
    "city",
    "game",
)
TIMES = ("morning", "evening", "day", "night", "week", "trip")
TEMPLATES = {
    "positive": "I love the {thing}, what a wonderful {time}!",
    "negative": "I hate the {thing}, what an awful {time}.",
    "neutral": "The {thing} schedule for the {time} is posted on the website.",
}


def _tweets(label: str) -> list[str]:
    template = TEMPLATES[label]
    return [template.format(thing=thing, time=time) for thing in THINGS for time in TIMES]


@pytest.fixture
def pipeline(embedder: CachingEmbedder) -> Pipeline:
    return build_pipeline(load_config(), embedder=embedder)


@pytest.fixture
def tweet_config() -> TriageConfig:
    return field_taxonomy_for_labels(load_config(), "sentiment", TEMPLATES)


def _examples(per_label: int) -> list[LabeledExample]:
    return [
        LabeledExample(text=text, sentiment=label)
        for label in TEMPLATES
        for text in _tweets(label)[:per_label]
    ]


def test_the_lexicon_reads_praise_and_complaint_apart() -> None:
    """VADER's compound score is positive for praise and negative for a complaint."""
    praise = lexicon_features("Thanks, this is great, I love it!")
    complaint = lexicon_features("This is awful and I hate it.")
    assert praise[3] > 0.5 > -0.5 > complaint[3]
    assert praise[11] > 0 == complaint[11]  # the exclamation mark


@pytest.mark.parametrize(
    "written",
    [
        "I don\u2019t like the new dashboard",  # a phone's or a Mac's apostrophe
        "I don\\u2019t like the new dashboard",  # the apostrophe escaped as six characters
    ],
)
def test_a_typographic_apostrophe_still_negates(written: str) -> None:
    """A curly "don't like" reads as the plain one (negative), not as "like" (positive)."""
    assert lexicon_text(written) == "I don't like the new dashboard"
    plain = lexicon_features("I don't like the new dashboard")
    assert np.array_equal(lexicon_features(written), plain)
    assert plain[3] < 0 < lexicon_features("I like the new dashboard")[3]


def test_slack_entities_are_decoded_for_the_lexicon() -> None:
    """Slack's &amp; &lt; &gt; are read as the characters they stand for."""
    assert lexicon_text("billing &amp; invoices &lt;3") == "billing & invoices <3"
    assert lexicon_features("billing &amp; invoices &lt;3")[3] > 0  # "<3" is a heart


@pytest.mark.parametrize(
    ("emoji", "sign"), [("😡", -1), ("🤬", -1), ("👎", -1), ("🙏", 1), ("👍", 1)]
)
def test_emoji_that_vader_leaves_neutral_carry_their_feeling(emoji: str, sign: int) -> None:
    """An emoji VADER's table names without valence ("pouting face") counts as its feeling."""
    assert np.sign(lexicon_features(f"the export {emoji}")[3]) == sign


def test_a_complaint_after_a_thank_you_is_read_sentence_by_sentence() -> None:
    """The most positive, most negative and last sentence's compound scores are features."""
    features = lexicon_features("Thanks for the quick fix yesterday. But today it is broken again!")
    best, worst, last = features[-3:]
    assert best > 0 > worst
    assert last == worst
    one = lexicon_features("The export is broken.")
    assert one[-3] == one[-2] == one[-1] == one[3]  # one sentence: the text's own score


def test_a_how_to_question_has_no_feeling_for_the_lexicon() -> None:
    """A plain how-to question, curly quotes and all, scores no lexicon word either way."""
    features = lexicon_features("How do I export the \u201cmonthly\u201d report to CSV?")
    assert features[3] == 0.0
    assert features[10] == 0.0  # no lexicon word found


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love my new bike, such a wonderful ride!", "positive"),
        ("I hate this traffic, an awful commute.", "negative"),
        ("The library opening times for the spring are listed online.", "neutral"),
    ],
)
def test_with_enough_examples_per_label_the_tone_experts_pick_the_tone(
    embedder: CachingEmbedder, tweet_config: TriageConfig, text: str, label: str
) -> None:
    """With 60 examples a label, centroid and lexicon favour the right label on a new topic."""
    local = LocalClassifier(embedder=embedder, config=tweet_config, examples=_examples(60))
    scores = local._tone.log_probs(local.embed(text), text)
    assert tweet_config.sentiment_names[int(np.argmax(scores))] == label
    assert local.classify_vector(local.embed(text), text).sentiment == label


def test_the_experts_wait_for_enough_examples_of_every_label_and_learn_one_at_a_time(
    embedder: CachingEmbedder, tweet_config: TriageConfig
) -> None:
    """One label short of MIN_EXAMPLES: no say at all; its next example gives them their say."""
    examples = _examples(MIN_EXAMPLES)
    short = [e for e in examples if e.sentiment != "neutral"] + [
        e for e in examples if e.sentiment == "neutral"
    ][:-1]
    local = LocalClassifier(embedder=embedder, config=tweet_config, examples=short)
    text = "I love the sunshine today!"
    assert not local._tone.ready
    assert not local._tone.log_probs(local.embed(text), text).any()
    local.add_example(LabeledExample(text=_tweets("neutral")[MIN_EXAMPLES], sentiment="neutral"))
    assert local._tone.ready
    assert local._tone.log_probs(local.embed(text), text).any()


def test_the_shipped_examples_leave_the_tone_experts_silent(pipeline: Pipeline) -> None:
    """The default config has about ten angry and ten satisfied examples: the cues decide tone."""
    assert pipeline._local is not None
    assert not pipeline._local._tone.ready


def test_labels_without_cues_get_no_calm_bonus(
    embedder: CachingEmbedder, tweet_config: TriageConfig
) -> None:
    """A data set's labels have no cues, so finding none says nothing: paging or not, same score."""
    local = LocalClassifier(embedder=embedder, config=tweet_config, examples=_examples(3))
    text = "The museum opens at nine on Sundays."
    query = local.embed(text)
    similarities = local.evidence(query, text).similarities
    plain = local._sentiment(query, similarities, text, priority="low")
    paging = local._sentiment(query, similarities, text, priority="critical")
    assert plain.label == paging.label
    assert plain.margin == pytest.approx(paging.margin)


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("How do I export last month's invoices as a CSV file?", "neutral"),
        (
            "The calendar sync failed again, third time this week, and it's still broken.",
            "frustrated",
        ),
        (
            "This is unacceptable. Fix it today or we cancel our contract and find another vendor.",
            "angry",
        ),
        ("Thank you so much for fixing the export so quickly, great support!", "satisfied"),
    ],
)
async def test_support_messages_keep_their_tone(
    pipeline: Pipeline, text: str, sentiment: str
) -> None:
    """A plain question is calm, a repeat frustrates, a threat is angry, thanks are satisfied."""
    assert (await pipeline.triage(Ticket(text=text))).decision.sentiment == sentiment


def test_eval_on_sentiment_labels_reports_macro_recall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval --field sentiment --shots 55 --json`: the data set's labels, with macro recall."""
    data = tmp_path / "tweets.csv"
    lines = ["split,text,label"]
    for label in TEMPLATES:
        lines += [f'val,"{text}",{label}' for text in _tweets(label)]
    lines += [
        'test,"I love this song, a wonderful tune!",positive',
        'test,"I hate this rain, an awful Monday.",negative',
        'test,"The bus timetable for the winter is posted online.",neutral',
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["eval", str(data), "--field", "sentiment", "--label-col", "label"]
    argv += ["--train-split", "val", "--test-split", "test", "--shots", "55", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "macro_recall", "n_test"} <= summary.keys()
    assert summary["n_test"] == 3
    assert summary["macro_recall"] == 1.0


@pytest.mark.parametrize(
    "path", [None, Path(__file__).resolve().parents[1] / "configs" / "alternative.toml"]
)
@pytest.mark.parametrize(
    "text",
    ["prod is down", "prod down", "Checkout has been down since noon.", "Our API is offline"],
)
async def test_an_outage_without_a_word_of_thanks_is_never_satisfied(
    embedder: CachingEmbedder, path: Path | None, text: str
) -> None:
    """Satisfied needs thanks, praise or a problem gone (a three-word outage's examples were)."""
    pipeline = build_pipeline(load_config(path), embedder=embedder)
    assert (await pipeline.triage(Ticket(text=text))).decision.sentiment != "satisfied"


@pytest.mark.parametrize(
    "text", ["all good now, fixed it", "Sorted, it works now", "never mind, that did it"]
)
async def test_a_problem_gone_is_a_satisfied_customer(pipeline: Pipeline, text: str) -> None:
    """Without a word of thanks, "all good now" is still a happy ending, not a calm question."""
    assert (await pipeline.triage(Ticket(text=text))).decision.sentiment == "satisfied"
