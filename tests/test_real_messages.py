"""The offline default on the kinds of message the dev sets showed it getting wrong (issue 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding import MiniLMEmbedder
from routing.models import Ticket
from tests.slack_harness import LANGUAGES

ALTERNATIVE = Path(__file__).resolve().parents[1] / "configs" / "alternative.toml"


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


@pytest.fixture(scope="module")
def pipeline(embedder: MiniLMEmbedder, config: TriageConfig) -> Pipeline:
    return build_pipeline(config, embedder=embedder, languages=LANGUAGES)


def _codes(triage_reasons: tuple[object, ...]) -> list[str]:
    return [getattr(reason, "code", "") for reason in triage_reasons]


# --- severity: calm outages, data lost at scale, security told as billing or logins ------------


@pytest.mark.parametrize(
    "text",
    [
        "hi, the card readers in all 9 of our cafes stopped talking to your servers at lunch, "
        "nobody cant take payments",
        "About 120 people in our call centre are affected, the softphone panel won't load.",
        "Morning, small thing maybe: the whole portal is a blank page for us since the deploy.",
        "Just so you know, the reminder SMS messages are not going out at all since yesterday.",
        "We think your US region has issues, dashboards time out for everybody here. No rush.",
        "hello, the scheduling page stopped working for everyone in our clinic about an hour ago",
        "FYI the inbox view isn't loading for anybody in our company since 8am, just a spinner.",
    ],
)
async def test_a_calmly_told_outage_is_critical_and_pages(pipeline: Pipeline, text: str) -> None:
    """Scope words (all our cafes, 120 people, the whole portal, not at all) make it critical."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "Most of our supplier records are missing since the merge ran last night.",
        "The cleanup job erased three weeks of shipping notes from every project.",
    ],
)
async def test_data_lost_at_scale_is_critical(pipeline: Pipeline, text: str) -> None:
    """Records missing in bulk, or weeks of notes erased, are data loss: critical."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "The invoice email on our account now goes to an address none of us recognise, and all "
        "last year's receipts were downloaded.",
        "We got three login codes this morning that nobody on our team requested.",
    ],
)
async def test_a_security_incident_told_as_billing_or_login_pages_the_account_team(
    pipeline: Pipeline, text: str
) -> None:
    """Changes nobody made, codes nobody asked for: a takeover, critical, the account team's."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.decision.category == "account"
    assert triage.decision.team == "account_management"
    assert triage.escalation.needs_human


async def test_another_companys_invoices_page_as_critical(pipeline: Pipeline) -> None:
    """Another company's invoices, 'not ours', page as critical (the category may stay billing)."""
    text = "The billing page shows invoices from a company called Acme Freight, they are not ours."
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


async def test_a_question_about_billing_details_stays_low(pipeline: Pipeline) -> None:
    """Asking how to change the invoice email is no incident: low, nobody paged."""
    triage = await pipeline.triage(Ticket(text="How do I change the email our invoices go to?"))
    assert triage.decision.priority == "low"
    assert "critical_priority" not in _codes(triage.escalation.reasons)


# --- "not urgent" -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Not urgent: could you add our PO number to the next invoice?",
        "nothing urgent, but the footer of the reports has a typo in our name",
    ],
)
async def test_not_urgent_lowers_urgency_and_forces_no_human(pipeline: Pipeline, text: str) -> None:
    """A negated 'urgent' forces no human, and the request stays low or medium."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.rules.forced_keywords == ()
    assert "forced_keyword" not in _codes(triage.escalation.reasons)
    assert triage.decision.priority in ("low", "medium")


async def test_urgent_without_a_negation_still_forces_a_human(pipeline: Pipeline) -> None:
    """'Urgent' said plainly keeps its page, next to a 'not' elsewhere in the message."""
    triage = await pipeline.triage(
        Ticket(text="This is not a test, it is urgent: the invoices fail")
    )
    assert triage.rules.forced_keywords == ("urgent",)
    assert triage.escalation.needs_human


# --- emoji alone ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["😂", "👀", ":joy:", "🙌🏽"])
async def test_an_emoji_alone_needs_no_action_and_goes_to_no_billing(
    pipeline: Pipeline, text: str
) -> None:
    """Any emoji alone that is not upset needs no action: no page, the fallback team's category."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.no_action == "emoji"
    assert triage.decision.category == "general"
    assert triage.decision.team == "support"
    assert triage.decision.priority == "low"
    assert not triage.escalation.needs_human


async def test_an_upset_emoji_alone_goes_to_a_human_who_asks(pipeline: Pipeline) -> None:
    """'😡' alone says something is wrong without what: vague, a human, a draft that asks."""
    triage = await pipeline.triage(Ticket(text="😡"))
    assert triage.decision.no_action is None
    assert "vague_request" in _codes(triage.escalation.reasons)
    assert "what you need help with" in triage.draft.text


# --- two asks -------------------------------------------------------------------------------------


async def test_two_announced_asks_joined_by_and_go_to_both_teams_first_ask_leading(
    pipeline: Pipeline,
) -> None:
    """After 'Two things:', each ', and ...' is an ask; the first one's team leads the ticket."""
    text = (
        "Two things: please invite Omar to our workspace as an admin, and our last invoice "
        "charged us for 14 seats instead of 9."
    )
    triage = await pipeline.triage(Ticket(text=text))
    teams = {part.team for part in triage.decision.parts}
    assert teams == {"account_management", "billing"}
    assert triage.decision.team == "account_management"
    assert set(triage.escalation.teams) == {"account_management", "billing"}
    assert "close_call" not in _codes(triage.escalation.reasons)


async def test_a_problem_and_a_wish_joined_by_and_it_would_be_great_are_two_asks(
    pipeline: Pipeline,
) -> None:
    """'..., and it would be great if ...' starts a feature request for the product team."""
    text = (
        "The invoice PDF download gives me an error every time, and it would be great if the "
        "app had a dark mode."
    )
    triage = await pipeline.triage(Ticket(text=text))
    teams = [part.team for part in triage.decision.parts]
    assert "product" in teams
    assert teams[0] != "product"
    assert triage.decision.team == teams[0]


# --- the alternative config ---------------------------------------------------------------------


async def test_the_alternative_config_pages_a_calm_outage_and_a_security_incident(
    embedder: MiniLMEmbedder,
) -> None:
    """The alternative taxonomy's paging level has the same scope and security words."""
    pipeline = build_pipeline(load_config(ALTERNATIVE), embedder=embedder, languages=LANGUAGES)
    for text in (
        "Hi, the ordering screen in all 6 of our shops stopped working an hour ago.",
        "We keep getting password reset emails nobody asked for, for every admin on the account.",
    ):
        triage = await pipeline.triage(Ticket(text=text))
        assert triage.decision.priority == "high", text
        assert triage.escalation.needs_human, text


# --- categories: one rule for security, and the vocabulary of APIs, SSO and feature asks --------


@pytest.mark.parametrize(
    "text",
    [
        "Somebody got into my account overnight, changed the password and the recovery email.",
        "There's a sign in to our owner account from an IP in Singapore, and none of us did it.",
        "A contractor we offboarded last month can still log in and opened our reports today.",
    ],
)
async def test_an_account_takeover_is_the_account_teams_critical_incident(
    pipeline: Pipeline, text: str
) -> None:
    """Someone inside an account who should not be: account, critical, paged."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "account"
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "Our clients' portal shows a different firm's contracts and addresses to our users.",
        "Exported report links open our whole customer list for anyone with the URL.",
        "a teammate committed our api secret to a public bitbucket repo, please rotate it",
    ],
)
async def test_data_exposed_by_the_product_is_engineerings_critical_incident(
    pipeline: Pipeline, text: str
) -> None:
    """Another firm's data, a public link, a leaked API secret: technical, critical, paged."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "technical"
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "The PayPal integration returns 'invalid payload' for every payment notification.",
        "Our webhook endpoint gets a 403 from you on each delivery since this morning.",
    ],
)
async def test_a_failing_api_or_integration_is_technical_whatever_it_carries(
    pipeline: Pipeline, text: str
) -> None:
    """An integration or webhook that errors is engineering's, even when it carries payments."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "technical"


@pytest.mark.parametrize(
    "text",
    [
        "how do i give a freelancer permission to edit one board only",
        "Can we connect Okta so our people sign in with their company login?",
    ],
)
async def test_permissions_and_single_sign_on_are_the_account_teams(
    pipeline: Pipeline, text: str
) -> None:
    """Per-person access and the identity provider's words (Okta, SAML) are account's."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "account"
    assert triage.decision.priority == "low"


@pytest.mark.parametrize(
    "text",
    [
        "Any chance you could build a timeline view for the mobile app?",
        "We'd like to be able to pin comments to the top of a task.",
        "Why can't reports be emailed on a schedule? That really should be a feature.",
    ],
)
async def test_a_feature_asked_without_please_add_is_a_feature_request(
    pipeline: Pipeline, text: str
) -> None:
    """'Any chance you could build', 'we'd like to be able to', 'should be a feature': product."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "feature_request"
    assert triage.decision.priority == "low"


async def test_a_question_about_deleted_records_is_no_data_loss(pipeline: Pipeline) -> None:
    """'Deleted records' named in a question is no loss: not critical, nobody paged."""
    text = "Can the export include deleted records too, or only the active ones?"
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority != "critical"
    assert not triage.escalation.needs_human


async def test_records_wiped_by_a_job_are_still_data_loss(pipeline: Pipeline) -> None:
    """Records wiped, said as a loss, stay critical once the question's reading is narrowed."""
    text = "The merge job wiped 3,400 supplier records from our account this morning."
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "Please cancel our plan when the contract ends in March.",
        "We'd like to cancel our subscription at renewal, please confirm by email.",
    ],
)
async def test_a_plain_cancellation_is_not_angry(pipeline: Pipeline, text: str) -> None:
    """Asking to cancel is a request, calm: neutral and low."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.sentiment == "neutral"
    assert triage.decision.priority == "low"


async def test_a_threat_to_cancel_is_angry(pipeline: Pipeline) -> None:
    """'We're cancelling' said over an unfixed problem is a threat: angry."""
    text = "Third week with broken exports. We're cancelling if this isn't fixed by Friday."
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.sentiment == "angry"


async def test_a_calm_forwarded_outage_with_a_signature_pages(pipeline: Pipeline) -> None:
    """A forwarded email with a signature, connection refused for the whole office: paged."""
    text = (
        "Hi,\n\nForwarding from our IT desk: the app gives 'connection refused' for the whole "
        "office since 10:00.\n\nKind regards,\nPaul Meyer\nFacilities | Meyer & Sons\n"
        "+49 30 000000"
    )
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "technical"
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.fixture(scope="module")
def alternative(embedder: MiniLMEmbedder) -> Pipeline:
    return build_pipeline(load_config(ALTERNATIVE), embedder=embedder, languages=LANGUAGES)


async def test_the_alternative_config_files_a_security_incident_as_a_paged_bug(
    alternative: Pipeline,
) -> None:
    """With no account category, a takeover is core engineering's bug, at the paging level."""
    text = "There was a login to our admin account from an IP in Peru and none of us did this."
    triage = await alternative.triage(Ticket(text=text))
    assert triage.decision.category == "bug"
    assert triage.decision.priority == "high"
    assert triage.escalation.needs_human


async def test_the_alternative_config_keeps_an_api_question_low(alternative: Pipeline) -> None:
    """'Does your API support ...' is a how-to question there too: low, nobody paged."""
    text = "Does your API let us filter webhooks by project?"
    triage = await alternative.triage(Ticket(text=text))
    assert triage.decision.priority == "low"
    assert not triage.escalation.needs_human
