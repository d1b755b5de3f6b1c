"""Personal data and secrets out before any text leaves the machine or reaches a log or a copy.

Every matcher reads a normalised copy of the text (NFKC, invisible characters and marks
dropped, digits in ASCII, dashes and dots as separators, look-alike Cyrillic and Greek letters
in Latin words as Latin: _matching_view), and only the matched spans of the original change.

What is redacted, and by what (well-kept libraries where one is made for the job):
- emails, in any script (`jané.dœ@exämple.com`), and spelt out (`john [at] example [dot] com`,
  `john.doe at example.com`), and percent-encoded in a pasted link (`?email=jane%40example.com`);
- phone numbers in international and national formats: candidates found by one linear regex,
  each validated by `phonenumbers` (Google's libphonenumber) for the regions in `PHONE_REGIONS`;
  a bare digit run only after a phone word ("call me on", "Handy:") or when it is a mobile
  number written nationally with its trunk 0 ("05321234567", "0612345678");
- payment card numbers that pass Luhn: grouped like a card (4-4-4-4, 4-6-5) by any separator
  (commas too) or line break, several side by side, or bare or oddly grouped after a word such
  as "card" ("my card number is ..."; order numbers pass Luhn one time in ten), and 15/16-digit
  runs that start like a real card (Visa, Mastercard, Amex, Discover, JCB) without one, bare
  or oddly grouped ("4111 11 1111 111 111"), digits after them or not;
- IBANs in either case, with or without spaces, validated by `python-stdnum`;
- national identity numbers, validated by `python-stdnum`: formatted ones anywhere (US SSN
  with dashes, spaces or dots, Aadhaar 4-4-4, French NIR as on the carte Vitale, Brazil CPF,
  Spain DNI/NIE, Italy codice fiscale; UK National Insurance numbers by their shape alone, in
  small letters after their name), digit runs (Turkey T.C. kimlik, Germany
  IdNr, France NIR, India Aadhaar, Netherlands BSN, Poland PESEL, UK NHS, Canada SIN, spaced
  SSNs) only after a word that names them, so order numbers stay (after "SSN", any nine
  digits in its shape, valid or not); passport, licence and
  Personalausweis numbers after their word;
- dates of birth after a word naming them ("DOB: 04/12/1988", "born on 4 December 1988",
  "Geburtsdatum"); other dates, times and IPv4 addresses are kept whole, so no digit matcher
  reads them;
- keys and tokens by the detectors of `detect-secrets` (AWS, Slack, GitHub, GitLab, Stripe,
  OpenAI, private keys, JWTs, ...) plus the newer shapes it lacks (`xapp-`, `sk-proj-`,
  `sk_test_`, `github_pat_`, `npm_`, `pypi-`, `shpat_`, `hf_`, `dop_v1_`, Azure `AccountKey=`,
  PGP and bare DER keys, AWS secret keys beside an AWS word, Telegram and Discord bot tokens,
  Discord webhooks, and prefixed tokens of Square, Linear, Notion, Atlassian, Postman, New
  Relic, Figma, Grafana, Vault, Doppler, Pulumi, Databricks, Supabase, Airtable, Groq, xAI,
  Replicate and Braintree), JWTs with spaces around their dots or wrapped onto lines, the
  credential of `Authorization:` headers in any case and of `user:password@` in URLs (the user
  of `user:@`, and a token alone before the `@`);
- the value after "password", "passphrase", "api key", "token", "secret", "pw:" and their
  translations (JSON, YAML and `KEY=value` shapes too; the ASCII run after the Chinese,
  Japanese and Korean words and their particles), unless it reads as a sentence ("password:
  doesn't work"); a passphrase's words to the end of its clause; PINs and one-time codes
  ("the code is 482913", "OTP code 482913", "482913 is your code", "the PIN for my card is
  4821"), but not HTTP, error, zip
  or promo codes; `credentials user:password`.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from stdnum import iban as stdnum_iban
from stdnum import numdb
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.tr import tckimlik
from stdnum.us import ssn

# Where customers' national phone numbers (no +country code) are looked for. Numbers with a
# + (or 00) prefix are found whatever the region. Each candidate is parsed once per region, and
# the answers are cached, so a longer list costs little.
PHONE_REGIONS = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "TR", "IN", "BR", "AU", "CA",
    "CN", "JP", "RU", "PL", "MX",
)  # fmt: skip


# --- The text the matchers read ------------------------------------------------------------
# Every matcher reads a normalised copy of the text, and each placeholder replaces the span
# of the original that its match came from. The copy is NFKC (full-width digits and signs, the
# full-width at sign, compatibility spaces, mathematical digits) with format characters
# dropped (zero-width spaces and joiners, soft hyphens, bidi controls: "4111\u200b1111..." is
# a card), combining marks dropped after composition (so `\w` runs on through "राम" or a
# decomposed "é"), every decimal digit in ASCII, dashes as "-", middle dots and bullets as
# ".", curly apostrophes and quotes straight, line and paragraph separators as "\n"; and in a
# word that mixes Latin with Cyrillic or Greek letters, those letters as the Latin ones they
# look like ("p\u0430ssword" with a Cyrillic "a").
_SIGNS = {
    "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b\ufe58",
    ".": "\u00b7\u2022\u2027\u2219\u22c5\u30fb\u2981",
    "'": "\u2018\u2019\u201a\u201b\u02bc\u2032",
    '"': "\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033",
    "\n": "\u2028\u2029\u0085",
}
_SIGN_TABLE = str.maketrans({char: sign for sign, chars in _SIGNS.items() for char in chars})
# Where characters that NFKC changes, marks, format characters and non-ASCII digits are (the
# rest of Unicode's such characters are in scripts no matcher reads).
_SCANNED_BLOCKS = ((0x80, 0x10200), (0x1D400, 0x1D800), (0x1F100, 0x1F200), (0xE0000, 0xE0200))
# Cyrillic and Greek letters that look like Latin ones, for words that mix the scripts.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕһԁԛԝӏАВЕКМНОРСТХІЈЅԌѴοαρνυικτχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijshdqwlABEKMHOPCTXIJSGVoapvuiktxABEZHIKMNOPTYX",
)
_CYRILLIC_OR_GREEK = "\u0370-\u03ff\u0400-\u052f"
_MIXED_SCRIPT_WORD = re.compile(
    rf"\b(?=[^\W\d_]*[A-Za-z])(?=[^\W\d_]*[{_CYRILLIC_OR_GREEK}])[^\W\d_]+"
)


def _character_class(chars: set[str]) -> str:
    """A regular expression character class of the given characters, as ranges."""
    codes = sorted(map(ord, chars))
    ranges: list[str] = []
    start = previous = codes[0]
    for code in [*codes[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        ranges.append(
            re.escape(chr(start)) + ("-" + re.escape(chr(previous)) if previous > start else "")
        )
        start = previous = code
    return "[" + "".join(ranges) + "]"


@dataclass(frozen=True)
class _Specials:
    """The characters the view changes, found once (on the first non-ASCII text)."""

    run: re.Pattern[str]  # runs of them
    one_for_one: dict[int, str]  # those seen as one other character, whatever is around them
    others: re.Pattern[str]  # the rest: marks, format characters, expansions


@lru_cache(maxsize=1)
def _specials() -> _Specials:
    special = set("".join(_SIGNS.values()))
    for first, last in _SCANNED_BLOCKS:
        for code in range(first, last):
            char = chr(code)
            category = unicodedata.category(char)
            if (
                category[0] == "M"
                or category in ("Cf", "Nd")
                or unicodedata.normalize("NFKC", char) != char
            ):
                special.add(char)
    one_for_one: dict[int, str] = {}
    for char in special:
        seen = _seen(char)
        # A character NFKC may compose with a mark after it stays out ("e" + U+0301).
        if len(seen) == 1 and unicodedata.category(char)[0] != "M":
            one_for_one[ord(char)] = seen
    others = special - {chr(code) for code in one_for_one}
    return _Specials(
        run=re.compile(_character_class(special) + "+"),
        one_for_one=one_for_one,
        others=re.compile(_character_class(others)),
    )


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _seen(cluster: str) -> str:
    """One base character and its marks as the matchers read them."""
    pieces = []
    for char in unicodedata.normalize("NFKC", cluster):
        category = unicodedata.category(char)
        if category == "Cf" or category[0] == "M":
            continue
        pieces.append(str(unicodedata.decimal(char)) if category == "Nd" else char)
    return "".join(pieces).translate(_SIGN_TABLE)


@dataclass(frozen=True)
class _View:
    """The text the matchers read, and where each of its characters came from in the original.

    View character i was made from the original's characters starts[i] to ends[i]; both are
    None when the view is the text itself.
    """

    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that the view's span [start, end) came from."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _matching_view(text: str) -> _View:
    """The normalised copy of the text that every matcher reads (linear in its length)."""
    if text.isascii():
        return _View(text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    specials = _specials()
    for run in specials.run.finditer(text):
        first, last = run.span()
        if first > position and _is_mark(text[first]):
            # A mark composes with the character before it ("e" + U+0301 is "é").
            first -= 1
        pieces.append(text[position:first])
        starts.extend(range(position, first))
        ends.extend(range(position + 1, first + 1))
        if first == run.start() and not specials.others.search(run.group()):
            # Full-width digits, dashes, curly quotes: one character for one, in one call.
            pieces.append(run.group().translate(specials.one_for_one))
            starts.extend(range(first, last))
            ends.extend(range(first + 1, last + 1))
            position = last
            continue
        index = first
        while index < last:
            cluster_end = index + 1
            while cluster_end < last and _is_mark(text[cluster_end]):
                cluster_end += 1
            seen = _seen(text[index:cluster_end])
            pieces.append(seen)
            starts.extend([index] * len(seen))
            ends.extend([cluster_end] * len(seen))
            index = cluster_end
        position = last
    if position == 0:
        view = _View(text)
    else:
        pieces.append(text[position:])
        starts.extend(range(position, len(text)))
        ends.extend(range(position + 1, len(text) + 1))
        view = _View("".join(pieces), starts, ends)
    if re.search(f"[{_CYRILLIC_OR_GREEK}]", view.text) and re.search("[A-Za-z]", view.text):
        # One letter for one: the positions stay.
        mixed = _MIXED_SCRIPT_WORD.sub(lambda word: word.group().translate(_CONFUSABLES), view.text)
        view = _View(mixed, view.starts, view.ends)
    return view


_DOT = r"[.\u3002\uff0e]"
_EMAIL = re.compile(rf"(?<![\w.+-])[\w.+%'-]+[@\uff20][\w-]+(?:{_DOT}[\w-]+)*{_DOT}\w{{2,}}")
# The at sign percent-encoded in a pasted link ("?email=jane%40x.com"). No "%" in the name, and
# none before it, so that "a%40a%40..." is read once, not from every "%40" (quadratic).
_ENCODED_EMAIL = re.compile(r"(?<![\w.+%-])[\w.+'-]+%40[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# Addresses written to dodge a matcher: "john(at)example(dot)com", "john [at] example.com",
# "john {at} example [dot] com", "john.doe at example.com", "john at example dot com".
_AT = r"(?:\s*[(\[{<]\s*(?:at|@)\s*[)\]}>]\s*|\s+at\s+|\s*@\s*)"
_SPELT_DOT = r"(?:\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+|\s+\.\s+)"
# Written with a spaced "@" or " . " ("follow @user . He's"), it is an address only when it
# ends in a common top-level domain.
_COMMON_TLDS = frozenset(
    (
        "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "co", "ai", "app",
        "dev", "me", "uk", "us", "ca", "au", "nz", "de", "fr", "es", "it", "nl", "be", "ch", "at",
        "se", "no", "dk", "fi", "pl", "pt", "ie", "tr", "ru", "ua", "cz", "gr", "hu", "ro", "br",
        "mx", "ar", "cl", "in", "jp", "cn", "kr", "tw", "hk", "sg", "za", "il", "ae", "eu",
    )
)  # fmt: skip
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])(?P<local>[\w.+%'-]+)(?P<at>{_AT})[\w-]+"
    rf"(?:(?:\.|{_SPELT_DOT})[\w-]+)*(?P<dot>\.|{_SPELT_DOT})(?P<tld>[A-Za-z]{{2,24}})(?![\w-])",
    re.IGNORECASE,
)

# Digit groups joined by spaces, tabs, line breaks, dashes, dots, commas, slashes or
# underscores (at most three in a row; the view has made em and en dashes "-", middle dots
# "." and no-break spaces " "). A card is 13 to 19 digits of such a run; a longer run may
# hold several cards side by side ("4111 1111 1111 1111 4242 4242 4242 4242"). A letter
# before it is allowed ("x4111..."): the digits are what matter.
_SEP = "[ \t\r\n_/.,-]"
_DIGIT_RUN = re.compile(rf"\d(?:{_SEP}{{0,3}}\d)*")
_CARD_WORD = re.compile(
    r"(?:card|karte|kart[\u0131i]|tarjeta|carte|cart[ãa]o|carta|kaart|visa|master\s?card|amex|cc|"
    r"union\s?pay|maestro|jcb|"
    r"credit|debit|kredi)s?"
    # "card number", "card no.", "card ending in", "Kartennummer", "tarjeta número".
    r"(?:\s*(?:n?nummer|numbers?|no\.?|nr\.?|num[ée]ro|n[úu]mero|numaras[\u0131i]|\#"
    r"|ending(?:\s+(?:in|with))?|ends?\s+(?:in|with)|details|info))?"
    # "my card number is ...", "the visa was ...".
    r"(?:\s+(?:is|was|were|ist|war|es|est|era))?\W{0,12}[A-Za-z]?$",
    re.IGNORECASE,
)
# A bare run of 15 or 16 digits that passes Luhn and starts like a real card (Visa 4,
# Mastercard 51-55 and 2221-2720, Discover 6011 and 65, JCB 3528-3589 with 16 digits;
# Amex 34 and 37 with 15) is a card without a card word, also with more digits after
# it ("4111111111111111 12/27"): privacy beats keeping an order number whole.
_CARD_PREFIX = re.compile(
    r"(?:4\d{15}|5[1-5]\d{14}|(?:222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)\d{12}"
    r"|6011\d{12}|65\d{14}|35(?:2[89]|[3-8]\d)\d{12}|3[47]\d{13})"
)
# Card groupings: 4-4-4-4(-1..3), Amex 4-6-5, Diners 4-6-4.
_CARD_GROUPS = re.compile(r"4,4,4,[1-7](?:,[1-3])?|4,6,[45]")
# Country code, two check digits, then alphanumerics, optionally in groups separated by a
# space, dash, dot or line break; "iban" glued in front is allowed. The valid prefix is looked for.
_IBAN = re.compile(
    r"(?:(?<=iban)|(?<![A-Za-z0-9]))[A-Z]{2} ?\d{2}(?:[ .\u00a0\r\n-]{0,2}[A-Z0-9]){10,32}",
    re.IGNORECASE,
)

# Dates and times are kept whole, so no phone or card matcher reads "15.03.2024 14:30" as one.
_DATE_TIME = re.compile(
    r"(?<!\d)(?:"
    r"(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|(?:0?[1-9]|[12]\d|3[01])([-/. ])(?:0?[1-9]|1[0-2])\1(?:19|20)\d{2}"
    r"|(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d{2}"
    r"|\d{1,2}:\d{2}(?::\d{2})?"
    r"|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r")(?!\d)"
)

# A date after a word naming a birth date ("DOB: 04/12/1988", "born on 4 December 1988",
# "Geburtsdatum 04.12.1988"): personal data, where any other date is a detail of the ticket.
_BIRTH_WORD = (
    r"(?:\bd\.?o\.?b\b\.?|date\s+of\s+birth|birth\s*date|birthday|\bborn|geburtsdatum"
    r"|geburtstag|\bgeboren|\bgeb\.|fecha\s+de\s+nacimiento|\bnacid[oa]|date\s+de\s+naissance"
    r"|\bn[ée]e?\s+le|data\s+di\s+nascita|\bnat[oa]\s+il|data\s+de\s+nascimento"
    r"|\bnascid[oa]|do[gğ]um\s+tarihi|geboortedatum)"
)
_BIRTH_DATE = re.compile(
    _BIRTH_WORD + r"\W{0,4}(?:(?:is|was|on|the|in|am|le|el|il|em|:)\W{1,4}){0,3}(?P<date>"
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{2,4}|\d{8}"
    r"|\d{1,2}(?:st|nd|rd|th|\.)?(?:\s+(?:of|de))?\s+[^\W\d_]{3,12}\.?,?(?:\s+de)?\s+(?:19|20)\d{2}"
    r"|[^\W\d_]{3,12}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{2})(?!\d)",
    re.IGNORECASE,
)
_BIRTH_STEMS = (
    "birth", "dob", "d.o.b", "born", "geb", "naci", "naiss", "nasc", "nato", "nata", "né",
    "nee", "doğum", "dogum", "geboorte",
)  # fmt: skip

# Server addresses are support data, and no phone.
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")

# Prefixes HMRC never gives a National Insurance number.
_NOT_NINO_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
# Formatted national ids: the shape is distinctive, the checksum decides.
_FORMATTED_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    # A US SSN grouped 3-2-4 by one kind of separator ("536-90-4399", "536 90 4399",
    # "536.90.4399").
    (
        re.compile(r"(?<![\w.-])(?<!\d )\d{3}([ .-])\d{2}\1\d{4}(?![\w-]|[ .]\d)"),
        lambda value: bool(ssn.is_valid(re.sub(r"\D", "", value))),
    ),
    # An Indian Aadhaar number grouped 4-4-4 (Verhoeff-checked; never a card's first groups).
    (
        re.compile(r"(?<![\w.-])(?<!\d )[2-9]\d{3}([ -])\d{4}\1\d{4}(?![\w-]|[ .]\d)"),
        lambda value: bool(aadhaar.is_valid(re.sub(r"\D", "", value))),
    ),
    # A French NIR grouped as on the carte Vitale ("2 95 10 99 126 111 93").
    (
        re.compile(
            r"(?<![\w.-])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}"
            r"(?![\w-]|[ .]\d)",
            re.IGNORECASE,
        ),
        lambda value: " " in value and bool(nir.is_valid(value.replace(" ", ""))),
    ),
    (re.compile(r"(?<![\w.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w])"), cpf.is_valid),
    # An Indian PAN ("AFZPK7190K": its fourth letter names the holder's kind, which stdnum checks).
    (re.compile(r"(?<![\w])[A-Z]{5}\d{4}[A-Z](?![\w])"), pan.is_valid),
    (re.compile(r"(?<![\w])\d{8}-?[A-Z](?![\w])", re.IGNORECASE), dni.is_valid),
    (
        re.compile(r"(?<![\w.])\d{1,2}\.\d{3}\.\d{3}-?[A-Z](?![\w])", re.IGNORECASE),
        lambda value: bool(dni.is_valid(value.replace(".", "").zfill(10))),
    ),
    (re.compile(r"(?<![\w])[XYZ]-?\d{7}-?[A-Z](?![\w])", re.IGNORECASE), nie.is_valid),
    (
        re.compile(r"(?<![\w])[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z](?![\w])", re.IGNORECASE),
        codicefiscale.is_valid,
    ),
    # A UK National Insurance number ("QQ 12 34 56 C", QQ being the usual example): python-stdnum
    # has no check for it; its shape (two capitals, six digits, A-D) is distinctive enough. In
    # small letters only after a word naming it (_NAMED_NINO).
    (
        re.compile(r"(?<![\w])[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])"),
        lambda value: value[:2] not in _NOT_NINO_PREFIXES,
    ),
)
# A UK bank account: the sort code after its name, and the 8-digit account number near it.
_SORT_CODE = re.compile(
    r"\bsort ?code[^\w\n]{0,4}(?:is\s+|:\s*)?(\d{2}[- ]?\d{2}[- ]?\d{2})(?!\d)"
    r"(?:[^\d\n]{0,30}?(?<!\d)(\d{8})(?!\d))?",
    re.IGNORECASE,
)
_NAMED_NINO = re.compile(
    r"\b(?:ni|nino|national insurance)(?:\s+(?:number|no\.?))?[^\w\n]{0,4}(?:is\s+)?"
    r"([a-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[a-d])(?![\w])",
    re.IGNORECASE,
)
# Digit runs (spaced, dashed or bare) that are ids only when a word naming them comes shortly
# before.
_ID_WORDS = (
    r"ssn|social security|t\.?c\.?(?: kimlik)?|kimlik|tckn"
    r"|steuer-?id|steuer-?identifikationsnummer|steueridentifikationsnummer|idnr"
    r"|identifikationsnummer|aadhaa?r|bsn|burgerservicenummer|nir"
    r"|num[ée]ro de s[ée]curit[ée] sociale|national id|id number|identity number"
    r"|personal number|personnummer|personnr|pesel|sin|cpf|nhs|dni|nie"
)
_NAMED_ID = re.compile(
    rf"\b(?:{_ID_WORDS})\b"
    r"(?:\s+(?:number|no\.?|nr\.?|numaras[\u0131i]|numaram|nummer|num[ée]ro|n[úu]mero))?"
    r"[^\w\n]{0,12}(?:(?:is|ist|est|es|é|è|lautet|är|er|jest)\s+|:\s*)?"
    r"(\d(?:[ .\u00a0\u2013-]?\d){7,19})(?![\w])",
    re.IGNORECASE,
)
# After a word naming a US SSN, nine digits in its shape are one even when python-stdnum calls
# the number invalid ("078-05-1120", the famous blocked number, is still an id's shape).
_NAMED_SSN = re.compile(
    r"\b(?:ssn|ss#|social security|social-security|soc\.? sec\.?|social)"
    r"(?:\s+(?:number|no\.?|nr\.?|\#))?[^\w\n]{0,12}(?:(?:is|was)\s+|:\s*)?"
    r"(?<!\d)(\d{3}([ .\u00a0-]?)\d{2}\2\d{4})(?![\w]|[.-]\d)",
    re.IGNORECASE,
)
_BARE_ID_CHECKS: tuple[Callable[[str], bool], ...] = (
    tckimlik.is_valid,
    idnr.is_valid,
    nir.is_valid,
    aadhaar.is_valid,
    bsn.is_valid,
    ssn.is_valid,
    pesel.is_valid,
    personnummer.is_valid,
    cpf.is_valid,
    nhs.is_valid,
    sin.is_valid,
)
# Documents without a public checksum: the alphanumeric value after the word, if it has a digit.
_NAMED_DOCUMENT = re.compile(
    r"\b(?:passport|passeport|reisepass|pasaporte|passaporto|pasaport"
    r"|driver'?s licen[cs]e|driving licen[cs]e|f[üu]hrerschein|permis de conduire"
    r"|personalausweis(?:nummer)?|ausweisnummer|ausweis)"
    r"(?:\s+(?:number|no\.?|nr\.?|nummer|num[ée]ro))?[^\w\n]{0,4}(?:is\s+|ist\s+|:\s*)?"
    r"([A-Z0-9]{6,12})(?![\w])",
    re.IGNORECASE,
)

# Other vendors' tokens, each by its own prefix and length (one alternation: one scan): Telegram
# and Discord bots, a Discord webhook, Square, Linear, Notion, Atlassian, Bitbucket, Postman,
# New Relic, Figma, Grafana, Vault, Doppler, Pulumi, Databricks, Supabase, Airtable, Groq, xAI,
# Replicate, Braintree, Google OAuth, Razorpay.
_VENDOR_TOKENS = re.compile(
    # A Telegram token also right after "bot" in its API URL (api.telegram.org/bot<token>/).
    r"(?:(?<![A-Za-z0-9_-])|(?<=/bot))(?:"
    r"\d{5,16}:A[A-Za-z0-9_-]{32,34}"
    r"|https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{20,}"
    r"|[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}"
    r"|sq0(?:atp|csp|idp)-[A-Za-z0-9_-]{22,}"
    r"|lin_(?:api|oauth)_[A-Za-z0-9]{40}"
    r"|(?:secret|ntn)_[A-Za-z0-9]{43}"
    r"|ATATT3[A-Za-z0-9_=-]{30,}"
    r"|ATBB[A-Za-z0-9]{28,}"
    r"|PMAK-[a-f0-9]{24}-[a-f0-9]{34}"
    r"|NR(?:AK|AA|II|JS)-[A-Z0-9]{20,}"
    r"|fig[dhu]_[A-Za-z0-9_-]{30,}"
    r"|gl(?:sa|c)_[A-Za-z0-9_+/=-]{32,}"
    r"|hv[sbr]\.[A-Za-z0-9_-]{24,}"
    # Doppler's service tokens may name their config: dp.st.prd.<40 or more>.
    r"|dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,}"
    r"|pul-[a-f0-9]{40}"
    r"|dapi[a-f0-9]{32}(?:-\d)?"
    r"|sbp_[a-f0-9]{40}"
    r"|pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"
    r"|gsk_[A-Za-z0-9]{40,}"
    r"|xai-[A-Za-z0-9]{70,}"
    r"|r8_[A-Za-z0-9]{30,}"
    r"|access_token\$production\$[a-z0-9]{16}\$[a-f0-9]{32}"
    r"|ya29\.[A-Za-z0-9_-]{30,}"
    r"|GOCSPX-[A-Za-z0-9_-]{24,}"
    r"|rzp_(?:live|test)_[A-Za-z0-9]{14,}"
    r")(?![A-Za-z0-9_-])"
)

# A part of a JWT (base64url), which line breaks may cut: a few, so that a text of many
# short "eyJ..." lines is read in linear time.
_JWT_PART = r"[A-Za-z0-9_-]{5,}(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9_-]+){0,12}"
# Shapes detect-secrets 1.5 does not know yet, or finds only the start of (a private key's
# first line, a JWT's first two parts): these whole spans are claimed first.
_EXTRA_SECRETS = (
    re.compile(
        r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END[A-Z ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.DOTALL,
    ),
    # A JWT pasted with spaces around its dots, or wrapped onto lines by a mail client
    # (detect-secrets reads only an unbroken one): a part may go on after a line break.
    re.compile(rf"\beyJ{_JWT_PART}\s*\.\s*{_JWT_PART}\s*\.\s*[A-Za-z0-9_-]{{8,}}"),
    # A DER key or certificate in base64 without its armour lines.
    re.compile(r"\bMII[A-Za-z0-9+/]{60,}={0,2}"),
    re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]+"),
    re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]+\b", re.IGNORECASE),
    re.compile(r"\bxox[a-z]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),
    re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{40,}"),
    re.compile(r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b"),
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    re.compile(r"\bdo[por]_v1_[a-f0-9]{64}\b"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    # Mailgun's, as its documentation shows one: letters beyond hex, at least one digit.
    re.compile(r"\bkey-(?=[a-z]*[0-9])[a-z0-9]{32}\b"),
    _VENDOR_TOKENS,
    re.compile(r"\bSK[0-9a-f]{32}\b"),
    re.compile(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9]{24,}"),
    re.compile(r"(?<=AccountKey=)[A-Za-z0-9+/=]{20,}"),
    # An Azure shared access signature in a URL: the signature grants access on its own.
    re.compile(r"(?<=[?&]sig=)[A-Za-z0-9%+/=]{16,}"),
    # Authorization headers: the credential after the scheme, in any case ("bearer ..."), if
    # it has a digit, a sign or a capital inside ("Bearer authentication" is prose).
    re.compile(
        r"\b(?:[Bb]earer|BEARER|[Bb]asic|BASIC)[ \t]+"
        r"(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=]|.[A-Za-z0-9._~+/=-]*[A-Z])([A-Za-z0-9._~+/=-]{8,})"
    ),
    re.compile(
        r"(?i:\bauthorization)[\\\"']*[ \t]*[:=][ \t]*[\\\"']*(?:[A-Za-z]+[ \t]+)?"
        r"(?=[^\s\"'\\]*\d)([^\s\"'\\,;]{8,})"
    ),
    # user:password@ in a URL (or :password@, as Redis has it): the password.
    re.compile(r"://[^\s:/@]*:([^\s@/]+)@"),
    # user:@ (an empty password: the user is an API key, as curl and Stripe take one), and a
    # token alone before the @ (eight or more characters with a digit; "git@" is a user).
    re.compile(r"://([^\s:/@]+):@"),
    re.compile(r"://(?=[^\s:/@]*\d)([^\s:/@]{8,})@"),
)
# An AWS secret access key (40 characters of base64 with capitals, small letters and digits)
# in a text that names AWS or holds an access key id.
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
    r"(?=[A-Za-z0-9/+]{0,39}\d)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
_AWS_CONTEXT = re.compile(r"aws|amazon|\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", re.IGNORECASE)
# "password: hunter2", "my API key is abc...", "Passwort ist ..." : the value after the word.
_CREDENTIAL_WORDS = (
    r"passwords?|pass ?phrases?|p[a@4]ssw[o0]rd|pass word|p/w|pword|passwort|passwd|pwd|passcode"
    # PostgreSQL's environment variable, pasted in a shell line ("PGPASSWORD=... psql").
    r"|pgpassword"
    r"|contrase[ñn]a|mot de passe|senha|parola|[şs]ifre(?:m|niz|n)?"
    r"|kennwort|wachtwoord|has[łl]o|пароль|密码|密碼|パスワード|暗証番号|parolă|heslo|lösenord"
    r"|adgangskode|passord|salasana|jelszó|κωδικός|סיסמה|كلمة المرور"
    r"|(?:secret|security) (?:answer|question answer)|memorable (?:word|information)"
    r"|api[ _-]?key|apikey|api[ _-]?token|access[ _-]?key|secret(?:[ _-]?key)?|tokens?"
    r"|private[ _-]?key|client[ _-]?secret|recovery codes?|backup codes?"
    r"|auth[ _-]?token|access[ _-]?token"
    r"|(?:the|our|my|your|this|that) key|heroku[ _-]?(?:api[ _-]?)?key"
)
# Short words that are a password field's name only with an explicit ":" or "=".
_WEAK_CREDENTIAL_WORDS = r"pw|pass|credentials?"
# After the word, an identifier may run on only with parts that still name a secret
# ("aws_secret_access_key", "API_KEY"), not "access_token_expires_in" or "password_reset".
_SUFFIX = r"(?:[_-](?:key|keys|secret|token|access|value|string|b64|base64|id|pass|password))*"
# "is" in the languages of _CREDENTIAL_WORDS ("hasło to", "heslo je", "lösenord är", "пароль это").
_CONNECTOR = (
    r"(?:(?:is|ist|est|es|é|è|este|lautet|was|are|sont|jest|to|je|är|er|on|это|είναι|هي|היא)"
    r"(?![^\W\d_])|->|=>|[:\uff1a=-])"
)
# Connectors that are English words too: a value after them needs a digit or a symbol.
_WEAK_CONNECTORS = frozenset({"to", "on", "er", "je"})
_SECRET_VALUE = re.compile(
    rf"(?<![A-Za-z0-9])(?:(?P<word>{_CREDENTIAL_WORDS}){_SUFFIX}|(?P<weak>{_WEAK_CREDENTIAL_WORDS}))"
    r"(?![\w])(?:'s(?![\w])|[\"'`])?"
    rf"(?P<sep>[ \t]*(?:{_CONNECTOR}[ \t]*(?:[:\uff1a][ \t]*)?)?\n?[ \t]*)"
    # Not another keyword with its own value ("German password: Passwort: Geheim123!"). A
    # contraction stays one word ("doesn't"), so it is read as the word it is.
    rf"(?!(?:{_CREDENTIAL_WORDS}){_SUFFIX}[ \t]*[:\uff1a=])"
    # An "&" is part of it unless a query parameter follows ("?api_key=...&page=2").
    r"(?P<value>\"[^\"\n]{1,80}\"|'[^'\n]{1,80}'|`[^`\n]{1,80}`"
    r"|(?:[^\s\"'`,;&]|&(?![\w.-]*=)){3,}(?:'[^\W\d_]+)*)",
    re.IGNORECASE,
)
# "my passphrase is correct horse battery staple", "passphrase: ...": the words after it up to
# the end of the clause (punctuation or a line break), at most eight, unless they read as a
# sentence about it ("passphrase is not accepted").
_PASSPHRASE = re.compile(
    r"(?<![A-Za-z0-9])(?:pass[ _-]?phrase|phrase secr[èe]te|frase de contrase[ñn]a"
    r"|parola d'ordine|wachtzin|(?:seed|recovery|mnemonic) phrase)s?"
    r"(?:[ \t]+(?:is|was|ist|est|es|è|é|lautet|would be|will be)[ \t]*:?|[ \t]*[:=\uff1a])"
    r"[ \t]*(?P<value>[^\s.,;!?\"'`]+(?:[ \t]+[^\s.,;!?\"'`]+){0,7})",
    re.IGNORECASE,
)
# Chinese, Japanese and Korean: the keyword runs into its particle ("密码是abc12345",
# "パスワードはabc12345です", "비밀번호는 abc12345"); the password is the ASCII run after it.
_CJK_SECRET = re.compile(
    r"(?:密码|密碼|口令|パスワード|暗証番号|비밀번호|암호)"
    r"(?:[ \t]*(?:是|为|為|改为|改成|设为|設為|变成|は|が|を|も|는|은|이|가|[:=]))*[ \t]*[「『\"']?"
    r"(?P<value>[!-~]{3,})"
)
# "the password for the portal is Tr0ub4dor&3", "my password is now Summer2024!", "password
# reset to Winter2025": the value after a phrase _SECRET_VALUE does not read (a "for ..." part,
# "now"/"still", "reset/changed/set to"). Taken only with a digit or a symbol in it, so "the
# password for the portal is wrong" keeps its last word.
_SECRET_PHRASED = re.compile(
    rf"(?<![A-Za-z0-9])(?:{_CREDENTIAL_WORDS})"
    r"(?:\s+(?:for|of|on)\s+(?:(?:the|my|our|your|an?)\s+)?\S{1,40}?(?:\s+[A-Za-z]{2,12})?)?"
    r"\s+(?:(?:is|was|has been)\s+)?(?:(?:now|still|currently)\s+|(?:reset|changed|set|updated)"
    r"\s+to\s+|(?<=is )|(?<=was ))"
    r"(?P<value>[^\s\"'`,;]{3,})",
    re.IGNORECASE,
)
# A one-time code or PIN: "482913", "123 456", "1234-5678", "4 8 2 9 1 3" (never a letter or a
# digit right after it: "1234abc" is something else).
_CODE_DIGITS = (
    r"(?P<code>\d{3}[ -]\d{3}|\d{4}[ -]\d{4}|\d{2}(?:[ -]\d{2}){2,3}|\d(?: \d){3,9}|\d{3,10})"
    r"(?![0-9A-Za-z_])"
)
# "PIN: 1234", "OTP 482913", "my 2FA code: 123 456", "verification code 5521", "验证码是482913":
# words that always name a code, in several languages; any digits after them are one.
_CODE_VALUE = re.compile(
    r"(?<![A-Za-z0-9-])(?:pin(?:[ -]?code| number)?|otp"
    r"|one[- ]time (?:code|password|passcode|pin)|[2m]fa(?: code)?"
    r"|two[- ]factor(?: authentication)?(?: code)?|2[- ]step(?: verification)? code"
    r"|verification code|security code|auth(?:entication|enticator)? code|login code"
    r"|sign[- ]in code|sms code|access code|passcode|confirmation code|cvv2?|cvc2?|csc"
    r"|doğrulama kodu|onay kodu|bestätigungscode|sicherheitscode|verifizierungscode|einmalcode"
    r"|code de vérification|code de confirmation|code de sécurité|código de verificación"
    r"|código de seguridad|código de verificação|código de confirmação|codice di verifica"
    r"|код подтверждения|验证码|驗證碼|校验码|认证码|認証コード|確認コード"
    r"|ワンタイムパスワード|인증번호|인증 코드)"
    # "OTP code 482913", "PIN number: 1234", "OTP kodu 482913".
    r"(?:[ \t]+(?:codes?|kodu|kod|number|no\.?|nr\.?|pin))?"
    # "the PIN for my card is 4821", "the verification code for our account: 482913".
    r"(?:[ \t]+(?:for|to)[ \t]+(?:my|our|the|your)[ \t]+[^\W\d_]{2,15})?"
    r"(?![A-Za-z])[^\w\n]{0,4}"
    r"(?:(?:is|was|lautet|ist|est|es|é|è|是|为|為|は|が|는|은)(?![A-Za-z])[^\w\n]{0,3})?"
    + _CODE_DIGITS,
    re.IGNORECASE,
)
# "the code is 482913", "Code: 482913", "use code 482913", "votre code est 482913": "code" alone
# names a one-time code only with "is" or a colon after it (or "use"/"enter"/"your" before
# it), four to eight digits, and no word before it that makes it another code ("error code:
# 5003", "zip code is 90210", "the code 404 page").
_BARE_CODE = re.compile(
    r"(?<![A-Za-z0-9-])(?:(?P<before>[^\W\d_]+)[ \t]+)?"
    r"(?:code|codes|código|codice|kod|kodu|kodum|код)"
    r"(?P<connector>[ \t]+(?:is|was|lautet|ist|est|es|é|è|это)(?![^\W\d_])[ \t]*:?|[ \t]*[:=])?"
    r"[ \t]*(?P<code>\d{3}[ -]\d{3}|\d{2}(?: \d{2}){2,3}|\d(?: \d){3,9}|\d{4,8})"
    r"(?![\w/]|[.,:-]\d)",
    re.IGNORECASE,
)
# Words before "code" that make it no one-time code.
_OTHER_CODES = frozenset(
    (
        "error", "status", "http", "exit", "return", "response", "result", "reason", "fault",
        "event", "exception", "promo", "promotional", "discount", "coupon", "voucher", "referral",
        "gift", "zip", "postal", "post", "area", "country", "dial", "region", "source", "product",
        "item", "sku", "article", "bank", "sort", "swift", "bic", "tax", "vat", "hs", "qr", "bar",
        "tracking", "reference", "ref", "order", "invoice", "ticket", "case", "customer", "client",
        "course", "class", "colour", "color", "style", "model", "part", "program", "function",
        "fehler", "statuscode", "erreur", "código",
    )
)  # fmt: skip
# Words before "code" that say it is the customer's code even without "is" after it.
_CODE_OWNERS = frozenset(
    (
        "use", "enter", "type", "input", "your", "my", "ihr", "dein", "votre", "ton", "tu", "su",
        "seu",
    )
)  # fmt: skip
# "482913 is your verification code", "G-482913 is your Google code": the code said first.
_CODE_FIRST = re.compile(
    r"(?<![\w.,:/-])(?:[A-Z]-)?(?P<code>\d{3}[ -]\d{3}|\d{4,8})[ \t]+(?:is|est|ist|es|é|è)[ \t]+"
    r"(?:your|my|the|votre|ton|ihr|dein|tu|su|seu)[ \t]+(?P<words>(?:[^\W\d_]+[ \t]+){0,3}?)"
    r"(?:code|otp|pin|passcode|password|código|codice|kod|код)(?![^\W\d_])",
    re.IGNORECASE,
)
# "credentials admin:hunter2", "login: admin / hunter2": the part after the user name.
_USER_PASSWORD = re.compile(
    r"\b(?:credentials?|creds|login|user(?:name)?)\b[:\s]+[\w.@+-]+\s*(?::|/|\s+pass(?:word)?\s+)"
    r"\s*([^\s\"'`,;]{3,})",
    re.IGNORECASE,
)
# First words of a sentence about a password after "password:" ("password: doesn't work since").
_SENTENCE_STARTS = frozenset(
    {
        "is", "was", "not", "doesn't", "does", "isn't", "won't", "can't", "cannot", "reset",
        "expired", "wrong", "incorrect", "invalid", "too", "has", "have", "keeps", "still", "i",
        "we", "it", "the", "my", "our", "please", "how", "what", "why", "when", "where",
    }
)  # fmt: skip
# Words of a sentence, not of a password: negations, function words, and the verbs and adverbs
# said of a password, in the languages of _CREDENTIAL_WORDS. "password: doesn't work",
# "password: always fails after the update", "Passwort: funktioniert nicht" are sentences; a
# passphrase ("correct horse battery staple") has none of them.
_PROSE_WORDS = frozenset(
    (
        "not", "no", "never", "none", "nothing", "nobody", "cannot", "dont", "doesnt", "didnt",
        "isnt", "wasnt", "wont", "cant", "couldnt", "shouldnt", "wouldnt", "arent", "werent",
        "hasnt", "havent", "always", "sometimes", "suddenly", "randomly", "constantly", "often",
        "just", "only", "already", "again", "also", "still", "now", "anymore", "even", "ever",
        "yet", "keeps", "kept", "keep", "work", "works", "worked", "working", "fail", "fails",
        "failed", "failing", "broke", "broken", "breaks", "expire", "expired", "expires",
        "expiring", "reject", "rejected", "rejects", "accept", "accepted", "accepts", "change",
        "changed", "changes", "reset", "resets", "stop", "stops", "stopped", "lost", "forgot",
        "forgotten", "locked", "blocked", "missing", "incorrect", "invalid", "wrong", "help",
        "please", "thanks", "thank", "hi", "hello", "hey", "sorry", "the", "a", "an", "is", "are",
        "was", "were", "be", "been", "being", "has", "have", "had", "do", "does", "did", "will",
        "would", "should", "could", "can", "may", "might", "must", "shall", "to", "of", "in", "on",
        "at", "for", "with", "by", "from", "after", "before", "since", "until", "when", "while",
        "because", "but", "and", "or", "so", "if", "then", "than", "that", "this", "these",
        "those", "it", "its", "i", "me", "my", "we", "us", "our", "you", "your", "he", "she",
        "they", "them", "their", "there", "here", "what", "why", "how", "where", "who", "which",
        "get", "gets", "getting", "got", "seems", "seem", "same", "new", "old", "any", "some",
        "all", "every", "each", "too", "very", "more", "less", "field", "box", "page", "screen",
        "link", "email", "login", "account", "update", "updated", "nicht", "kein", "keine",
        "keinen", "nie", "niemals", "funktioniert", "geht", "klappt", "falsch", "abgelaufen",
        "vergessen", "ist", "sind", "war", "wird", "der", "die", "das", "den", "dem", "und",
        "oder", "aber", "mit", "bei", "nach", "seit", "immer", "noch", "mehr", "bitte", "ich",
        "wir", "es", "mein", "meine", "unser", "ne", "pas", "plus", "jamais", "rien", "marche",
        "fonctionne", "oublié", "expiré", "est", "sont", "le", "la", "les", "et", "ou", "mais",
        "avec", "depuis", "toujours", "encore", "je", "nous", "il", "mon", "ma", "notre", "merci",
        "svp", "nunca", "nada", "funciona", "sirve", "olvidé", "caducada", "caducado", "expirada",
        "incorrecta", "está", "son", "el", "los", "las", "y", "o", "pero", "con", "desde",
        "siempre", "todavía", "aún", "yo", "mi", "gracias", "não", "funcionando", "esqueci", "é",
        "os", "as", "mas", "com", "sempre", "ainda", "eu", "meu", "minha", "obrigado", "non",
        "funziona", "scaduta", "scaduto", "è", "lo", "gli", "e", "ancora", "io", "mio", "grazie",
        "niet", "geen", "werkt", "vergeten", "verlopen", "het", "en", "maar", "altijd", "nog",
        "değil", "yok", "çal\u0131şm\u0131yor", "olmuyor", "hatal\u0131", "yanl\u0131ş", "unuttum",
        "ve", "ama", "bir",
    )
)  # fmt: skip
_CONTRACTION = re.compile(r"[^\W\d_]+'(?:t|s|re|ll|ve|m|d)", re.IGNORECASE)


def _is_prose(word: str) -> bool:
    """Whether a word reads as part of a sentence ("doesn't", "always", "nicht")."""
    lowered = word.lower().strip(".,;:!?()")
    return lowered in _PROSE_WORDS or bool(_CONTRACTION.fullmatch(lowered))


# Words that follow "password" in ordinary sentences and are no password.
_NOT_A_SECRET = frozenset(
    {
        "[password]",
        "[redacted]",
        "[secret]",
        "abgelaufen",
        "accepted",
        "after",
        "again",
        "also",
        "and",
        "anymore",
        "balance",
        "because",
        "before",
        "being",
        "blank",
        "button",
        "change",
        "changed",
        "correct",
        "count",
        "didn't",
        "does",
        "doesn't",
        "email",
        "empty",
        "endpoint",
        "every",
        "expire",
        "expired",
        "expires",
        "expiring",
        "expirou",
        "expiry",
        "falsch",
        "false",
        "field",
        "fine",
        "flow",
        "for",
        "forgot",
        "forgotten",
        "form",
        "from",
        "had",
        "has",
        "have",
        "help",
        "here",
        "hidden",
        "incorrect",
        "invalid",
        "isn't",
        "itself",
        "keeps",
        "length",
        "limit",
        "link",
        "login",
        "lost",
        "manager",
        "masked",
        "missing",
        "needed",
        "never",
        "nil",
        "no",
        "none",
        "not",
        "now",
        "null",
        "ok",
        "okay",
        "olvidada",
        "olvidé",
        "oublié",
        "our",
        "page",
        "please",
        "policy",
        "redacted",
        "refresh",
        "rejected",
        "request",
        "requests",
        "required",
        "reset",
        "resets",
        "right",
        "rotation",
        "rules",
        "same",
        "screen",
        "sent",
        "set",
        "shown",
        "still",
        "stopped",
        "that",
        "the",
        "their",
        "there",
        "this",
        "too",
        "true",
        "undefined",
        "unknown",
        "unset",
        "unuttum",
        "update",
        "updated",
        "valid",
        "vergessen",
        "was",
        "wasn't",
        "were",
        "when",
        "with",
        "won't",
        "work",
        "working",
        "works",
        "wrong",
        "yes",
        "your",
    }
)


def _detect_secrets_patterns() -> tuple[re.Pattern[str], ...]:
    patterns: list[re.Pattern[str]] = []
    # detect-secrets types its plugin mapping loosely (an abstract base): Any, then checked.
    detectors: dict[str, Any] = get_mapping_from_secret_type_to_class()
    for detector in detectors.values():
        # Public IPs are support data (which server fails), not a secret of the customer's.
        if detector.__name__ == "IPPublicDetector":
            continue
        instance = detector()
        if isinstance(instance, RegexBasedDetector):
            patterns.extend(instance.denylist)
    return tuple(patterns)


def _has_top_level_alternation(source: str) -> bool:
    depth = 0
    escaped = False
    for char in source:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


def _literal_prefix(pattern: re.Pattern[str]) -> str:
    """The literal text every match of a pattern starts with ("BEGIN RSA", "SG."), or ""."""
    source = pattern.pattern
    if pattern.flags & re.IGNORECASE or _has_top_level_alternation(source):
        return ""
    prefix = re.match(r"(?:[A-Za-z0-9 _=:-]|\\[./])*", source)
    literal = prefix.group() if prefix else ""
    if source[len(literal) : len(literal) + 1] in ("?", "*", "{"):
        # "https?": the last character is optional.
        literal = literal[:-2] if literal.endswith(("\\.", "\\/")) else literal[:-1]
    literal = literal.replace("\\", "")
    return literal if len(literal) >= 2 else ""


# Each detector with the literal its matches start with: a text without it skips the scan, so
# the 45 detectors cost little on ordinary messages.
_DETECT_SECRETS_PATTERNS = tuple(
    (pattern, _literal_prefix(pattern)) for pattern in _detect_secrets_patterns()
)
# Detectors that look for a secret next to a word such as "key", "token" or "pass" only.
_CONTEXT_WORDS = ("key", "pw", "pass", "token", "secret", "api")
_PLACEHOLDER_START = ("<", "$", "{", "*", "%", "[", "(")


def _secret_value_span(match: re.Match[str], text: str) -> tuple[int, int] | None:
    """The span of the value after "password" etc., or None when the sentence just goes on."""
    value = match.group("value")
    start, end = match.span("value")
    sep = match.group("sep")
    # "password123", "password_reset_requested": no separator at all, the word runs on.
    # A quote closing the key ('"password": ...') is as explicit as a colon.
    quoted_key = text[match.start("sep") - 1] in "\"'`"
    explicit = any(char in sep for char in ":=\uff1a-") or quoted_key
    connector = bool(re.search(r"[A-Za-zé]", sep))
    if not sep and not explicit:
        return None
    if value[0] in "\"'`":
        # A quoted value is the password, spaces and all.
        return (start + 1, end - 1) if len(value) > 2 else None
    if (":" in sep or "\uff1a" in sep) and not match.group("weak"):
        # "password: correct horse battery staple": after a colon, a clause of three to six
        # plain words is a passphrase whole, unless it reads as a sentence about the password.
        clause = text[start:].split("\n", 1)[0]
        clause = re.split(r"[.!?;,]", clause, maxsplit=1)[0].rstrip()
        words = clause.split()
        if (
            3 <= len(words) <= 6
            and words[0].lower() not in _SENTENCE_STARTS
            and not any(map(_is_prose, words))
        ):
            return start, start + len(clause)
    bare = value
    letters_only = bool(re.fullmatch(r"[^\W\d_]+(?:'[^\W\d_]+)*[.!?]?", bare))
    if (
        len(bare) < 3
        or bare.lower().rstrip(".!?") in _NOT_A_SECRET
        or bare.startswith(_PLACEHOLDER_START)
        or not any(char.isalnum() for char in bare)
        or (letters_only and _is_prose(bare))
    ):
        # "password: doesn't work", "password: always fails": a sentence, not a password.
        return None
    connector_word = re.search(r"[^\W\d_]+", sep)
    if letters_only and connector_word and connector_word.group().lower() in _WEAK_CONNECTORS:
        # "the password to access": "to" says "is" only in Polish, before a value with digits.
        return None
    if (
        match.group("weak")
        and not explicit
        and not (
            # "my pw is S3cr3t#Pass": "pw"/"pass" then "is" and a value with a digit and a letter.
            connector_word
            and connector_word.group().lower() in ("is", "was", "ist", "est", "es")
            and len(bare) >= 6
            and re.search(r"\d", bare)
            and re.search(r"[^\W\d_]", bare)
        )
    ):
        return None
    if re.search(r"\s=|=\s", sep):
        # "password = P@ss w0rd": a config line's value runs to the end of the line (but
        # "?api_key=...&page=2" ends at the "&").
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        end = start + len(text[start:line_end].rstrip().rstrip(".;,"))
        return start, end
    if explicit:
        return start, end
    has_letter = any(char.isalpha() for char in bare)
    has_digit = any(char.isdigit() for char in bare)
    if has_digit and not has_letter:
        # "password 12345678", "password is 12345678"; "password length 12" never gets here.
        return (start, end) if len(bare) >= 4 else None
    word = bare.rstrip(".!?:)")
    if has_letter and not has_digit and word.isalpha():
        # "my password is correcthorsebatterystaple", but "password is too short" or "weak
        # password policies.": a word of letters only is the password when a connector ("is")
        # comes before it and it ends the clause.
        rest = text[end : end + 2]
        ends_clause = (
            word != bare
            or not rest
            or rest[0] in "\n.!?,;)"
            or rest.startswith((" (", " -", " \u2013"))
        )
        return (start, end) if connector and ends_clause else None
    return start, end


def luhn_valid(digits: str) -> bool:
    """True when a digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """True when a string is a valid IBAN (country length and mod-97), in either case."""
    return bool(stdnum_iban.is_valid(candidate.upper()))


@dataclass(frozen=True)
class Redaction:
    """Redacted text and how many of each kind of personal data were taken out."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        """True when anything was redacted."""
        return bool(self.counts)


class _Spans:
    """Spans of the text to replace, first claim wins where two overlap.

    The spans never overlap, so sorted by start their ends are sorted too: an overlap test is
    one bisect and a look at the two neighbours, whatever the number of spans.
    """

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._spans: list[tuple[int, int, str]] = []

    def free(self, start: int, end: int) -> bool:
        index = bisect_left(self._starts, start)
        if index < len(self._spans) and self._spans[index][0] < end:
            return False
        return not (index > 0 and self._spans[index - 1][1] > start)

    def claim(self, start: int, end: int, kind: str) -> bool:
        """Claim a span unless it overlaps one claimed before; kind "" keeps the text as it is."""
        if start >= end or not self.free(start, end):
            return False
        index = bisect_left(self._starts, start)
        self._starts.insert(index, start)
        self._spans.insert(index, (start, end, kind))
        return True

    def apply(self, text: str, view: _View) -> Redaction:
        """The original text with each claimed span of the view replaced by its placeholder."""
        counts: Counter[str] = Counter()
        pieces: list[str] = []
        position = 0
        for view_start, view_end, kind in self._spans:
            if not kind:
                continue
            start, end = view.original(view_start, view_end)
            # Two view characters made from one original character ("½") may end one span and
            # start the next: the second starts where the first ended.
            start = max(start, position)
            pieces.append(text[position:start])
            pieces.append(f"[{kind.upper()}]")
            counts[kind] += 1
            position = end
        pieces.append(text[position:])
        return Redaction(text="".join(pieces), counts=counts)


# Phone candidates: digit groups joined by at most two separators (spaces, dots, dashes,
# slashes, parentheses), optionally after a + or an opening parenthesis. One linear pass; the
# groups are then tried as windows and each window is validated by phonenumbers.
_PHONE_RUN = re.compile(r"(?:\+|(?<![\w.,/-])\(?)\d(?:[ \u00a0.\-/()]{0,3}\d)*\)?", re.UNICODE)
_PHONE_WORD = re.compile(
    r"(?:phone|call|tel|telephone|mobile|cell|whatsapp|sms|text|ring|number|contact|reach"
    r"|telefon|handy|ruf|anrufen|nummer|téléphone|portable|appelle[zr]?|numéro|tel[ée]fono"
    r"|m[óo]vil|celular|ll[áa]mame|llame|llamar|chiama|cellulare|numero|bel|bellen|mobiel"
    r"|ara|aray\u0131n|numaram|numara|ligue|ligar|número|телефон|звоните|电话|手机|電話)"
    # "call me on", "phone us at", "Handy ist", "mon numéro est le", "téléphone : au".
    r"(?:\W{1,4}(?:me|us|him|her|them|on|at|to|is|was|back|now|number|no\.?|nr\.?|ist|est"
    r"|es|le|au|al|el|sur|unter|auf|op|mi|my|our|mon|ma|mein|meine|de|a|é|je|numaram))"
    r"{0,3}\W{0,4}$",
    re.IGNORECASE,
)
# A run starting with a year and a dash or slash is a reference ("2024-123456", "2024/000123").
_YEAR_REFERENCE = re.compile(r"(?:19|20)\d{2}[-/]")
_MAX_PHONE_TOKENS = 7
# An ASCII letter or digit right after a number, unless an extension ("x22", "ext22").
_GLUED_AFTER = re.compile(r"(?!x\d|ext\.?\d)[A-Za-z0-9]", re.IGNORECASE)
# A UUID (a request id, a Heroku key) holds digit groups that phonenumbers accepts.
_UUID = re.compile(r"(?<![\w-])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![\w-])")
# Words after which a digit group is some other number: a version, a reference, an amount.
_NOT_PHONE_WORD = re.compile(
    r"\b(?:v|version|ver|build|release|order|invoice|ticket|case|ref|reference|id|ids|meeting"
    r"|zoom|batch|serial|tracking|amount|total|qty|quantity|quantities|page|line|room|floor"
    r"|port|sku|po|account|customer|contract|paid|charged|price|cost|sum|balance|year|years"
    r"|bestellung|rechnung|commande|facture|pedido|factura|sipariş|fatura)\W{0,4}$",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def _valid_phone(candidate: str) -> bool:
    """Whether a candidate is a valid number, international or national in a listed region."""
    if candidate.startswith(("+", "00")):
        international = "+" + candidate[2:] if candidate.startswith("00") else candidate
        try:
            return bool(phonenumbers.is_valid_number(phonenumbers.parse(international, None)))
        except phonenumbers.NumberParseException:
            return False
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


@lru_cache(maxsize=4096)
def _national_mobile(candidate: str) -> bool:
    """A bare mobile number written nationally with its trunk 0 ("05321234567", "0612345678").

    Order and customer numbers seldom start with a single 0 and are mobile numbers in a
    listed region, so these need no phone word.
    """
    if not re.fullmatch(r"0[1-9]\d{8,9}", candidate):
        return False
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            return True
    return False


def _claim_phones(text: str, spans: _Spans) -> None:
    uuids = [uuid.span() for uuid in _UUID.finditer(text)]
    for run in _PHONE_RUN.finditer(text):
        if any(start < run.end() and run.start() < end for start, end in uuids):
            continue
        before = text[max(0, run.start() - 30) : run.start()]
        plus = run.group().startswith(("+", "00"))
        tokens = [
            (run.start() + token.start(), run.start() + token.end())
            for token in re.finditer(r"\S+", run.group())
        ]
        groups = re.findall(r"\d+", run.group())
        if not plus and (_NOT_PHONE_WORD.search(before) or _looks_like_a_list(groups)):
            # "order 4155 5526 71", "batch 2024 0315 0001", "qty 1000 2000 3000 4000".
            continue
        # Digits and one-digit groups up to each token: windows are sized without slicing.
        digit_prefix = [0]
        single_prefix = [0]
        for start, end in tokens:
            token_groups = re.findall(r"\d+", text[start:end])
            digit_prefix.append(digit_prefix[-1] + sum(map(len, token_groups)))
            single_prefix.append(single_prefix[-1] + sum(len(group) == 1 for group in token_groups))
        index = 0
        while index < len(tokens):
            found = False
            for last in range(min(len(tokens), index + _MAX_PHONE_TOKENS) - 1, index - 1, -1):
                digits = digit_prefix[last + 1] - digit_prefix[index]
                # "ids 1 2 3 4 5 6 7": phones have at most a trunk digit and one short group.
                singles = single_prefix[last + 1] - single_prefix[index]
                if not 7 <= digits <= 15 or singles > 2:
                    continue
                start = tokens[index][0]
                candidate = text[start : tokens[last][1]].rstrip(".-/(")
                if _phone_window_valid(text, start, candidate, spans, before):
                    spans.claim(start, start + len(candidate), "phone")
                    index = last + 1
                    found = True
                    break
            if not found:
                index += 1


def _phone_window_valid(text: str, start: int, candidate: str, spans: _Spans, before: str) -> bool:
    if not spans.free(start, start + len(candidate)) or _YEAR_REFERENCE.match(candidate):
        return False
    if _GLUED_AFTER.match(text, start + len(candidate)):
        # "01234567-89ab-cdef": the digits run on into an identifier, no phone ends there.
        return False
    if (
        candidate.isdigit()
        and not _PHONE_WORD.search(text[max(0, start - 30) : start] if start else before)
        and not _national_mobile(candidate)
    ):
        # A bare digit run ("my order 4155552671 never arrived", a customer id) is a phone
        # only after a word that says so: without one, order, customer and contract numbers
        # of 9-12 digits are valid phone numbers somewhere.
        return False
    if (
        not candidate.startswith(("+", "00"))
        and "." in candidate
        and not re.search(r"[^\d.]", candidate)
        and re.search(r"(?:^|\.)\d(?:\.|$)", candidate)
    ):
        # "10.0.19041.1", "4.1.1.1": a version, not "06.12.34.56.78".
        return False
    return _valid_phone(candidate)


def _looks_like_a_list(groups: list[str]) -> bool:
    """Years ("2023 2024 2025") or round quantities ("1000 2000 3000"), not one number."""
    if len(groups) < 3:
        return False
    years = all(len(group) == 4 and group[:2] in ("19", "20") for group in groups)
    round_numbers = all(group.endswith("00") for group in groups)
    return years or round_numbers


def _claim_cards(text: str, spans: _Spans) -> None:
    for run in _DIGIT_RUN.finditer(text):
        groups = [
            (run.start() + group.start(), run.start() + group.end())
            for group in re.finditer(r"\d+", run.group())
        ]
        digits = [end - start for start, end in groups]
        if sum(digits) < 13:
            continue
        named = bool(_CARD_WORD.search(text[max(0, run.start() - 30) : run.start()]))
        if sum(digits) <= 19:
            _claim_card(text, groups, spans, named=named)
            continue
        # Cards side by side: the longest window of whole groups that is one, from each group
        # that can start one (four digits, or a whole card number after a card word).
        index = 0
        while index < len(groups):
            # A bare 15- or 16-digit group may be a whole card on its own (_CARD_PREFIX).
            alone = (named and 13 <= digits[index] <= 19) or digits[index] in (15, 16)
            if digits[index] != 4 and not alone:
                index += 1
                continue
            found = False
            total = 0
            last = index
            while last + 1 < len(groups) and total + digits[last] + digits[last + 1] <= 19:
                total += digits[last]
                last += 1
            for end in range(last, index - 1, -1):
                # Card groupings have three to five groups (_CARD_GROUPS).
                if not (2 <= end - index <= 4 or (alone and end == index)):
                    continue
                if _claim_card(text, groups[index : end + 1], spans, named=named):
                    index = end + 1
                    found = True
                    break
            if not found:
                index += 1


def _claim_card(text: str, groups: list[tuple[int, int]], spans: _Spans, *, named: bool) -> bool:
    """Claim digit groups as a card if they are one; named: a card word comes before them."""
    lengths = [end - start for start, end in groups]
    grouped = len(groups) > 1 and bool(_CARD_GROUPS.fullmatch(",".join(map(str, lengths))))
    bare = len(groups) == 1 and sum(lengths) in (15, 16)
    number = "".join(text[start:end] for start, end in groups)
    start, end = groups[0][0], groups[-1][1]
    # Oddly grouped ("4111 11 1111 111 1111") but starting like a real card, and no phone's +.
    prefixed = bool(_CARD_PREFIX.fullmatch(number)) and text[start - 1 : start] != "+"
    if not (grouped or named or bare or prefixed) or not 13 <= sum(lengths) <= 19:
        return False
    if not luhn_valid(number):
        return False
    # A bare or oddly grouped Luhn-valid run is a card only with a card word before it:
    # one in ten digit runs passes Luhn, and order numbers, prices and URL ids are common.
    if grouped and not named and _looks_like_a_list([text[a:b] for a, b in groups]):
        return False
    if not named and "," in text[start:end] and not prefixed:
        # Groups joined by commas are a list ("ports 8080,8002,9090,9091") unless they start
        # like a real card.
        return False
    if not named and re.search(r"[\r\n]", text[start:end]) and number[0] not in "23456":
        # Groups on several lines are a card when they start like one (Visa 4, Mastercard
        # 2 and 5, Amex 3, Discover 6), not a column of numbers.
        return False
    if grouped or (named and len(number) in (13, 14, 15, 16, 19)):
        return spans.claim(start, end, "card")
    if prefixed:
        return spans.claim(start, end, "card")
    return False


@lru_cache(maxsize=256)
def _iban_length(country: str) -> int:
    """The length of a country's IBANs (python-stdnum's registry), or 0 for a country without."""
    info = numdb.get("iban").info(country)
    structure = info[0][1].get("bban", "") if info else ""
    return 4 + sum(map(int, re.findall(r"\d+", structure))) if structure else 0


def _claim_ibans(text: str, spans: _Spans) -> None:
    # A match can run on into the next IBAN ("GB82 WEST ... 32 and gb82west..."): the search
    # resumes after the IBAN it claimed, or one character after a match with none (a match is
    # at most about a hundred characters, so this stays linear).
    position = 0
    while match := _IBAN.search(text, position):
        position = match.start() + 1
        # The prefix of the country's IBAN length, if valid ("DE89 3704 0044 0532 0130 00 is
        # mine"): an IBAN's length is fixed per country, so one check per match.
        length = _iban_length(match.group()[:2].upper())
        positions = [
            match.start() + offset for offset, char in enumerate(match.group()) if char.isalnum()
        ]
        if not length or len(positions) < length:
            continue
        end = positions[length - 1] + 1
        if end < len(text) and text[end].isalnum():
            continue
        if iban_valid("".join(text[at] for at in positions[:length])):
            spans.claim(match.start(), end, "iban")
            position = end


# Lower-case stems every match of a keyword pattern contains: a message without any of them
# skips that scan (most messages name no password, no id and no PIN).
_SECRET_STEMS = (
    "pass", "pw", "p/w", "p@ss", "p4ss", "memorable", "contrase", "senha", "parol", "şifre",
    "sifre",
    "kennwort", "wachtwoord", "hasł",
    "hasl", "пароль", "密码", "密碼", "パスワード", "暗証", "heslo", "lösen", "adgang", "salasana",
    "jelsz", "κωδικ", "סיסמה", "كلمة", "口令", "비밀번호", "암호", "key", "token", "secret",
    "recovery", "backup", "answer", "credential", "login", "phrase", "secr", "wachtzin",
    "parola",
)  # fmt: skip
_CODE_STEMS = (
    "pin", "otp", "one", "2fa", "mfa", "factor", "step", "code", "cvv", "cvc", "csc", "kod",
    "código", "codice", "код", "验证", "驗證", "校验", "认证", "コード", "ワンタイム", "인증",
)  # fmt: skip
_USER_STEMS = ("credential", "creds", "login", "user")
_DOCUMENT_STEMS = ("pas", "driv", "licen", "führer", "fuhrer", "permis", "ausweis")
_ID_STEMS = (
    "ssn", "social", "tc", "t.c", "kimlik", "steuer", "idnr", "identifikation", "aadha", "bsn",
    "burgerservice", "nir", "curit", "national", "id number", "identity", "personal", "pesel",
    "sin", "cpf", "nhs", "dni", "nie", "ss#", "soc", "personn",
)  # fmt: skip


def _obfuscated_email(match: re.Match[str]) -> bool:
    """Whether an _OBFUSCATED_EMAIL match is an address rather than words around an "at"."""
    at = match.group("at")
    after_at = match.group()[match.end("at") - match.start() :]
    dots = re.findall(rf"\.|{_SPELT_DOT}", after_at, re.IGNORECASE)
    spaced = ("@" in at and at.strip() != at) or any(dot.strip() == "." != dot for dot in dots)
    if spaced and match.group("tld").lower() not in _COMMON_TLDS:
        return False
    brackets_or_words = re.search(r"[(\[{<]", at) or any(
        dot.strip() not in ("", ".") for dot in dots
    )
    if brackets_or_words or "@" in at:
        return True
    # "look at example.com" is no address: a plain " at " with plain dots needs a local part
    # that reads like one ("john.doe at example.com").
    return bool(spaced or re.search(r"[._+\d]", match.group("local")))


def _mentions(lowered: str, stems: tuple[str, ...]) -> bool:
    return any(stem in lowered for stem in stems)


def redact(text: str) -> Redaction:
    """Replace personal data and secrets with placeholders such as [EMAIL] and [SECRET]."""
    original = text
    view = _matching_view(original)
    text = view.text
    spans = _Spans()
    # Order matters where kinds overlap: a secret or an IBAN is a longer run that the card or
    # phone matchers would split; dates are kept before the digit matchers run.
    for pattern in _EXTRA_SECRETS:
        for match in pattern.finditer(text):
            spans.claim(*match.span(1 if pattern.groups else 0), "secret")
    lowered = text.lower()
    has_context_word = any(word in lowered for word in _CONTEXT_WORDS)
    for pattern, literal in _DETECT_SECRETS_PATTERNS:
        if literal and literal not in text:
            continue
        if pattern.pattern.startswith("(?:(?<=\\W)|(?<=^))") and not has_context_word:
            continue
        for match in pattern.finditer(text):
            # The whole match: detect-secrets' context patterns ("aws ... key = '...'") capture
            # only part, and some capture just a prefix.
            spans.claim(*match.span(), "secret")
    if _AWS_CONTEXT.search(text):
        for match in _AWS_SECRET.finditer(text):
            spans.claim(*match.span(), "secret")
    if _mentions(lowered, _SECRET_STEMS):
        for match in _PASSPHRASE.finditer(text):
            words = match.group("value").split()
            if (
                words[0].lower() not in _SENTENCE_STARTS
                and not _is_prose(words[0])
                and 2 * sum(map(_is_prose, words)) < len(words)
            ):
                spans.claim(*match.span("value"), "secret")
        for match in _SECRET_VALUE.finditer(text):
            value_span = _secret_value_span(match, text)
            if value_span:
                spans.claim(*value_span, "secret")
        for match in _CJK_SECRET.finditer(text):
            value = match.group("value").rstrip(".,;:)\"'")
            if len(value) >= 3 and value.lower() not in _NOT_A_SECRET:
                spans.claim(match.start("value"), match.start("value") + len(value), "secret")
        for match in _SECRET_PHRASED.finditer(text):
            value = match.group("value").rstrip(".?")
            has_letter = any(char.isalpha() for char in value)
            mixed = has_letter and not value.isalpha()
            digits = sum(char.isdigit() for char in value)
            if (mixed or digits >= 4) and value.lower() not in _NOT_A_SECRET:
                spans.claim(match.start("value"), match.start("value") + len(value), "secret")
    if _mentions(lowered, _USER_STEMS):
        for match in _USER_PASSWORD.finditer(text):
            value = match.group(1)
            if value.lower() not in _NOT_A_SECRET and any(char.isalnum() for char in value):
                spans.claim(*match.span(1), "secret")
    if _mentions(lowered, _CODE_STEMS):
        for match in _CODE_VALUE.finditer(text):
            spans.claim(*match.span("code"), "secret")
        for match in _BARE_CODE.finditer(text):
            before = (match.group("before") or "").lower()
            if before in _OTHER_CODES or not (match.group("connector") or before in _CODE_OWNERS):
                continue
            spans.claim(*match.span("code"), "secret")
        for match in _CODE_FIRST.finditer(text):
            # "5003 is the error code we get" names another code.
            if not _OTHER_CODES.intersection(match.group("words").lower().split()):
                spans.claim(*match.span("code"), "secret")
    if "@" in text or "\uff20" in text:
        for match in _EMAIL.finditer(text):
            spans.claim(*match.span(), "email")
    if "%40" in text:
        for match in _ENCODED_EMAIL.finditer(text):
            spans.claim(*match.span(), "email")
    if (
        " at " in lowered
        or "dot" in lowered
        or " @ " in text
        or " . " in text
        or re.search(r"[(\[{<]\s*(?:at|@)", lowered)
    ):
        for match in _OBFUSCATED_EMAIL.finditer(text):
            if _obfuscated_email(match):
                spans.claim(*match.span(), "email")
    _claim_ibans(text, spans)
    for pattern, is_valid in _FORMATTED_IDS:
        for match in pattern.finditer(text):
            if is_valid(match.group()):
                spans.claim(*match.span(), "national_id")
    if "sort" in lowered:
        for match in _SORT_CODE.finditer(text):
            spans.claim(*match.span(1), "bank_account")
            if match.group(2) is not None:
                spans.claim(*match.span(2), "bank_account")
    for match in _NAMED_NINO.finditer(text):
        if match.group(1)[:2].upper() not in _NOT_NINO_PREFIXES:
            spans.claim(*match.span(1), "national_id")
    if _mentions(lowered, _ID_STEMS):
        for match in _NAMED_SSN.finditer(text):
            spans.claim(*match.span(1), "national_id")
        for match in _NAMED_ID.finditer(text):
            candidate = re.sub(r"\D", "", match.group(1))
            if any(check(candidate) for check in _BARE_ID_CHECKS):
                spans.claim(*match.span(1), "national_id")
    if _mentions(lowered, _DOCUMENT_STEMS):
        for match in _NAMED_DOCUMENT.finditer(text):
            if any(char.isdigit() for char in match.group(1)):
                spans.claim(*match.span(1), "national_id")
    if _mentions(lowered, _BIRTH_STEMS):
        for match in _BIRTH_DATE.finditer(text):
            spans.claim(*match.span("date"), "date_of_birth")
    for match in _IPV4.finditer(text):
        spans.claim(*match.span(), "")
    for match in _DATE_TIME.finditer(text):
        spans.claim(*match.span(), "")
    _claim_cards(text, spans)
    _claim_phones(text, spans)
    return spans.apply(original, view)


@lru_cache(maxsize=256)
def shown_to_agents(text: str) -> str:
    """Customer text as the bot writes it to Slack (posts, notes, pages): redacted.

    The store keeps what the customer wrote; what the bot posts is a copy. Cached: a post is
    redrawn from the stored text on every event of its ticket.
    """
    return redact(text).text


# What a customer who posted one must replace, not just hide: it was in the channel for everyone.
MUST_BE_REPLACED = ("secret", "card")


@lru_cache(maxsize=256)
def credentials_posted(text: str) -> tuple[str, ...]:
    """The kinds of MUST_BE_REPLACED that were redacted from text (a key, password, card number).

    Redaction hides them from the team, but they were posted in the channel: an agent asks the
    customer to rotate the secret or block the card. Cached like shown_to_agents.
    """
    counts = redact(text).counts
    return tuple(kind for kind in MUST_BE_REPLACED if counts[kind])
