"""Personal data out before any text leaves the machine: emails, phones, card numbers, IBANs."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13 to 19 digits, optionally grouped by spaces or dashes: the card candidates, checked with Luhn.
_CARD = re.compile(r"(?<![\w])\d(?:[ -]?\d){12,18}(?![\w])")
# Country code, two check digits, then up to 30 alphanumerics, optionally in groups of four.
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?(?![\w])")
# A leading + or a bracketed area code, or at least three groups: keeps "$49", "14:00" and
# order numbers like ORD-2847 out, while catching +44 20 7946 0958, (555) 123-4567, 555-123-4567.
_PHONE = re.compile(
    r"(?<![\w+])"
    r"(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[\s.-]?\d{3,4}[\s.-]?\d{3,4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|\d{2,4}(?:\s\d{2,4}){3,4})"
    r"(?![\w])"
)


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
    """True when a string passes the IBAN mod-97 check."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


@dataclass(frozen=True)
class Redaction:
    """Redacted text and how many of each kind of personal data were taken out."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        """True when anything was redacted."""
        return bool(self.counts)


def redact(text: str) -> Redaction:
    """Replace emails, phone numbers, Luhn-valid card numbers and valid IBANs with placeholders."""
    counts: Counter[str] = Counter()

    def replace_email(match: re.Match[str]) -> str:
        counts["email"] += 1
        return "[EMAIL]"

    def replace_card(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if luhn_valid(digits):
            counts["card"] += 1
            return "[CARD]"
        return match.group()

    def replace_iban(match: re.Match[str]) -> str:
        if iban_valid(match.group()):
            counts["iban"] += 1
            return "[IBAN]"
        return match.group()

    def replace_phone(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if 7 <= len(digits) <= 15:
            counts["phone"] += 1
            return "[PHONE]"
        return match.group()

    # Order matters: cards and IBANs are longer digit runs that the phone pattern would split.
    redacted = _EMAIL.sub(replace_email, text)
    redacted = _IBAN.sub(replace_iban, redacted)
    redacted = _CARD.sub(replace_card, redacted)
    redacted = _PHONE.sub(replace_phone, redacted)
    return Redaction(text=redacted, counts=counts)
