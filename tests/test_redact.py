"""Redaction: personal data and secrets in many formats and languages; ordinary numbers survive."""

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
        # Unicode addresses, national phone formats, dotted cards, lowercase IBANs.
        ("mail jané.dœ@exämple.com now", "mail [EMAIL] now", "email"),
        ("письмо на иван@пример.рф", "письмо на [EMAIL]", "email"),
        ("call 020 7946 0958 today", "call [PHONE] today", "phone"),
        ("Ruf mich an: 030 12345678", "Ruf mich an: [PHONE]", "phone"),
        ("mon numéro 06 12 34 56 78", "mon numéro [PHONE]", "phone"),
        ("llámame al 612 34 56 78", "llámame al [PHONE]", "phone"),
        ("+1.415.555.2671 after 5", "[PHONE] after 5", "phone"),
        ("card 4111.1111.1111.1111 ok", "card [CARD] ok", "card"),
        ("Karte 5500 0000 0000 0004", "Karte [CARD]", "card"),
        ("iban gb82west12345698765432 thanks", "iban [IBAN] thanks", "iban"),
        ("IBAN: fr14 2004 1010 0505 0001 3m02 606", "IBAN: [IBAN]", "iban"),
        # National ids: formatted ones anywhere, bare digits after a word naming them.
        ("SSN 123-45-6789", "SSN [NATIONAL_ID]", "national_id"),
        ("my TC kimlik no 10000000146", "my TC kimlik no [NATIONAL_ID]", "national_id"),
        ("CPF 390.533.447-05 no cadastro", "CPF [NATIONAL_ID] no cadastro", "national_id"),
        ("mi DNI es 12345678Z", "mi DNI es [NATIONAL_ID]", "national_id"),
        ("Steuer-ID: 36574261809", "Steuer-ID: [NATIONAL_ID]", "national_id"),
        ("BSN 111222333", "BSN [NATIONAL_ID]", "national_id"),
        # Keys and tokens.
        (
            "our token xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOp leaked",
            "our token [SECRET] leaked",
            "secret",
        ),
        ("xapp-1-A0123456789-1234567890123-abcdef0123456789", "[SECRET]", "secret"),
        ("AKIAIOSFODNN7EXAMPLE is in the repo", "[SECRET] is in the repo", "secret"),
        (
            "aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
            "[SECRET]",
            "secret",
        ),
        (
            "pushed ghp_abcdefghijklmnopqrstuvwxyz0123456789 by mistake",
            "pushed [SECRET] by mistake",
            "secret",
        ),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[SECRET]", "secret"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456", "key [SECRET]", "secret"),
        ("Stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Stripe [SECRET]", "secret"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "jwt [SECRET]",
            "secret",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "[SECRET]",
            "secret",
        ),
        # Passwords, in several languages and shapes.
        ("password: hunter2", "password: [SECRET]", "secret"),
        ("my password is Sommer2024!", "my password is [SECRET]", "secret"),
        ("Passwort ist geheim123", "Passwort ist [SECRET]", "secret"),
        ("mi contraseña es Perro#77", "mi contraseña es [SECRET]", "secret"),
        ("mot de passe : Chat2024", "mot de passe : [SECRET]", "secret"),
        ("API_KEY=abcdef123456", "API_KEY=[SECRET]", "secret"),
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
        "Invoice INV-2024-118 charged us for 20 seats instead of 12",
        "order 10000000146 is late",  # a valid T.C. kimlik shape, but nothing names it an id
        "error code 0x80070005 at 10:42, ticket 2024-118-5521",
        "we have 250 employees and 12,400 contacts, 300 people are blocked",
        "the password reset link expired and I changed my password yesterday",
        "my password is wrong and the API key stopped working after rotation",
        "our server 203.0.113.7 refuses connections on port 8443",
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


def test_overlapping_kinds_are_redacted_once() -> None:
    """A secret that contains digit runs is one [SECRET], not split into cards or phones."""
    text = "token xoxb-4111111111111111-1234567890123-abcdef and call 020 7946 0958"
    result = redact(text)
    assert result.text == "token [SECRET] and call [PHONE]"
    assert dict(result.counts) == {"secret": 1, "phone": 1}
