"""A pasted log or stack trace: the customer's words decide, the paste cannot inflate them."""

from __future__ import annotations

import pytest

from routing.cascade import Pipeline, build_pipeline
from routing.config import load_config
from routing.embedding_cache import CachingEmbedder
from routing.models import Ticket
from routing.paste import told_words

WORDS = "Hi, the nightly export job failed again, log below."


def _log(lines: int) -> str:
    """A program's output: timestamps, levels, Java frames, retries that sound like an outage."""
    shapes = (
        "2026-12-01T02:{n:02d}:11Z ERROR [export-worker-3] Job 88{n} failed: NullPointerException",
        "    at com.acme.export.Writer.write(Writer.java:{n})",
        "    at com.acme.export.Job.run(Job.java:{n})",
        "2026-12-01T02:{n:02d}:12Z WARN  retrying db-primary: timeout after 30s, all workers busy",
        "2026-12-01T02:{n:02d}:13Z FATAL service unavailable: 503 upstream, every request failed",
    )
    return "\n".join(shapes[n % len(shapes)].format(n=n % 60) for n in range(lines))


@pytest.fixture
def pipeline(embedder: CachingEmbedder) -> Pipeline:
    return build_pipeline(load_config(), embedder=embedder)


def test_the_words_around_a_paste_and_its_first_line_are_what_is_read() -> None:
    """Told words: the human lines and the paste's first line; a message with no paste whole."""
    told = told_words(f"{WORDS}\n{_log(400)}\nThanks!")
    assert told.splitlines() == [WORDS, _log(1), "Thanks!"]
    python = 'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n' * 3
    assert told_words(f"Import crashes:\n{python}KeyError: 'id'").startswith("Import crashes:")
    ordinary = "\n".join(["Hello,", "the export fails.", "Every time.", "Since Monday.", "Ana"])
    assert told_words(ordinary) == ordinary
    fenced = "Upload broke:\n```\n" + "\n".join(f"line {n} of the response" for n in range(9))
    assert told_words(fenced + "\n```") == "Upload broke:\nline 0 of the response"
    # Three log lines in a fence are a short paste, read with the rest.
    short = "Logs:\n```\n" + _log(3) + "\n```\nevery upload fails since 8:00, all regions"
    assert told_words(short) == short


async def test_a_long_paste_with_one_line_of_words_gets_the_words_priority(
    pipeline: Pipeline,
) -> None:
    """400 log lines saying "service unavailable" do not make a failed job critical.

    The priority is the one the customer's line gets alone; the outage words in the paste still
    ask a person to check.
    """
    alone = await pipeline.triage(Ticket(text=WORDS))
    pasted = await pipeline.triage(Ticket(text=f"{WORDS}\n{_log(400)}"))
    assert alone.decision.priority in ("medium", "high")
    assert pasted.decision.priority == alone.decision.priority
    assert pasted.decision.category == alone.decision.category == "technical"
    assert "impact_cue" in {reason.code for reason in pasted.escalation.reasons}
