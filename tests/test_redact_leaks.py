"""Hostile shapes that once slipped past redaction, and ordinary details that must survive it."""

from __future__ import annotations

import pytest

from routing.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Digit groups separated by commas, as a list is typed.
        ("my card 4111,1111,1111,1111 was charged", "my card [CARD] was charged"),
        ("5555,5555,5555,4444 charged twice", "[CARD] charged twice"),
        ("paid with 4111, 1111, 1111, 1111 yesterday", "paid with [CARD] yesterday"),
        # A card word and a verb before the number.
        ("my card number is 411 111 111 111 1111", "my card number is [CARD]"),
        ("the visa was 4111 11 1111 111 111", "the visa was [CARD]"),
        # Odd groupings with no card word, of a number that starts like a card.
        ("charged 4111 11 1111 111 111 twice", "charged [CARD] twice"),
        ("paid with 41 11 11 11 11 11 11 11", "paid with [CARD]"),
        ("use 55555 55555 554444 please", "use [CARD] please"),
    ],
)
def test_cards_in_odd_shapes_are_redacted(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "prices 1,200,300,400 and 2,500",
        "we shipped 1,234,567,890,123,456 units",
        "order 1234,5678 and invoice INV-2024-118",
        "open ports 8080,8002,9090,9091 on the firewall",
        "error E1234 on version 4.11.1 since 2024-03-05 10:00",
        "call us at +49 1512 3456 7890",
    ],
)
def test_ordinary_numbers_are_not_cards(text: str) -> None:
    assert "[CARD]" not in redact(text).text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An empty password: the user name is the credential (an API key as the user).
        ("https://bob:@host.example/x fails", "https://[SECRET]:@host.example/x fails"),
        (
            "curl https://sk_test_abc123:@api.stripe.com/v1/charges",
            "curl https://[SECRET]:@api.stripe.com/v1/charges",
        ),
        # A token alone before the @.
        (
            "git clone https://abcdef0123456789abcdef0123456789abcdef01@github.com/org/repo",
            "git clone https://[SECRET]@github.com/org/repo",
        ),
        (
            "pip install git+https://glpat9xYzAbCdEf1234@gitlab.com/team/lib.git",
            "pip install git+https://[SECRET]@gitlab.com/team/lib.git",
        ),
    ],
)
def test_credentials_in_urls_are_redacted(text: str, expected: str) -> None:
    redaction = redact(text)
    assert redaction.text == expected
    assert redaction.counts["secret"] == 1


def test_a_plain_user_in_a_url_is_not_a_secret() -> None:
    assert redact("clone ssh://git@github.com/org/repo.git").counts["secret"] == 0


_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
_PAYLOAD = "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
_SIGNATURE = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


@pytest.mark.parametrize(
    "jwt",
    [
        f"{_HEADER}. {_PAYLOAD}. {_SIGNATURE}",
        f"{_HEADER} . {_PAYLOAD} . {_SIGNATURE}",
        f"{_HEADER}\n.{_PAYLOAD}\n.{_SIGNATURE}",
        f"{_HEADER}.\n{_PAYLOAD}.\n{_SIGNATURE}",
        # Wrapped by a mail client in the middle of the payload.
        f"{_HEADER}.{_PAYLOAD[:40]}\n{_PAYLOAD[40:]}.{_SIGNATURE}",
        f"{_HEADER}.{_PAYLOAD[:40]}\r\n  {_PAYLOAD[40:]}.{_SIGNATURE}",
    ],
)
def test_a_jwt_split_by_spaces_or_line_breaks_is_redacted(jwt: str) -> None:
    redaction = redact(f"the app sends {jwt} and\nthen fails")
    assert redaction.text == "the app sends [SECRET] and\nthen fails"
    assert redaction.counts["secret"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DOB: 04/12/1988, account locked", "DOB: [DATE_OF_BIRTH], account locked"),
        ("d.o.b. 04.12.1988", "d.o.b. [DATE_OF_BIRTH]"),
        (
            "I was born 1988-12-04 and the form rejects it",
            "I was born [DATE_OF_BIRTH] and the form rejects it",
        ),
        ("born on 4 December 1988", "born on [DATE_OF_BIRTH]"),
        ("my date of birth is December 4, 1988", "my date of birth is [DATE_OF_BIRTH]"),
        ("birthday: 12/04/1988", "birthday: [DATE_OF_BIRTH]"),
        ("DOB: 04121988", "DOB: [DATE_OF_BIRTH]"),
        ("born on the 4th of December 1988", "born on the [DATE_OF_BIRTH]"),
        ("Geburtsdatum: 04.12.1988", "Geburtsdatum: [DATE_OF_BIRTH]"),
        ("fecha de nacimiento 04/12/1988", "fecha de nacimiento [DATE_OF_BIRTH]"),
        ("date de naissance : 4 décembre 1988", "date de naissance : [DATE_OF_BIRTH]"),
    ],
)
def test_a_date_of_birth_is_redacted(text: str, expected: str) -> None:
    redaction = redact(text)
    assert redaction.text == expected
    assert redaction.counts["date_of_birth"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "the outage started 2024-03-05 at 10:00 and again on 04/12/2024",
        "invoice INV-2024-118 dated 4 December 2024 shows the wrong amount",
        "since the update on 12/04/2024 the export fails (version 4.11.1)",
    ],
)
def test_dates_of_an_incident_stay(text: str) -> None:
    assert redact(text).text == text
