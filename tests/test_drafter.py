"""Offline drafts: per category, calibrated to sentiment, reusing references, never promising."""

from __future__ import annotations

import pytest

from routing.config import TriageConfig, load_config
from routing.drafter import (
    TemplateDrafter,
    english_draft_for,
    find_details,
    find_promise,
    find_reference,
)
from routing.models import Decision
from routing.redact import redact


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


def _decision(
    category: str, sentiment: str = "neutral", priority: str = "low", confidence: float = 0.9
) -> Decision:
    config = load_config()
    return Decision(
        category=category,
        priority=priority,
        team=config.team_for(category),
        sentiment=sentiment,
        confidence=confidence,
        source="local",
    )


def test_frustrated_billing_draft_is_empathetic_and_repeats_the_order(config: TriageConfig) -> None:
    """A frustrated billing ticket gets an apology, the billing wording and its order number."""
    text = "I was charged twice. Order #ORD-2847."
    draft = TemplateDrafter(config).draft(text, _decision("billing", "frustrated", "high"))
    assert "I'm sorry for the trouble" in draft.text
    assert "billing team" in draft.text
    assert "ORD-2847" in draft.text
    assert draft.source == "template"


def test_question_draft_is_brief_and_neutral(config: TriageConfig) -> None:
    """A plain question gets a short reply with no apology."""
    draft = TemplateDrafter(config).draft("Does Pro include API access?", _decision("general"))
    assert "sorry" not in draft.text.lower()
    assert len(draft.text) < 200


def test_angry_critical_draft_mentions_escalation(config: TriageConfig) -> None:
    """An angry customer with a critical ticket hears that on-call people have it."""
    draft = TemplateDrafter(config).draft(
        "Everything is down", _decision("technical", "angry", "critical")
    )
    assert "I understand how disruptive" in draft.text
    assert "escalated" in draft.text


@pytest.mark.parametrize(
    "category", ["billing", "technical", "account", "feature_request", "general"]
)
@pytest.mark.parametrize("sentiment", ["neutral", "frustrated", "angry", "satisfied"])
def test_no_template_promises_anything(config: TriageConfig, category: str, sentiment: str) -> None:
    """No shipped template promises a refund, a date or an outcome."""
    draft = TemplateDrafter(config).draft("refund me by tomorrow", _decision(category, sentiment))
    assert find_promise(draft.text) is None, draft.text


@pytest.mark.parametrize(
    "text",
    [
        "We will refund the duplicate charge.",
        "You'll receive a refund shortly.",
        "Your refund has been issued.",
        "It will be fixed by tomorrow.",
        "We guarantee this won't happen again.",
        "Expect an answer within 24 hours.",
    ],
)
def test_promises_are_detected(text: str) -> None:
    """Refund, date and outcome promises are recognised."""
    assert find_promise(text) is not None


def test_reference_is_found() -> None:
    """Order-style references are picked out of the ticket."""
    assert find_reference("charged twice, Order #ORD-2847.") == "Order #ORD-2847"
    assert find_reference("invoice 123456 is wrong") == "invoice 123456"
    assert find_reference("no reference here") is None


def test_unsure_decision_gets_the_generic_draft(config: TriageConfig) -> None:
    """Below the confidence threshold the draft does not speak for a guessed category."""
    draft = TemplateDrafter(config).draft(
        "The thing in the settings looks odd.", _decision("account", confidence=0.1)
    )
    assert "account team" not in draft.text
    assert "The right team is looking at your message" in draft.text


def test_details_are_copied_whole() -> None:
    """Invoice INV-2024-118 stays whole, with the ticket's error code, plan and start time."""
    text = (
        "Invoice INV-2024-118 on the Pro plan is wrong, and the page shows error 502 Bad Gateway"
        " since this morning."
    )
    details = find_details(text)
    assert details[0] == "Invoice INV-2024-118"
    assert "Pro plan" in details
    assert "502 Bad Gateway" in " ".join(details)
    assert "since this morning" in details


def test_a_general_message_that_asks_nothing_is_not_called_a_question(
    config: TriageConfig,
) -> None:
    """A thank-you filed as general is no "question" to "answer"; an angry one gets the apology."""
    thanks = "Thanks so much for sorting that out yesterday, you guys are great!"
    draft = TemplateDrafter(config).draft(thanks, _decision("general", sentiment="satisfied"))
    assert "question" not in draft.text
    assert "answer it" not in draft.text
    assert "Thanks for your message." in draft.text
    angry = TemplateDrafter(config).draft(
        "Your onboarding is a joke.", _decision("general", sentiment="angry")
    )
    assert "I'm sorry about this." in angry.text


def test_a_guessed_category_asks_for_nothing_of_its_own(config: TriageConfig) -> None:
    """Stray words guessed as billing (confidence 0.02) are asked for no invoice number."""
    draft = TemplateDrafter(config).draft(
        "lorem ipsum dolor", _decision("billing", confidence=0.02)
    )
    assert "The right team is looking at your message" in draft.text
    assert "invoice" not in draft.text
    assert "please share" not in draft.text


def test_a_since_clause_is_quoted_only_when_it_names_a_time() -> None:
    """'since about 09:10 UTC' is quoted whole; 'since we' and a causal 'Since I' are no detail."""
    assert "since about 09:10 UTC" in find_details("Logins fail since about 09:10 UTC.")
    assert "since March" in find_details("Exports are empty since March.")
    assert "since 4.2.1" in find_details("The app crashes since 4.2.1.")
    assert find_details("The app crashes since we upgraded.") == []
    assert find_details("Since I'm on the Pro plan, why a seat fee?") == ["Pro plan"]


def test_a_since_clause_counts_as_when_it_started(config: TriageConfig) -> None:
    """'since we upgraded' tells when it started: the draft neither quotes 'since we' nor asks."""
    text = "The app crashes since we upgraded."
    draft = TemplateDrafter(config).draft(text, _decision("technical", priority="medium"))
    assert "since we" not in draft.text
    assert "when it started" not in draft.text


def test_a_billing_draft_repeats_the_invoice_and_does_not_ask_for_it(config: TriageConfig) -> None:
    """The draft names Invoice INV-2024-118 whole and asks for no invoice number."""
    text = "Invoice INV-2024-118 charged us for 20 seats instead of 12."
    draft = TemplateDrafter(config).draft(text, _decision("billing", priority="high"))
    assert "Invoice INV-2024-118" in draft.text
    assert "(reference INV-2024)" not in draft.text
    assert "invoice or order number" not in draft.text


def test_a_billing_draft_without_a_reference_asks_for_one(config: TriageConfig) -> None:
    """With no number in the ticket, the billing draft asks for it."""
    draft = TemplateDrafter(config).draft(
        "Our last bill is too high.", _decision("billing", priority="medium")
    )
    assert "invoice or order number" in draft.text


def test_a_technical_draft_asks_only_for_what_is_missing(config: TriageConfig) -> None:
    """The error code and the start time given, only the steps are asked for."""
    text = "The export fails with error E1234 since this morning."
    draft = TemplateDrafter(config).draft(text, _decision("technical", priority="medium"))
    assert "error E1234" in draft.text
    assert "the steps that lead to it" in draft.text
    assert "when it started" not in draft.text
    assert "error message" not in draft.text
    full = "Since this morning, when I click Export, it fails with error E1234."
    complete = TemplateDrafter(config).draft(full, _decision("technical", priority="medium"))
    assert "please share" not in complete.text


def test_a_satisfied_customer_is_not_asked_for_steps(config: TriageConfig) -> None:
    """A happy customer's technical note gets no request for steps or error messages."""
    draft = TemplateDrafter(config).draft(
        "Love the new export, it works great.", _decision("technical", "satisfied")
    )
    assert "steps" not in draft.text
    assert "please share" not in draft.text.lower()


def test_a_question_names_the_team_that_will_answer(config: TriageConfig) -> None:
    """A question is answered with 'Our X team will answer', never 'someone will get back'."""
    general = TemplateDrafter(config).draft(
        "What are your support hours on weekends?", _decision("general")
    )
    assert "Our support team will answer it here" in general.text
    assert "someone" not in general.text.lower()
    billing = TemplateDrafter(config).draft(
        "Which payment methods do you accept?", _decision("billing")
    )
    assert "Our billing team will answer it here" in billing.text


def test_redacted_details_stay_redacted_and_references_stay(config: TriageConfig) -> None:
    """PII placeholders are never repeated as details; the order reference is."""
    text = redact("Order ORD-2847: reach me at jane.doe@example.com or +44 20 7946 0958.").text
    draft = TemplateDrafter(config).draft(text, _decision("billing"))
    assert "ORD-2847" in draft.text
    assert "jane.doe" not in draft.text
    assert "[EMAIL]" not in draft.text
    assert "7946" not in draft.text


def test_an_english_draft_for_another_language_is_marked_for_the_agent(
    config: TriageConfig,
) -> None:
    """A Spanish ticket with no Spanish template gets an English template, flagged as such."""
    assert english_draft_for(config, "es", "template")
    assert not english_draft_for(config, "es", "llm")
    assert not english_draft_for(config, "en", "template")
    assert not english_draft_for(config, None, "template")


@pytest.mark.parametrize(
    ("text", "details"),
    [
        (
            "We're getting a 503 on every call for the last 40 minutes.",
            ["a 503", "for the last 40 minutes"],
        ),
        ("Since 9am the API keeps returning HTTP 502.", ["Since 9am", "HTTP 502"]),
        ("Checkout throws 500s, it started about an hour ago.", ["500s", "about an hour ago"]),
        ("I was billed twice for order #A-55231.", ["order #A-55231"]),
    ],
)
def test_details_are_found_whole(text: str, details: list[str]) -> None:
    """A bare status ("a 503"), how long it has lasted, a start time and an order, whole."""
    assert find_details(text) == details


def test_an_outage_draft_repeats_its_details_and_asks_for_none_of_them(
    config: TriageConfig,
) -> None:
    """'a 503' and 'for the last 40 minutes' are quoted; no error, start time or steps asked."""
    text = "We're getting a 503 on every API call for the last 40 minutes."
    draft = TemplateDrafter(config).draft(text, _decision("technical", priority="critical"))
    assert "Thanks for the report about a 503 for the last 40 minutes." in draft.text
    assert "please share" not in draft.text


def test_a_billing_draft_with_the_order_number_asks_for_no_number(config: TriageConfig) -> None:
    """The order number (#A-55231) is quoted whole and not asked for again."""
    text = "I was billed for the annual plan twice, order #A-55231."
    draft = TemplateDrafter(config).draft(text, _decision("billing", priority="high"))
    assert "order #A-55231" in draft.text
    assert "invoice or order number" not in draft.text


def test_a_question_names_the_team_that_answers_and_asks_for_nothing(
    config: TriageConfig,
) -> None:
    """A billing question: 'Our billing team will answer it here', and no invoice number asked."""
    text = "Can I get our invoices in another currency?"
    draft = TemplateDrafter(config).draft(text, _decision("billing"))
    assert "Our billing team will answer it here." in draft.text
    assert "please share" not in draft.text
    assert "get back to you" not in draft.text


@pytest.mark.parametrize(
    "text", ["is there an API rate limit, and if so what is it", "Do you support SAML with Okta?"]
)
def test_an_unsure_question_or_one_without_a_mark_still_names_its_team(
    config: TriageConfig, text: str
) -> None:
    """A question with no '?', or whose category is unsure, is told which team will answer."""
    draft = TemplateDrafter(config).draft(text, _decision("general", confidence=0.3))
    assert "Our support team will answer it here." in draft.text
    assert "The right team" not in draft.text


def test_a_request_that_reports_no_problem_is_asked_for_no_number(config: TriageConfig) -> None:
    """'Please update the billing address' needs no invoice or order number."""
    text = "Please update the address on our account to 4 Mill Lane."
    draft = TemplateDrafter(config).draft(text, _decision("billing"))
    assert "invoice or order number" not in draft.text


@pytest.mark.parametrize(
    "text",
    [
        "Please cancel our subscription at the end of this billing period.",
        "We need 5 more seats for the new hires starting Monday.",
        "Please move us to annual billing from the next renewal.",
    ],
)
def test_a_billing_request_is_not_answered_as_a_reported_charge(
    config: TriageConfig, text: str
) -> None:
    """A cancellation or a seat order describes no charge: the draft must not say it does."""
    draft = TemplateDrafter(config).draft(text, _decision("billing"))
    assert "charges you describe" not in draft.text
    assert "reporting this" not in draft.text
    assert "billing team" in draft.text


def test_an_incident_with_a_question_mark_is_no_question(config: TriageConfig) -> None:
    """A leaked key asked about ('Could you rotate it?') gets the incident's words, no 'answer'."""
    text = "Our API key was pushed to a public repo. Could you rotate it?"
    draft = TemplateDrafter(config).draft(text, _decision("technical", priority="critical"))
    assert "answer it here" not in draft.text
    assert "escalated this to the people on call" in draft.text


@pytest.mark.parametrize(
    ("text", "category", "sentence"),
    [
        (
            "Since 9am we get 500 on every page of the dashboard.",
            "technical",
            "Thanks for the report about error 500 since 9am.",
        ),
        (
            "We merged two projects yesterday and about 400 files are gone.",
            "technical",
            "Thanks for the report about what happened yesterday.",
        ),
        (
            "Invoice INV-2024-118 charged us for 20 seats instead of 12.",
            "billing",
            "Thanks for letting us know about Invoice INV-2024-118.",
        ),
        (
            "We were billed EUR 1,200.00 on the Business plan, order #A-55231.",
            "billing",
            "Thanks for letting us know about EUR 1,200.00, the Business plan and order #A-55231.",
        ),
        (
            "The report at https://app.example.com/reports/42 shows error E1234 since 2024-03-01.",
            "technical",
            "Thanks for the report about https://app.example.com/reports/42 and error E1234 since"
            " 2024-03-01.",
        ),
        (
            "Login fails with ERR_TOKEN_EXPIRED at 10:30 every day.",
            "account",
            "Thanks for letting us know about ERR_TOKEN_EXPIRED at 10:30.",
        ),
        (
            "Exports have been empty for the last 3 days.",
            "technical",
            "Thanks for the report about what you've seen for the last 3 days.",
        ),
        (
            "Our deletion request from 2 weeks ago still has not been processed.",
            "technical",
            "Thanks for the report about what happened 2 weeks ago.",
        ),
        (
            "It would be great to have dark mode on the Pro plan.",
            "feature_request",
            "Thanks for the suggestion about the Pro plan.",
        ),
    ],
)
def test_details_are_quoted_whole_inside_a_sentence(
    config: TriageConfig, text: str, category: str, sentence: str
) -> None:
    """Codes, ids, dates, times, amounts, plans and links read as one sentence, none in brackets."""
    draft = TemplateDrafter(config).draft(text, _decision(category, priority="medium"))
    assert sentence in draft.text, draft.text
    assert "(" not in draft.text
    for detail in find_details(text):
        assert detail in draft.text or detail.lower() in draft.text


def test_a_satisfied_customer_is_neither_asked_for_steps_nor_told_about_a_time(
    config: TriageConfig,
) -> None:
    """Thanks mentioning yesterday: no steps, no 'what happened yesterday'."""
    text = "The sync works again since yesterday, thanks a lot!"
    draft = TemplateDrafter(config).draft(text, _decision("technical", "satisfied"))
    assert "steps" not in draft.text
    assert "what happened" not in draft.text
    assert "please share" not in draft.text


def test_a_given_error_code_and_start_time_are_not_asked_for(config: TriageConfig) -> None:
    """'500' and 'since 9am' are quoted; the draft asks only for the steps."""
    text = "Since 9am we get 500 on every page of the dashboard."
    draft = TemplateDrafter(config).draft(text, _decision("technical", priority="medium"))
    assert "error message" not in draft.text
    assert "when it started" not in draft.text


def test_a_slack_link_is_repeated_as_its_address_not_with_its_label() -> None:
    """`<https://a|https://b>` as Slack sends a labeled link: the detail is the address alone."""
    text = "please see <https://evil.example.com|https://yourcompany.com/support> for details"
    assert find_details(text) == ["https://evil.example.com"]
