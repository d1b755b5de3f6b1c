"""Cutting a message into sentences and clauses, and grouping them into parts and segments.

Sentences end at ., ! or ? (and their CJK forms) followed by a space and a new sentence, and at
line breaks; abbreviations ("e.g.", "Dr."), decimals, versions ("v2.3.1"), references
("INV-2024-118"), links and e-mail addresses never end one. A sentence is cut again where a
customer turns to another matter ("..., and separately ...", "; also ...", "Another thing: ...").

No sentence splitter on PyPI is both kept up and free of a model download (pysbd's last release
is from 2021, NLTK's punkt needs a data download, spaCy a model), so this is a small, careful one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from routing.models import Decision, IssuePart


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of a block of text, as a set (for word lists)."""
    return frozenset(text.split())


# Words after which a full stop does not end a sentence (lower-case, without the dot).
_ABBREVIATIONS = wordset(
    """
    e.g i.e etc vs approx appt apt dept est fig inc ltd co corp jr sr mr mrs ms dr prof st
    no nr tel ext incl excl min max mt ref vol viz cf al ca resp approx jan feb mar apr jun
    jul aug sep sept oct nov dec mon tue wed thu fri sat sun z.b bzw usw ggf evtl sr sra
    """
)

# A sentence end: terminal punctuation (and closing quotes or brackets), then space.
_END = re.compile(r"([.!?\u3002\uff01\uff1f]+[\"')\]\u201d\u2019]*)(\s+)")
# CJK full stops end a sentence with or without a space after them.
_CJK_END = re.compile(r"([\u3002\uff01\uff1f]+)(?=\S)")
# Where a customer turns to another matter inside a sentence.
_TURN_WORDS = (
    r"also|separately|additionally|in addition|unrelated(?:ly)?|besides(?: that)?|"
    r"apart from that|another (?:thing|issue|question|problem|matter)|"
    r"on (?:a|an|another) (?:separate |different |unrelated )?(?:note|topic|matter|issue)|"
    r"p\.?s\.?|(?:second|third|fourth)(?:ly)?(?=\s*[,:])|lastly|"
    r"one (?:more|last|other) (?:thing|question|issue|request|problem|point)|"
    r"(?:a )?(?:different|separate|unrelated|other) (?:topic|question|issue|matter)|"
    r"while (?:i have you|i'm at it|we're at it)|oh,? and|by the way|btw"
)
_TURN = re.compile(
    # After a comma, semicolon, colon or dash: "..., and separately ...", "; also ...".
    rf"(?:[,;:]|\s-+)\s*(?:and\s+)?(?=(?:{_TURN_WORDS})\b)"
    # Without punctuation only with "and": "... and separately ...", "... and also ...".
    r"|\s+and\s+(?=(?:also|separately|additionally|in addition)\b)"
    r"|;\s+",
    re.IGNORECASE,
)
# "I also tried restarting it": more of the same problem, not another matter.
_TRIED = re.compile(
    r"\balso\s+(?:tried|checked|restarted|cleared|reinstalled|noticed|saw|see|verified|tested)\b",
    re.IGNORECASE,
)
_OPENS_TURN = re.compile(rf"(?:and\s+)?(?:{_TURN_WORDS})\b", re.IGNORECASE)
# ", and could you ...", ", and it would be great if ...": a new ask joined by "and".
_ASK_OPENERS = (
    r"could you|can you|would you|will you|please|it would be (?:great|nice|good|useful)|"
    r"it'd be (?:great|nice|good|useful)|(?:i|we)(?:'d| would) (?:also )?(?:like|love)|"
    r"(?:i|we) (?:also )?(?:want|wish)"
)
_AND_ASK = re.compile(rf",\s*and\s+(?=(?:{_ASK_OPENERS})\b)", re.IGNORECASE)
# "Two things: ...", "A couple of questions - ...": the customer announces several asks, so
# each ", and ..." after it starts the next one.
_ANNOUNCES_SEVERAL = re.compile(
    r"^\W*(?:(?:i|we)\s+have\s+)?(?:two|2|three|3|a\s+couple\s+of|a\s+few|several)\s+"
    r"(?:quick\s+|small\s+|short\s+|more\s+|separate\s+|different\s+)?"
    r"(?:things|requests|questions|issues|problems|matters|points|asks|topics)\b",
    re.IGNORECASE,
)
_AND = re.compile(r",\s*and\s+|;\s*and\s+", re.IGNORECASE)
_WORDS = re.compile(r"\w+")


# A list item's marker at the start of a line: "1)", "2.", "(3)", "a)", "-", "*", "\u2022".
_ITEM = re.compile(r"^\s*(?:[-*\u2022\u2023\u25e6\u2043]|\(?(?:\d{1,2}|[a-h])\)|\d{1,2}\.)\s+")
# A number that may start an item inside a line: "... 2) ...", "... 2. ...".
_INLINE_ITEM = re.compile(r"(?:^|(?<=[\s:]))\(?(\d{1,2})[.)]\s+")
# A step to reproduce ("Open a report", "Click Export"): more of the same problem, no ask.
_STEP = re.compile(
    r"^(?:open|click|go to|select|choose|enter|type|press|tap|navigate|log in|sign in|scroll"
    r"|upload|add|fill|hit|wait)\b(?!.*\?)",
    re.IGNORECASE,
)


def lines(text: str) -> list[tuple[str, bool]]:
    """The text's lines without list markers, each with True when it is a list item.

    "1) ... 2) ..." inside one line counts as two items when the numbers run 1, 2, ...
    """
    found: list[tuple[str, bool]] = []
    for line in re.split(r"\n+", text):
        cuts = [0]
        expected = 1
        for match in _INLINE_ITEM.finditer(line):
            if int(match.group(1)) == expected:
                cuts.append(match.start())
                expected += 1
        pieces = (
            [line[a:b] for a, b in zip(cuts, [*cuts[1:], len(line)], strict=True)]
            if expected > 2
            else [line]
        )
        for piece in pieces:
            item = _ITEM.match(piece)
            stripped = piece[item.end() :] if item else piece
            if stripped.strip():
                found.append((stripped.strip(), item is not None))
    return found


def sentences(text: str) -> list[str]:
    """The text's sentences, in order, each stripped; line breaks end sentences too."""
    return [sentence for sentence, _ in _line_sentences(text)]


def _line_sentences(text: str) -> list[tuple[str, bool]]:
    """Sentences, each with True when it opens a list item."""
    found: list[tuple[str, bool]] = []
    for line, item in lines(text):
        first = len(found)
        line = _CJK_END.sub(r"\1 ", line.strip())
        if not line:
            continue
        start = 0
        for match in _END.finditer(line):
            end = match.end(1)
            if _ends_sentence(line, match.start(1), end):
                piece = line[start:end].strip()
                if piece:
                    found.append((piece, False))
                start = match.end()
        rest = line[start:].strip()
        if rest:
            found.append((rest, False))
        if item and len(found) > first and not _STEP.match(found[first][0]):
            found[first] = (found[first][0], True)
    return found


def _ends_sentence(line: str, punctuation_at: int, after: int) -> bool:
    if line[punctuation_at] != ".":
        return True
    before = line[:punctuation_at]
    word = before.split()[-1].lower() if before.split() else ""
    word = word.lstrip("(\"'[")
    if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return False
    following = line[after:].lstrip()
    # "see section 2. then" and "e.g. this" continue: a sentence starts with a capital, a digit,
    # a quote or a non-Latin letter.
    return not following or not following[0].islower()


def clauses(text: str) -> list[str]:
    """Sentences, cut again where the customer turns to another matter."""
    return [piece for piece, _ in marked_clauses(text)]


def marked_clauses(text: str) -> list[tuple[str, bool]]:
    """Clauses, each with True when the customer announced it as another matter.

    "..., and separately ...", "Also, ...", "Another thing: ...", "..., and could you ..."
    announce one, and after "Two things:" every ", and ..." does; a plain new sentence does not.
    """
    found: list[tuple[str, bool]] = []
    several = _ANNOUNCES_SEVERAL.match(text) is not None
    for sentence, item in _line_sentences(text):
        opens_turn = item or _OPENS_TURN.match(sentence) is not None
        pieces = [
            (piece, index > 0 or cut > 0)
            for index, turn in enumerate(_TURN.split(sentence))
            for cut, piece in enumerate((_AND if several else _AND_ASK).split(turn))
        ]
        for piece, turned in pieces:
            piece = piece.strip(" ,;:-")
            if piece:
                found.append((piece, several or opens_turn or turned or _early_also(piece)))
    return found


def _early_also(piece: str) -> bool:
    """True for "we were also charged twice": another matter, announced in its first words."""
    words = piece.lower().split()
    return "also" in words[:5] and not _TRIED.search(piece)


# What makes a piece an ask of its own: a question, a request or wish, or a problem reported.
_ASKS = re.compile(
    r"\?|\b(?:please|could you|can you|would you|can i|can we|how (?:do|can|should) (?:i|we)"
    r"|(?:i|we)(?:'d| would) (?:like|love)|(?:i|we) (?:need|want)(?! to (?:say|thank|tell))"
    r"|(?:it )?(?:would|'d) be (?:great|nice|good|helpful|awesome|lovely)"
    r"|if you (?:could |would |can )?add\w*|feature request|wish (?:there|you|it)|is there"
    r"|error|fail\w*|broken|crash\w*|stopped|"
    r"can't|cannot|won't|doesn't|isn't|aren't|not (?:working|loading|arriving|showing)|down"
    r"|wrong|charged|billed|missing|lost|stuck|locked|slow|times? out|timing out|expired"
    r"|instead of|twice|bug|cancel\w*|upgrade|downgrade|refund\w*)\b",
    re.IGNORECASE,
)
# A piece that only refers back to what came before: "Also, it happens on my phone too".
_REFERS_BACK = re.compile(
    r"^\W*(?:(?:and|also|oh|plus|p\.?s\.?)\W+)*(?:it|this|that|these|those|they|the same|same)\b"
    r"(?! would be)",
    re.IGNORECASE,
)
# Thanks, praise, greetings and sign-offs: no ask, however they are announced.
_COURTESY = re.compile(
    r"\b(?:thanks?|thank you|thx|cheers|appreciate\w*|love|great|awesome|amazing|regards|"
    r"best|hope|wonderful|fantastic|keep up|have a (?:nice|good|great))\b",
    re.IGNORECASE,
)


def asks_something(piece: str) -> bool:
    """True when the piece asks or reports something of its own (not "it happens on Chrome too")."""
    return _ASKS.search(piece) is not None and _REFERS_BACK.match(piece) is None


def _courtesy(piece: str) -> bool:
    """True for thanks, praise or a sign-off that asks nothing ("P.S. thanks for the help!")."""
    return _COURTESY.search(piece) is not None and _ASKS.search(piece) is None


def word_count(text: str) -> int:
    """Words in text, for the minimum length of a part."""
    return len(_WORDS.findall(text))


def attach_short(pieces: Sequence[str], min_words: int) -> list[str]:
    """Join pieces shorter than min_words to the next piece (or the previous, at the end)."""
    return [piece for piece, _ in attach_short_marked([(p, False) for p in pieces], min_words)]


def attach_short_marked(
    pieces: Sequence[tuple[str, bool]], min_words: int
) -> list[tuple[str, bool]]:
    """attach_short for marked clauses: a joined piece is marked when any of its clauses was."""
    joined: list[tuple[str, bool]] = []
    carry, carry_mark = "", False
    for piece, mark in pieces:
        candidate = f"{carry} {piece}".strip() if carry else piece
        marked = carry_mark or mark
        if word_count(candidate) < min_words:
            carry, carry_mark = candidate, marked
            continue
        joined.append((candidate, marked))
        carry, carry_mark = "", False
    if carry:
        if joined:
            last, last_mark = joined[-1]
            joined[-1] = (f"{last} {carry}", last_mark or carry_mark)
        else:
            joined.append((carry, carry_mark))
    return joined


def segments(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    """Consecutive sentences packed into segments of at most max_tokens each.

    A sentence longer than the window on its own is cut between words.
    """
    packed: list[str] = []
    current: list[str] = []
    used = 0
    for sentence in sentences(text):
        for piece in _fit(sentence, count_tokens, max_tokens):
            size = count_tokens(piece)
            if current and used + size > max_tokens:
                packed.append(" ".join(current))
                current, used = [], 0
            current.append(piece)
            used += size
    if current:
        packed.append(" ".join(current))
    return packed


def _fit(sentence: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    if count_tokens(sentence) <= max_tokens:
        return [sentence]
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word in sentence.split():
        # Word by word, each counted alone: a word's pieces do not depend on its neighbours.
        size = count_tokens(word)
        if current and used + size > max_tokens:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += size
    if current:
        pieces.append(" ".join(current))
    return pieces


def distinct_parts(
    pieces: Sequence[tuple[str, bool]],
    decisions: Sequence[Decision],
    *,
    whole_team: str,
    min_confidence: float,
    min_words: int,
) -> tuple[IssuePart, ...]:
    """The message's asks per team, when at least two teams each confidently own a piece.

    A piece counts when it fits a category, has min_words words, its own classification is at
    least min_confidence sure, and either the customer announced it or the one after it as another
    matter ("and separately ...", "Also, ...", "we were also charged") or its team is the whole
    message's.
    A stray sentence of context is no second ticket: on English support tickets, classified alone,
    such sentences reach 0.99 for the wrong team. Fewer than two teams: no parts, one ticket.
    """
    owned: dict[str, list[tuple[str, Decision]]] = {}
    marks = [announced for _, announced in pieces]
    for index, ((piece, _), decision) in enumerate(zip(pieces, decisions, strict=True)):
        # What comes just before "..., and separately" is the first of the two matters.
        announced = marks[index] or (index + 1 < len(marks) and marks[index + 1])
        allowed = announced or decision.team == whole_team
        # Announced by the customer, a matter's only question is whose it is: the top team at
        # half the usual certainty will do ("And separately, the Zapier integration stopped
        # posting new leads" is sure at 0.42 alone: short, and like no example word for word).
        floor = min_confidence / 2 if marks[index] and asks_something(piece) else min_confidence
        sure = decision.confidence >= floor and not decision.off_topic
        if allowed and sure and word_count(piece) >= min_words and not _courtesy(piece):
            owned.setdefault(decision.team, []).append((piece, decision))
    if len(owned) < 2:
        return ()
    parts: list[IssuePart] = []
    for team, mine in owned.items():
        best = max(mine, key=lambda item: item[1].confidence)[1]
        parts.append(
            IssuePart(
                text=" ".join(piece for piece, _ in mine),
                category=best.category,
                team=team,
                confidence=best.confidence,
            )
        )
    return tuple(parts)
