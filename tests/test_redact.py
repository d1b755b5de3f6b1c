"""PII redaction: emails, phones, Luhn-valid cards and valid IBANs; ordinary numbers survive."""

from __future__ import annotations

import pytest

from routing.redact import iban_valid, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("mail me at jane.doe+support@example.co.uk please", "mail me at [EMAIL] please", "email"),
        ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged", "card"),
        ("card 4111-1111-1111-1111", "card [CARD]", "card"),
        ("IBAN DE89 3704 0044 0532 0130 00 is mine", "IBAN [IBAN] is mine", "iban"),
        ("GB82WEST12345698765432", "[IBAN]", "iban"),
        ("call +44 20 7946 0958 now", "call [PHONE] now", "phone"),
        ("call (555) 123-4567", "call [PHONE]", "phone"),
        ("or 555-123-4567", "or [PHONE]", "phone"),
        ("+90 532 123 45 67", "[PHONE]", "phone"),
    ],
)
def test_personal_data_is_redacted(text: str, expected: str, kind: str) -> None:
    """Each kind of personal data is replaced by its placeholder and counted."""
    result = redact(text)
    assert result.text == expected
    assert result.counts[kind] == 1


@pytest.mark.parametrize(
    "text",
    [
        "I was charged twice — $49 on the 3rd and again on the 5th. Order #ORD-2847.",
        "All API calls returning 503 since 14:00 UTC.",
        "card 4111 1111 1111 1112 is a typo",  # fails Luhn
        "version 2.14.3 on 2026-11-21",
    ],
)
def test_ordinary_numbers_are_kept(text: str) -> None:
    """Prices, times, order numbers, versions, dates and invalid cards or IBANs are not touched."""
    result = redact(text)
    assert result.text == text
    assert not result.changed


def test_checksums() -> None:
    """Luhn and IBAN checks accept valid numbers and reject altered ones."""
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")
