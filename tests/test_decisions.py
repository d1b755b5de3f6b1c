"""Decisions on varied hand-written tickets: outages said otherwise, tone of repeats, how-tos."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.cascade import Pipeline, build_pipeline
from routing.config import load_config
from routing.cues import Cues, cue_pattern, normalize_for_cues
from routing.embedding_cache import CachingEmbedder
from routing.local import PLAIN_SENTIMENT_BONUS
from routing.models import Ticket
from routing.rules import without_config_credentials

ALTERNATIVE = Path(__file__).resolve().parents[1] / "configs" / "alternative.toml"


@pytest.fixture
def pipeline(embedder: CachingEmbedder) -> Pipeline:
    return build_pipeline(load_config(), embedder=embedder)


def _matches(cue: str, text: str) -> bool:
    return cue_pattern(cue).search(normalize_for_cues(text)) is not None


def test_punctuation_and_emoji_cues_may_touch_the_word_before() -> None:
    """'emails??' and 'thanks🙏' carry their cue; a word cue still needs its word boundaries."""
    assert _matches("[??|stuck]", "how do I turn off these emails??")
    assert _matches("[🙏|😊]", "thanks🙏")
    assert _matches("[!!|stuck]", "I am stuck")
    assert not _matches("[!!|stuck]", "it came unstuck")
    assert not _matches("[??|stuck]", "is this right?")


@pytest.mark.parametrize(
    "text",
    [
        "Our booking site has been down for an hour, patients are calling us instead.",
        "FYI the whole platform seems to be offline for our drivers this morning.",
        "Every order in our shop fails at checkout since 10:00, we are losing sales.",
        "None of the 40 nurses on shift can open the patient schedule today.",
        "The overnight import overwrote our price list, hundreds of products now show 0.00.",
        "Our entire support team is sitting idle, the app shows an error on every screen.",
    ],
)
async def test_outages_and_data_loss_in_other_words_are_critical_and_paged(
    pipeline: Pipeline, text: str
) -> None:
    """Down, offline, every order failing, nobody of a group able to work, data overwritten."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize("path", [None, ALTERNATIVE])
def test_both_configs_know_the_wider_outage_words(path: Path | None) -> None:
    """The alternative config's paging level gets the same outage words as the default's."""
    config = load_config(path)
    top = len(config.priorities) - 1
    found = Cues(config.priorities).match("Our store has been down since 9, losing sales.").found
    assert found[top]


@pytest.mark.parametrize(
    "text",
    [
        "Could the phone app work in offline mode? Our drivers often lose signal.",
        "Seriously, is there really no way to print a board? Ridiculous for a paid tool.",
    ],
)
async def test_requests_that_mention_offline_or_complain_are_not_urgent(
    pipeline: Pipeline, text: str
) -> None:
    """An offline-mode request or a how-to said as a complaint is low and pages nobody for it."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "low"
    assert "critical_priority" not in {reason.code for reason in triage.escalation.reasons}


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("How long do you keep archived files before deleting them?", "neutral"),
        ("I asked twice already: how do I stop the daily digest emails??", "frustrated"),
        ("You charged me twice for March, two payments of $29.", "frustrated"),
        ("The sync broke again, third time this month.", "frustrated"),
    ],
)
async def test_only_a_repeated_or_blocking_problem_reads_as_frustrated(
    pipeline: Pipeline, text: str, sentiment: str
) -> None:
    """'How long do you keep' is calm; asked twice, charged twice, broken again frustrate."""
    assert (await pipeline.triage(Ticket(text=text))).decision.sentiment == sentiment


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Which file types can I attach to a comment, and how big can they be?", "general"),
        ("Please remove Jonas Weber from our workspace, he has left the company.", "account"),
        ("We'd like to move from monthly to yearly billing at the next renewal.", "billing"),
    ],
)
async def test_an_ordinary_request_is_decided_without_a_human(
    pipeline: Pipeline, text: str, category: str
) -> None:
    """A plain how-to, a user removal or a plan change is routed with confidence, no human."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == category
    assert not triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "Never mind, my colleague sorted it out.",
        "Got it, thank you very much for the quick answer.",
    ],
)
async def test_a_colleague_s_fix_or_thanks_for_an_answer_needs_no_action(
    pipeline: Pipeline, text: str
) -> None:
    """Sorted out by a colleague, or thanks for the answer: no page, no ticket to work on."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.no_action is not None
    assert not triage.escalation.needs_human


def test_a_paging_ticket_without_words_of_feeling_gets_no_calm_bonus(
    pipeline: Pipeline,
) -> None:
    """The calm default's bonus is for plain messages: an outage's tone is left to the examples."""
    local = pipeline._local
    assert local is not None
    text = "Nobody at our company can open the app since 8am, every page returns an error."
    query = local.embed(text)
    similarities = local.evidence(query, text).similarities
    plain = local._sentiment(query, similarities, text, priority="low")
    paging = local._sentiment(query, similarities, text, priority="critical")
    assert plain.label == paging.label == "neutral"
    assert plain.margin - paging.margin == pytest.approx(PLAIN_SENTIMENT_BONUS)


@pytest.mark.parametrize(
    "text",
    [
        "You billed us for 60 seats but only 41 people use it. Can we get the difference back?",
        "Our March invoice charged us for the Scale plan instead of Starter, can you fix it?",
    ],
)
async def test_money_taken_wrongly_is_high_even_when_asked_as_a_question(
    pipeline: Pipeline, text: str
) -> None:
    """A question's wording ("can we ...?") does not outweigh the overcharge it reports."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "high"


@pytest.mark.parametrize(
    "text",
    [
        "Still can't open the reports page on my laptop. Third day now and nobody answers.",
        "Nobody has replied to my ticket in a week and I still can't export my timesheets.",
        "I've lost hours on this: every time I save, the tag list resets to the old one.",
        "Our nightly export job gets 401 Unauthorized since we rotated the key.",
        "I took over from Priya as office manager and someone should tell me our plan. No rush.",
    ],
)
def test_words_of_scope_used_for_something_else_are_not_an_outage(text: str) -> None:
    """'Nobody answers', 'nobody has replied', 'lost hours', 'every time', '401 Unauthorized'."""
    config = load_config()
    found = Cues(config.priorities).match(text).found
    assert found[[level.name for level in config.priorities].index("critical")] == ()


@pytest.mark.parametrize(
    "text",
    [
        "The statement PDF we downloaded lists another merchant's payouts with their bank details.",
        "Your verification emails are sent to the wrong customers: ours got a stranger's code.",
        "The revenue dashboard shows figures for a company called Northwind Foods. That is not us.",
        "FYI none of our agents are getting any notification emails from you since this morning.",
    ],
)
async def test_data_of_another_company_and_mail_to_the_wrong_people_page(
    pipeline: Pipeline, text: str
) -> None:
    """Another company's data on a document or screen is a security incident: critical."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "The statement PDF we downloaded lists another merchant's payouts with their bank details.",
        "FYI none of our agents are getting any notification emails from you since this morning.",
        "Every product page in our shop returns a 404 and we have had zero orders since noon.",
    ],
)
async def test_the_alternative_config_pages_the_same_incidents(
    embedder: CachingEmbedder, text: str
) -> None:
    """The alternative config's paging level has the default's new incident words."""
    pipeline = build_pipeline(load_config(ALTERNATIVE), embedder=embedder)
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "high"
    assert triage.escalation.needs_human


def _critical_cues(text: str) -> tuple[str, ...]:
    config = load_config()
    found = Cues(config.priorities).match(text).found
    return found[[level.name for level in config.priorities].index("critical")]


@pytest.mark.parametrize(
    "text",
    [
        "Nobody at the warehouse has access since your update this morning, nobody answers.",
        "Hackers took over our store account overnight and changed the payout details.",
        "Somebody took over our admin account and we can't get back in.",
        "Someone took over as owner of our workspace without permission.",
        "Seit heute früh sind alle Kundendaten verschwunden.",
        "Vediamo le fatture di un altro cliente nel nostro pannello.",
        "全ての利用者がログインできません。",
        "No sales since 10am, the checkout button does nothing.",
        "I deleted all our client records by mistake, not on purpose!",
    ],
)
def test_outages_and_takeovers_beside_the_new_normalisations_page(text: str) -> None:
    """'Nobody has access', an account taken over by a stranger, the ja/de/it cues with a verb."""
    assert _critical_cues(text) != ()


@pytest.mark.parametrize(
    "text",
    [
        "How do I look up orders from a customer called Jane Smith?",
        "No bookings today yet, can we run a discount to get some?",
        "Zero orders so far today, but we're closed for the holiday. Can I pause the shop?",
        "すべての利用者にお知らせを送るにはどうすればいいですか\uff1f",
        "Come posso assegnare i progetti di un altro utente a me?",
        "Die Tabelle ist leer, sobald ich alle Filter auswähle.",
        "I wiped all the demo contacts on purpose, how do I stop the import adding them back?",
        "Our new office manager took over from Sam as admin, how do we change the billing contact?",
    ],
)
def test_harmless_uses_of_the_new_critical_words_do_not_page(text: str) -> None:
    """A customer called X, no bookings yet today, a how-to about all users, an empty filter."""
    assert _critical_cues(text) == ()


@pytest.mark.parametrize(
    "text",
    [
        "all duplicate contacts were deleted as we asked",
        "All duplicate contacts were deleted as we asked, thanks for the quick cleanup",
        "We asked you to delete the old test projects and they were all deleted as requested.",
    ],
)
async def test_a_deletion_done_as_the_customer_asked_pages_no_one(
    pipeline: Pipeline, text: str
) -> None:
    """A clean-up the customer asked for, told as done, is no data loss: not critical, no page.

    (An unsure category may still ask a person to look; that is not a data-loss page.)
    """
    assert _critical_cues(text) == ()
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority != "critical"
    codes = {reason.code for reason in triage.escalation.reasons}
    assert codes.isdisjoint({"critical_priority", "impact_cue", "forced_keyword"})


def test_a_deletion_not_as_asked_is_still_data_loss() -> None:
    """'Deleted, not as we asked' keeps the data-loss cues."""
    assert _critical_cues("All our contacts were deleted, not as we asked!") != ()


@pytest.mark.parametrize(
    "text",
    [
        "How can I see which cards were declined in March?",
        "Where do I see which of our members are locked out?",
        'Quick question, what does "access denied" mean on the admin page?',
        "How do I set reminders to go out on Friday for unpaid invoices?",
    ],
)
async def test_a_question_about_where_to_see_words_of_impact_stays_low(
    pipeline: Pipeline, text: str
) -> None:
    """'Which payments were declined?' asks to see something; nothing is declined right now."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "low"


async def test_a_lookup_question_told_with_a_blocker_is_not_lowered(pipeline: Pipeline) -> None:
    """Told beside 'I can't log in since yesterday', the same question is a blocked user's."""
    text = "Since yesterday I can't log in, where do I see if my account is locked out?"
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "high"


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        # The customer's own choice given as the cause: a question about it, not an outage.
        (
            "Nobody on our team gets the monthly summary because we turned it off.",
            {"low", "medium"},
        ),
        (
            "Since I disabled notifications, none of our agents receive the alerts.",
            {"low", "medium"},
        ),
        # A request for a list: its words of impact are the filter.
        ("Can we get a list of all invoices that failed to send?", {"low"}),
        ("Do you have an export of every account that is locked out?", {"low"}),
        # What words mean, asked with or without a question mark.
        ("What does the 'payment blocked' badge mean on the orders page?", {"low"}),
        ("what does 'sync failed' mean", {"low", "medium"}),
        # A failure only in a preview or staging copy is not production down.
        ("All checkout pages return 500 on staging only, production is fine", {"medium", "high"}),
    ],
)
async def test_a_choice_a_list_a_meaning_or_a_preview_copy_is_no_incident(
    pipeline: Pipeline, text: str, allowed: set[str]
) -> None:
    """Questions about words and the customer's own doing are not reports of an incident."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority in allowed
    assert "impact_cue" not in {reason.code for reason in triage.escalation.reasons}


@pytest.mark.parametrize(
    "text",
    [
        "None of our users are getting emails since this morning, we changed nothing.",
        "Is there a list of everyone who logged in from an unknown location? Someone got in.",
        "Where can I see who deleted all our customer records?",
        "Every product page shows 404 on the live site, preview mode is fine",
        "The whole site is down for everyone since we switched on the new theme",
    ],
)
async def test_the_same_words_told_as_an_incident_still_page(pipeline: Pipeline, text: str) -> None:
    """Not the customer's choice, not only a preview, a list that names an intruder: paged."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.escalation.needs_human
    assert triage.decision.priority == "critical" or "impact_cue" in {
        reason.code for reason in triage.escalation.reasons
    }


async def test_a_quoted_error_message_does_not_decide_the_category(pipeline: Pipeline) -> None:
    """'"refund_policy is not defined" when I click save' is a bug: a name in code is no topic."""
    text = 'When I click save I get "refund_policy is not defined" in the console'
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "technical"
    charged = await pipeline.triage(Ticket(text='I was charged twice, it says "refund pending"'))
    assert charged.decision.category == "billing"
    # Unquoted too: a name in code decides no category by the hotwords.
    assert pipeline.rules("Save fails: refund_policy is not defined").category is None
    assert pipeline.rules("Where is my refund?").category == "billing"


@pytest.mark.parametrize(
    "text",
    [
        "Connection fails with postgres://app:password@db:5432/orders since the deploy",
        "password: hunter2 in config.yml, the import job errors out with timeout",
        "our .env has DB_PASSWORD=password and the worker crashes on start",
    ],
)
async def test_a_password_in_a_connection_string_or_config_is_no_account_problem(
    pipeline: Pipeline, text: str
) -> None:
    """A password written as a setting names a config: the rest of the message decides."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.category == "technical"


@pytest.mark.parametrize(
    "text",
    ["db pwd: s3cret in config.yml", "passwd: s3cret in the settings file", "DB_PWD=s3cret"],
)
def test_every_spelling_of_a_password_setting_is_blanked(text: str) -> None:
    """Keys spelt passwd or pwd name a config as password does ('pwd: x in config.yml')."""
    assert "s3cret" not in without_config_credentials(text)


async def test_a_password_told_as_the_customers_own_is_still_an_account_problem(
    pipeline: Pipeline,
) -> None:
    """'My password: x is refused' is a login problem, config words or none."""
    triage = await pipeline.triage(Ticket(text="My password: hunter2 is refused when I log in"))
    assert triage.decision.category == "account"
