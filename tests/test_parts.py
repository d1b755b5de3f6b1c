"""Two asks for two teams go to both, however the customer separates them; one ask stays one."""

from __future__ import annotations

import pytest

from routing.cascade import Pipeline, build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.models import Ticket
from routing.parts import lines, marked_clauses
from tests.slack_harness import LANGUAGES


@pytest.fixture(scope="module")
def pipeline(embedder: MiniLMEmbedder) -> Pipeline:
    return build_pipeline(load_config(), embedder=embedder, languages=LANGUAGES)


TWO_ASKS = [
    (
        "Two things: our card on file expired, how do I update it? And separately, the Zapier "
        "integration stopped posting new leads on Monday.",
        {"billing": "card on file", "engineering": "Zapier"},
    ),
    (
        "Our invoice for March lists 14 seats but we only have 9.\n\nAlso, could you add a way to "
        "export reports to Excel?",
        {"billing": "14 seats", "product": "Excel"},
    ),
    (
        "Quick one: how do I change the billing email on our invoices? Another thing: the Android "
        "app freezes on the login screen since the last update.",
        {"billing": "billing email", "engineering": "Android"},
    ),
    (
        "Hi,\n1) Please add Priya as an admin to our workspace.\n2) The CSV export has been timing "
        "out since yesterday.",
        {"account_management": "Priya", "engineering": "CSV export"},
    ),
    (
        "1) we were charged twice for May 2) the calendar sync is broken for all our shared "
        "calendars",
        {"billing": "charged twice", "engineering": "calendar sync"},
    ),
    (
        "- The PDF export crashes on every report\n- Can we get an invoice with our new VAT "
        "number?",
        {"engineering": "PDF export", "billing": "VAT number"},
    ),
    (
        "The search page returns a 500 error for every query. Second, we'd love a dark mode in "
        "the mobile app.",
        {"engineering": "search page", "product": "dark mode"},
    ),
    (
        "First, our SSO login fails for new hires since Monday. Second, the last invoice charged "
        "us for 20 seats instead of 12.",
        {"account_management": "SSO", "billing": "20 seats"},
    ),
    (
        "Could you resend last month's invoice to our accountant? P.S. the mobile app crashes "
        "whenever I upload a photo.",
        {"billing": "accountant", "engineering": "upload a photo"},
    ),
    (
        "Webhooks to our CRM stopped firing this morning.\n\nOn a different note, can you tell me "
        "how to add a second admin to our account?",
        {"engineering": "Webhooks", "account_management": "second admin"},
    ),
    (
        "I can't reset my password, the reset link says it expired.\n\nSeparately: please send us "
        "a quote for 30 more seats on the annual plan.",
        {"account_management": "password", "billing": "30 more seats"},
    ),
    (
        "The import keeps failing with 'encoding error'. One more thing, can you cancel the extra "
        "seat we added by mistake last week?",
        {"engineering": "encoding error", "billing": "extra seat"},
    ),
    (
        "The SSO login page rejects every password we type since Monday. Also, would be great if"
        " you added a calendar export.",
        {"account_management": "SSO", "product": "calendar export"},
    ),
]

ONE_ASK = [
    "Our invoice for March is wrong. It lists 14 seats but we only have 9 users. We removed five "
    "people in February. Could you check it?",
    "The export has been failing since Monday. When I click Export on any report, it spins and "
    "then shows 'Something went wrong'. I tried Chrome and Firefox. This is blocking our "
    "month-end billing run.",
    "How do I add a new admin? We just hired a new office manager who needs to manage users and "
    "see our invoices.",
    "The app keeps logging me out every few minutes. Also, it happens on both my phone and my "
    "laptop.",
    "We were charged twice this month, which is frustrating because the same thing happened in "
    "January. Thanks for looking into it.\n\nBest,\nMaria",
    "Hi team,\n\nSince this morning none of our users can log in through SSO, they all get error "
    "403.\n\nWe already checked our Okta config and nothing changed on our side.\n\nThanks,\nTom",
    "Can you tell me why our bill went up this month? We added two users in the middle of the "
    "cycle, and I'm not sure how proration works.",
    "The mobile app crashes whenever I open a photo. P.S. thanks for the quick help last time!",
    "Our dashboard is very slow today. Other than that, great product, thanks!",
    "I was charged $49 on 3 May, but I cancelled my subscription in April. I have the "
    "cancellation email from your team. Please look into this.",
    "The export fails:\n1. Open a report\n2. Click Export\n3. It shows error E1234 and nothing "
    "downloads",
    "First, I want to say I love the product. Second, the invoice for June shows the wrong VAT "
    "number.",
    "Hello,\n\nI need to update the credit card we use for our subscription, the old one expired "
    "last week.\n\nAlso, the new card is a company card, so the invoices should go to our finance "
    "team.\n\nKind regards,\nLena",
    "Our sync with Salesforce stopped working yesterday. Also, I noticed that contacts created "
    "in the last two days are missing in the dashboard.",
]


@pytest.mark.parametrize(("text", "owned"), TWO_ASKS)
async def test_two_asks_go_to_both_teams_each_with_its_part(
    pipeline: Pipeline, text: str, owned: dict[str, str]
) -> None:
    """Each team gets the part that is its own, whatever words or lists separate the asks."""
    triage = await pipeline.triage(Ticket(text=text))
    parts = {part.team: part.text for part in triage.decision.parts}
    assert set(parts) == set(owned), parts
    for team, words in owned.items():
        assert words in parts[team]
    assert set(owned) <= set(triage.escalation.teams)


@pytest.mark.parametrize("text", ONE_ASK)
async def test_one_ask_told_at_length_stays_one_ticket(pipeline: Pipeline, text: str) -> None:
    """Context, details, steps, thanks and signatures never make a second ask."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.parts == ()
    assert triage.escalation.teams == (triage.decision.team,)


def test_list_items_lose_their_markers_and_count_as_turns() -> None:
    """'1) ... 2) ...' on one line and bullets on their own lines are items; steps are not asks."""
    assert lines("1) we were charged twice 2) the sync is broken") == [
        ("we were charged twice", True),
        ("the sync is broken", True),
    ]
    assert lines("- one\n* two\nversion 2) is fine") == [
        ("one", True),
        ("two", True),
        ("version 2) is fine", False),
    ]
    assert marked_clauses("It fails:\n1. Open a report\n2. Click Export") == [
        ("It fails", False),
        ("Open a report", False),
        ("Click Export", False),
    ]
