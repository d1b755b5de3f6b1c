"""Keyword rules: free, instant, and not open to argument."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from routing.config import RulesConfig
from routing.models import RuleMatch


def normalize(text: str) -> str:
    """Fold case, accents, dashes and white space so keywords match however they are typed."""
    decomposed = unicodedata.normalize("NFKD", text)
    # Marks go, and so do invisible format characters (zero-width spaces and joiners, soft
    # hyphens, bidi controls) that copied text carries inside words: "ur\u200bgent" is urgent.
    without_marks = "".join(
        char
        for char in decomposed
        if not unicodedata.combining(char) and unicodedata.category(char) != "Cf"
    )
    # Turkish dotless i and the like survive NFKD; casefold handles the rest.
    folded = without_marks.replace("\N{LATIN SMALL LETTER DOTLESS I}", "i").casefold()
    spaced = re.sub(r"[-_/]+", " ", folded)
    return re.sub(r"\s+", " ", spaced).strip()


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = normalize(keyword).split(" ")
    body = r"\s+".join(re.escape(word) for word in words)
    # Word boundaries on both sides; a plain plural ("outages", "refunds") still counts.
    return re.compile(rf"(?<!\w){body}(?:e?s)?(?!\w)")


# A keyword that the customer negates ("not urgent", "no outage on our side", "nothing urgent")
# says the opposite of what it forces: it forces nothing. One or two words before it count.
_NEGATION = re.compile(
    r"(?:\b(?:not|no|non|nothing|never|isn't|isnt|is not|wasn't|not an?|not really|not that"
    r"|not super|not very|not too|not at all|no need to be)\s+(?:\w+\s+)?)$"
)


def _negated(normalized: str, start: int) -> bool:
    """True when the words just before position start negate what follows ("not urgent")."""
    before = normalized[max(0, start - 40) : start]
    if normalized[start - 4 : start] == "non ":
        return True
    return _NEGATION.search(before) is not None


@dataclass(frozen=True)
class _Keyword:
    word: str
    pattern: re.Pattern[str]

    def forces(self, normalized: str) -> bool:
        """True when the keyword occurs at least once without a negation before it."""
        return any(
            not _negated(normalized, match.start()) for match in self.pattern.finditer(normalized)
        )


# A quoted span: straight or curly quotes, backticks or guillemets around a few words. A quote
# that follows a letter is an apostrophe ("don't", "customers'"), not an opening.
_QUOTED = re.compile(
    r"(?<![\w'])'[^'\n]{1,80}'(?![\w'])|\"[^\"\n]{1,80}\"|`[^`\n]{1,200}`"
    r"|\u2018[^\u2019\n]{1,80}\u2019|\u201c[^\u201d\n]{1,80}\u201d|\u00ab[^\u00bb\n]{1,80}\u00bb"
)


# A name in code: snake_case or camelCase ("refund_policy is not defined", "invoiceId").
_IDENTIFIER = re.compile(
    r"(?<![\w.])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![\w])"
    r"|(?<![\w.])[a-z]+(?:[A-Z][a-z0-9]+)+(?![\w])"
)


# A password in a connection string or a config snippet is a setting, not an account problem
# ("postgres://app:password@db:5432", "DB_PASSWORD=secret", "password: x in config.yml"): the
# user and password of a URL, a `password=` setting, and a `password:` key in a sentence that
# names a config file or format. ("My password: hunter2 is refused" keeps its password.)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/@:]*:[^\s/@]*@")
_PASSWORD_SETTING = re.compile(r"(?i)\b[\w.-]*(?:password|passwd|pwd)\s*=\s*\S*")
_PASSWORD_KEY = re.compile(r"(?i)(?<![\w'])[\w.-]*(?:password|passwd|pwd):\s*\S*")
_CONFIG_WORDS = re.compile(
    r"(?i)\b(?:config|configuration|yaml|yml|json|toml|ini|env|settings|dsn|connection string"
    r"|database url|database_url|host\s*[:=]|port\s*[:=]|user(?:name)?\s*[:=])"
)
_LINE = re.compile(r"[^\n]+")
_PASSWORD_WORD = re.compile(r"(?i)password|passwd|pwd")


def _config_line(match: re.Match[str]) -> str:
    line = match.group()
    return _PASSWORD_KEY.sub(" ", line) if _CONFIG_WORDS.search(line) else line


def without_config_credentials(text: str) -> str:
    """The text with passwords written as settings blanked out (see _URL_CREDENTIALS)."""
    text = _PASSWORD_SETTING.sub(" ", _URL_CREDENTIALS.sub("", text))
    return _LINE.sub(_config_line, text) if _PASSWORD_WORD.search(text) else text


def without_quotes(text: str) -> str:
    """The text with its quoted spans (names, searches, messages on a screen) blanked out."""
    return _QUOTED.sub(" ", text)


def without_identifiers(text: str) -> str:
    """The text with names in code blanked out: a variable named for refunds is no refund.

    A password written as a setting is blanked too: it names a config, not an account.
    """
    return _IDENTIFIER.sub(" ", without_config_credentials(text))


class Rules:
    """Hotwords that decide a category and keywords that force a human, compiled once."""

    def __init__(self, config: RulesConfig) -> None:
        self._hotwords = [
            (rule.category, [_Keyword(word, _keyword_pattern(word)) for word in rule.words])
            for rule in config.hotwords
        ]
        self._forced = [_Keyword(word, _keyword_pattern(word)) for word in config.force_human]

    def match(self, text: str) -> RuleMatch:
        """What the rules find in text; the first hotword rule that matches decides the category."""
        normalized = normalize(text)
        # Quoted words are names, searches and messages on a screen ("the 'New Refund' trigger
        # fails", "searching 'refund' shows other tenants' tickets"), not what the ticket is about.
        unquoted = normalize(without_identifiers(without_quotes(text)))
        category: str | None = None
        hotwords: list[str] = []
        for rule_category, keywords in self._hotwords:
            found = [keyword.word for keyword in keywords if keyword.pattern.search(unquoted)]
            if found and category is None:
                category = rule_category
                hotwords.extend(found)
        forced = tuple(keyword.word for keyword in self._forced if keyword.forces(normalized))
        return RuleMatch(category=category, hotwords=tuple(hotwords), forced_keywords=forced)
