"""Personal data and secrets out before any text leaves the machine or reaches a log or a copy.

What is redacted, and by what (well-kept libraries where one is made for the job):
- emails, in any script (`jané.dœ@exämple.com`);
- phone numbers in international and national formats, found and validated by `phonenumbers`
  (Google's libphonenumber) for the regions in `PHONE_REGIONS`;
- payment card numbers (13-19 digits, grouped by spaces, dashes or dots) that pass Luhn;
- IBANs in either case, with or without spaces, validated by `python-stdnum`;
- national identity numbers, validated by `python-stdnum`: formatted ones anywhere (US SSN,
  Brazil CPF, Spain DNI/NIE, Italy codice fiscale, UK NHS number), bare digit runs (Turkey
  T.C. kimlik, Germany IdNr, France NIR, India Aadhaar, Netherlands BSN) only after a word that
  names them, so order numbers stay;
- keys and tokens by the detectors of `detect-secrets` (AWS, Slack, GitHub, GitLab, Stripe,
  OpenAI, private keys, JWTs, ...) plus the newer shapes it lacks (`xapp-`, `sk-proj-`,
  `github_pat_`);
- the value after "password", "api key", "token", "secret" and their translations.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from stdnum import iban as stdnum_iban
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.tr import tckimlik
from stdnum.us import ssn

# Where customers' national phone numbers (no +country code) are looked for. Numbers with a
# + prefix are found whatever the region.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "TR", "IN", "BR", "AU", "CA")

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.\w{2,}")
# 13 to 19 digits, optionally grouped by spaces, dashes or dots: the card candidates.
_CARD = re.compile(r"(?<![\w.])\d(?:[ .-]?\d){12,18}(?![\w])")
# Country code, two check digits, then up to 30 alphanumerics, optionally in groups of four.
_IBAN = re.compile(
    r"(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?(?![\w])", re.IGNORECASE
)

# Formatted national ids: the shape is distinctive, the checksum decides.
_FORMATTED_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    (re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"), ssn.is_valid),
    (re.compile(r"(?<![\w.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w])"), cpf.is_valid),
    (re.compile(r"(?<![\w])\d{8}-?[A-Z](?![\w])", re.IGNORECASE), dni.is_valid),
    (re.compile(r"(?<![\w])[XYZ]-?\d{7}-?[A-Z](?![\w])", re.IGNORECASE), nie.is_valid),
    (
        re.compile(r"(?<![\w])[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z](?![\w])", re.IGNORECASE),
        codicefiscale.is_valid,
    ),
    (re.compile(r"(?<![\w])\d{3} \d{3} \d{4}(?![\w])"), nhs.is_valid),
)
# Bare digit runs that are ids only when a word naming them comes shortly before.
_ID_WORDS = (
    r"ssn|social security(?: number)?|t\.?c\.?(?: kimlik)?(?: no)?"
    r"|kimlik(?: no| numaras\u0131)?|tckn"
    r"|steuer-?id|steueridentifikationsnummer|idnr|identifikationsnummer|aadhaa?r|bsn"
    r"|burgerservicenummer|nir|num[ée]ro de s[ée]curit[ée] sociale|national id(?: number)?"
    r"|id number|identity number|personal number"
)
_NAMED_ID = re.compile(
    rf"\b(?:{_ID_WORDS})\b[^\w\n]{{0,12}}(?:is\s+|ist\s+|est\s+|:\s*)?(\d[\d .-]{{7,20}}\d)",
    re.IGNORECASE,
)
_BARE_ID_CHECKS: tuple[Callable[[str], bool], ...] = (
    tckimlik.is_valid,
    idnr.is_valid,
    nir.is_valid,
    aadhaar.is_valid,
    bsn.is_valid,
    ssn.is_valid,
)

# Shapes detect-secrets 1.5 does not know yet, or finds only the start of (a private key's
# first line, a JWT's first two parts): these whole spans are claimed first.
_EXTRA_SECRETS = (
    re.compile(
        r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
    ),
    re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]+"),
    re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]+\b", re.IGNORECASE),
    re.compile(r"\bxox[a-z]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
)
# "password: hunter2", "my API key is abc...", "Passwort ist ..." : the value after the word,
# its separator in group 1 and the value in group 2.
_CREDENTIAL_WORDS = (
    r"passwords?|passwort|passwd|pwd|passcode|contrase[ñn]a|mot de passe|senha|parola|şifre"
    r"|api[ _-]?key|api[ _-]?token|access[ _-]?key|secret(?:[ _-]?key)?|token|private[ _-]?key"
    r"|client[ _-]?secret"
)
_SECRET_VALUE = re.compile(
    # "aws_secret_access_key = ..." : the words may run on as an identifier before the value.
    rf"(?<![A-Za-z])(?:{_CREDENTIAL_WORDS})(?:[_-][A-Za-z]+)*(?![A-Za-z])"
    r"\s*([:=]|(?:is|ist|est|es|é|è)\b)?\s*[:=]?\s*"
    r"([\"'`]?)([^\s\"'`,;]{4,})",
    re.IGNORECASE,
)
# Words that follow "password" in ordinary sentences and are no password.
_NOT_A_SECRET = frozenset(
    {
        "reset",
        "resets",
        "change",
        "changed",
        "expired",
        "expires",
        "link",
        "email",
        "field",
        "page",
        "manager",
        "policy",
        "again",
        "never",
        "doesn't",
        "does",
        "didn't",
        "isn't",
        "wasn't",
        "won't",
        "works",
        "work",
        "request",
        "requests",
        "rules",
        "update",
        "updated",
        "wrong",
        "incorrect",
        "invalid",
        "form",
        "screen",
        "button",
        "anymore",
        "with",
        "from",
        "that",
        "this",
        "when",
        "because",
        "after",
        "before",
        "every",
        "still",
        "keeps",
        "stopped",
        "was",
        "were",
        "has",
        "have",
        "had",
        "and",
        "for",
        "the",
        "your",
        "our",
        "their",
        "expiry",
        "rotation",
        "missing",
        "required",
        "needed",
        "itself",
        "flow",
        "login",
        "[redacted]",
        "[secret]",
        "[password]",
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


_SECRET_PATTERNS = _EXTRA_SECRETS + _detect_secrets_patterns()


def _looks_like_a_secret(match: re.Match[str]) -> bool:
    """Whether the word after "password" etc. is its value, not the sentence going on."""
    separator, quote, value = match.group(1), match.group(2), match.group(3)
    if value.lower().rstrip(".!?") in _NOT_A_SECRET:
        return False
    if quote or separator in (":", "="):
        return True
    # "my password is hunter2" and "token abc123XYZ" yes; "I changed my password yesterday" no.
    has_letter = any(char.isalpha() for char in value)
    has_other = any(not char.isalpha() for char in value.rstrip(".!?"))
    return has_letter and has_other


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
    """Spans of the text to replace, first claim wins where two overlap."""

    def __init__(self) -> None:
        self._spans: list[tuple[int, int, str]] = []

    def claim(self, start: int, end: int, kind: str) -> None:
        if any(
            start < other_end and other_start < end for other_start, other_end, _ in self._spans
        ):
            return
        self._spans.append((start, end, kind))

    def apply(self, text: str) -> Redaction:
        counts: Counter[str] = Counter()
        pieces: list[str] = []
        position = 0
        for start, end, kind in sorted(self._spans):
            pieces.append(text[position:start])
            pieces.append(f"[{kind.upper()}]")
            counts[kind] += 1
            position = end
        pieces.append(text[position:])
        return Redaction(text="".join(pieces), counts=counts)


def _phone_spans(text: str) -> Iterator[tuple[int, int]]:
    for region in PHONE_REGIONS:
        for found in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID):
            yield found.start, found.end


def redact(text: str) -> Redaction:
    """Replace personal data and secrets with placeholders such as [EMAIL] and [SECRET]."""
    spans = _Spans()
    # Order matters where kinds overlap: a secret or an IBAN is a longer run that the card or
    # phone matchers would split.
    for pattern in _SECRET_PATTERNS:
        for match in pattern.finditer(text):
            # The whole match: detect-secrets' context patterns ("aws ... key = '...'") capture
            # only part, and some capture just a prefix.
            spans.claim(*match.span(), "secret")
    for match in _SECRET_VALUE.finditer(text):
        if _looks_like_a_secret(match):
            spans.claim(*match.span(3), "secret")
    for match in _EMAIL.finditer(text):
        spans.claim(*match.span(), "email")
    for match in _IBAN.finditer(text):
        if iban_valid(match.group()):
            spans.claim(*match.span(), "iban")
    for match in _CARD.finditer(text):
        if luhn_valid(re.sub(r"\D", "", match.group())):
            spans.claim(*match.span(), "card")
    for pattern, is_valid in _FORMATTED_IDS:
        for match in pattern.finditer(text):
            if is_valid(match.group()):
                spans.claim(*match.span(), "national_id")
    for match in _NAMED_ID.finditer(text):
        candidate = match.group(1)
        if any(check(candidate) for check in _BARE_ID_CHECKS):
            spans.claim(*match.span(1), "national_id")
    for start, end in _phone_spans(text):
        spans.claim(start, end, "phone")
    return spans.apply(text)
