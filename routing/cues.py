"""Cue phrases: the words in a ticket that say how wide or how bad a problem is, or how it is said.

Each label of a field may list `cues` in the config ("[nobody|no one] + [can't|cannot]",
"leaked", "😡"). They are matched the rules' way (case, accents, dashes and spacing ignored, on
word boundaries, a plain plural counts); `*` stands for up to three words, `[a|b]` for either
phrase, `#` for a number of ten or more, and ` + ` joins parts that must all occur; `**` stands
for up to eight words of the same sentence, and `{name}` for any phrase of [cue_words] `name`.
Japanese, Chinese and Korean put no spaces between words ("ログインできません"): a cue's end
that is a kana, hanzi/kanji or hangul character needs no boundary there, and such a character
next to a Latin word is a boundary for it ("APIエラー" has the word "api"). A label
whose cue is found gets a fixed bonus added to its embedding score (`thresholds.cue_weight`):
the cues tip a close decision towards what the ticket literally says about impact and scope,
while the examples still decide when the cues disagree ("how do I avoid data loss" has a
question's cue and a data-loss cue).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from routing.config import LabelConfig
from routing.rules import normalize

# The scripts written without spaces between words, as they are after normalize() (NFKD: hangul
# syllables become conjoining jamo, kana lose their voicing marks on both sides): hangul jamo and
# syllables, CJK radicals and punctuation, kana, bopomofo, CJK ideographs (and their extensions),
# half-width kana.
CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f"
    "\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK_CHARACTER = re.compile(f"[{CJK}]")
# Where a CJK character meets a letter or digit of a spaced script ("APIエラー", "503エラー"): a
# space goes there, so the Latin word keeps its word boundary. (One pattern, compiled once: the
# cue patterns themselves keep plain `\w`, which compiles and runs fast.)
_SCRIPT_CHANGE = re.compile(f"(?<=[{CJK}])(?=[^\\W{CJK}])|(?<=[^\\W{CJK}])(?=[{CJK}])")
# Hangul final consonants (jamo, after NFKD): a cue ending in an open syllable ("오류") must not
# match the first part of a closed one.
_HANGUL_FINAL = "\u11a8-\u11ff\ud7cb-\ud7fb"
_HANGUL_VOWEL = re.compile("[\u1161-\u11a7\ud7b0-\ud7c6]")
# CJK words run together, so a cue that starts inside a longer word matches the wrong word:
# "ロック" (lock) is the end of "ブロック" (block; "フロック" after NFKD) and "クロック" (clock),
# and "错误" (error) is the end of "密码错误" (a wrong password, no fault of the product). A cue
# that starts so is not matched after these characters.
_CJK_NOT_AFTER = {"ロック": "フク", "错误": "码碼", "錯誤": "码碼"}

# What a `#` in a cue stands for: a number of ten or more, with or without thousands separators
# ("80", "4,000", "1.200"); a group that size is more than one person or one function.
NUMBER = r"(?<![\w.,])(?:\d{1,3}(?:[,.]\d{3})+|\d{2,})(?![\w]|[.,]\d)"
# How many words a `*` in a cue stands for, at most; and how many characters next to a CJK word.
GAP_WORDS = 3
# How many words a `**` stands for, at most, all in one sentence: the subject of a clause and
# what it does ("every call to POST /v2/records is failing"), not two clauses joined.
LONG_GAP_WORDS = 8
GAP_CHARACTERS = 8
# Apostrophes typed on phones and Macs, folded to the ASCII one (U+2019 and the like).
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


# "Everyone else is fine" names the others, who are not affected: never the scope of a problem.
_EXCEPT_THE_OTHERS = re.compile(
    r"\b(?:every ?one|every ?body|all the others?|all other users|the rest of us) else\b"
    r"|\b(?:every ?one|every ?body) but (?:me|us|one)\b"
)


# "Not all of them", "but not every time": a part, not the whole scope.
_NOT_ALL = re.compile(r"\bnot (?:all|every)\b")

# Words of scope used for something else, made one word so that a cue of scope ("nobody" +
# "can't", "lost" + "every") does not join them to a problem told elsewhere in the ticket:
# "nobody answers" and "nobody on our side changed it" are about replies and causes, "every
# time" is how often, "lost hours" is time, and "401 Unauthorized" is a status code.
_NOT_SCOPE = (
    (
        re.compile(
            r"\b(?:nobody|no one|noone|none of us)(?: (?:here|else|on our (?:side|end|team)"
            r"|at our end|on your (?:side|end|team)|from (?:your|our) (?:side|team|end)"
            r"|from support|in support))?(?: has| have| had| is| was)?(?: ever| even| yet)?"
            r" (answers|answered|answering|replies|replied|replying|responds|responded"
            r"|responding|got back|gets back|changed|touched|did|called|emailed|helped|helps"
            r"|picked up|picks up|looked into|noticed)\b"
        ),
        lambda match: "nobody_" + match.group(1).replace(" ", "_"),
    ),
    # Also typed for emphasis: "every. single. time."
    (re.compile(r"\bevery\W{1,3}(?:single\W{1,3})?time\b"), "everytime"),
    # Records the customer removed on purpose ("we deleted all the test users on purpose") are
    # a clean-up told, not a loss.
    (
        re.compile(
            r"\b(we|i) (?:deleted|wiped|erased|removed|cleared|purged) ([^.?!\n]{0,60}?)"
            r" ?\b(?:on purpose|intentionally|deliberately)\b"
        ),
        lambda match: (
            match.group(0)
            if re.search(r"\b(?:not|never|didn't|did not|wasn't|was not)\b", match.group(2))
            else f"{match.group(1)} cleaned_up {match.group(2)}"
        ),
    ),
    # A deletion the customer asked for, told as done ("all duplicates were deleted as we
    # asked"): a request carried out, not a loss. "Deleted, not as we asked" stays a loss.
    (
        re.compile(
            r"\b(?:deleted|wiped|erased|removed|cleared|purged)\b([^.?!\n]{0,40}?)"
            r"\b(?:as (?:we|i) (?:asked|requested|wanted|instructed)|as requested|as asked"
            r"|as instructed|like (?:we|i) asked|per (?:our|my) request)\b"
        ),
        lambda match: (
            match.group(0)
            if re.search(r"\b(?:not|never|didn't|did not|wasn't|was not)\b", match.group(1))
            else f"cleaned_up{match.group(1)} as_requested"
        ),
    ),
    # A new colleague who "took over from Dave" took over a role, not an account.
    (
        re.compile(
            r"\b(?:took|taken|take|takes|taking) over (?:from|as|the role|his role|her role"
            r"|their role|responsibility|responsibilities|for)\b"
        ),
        "handover",
    ),
    (
        re.compile(
            r"\b(?:lost|losing|lose|wasted|wasting) (?:so many |many |several |a few |two |three "
            r"|a lot of |lots of |countless |whole |an |a |half an? |half a )?"
            # "lost about 20 minutes", "wasted over 10 hours": time again, counted.
            r"(?:(?:about|around|over|nearly|almost|like|more than|roughly) )?(?:\d+ )?"
            r"(?:hours?|days?|minutes?|time|afternoon|morning|evening|week|weekend)\b"
        ),
        "lost_time",
    ),
    (
        re.compile(
            r"\b(?:401|http 401|error 401|status 401)\W{0,3}unauthori[sz]ed\b"
            r"|\bunauthori[sz]ed (?:error|response|status|code|exception)\b"
            r"|\b(?:error|status|response)\W{1,3}unauthori[sz]ed\b"
        ),
        "http_unauthorized",
    ),
)

# What the customer chose, asked about or limited is not an incident: these change the words of
# scope or impact in the sentence they are in, so no cue reads them as one.
_SCOPE_WORDS = re.compile(
    r"\b(?:nobody|no one|noone|none of (?:our|the|us|my)|every ?one|every ?body|every|all of our"
    r"|all our|all the|all)\b"
)
# The customer's own doing given as the cause: "none of our users get the digest because we
# switched it off", "since I disabled notifications nobody gets them".
_OWN_CHOICE = re.compile(
    r"\b(?:because|since|as|after|now that|ever since) (?:we|i|our admin|my admin)"
    r"(?: have| had| 've| just| recently| deliberately)?"
    r" (?:(?:switched|turned|shut|set) [^.?!]{0,30}?\boff\b|(?:switched|turned) off|disabled"
    r"|deactivated|paused|unsubscribed|opted out|uninstalled|revoked|blocked|stopped)"
)
# A request for a list or a report: its words are the filter ("a report of all pages that
# return 404"), unless it names who did something (then it is about an incident).
_LISTING_REQUEST = re.compile(
    r"\b(?:is there|are there|do you have|can i get|can we get|could i get|could we get"
    r"|how do i get|how can i get|how do we get|where can i find|where do i find|how do i export"
    r"|can i export|can we export|how can i see|where can i see)(?: a| an| any)?"
    r" (?:report|list|listing|export|overview|view|filter|dashboard|summary|csv|log)s?\b"
)
_NAMES_AN_INCIDENT = re.compile(
    r"\b(?:who|someone|somebody|hacked|leaked|stolen|breach|breached|stranger|attacker|since"
    r"|today|right now|currently)\b"
)
# "What does 'access denied' mean?": a question about words, not a report of them.
_MEANING_QUESTION = re.compile(r"\bwhat (?:does|do) ([^.?!]{1,60}?) mean\b")
# A failure only in a preview, staging or test copy ("in preview mode only").
_NOT_LIVE = re.compile(
    r"\bonly (?:in|on|for|with|when using) (?:the |our |a )?(?:preview|staging|sandbox|test"
    r"|draft|dev|development|beta|demo)\b"
    r"|\b(?:in|on) (?:the |our |a )?(?:preview|staging|sandbox|test|draft|dev|development|beta"
    r"|demo)(?: mode| environment| site| server| version| account| pages?| copy)? only\b"
)
_WHOLE_SCOPE = re.compile(r"\b(?:every|all)\b")
# "Production is fine" says what is not affected ("production is" is an outage's words).
_LIVE_IS_FINE = re.compile(
    r"\b(?:production|prod|the live site|live|the live pages|live pages)(?: site| pages"
    r"| environment)? (?:is|are|seems|looks|works|work)(?: still)? (?:fine|ok|okay|working"
    r"|unaffected|not affected|normal|all good|good)\b"
)
# "Everything else works", "the rest of the app is fine", "images still upload fine": one
# function is down, not the product. The words of scope that tell who it hits ("nobody can
# export PDFs") are then read as onefunctionforall, so no outage cue takes them: the whole
# team blocked in one function (a priority's cue may name onefunctionforall). Losses and
# breaches keep their own words ("all our invoices are gone").
_REST_WORKS = re.compile(
    r"\b(?:everything else|the rest(?: of (?:the app|the site|the product|the platform|it))?"
    r"|(?:all )?(?:the )?other (?:features|pages|parts|functions|reports|buttons|screens|tabs))"
    r" (?:still )?(?:works?|is fine|are fine|is ok|are ok|is okay|are okay|is working|are working"
    r"|seems fine|seem fine|looks fine|look fine|is unaffected|are unaffected)\b"
    r"|\bstill (?:works?|loads?|uploads?|syncs?|saves?|sends?|opens?|runs?|prints?|exports?)"
    r" (?:fine|ok|okay|normally|as normal|as usual)\b"
)
_WHOLE_GROUP = re.compile(
    r"\b(?:every ?one|every ?body|nobody|no one|noone|none of us|all of us|all (?:of )?our users"
    r"|all users|(?:the|our) (?:whole|entire) team)\b"
    r"(?: (?:on|in|at) (?:our|the|my) (?:team|company|office|side|end))?"
)
_SENTENCE = re.compile(r"[^.?!]+[.?!]*")


def _told_as_no_incident(sentence: str) -> str:
    """A sentence with its scope words made plain when it tells a choice or asks for a list."""
    if _OWN_CHOICE.search(sentence) or (
        _LISTING_REQUEST.search(sentence) and not _NAMES_AN_INCIDENT.search(sentence)
    ):
        sentence = _SCOPE_WORDS.sub("some", sentence)
    return _MEANING_QUESTION.sub("what_does_it_mean", sentence)


# Contractions typed without their apostrophe ("cant log in", "doesnt load", "whats"), as fast
# typists and phones write them: read as the cues spell them. ("wont" and "cant" are words too,
# rarely in a support message.)
_BARE_CONTRACTION = re.compile(
    r"\b(can|don|doesn|didn|isn|aren|wasn|weren|haven|hasn|hadn|couldn|wouldn|shouldn|won|ain)t\b"
    r"|\b(what|that|there|who)s\b"
)


def _apostrophe(match: re.Match[str]) -> str:
    """The contraction with its apostrophe: cant -> can't, doesnt -> doesn't, whats -> what's."""
    if match.group(1) is not None:
        return match.group(1) + "'t"
    return match.group(2) + "'s"


# A ticket's text is matched by several fields' cues, several times on its way (its urgency
# when queued, the local stage, the escalation policy): normalised once.
@functools.lru_cache(maxsize=256)
def normalize_for_cues(text: str) -> str:
    """The rules' normalisation, with every kind of apostrophe made the ASCII one."""
    normalized = _SCRIPT_CHANGE.sub(" ", normalize(text.translate(_APOSTROPHES)))
    normalized = _NOT_ALL.sub("some", normalized)
    for pattern, replacement in _NOT_SCOPE:
        normalized = pattern.sub(replacement, normalized)
    normalized = _SENTENCE.sub(lambda match: _told_as_no_incident(match.group()), normalized)
    normalized = _LIVE_IS_FINE.sub("live_is_fine", normalized)
    if _NOT_LIVE.search(normalized):
        # "Every page shows 404 in preview mode only": a test or preview copy, not production.
        normalized = _WHOLE_SCOPE.sub("some", normalized)
    normalized = _EXCEPT_THE_OTHERS.sub(
        "the others", _BARE_CONTRACTION.sub(_apostrophe, normalized)
    )
    if _REST_WORKS.search(normalized):
        grouped = _WHOLE_GROUP.sub("onefunctionforall", normalized)
        if grouped != normalized:
            # The rest working is then what makes it one function, not a degraded product: no
            # cue of the degraded level reads it.
            normalized = _REST_WORKS.sub("the rest works", grouped)
    return normalized


_TOKEN = re.compile(r"\[[^\]]*\]|\*\*?|[^\s\[\]]+")
_GAPS = ("*", "**")


# Compiled once per cue text: escalation builds a field's Cues for every ticket, and compiling
# its few dozen cues was a tenth of a ticket's CPU.
@functools.lru_cache(maxsize=4096)
def cue_pattern(cue: str) -> re.Pattern[str]:
    """A compiled cue: its words in order, on word boundaries, a plain plural counting.

    `*` stands for up to GAP_WORDS words and `[a|b c]` for any one of its phrases; parts joined
    by ` + ` must all occur, in any order ("[nobody|no one] + [can't|cannot]").
    """
    parts = [part for part in normalize_for_cues(cue).split(" + ") if part.strip()]
    # Each part is captured, so a match can say which words it found.
    lookaheads = "".join(f"(?=.*?({_part_pattern(part)}))" for part in parts)
    # Anchored at the start, so a long ticket is scanned once per part, not once per position.
    return re.compile(r"\A" + (lookaheads or r"(?!)"), re.DOTALL)


@functools.lru_cache(maxsize=4096)
def cue_literals(cue: str) -> tuple[tuple[str, ...], ...]:
    """Words a text must contain for the cue to match: per part, one of them at least.

    A part whose first phrase is a choice lists one word of each choice; a part with a choice
    made of numbers alone (`#`) lists nothing and is not checked. A plain substring test, so
    most cues are ruled out without running their pattern: the same matches, far less work.
    """
    literals: list[tuple[str, ...]] = []
    for part in normalize_for_cues(cue).split(" + "):
        tokens = [piece for piece in _TOKEN.findall(part) if piece not in _GAPS]
        if not tokens:
            continue
        first = tokens[0]
        choices = (
            [choice.split() for choice in first[1:-1].split("|")]
            if first.startswith("[")
            else [first.split()]
        )
        words = [
            max((word for word in choice if word != "#"), key=len, default=None)
            for choice in choices
            if choice
        ]
        if words and all(word is not None for word in words):
            literals.append(tuple(word for word in words if word is not None))
    return tuple(literals)


def _part_pattern(part: str) -> str:
    tokens: list[str] = _TOKEN.findall(part)
    words = [position for position, piece in enumerate(tokens) if piece not in _GAPS]
    body = ""
    gap = ""
    for position, word in enumerate(tokens):
        if word in _GAPS:
            gap = word
            continue
        choices = _choices(word)
        first, last = position == words[0], position == words[-1]
        piece = (
            "(?:"
            + "|".join(
                _choice_pattern(choice.split(), first=first, last=last)
                for choice in choices
                if choice.split()
            )
            + ")"
        )
        if body:
            if _touches_cjk(tokens, position):
                # No spaces to count words by: a gap is a few characters.
                body += rf"\s*(?:[^\n]{{0,{GAP_CHARACTERS}}}?)" if gap else r"\s*"
            else:
                body += r"\s+" + (
                    rf"(?:[^\s.?!]+\s+){{0,{LONG_GAP_WORDS}}}"
                    if gap == "**"
                    else rf"(?:\S+\s+){{0,{GAP_WORDS}}}"
                    if gap
                    else ""
                )
        body += piece
        gap = ""
    return body


def _touches_cjk(tokens: list[str], position: int) -> bool:
    """True when the word at position, or the word before it, meets it with a CJK character."""
    previous = next(piece for piece in reversed(tokens[:position]) if piece not in _GAPS)
    ends = [choice.split()[-1][-1] for choice in _choices(previous) if choice.split()]
    starts = [choice.split()[0][0] for choice in _choices(tokens[position]) if choice.split()]
    return any(_is_cjk(character) for character in (*ends, *starts))


def _choices(token: str) -> list[str]:
    return token[1:-1].split("|") if token.startswith("[") else [token]


def _choice_pattern(words: list[str], *, first: bool, last: bool) -> str:
    """One phrase of a cue, on word boundaries where it starts or ends with a word.

    So "??", "!!" and emoji may touch the word before them ("emails??", "thanks🙏"). A `#` word
    stands for a number of ten or more ("80 people", "4,000 records").
    """
    pattern = ""
    for position, word in enumerate(words):
        if position:
            # Written without a space where either side is CJK ("ログイン できない" or not).
            cjk = _is_cjk(words[position - 1][-1]) or _is_cjk(word[0])
            pattern += r"\s*" if cjk else r"\s+"
        pattern += NUMBER if word == "#" else re.escape(word)
    if words[-1] == "#":
        return (r"(?<!\w)" if first else "") + pattern
    if first and _is_word(words[0][0]):
        pattern = r"(?<!\w)" + pattern
    if first:
        for start, before in _CJK_NOT_AFTER.items():
            if words[0].startswith(start):
                pattern = f"(?<![{before}])" + pattern
    if last and _is_word(words[-1][-1]):
        # A plain plural counts.
        pattern += r"(?:e?s)?(?!\w)"
    elif last and _HANGUL_VOWEL.match(words[-1][-1]):
        pattern += f"(?![{_HANGUL_FINAL}])"
    return pattern


def _is_word(character: str) -> bool:
    """A letter or digit of a spaced script (so a cue's end there needs a word boundary)."""
    return (character.isalnum() or character == "_") and not _is_cjk(character)


def _is_cjk(character: str) -> bool:
    """A character of a script written without spaces: kana, hanzi/kanji, hangul (jamo)."""
    return _CJK_CHARACTER.match(character) is not None


@dataclass(frozen=True)
class CueMatch:
    """The cues found in one text, per label in config order, as the words that matched."""

    found: tuple[tuple[str, ...], ...]

    def hits(self) -> list[bool]:
        """Per label: was any of its cues found."""
        return [bool(cues) for cues in self.found]


class Cues:
    """One field's cue phrases, compiled once."""

    def __init__(self, labels: Sequence[LabelConfig]) -> None:
        # The field's cues as text: the key its matches are remembered by (_found).
        self._cues = tuple(tuple(cue for cue in label.cues if cue.strip()) for label in labels)

    @property
    def empty(self) -> bool:
        """True when no label of the field has a cue."""
        return not any(self._cues)

    def match(self, text: str) -> CueMatch:
        """Which cues of each label occur in text."""
        if self.empty or not text:
            return CueMatch(found=tuple(() for _ in self._cues))
        return CueMatch(found=_found(self._cues, normalize_for_cues(text)))


# A ticket's priority cues are matched when it is queued (its urgency), by the local stage and
# by the escalation policy, each with a Cues of its own: the same field's matches are found once.
@functools.lru_cache(maxsize=512)
def _found(cues: tuple[tuple[str, ...], ...], normalized: str) -> tuple[tuple[str, ...], ...]:
    """The words each label's cues found in a normalised text, per label."""
    found: list[tuple[str, ...]] = []
    for label in cues:
        words: list[str] = []
        for cue in label:
            if not _has_words(cue_literals(cue), normalized):
                continue  # a word the cue needs is not in the text: it cannot match
            match = cue_pattern(cue).search(normalized)
            if match is not None:
                words.append(" + ".join(group for group in match.groups() if group))
        found.append(tuple(words))
    return tuple(found)


def _has_words(literals: tuple[tuple[str, ...], ...], normalized: str) -> bool:
    """True when the text has, for each part of a cue, one of the words that part needs."""
    for part in literals:
        for word in part:
            if word in normalized:
                break
        else:
            return False
    return True


def original_words(text: str, found: str) -> str:
    """The words of text that a cue found (normalised: "contrasena"), as the customer wrote them.

    `found` is one of CueMatch.found's strings, its parts joined by " + "; each part is looked
    up in text character by character (case, accents and spacing folded as normalize() does).
    A part not found so (a contraction the cues spell out) is given as the cue found it.
    """
    folded: list[str] = []
    origin: list[int] = []
    for index, character in enumerate(text.translate(_APOSTROPHES)):
        spacing = character.isspace() or character in "-_/"
        for piece in " " if spacing else normalize(character):
            if piece == " " and (not folded or folded[-1] == " "):
                continue
            folded.append(piece)
            origin.append(index)
    flat = "".join(folded)
    words: list[str] = []
    for part in found.split(" + "):
        # A space the cues put between scripts ("api エラー") may not be in the text.
        at = re.search(" ?".join(re.escape(word) for word in part.split(" ")), flat)
        if at is None or not at.group():
            words.append(part)
            continue
        words.append(text[origin[at.start()] : origin[at.end() - 1] + 1])
    return " + ".join(words)
