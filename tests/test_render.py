"""Block Kit and mrkdwn rendering: what customer or model text can never do in Slack."""

from __future__ import annotations

from bot import render
from routing.desk import Note


def test_a_notes_reasons_and_quote_are_escaped_but_its_mentions_fire() -> None:
    """Reasons and quotes render as text (no <!channel>); the on-call mention stays a mention."""
    note = Note(
        "Ticket #1 needs a human:",
        quote="<!here> please",
        mentions=("U0ONCALL", "S0GROUP"),
        details=("label outside the taxonomy (category)", "<!channel> & <@U0BOSS>"),
    )
    text = render.note_text(note)
    assert text.startswith("<@U0ONCALL> <!subteam^S0GROUP> Ticket #1 needs a human:")
    assert "&lt;!channel&gt; &amp; &lt;@U0BOSS&gt;" in text
    assert "&gt; &lt;!here&gt; please" in text
    assert "<!channel>" not in text
    assert "<!here>" not in text
    assert "<@U0BOSS>" not in text


def test_fit_never_leaves_half_an_entity() -> None:
    """Cutting escaped text drops a partial &amp; rather than showing it raw."""
    escaped = render.escape("ab&cd")  # "ab&amp;cd"
    assert render.fit(escaped, 5, more="…") == "ab…"
