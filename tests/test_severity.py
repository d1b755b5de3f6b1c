"""Severity from impact and scope, per-field confidence, tone, and the fallback team."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.render import card_message
from routing.cascade import Pipeline, build_pipeline
from routing.config import load_config
from routing.cues import Cues, cue_pattern, normalize_for_cues
from routing.desk import TicketCard
from routing.embedding_cache import CachingEmbedder
from routing.escalation import escalate
from routing.models import Decision, Escalation, RuleMatch, Ticket

ALTERNATIVE = Path(__file__).resolve().parents[1] / "configs" / "alternative.toml"


@pytest.fixture
def pipeline(embedder: CachingEmbedder) -> Pipeline:
    return build_pipeline(load_config(), embedder=embedder)


def _matches(cue: str, text: str) -> bool:
    return cue_pattern(cue).search(normalize_for_cues(text)) is not None


def test_cue_syntax_gaps_choices_and_parts() -> None:
    """`*` spans up to three words, [a|b] picks a phrase, ' + ' needs every part, in any order."""
    assert _matches("lost * data", "we lost all of our data")
    assert _matches("lost * data", "we lost data")
    assert not _matches("lost * data", "we lost the keys to the old data")
    assert _matches("[nobody|no one] + [can't|cannot]", "Cannot sign in, no one here")
    assert not _matches("[nobody|no one] + [can't|cannot]", "nobody complained")
    # Word boundaries, plurals, curly apostrophes and emoji, the rules' way.
    assert _matches("outage", "two OUTAGES this week")
    assert not _matches("leak", "a leaky abstraction")
    assert _matches("can't", "I can\N{RIGHT SINGLE QUOTATION MARK}t")
    assert _matches("[😡|🤬]", "no podemos trabajar 😡")


def test_cue_numbers_and_contractions_typed_without_apostrophes() -> None:
    """`#` is a number of ten or more; "cant" and "doesnt" read as "can't" and "doesn't"."""
    assert _matches("# [people|users] + [affected]", "About 80 people are affected")
    assert _matches("# [records]", "4,000 records are gone")
    assert not _matches("# [people|users] + [affected]", "2 people affected")
    assert not _matches("# [records]", "version 2.14 records")
    assert _matches("[can't|cannot] * [work]", "cant work since noon")
    assert _matches("[doesn't load]", "the page doesnt load")
    assert not _matches("[can't]", "a decant of wine")


def test_cues_report_the_words_found_per_label() -> None:
    """A match names the words of the ticket that matched, per label in config order."""
    config = load_config()
    found = Cues(config.priorities).match("Everyone on our team gets errors since 9am").found
    critical = config.priority_names.index("critical")
    assert found[critical] == ("everyone + errors",)
    assert found[0] == ()


def test_cues_built_again_compile_nothing_and_find_the_same_words() -> None:
    """Escalation builds a field's Cues per ticket: the second build reuses every compiled cue."""
    config = load_config()
    text = "Everyone on our team gets errors since 9am, we cannot log in"
    first = Cues(config.priorities).match(text)
    misses = cue_pattern.cache_info().misses
    second = Cues(config.priorities).match(text)
    assert cue_pattern.cache_info().misses == misses
    assert second == first
    assert any(first.hits())


def test_the_words_a_cue_needs_rule_out_only_cues_that_cannot_match() -> None:
    """Cues skip a pattern whose words are not in the text: every match found is still found."""
    for config in (load_config(), load_config(ALTERNATIVE)):
        fields = (config.priorities, config.categories, config.sentiments)
        cues = [cue for labels in fields for label in labels for cue in label.cues]
        texts = [
            *cues,  # each cue's own words: a match of that cue at least
            "About 80 people are affected and nobody can't log in 😡",
            "4,000 records are gone, the export doesnt load since 9am",
            "Everyone on our team gets errors since 9am, we cannot log in",
            "How do I change the address on my invoice?",
        ]
        for labels in fields:
            matcher = Cues(labels)
            for text in texts:
                normalized = normalize_for_cues(text)
                expected = tuple(
                    tuple(
                        " + ".join(group for group in match.groups() if group)
                        for cue in label.cues
                        if cue.strip()
                        and (match := cue_pattern(cue).search(normalized)) is not None
                    )
                    for label in labels
                )
                assert matcher.match(text).found == expected, text


@pytest.mark.parametrize(
    "text",
    [
        "Our whole team gets 502 Bad Gateway on the dashboard. Nothing loads at all, production "
        "is affected.",
        "Nobody at our company can sign in this morning, SSO just spins and times out. 300 "
        "people are blocked.",
        "The mobile app shows other customers' invoices to our users",
        "Good afternoon. It seems every record in our archive was erased by last night's job.",
    ],
)
async def test_outages_data_loss_and_security_are_critical_and_paged(
    pipeline: Pipeline, text: str
) -> None:
    """Impact and scope decide: an outage, lost data or another customer's data pages a human."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human
    assert "critical_priority" in {reason.code for reason in triage.escalation.reasons}


async def test_a_calmly_worded_outage_is_critical(pipeline: Pipeline) -> None:
    """No shouting, no keyword: 'none of our users can load the app' is still critical."""
    text = "Hi there, just letting you know that none of our users can load the app since noon."
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.decision.sentiment in ("neutral", "frustrated")
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "Hi, just a heads-up, none of our users have been able to log in since about 9am.",
        "FYI nobody has been able to sign in this morning, the dashboard shows a blank page.",
    ],
)
async def test_a_calm_outage_in_perfect_tense_is_critical(pipeline: Pipeline, text: str) -> None:
    """'none of our users have been able to log in' is the same outage as 'can log in'."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


async def test_an_angry_how_to_is_low_and_pages_nobody(pipeline: Pipeline) -> None:
    """Tone does not raise priority: an angry how-to question is low, yet read as angry."""
    text = "This is ridiculous. How do I change the date format in reports?? Useless docs."
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "low"
    assert triage.decision.sentiment == "angry"
    assert "critical_priority" not in {reason.code for reason in triage.escalation.reasons}


@pytest.mark.parametrize(
    ("text", "priority", "sentiment"),
    [
        ("What are your support hours on weekends?", "low", "neutral"),
        ("We need 5 more seats", "low", "neutral"),
        ("Thanks for the quick fix yesterday, everything works great now!", "low", "satisfied"),
        ("La plataforma no funciona otra vez y nadie responde. 😡", None, "angry"),
        ("I've reported this export bug three times and it's still broken.", None, "frustrated"),
    ],
)
async def test_plain_messages_get_the_tone_an_agent_would_give(
    pipeline: Pipeline, text: str, priority: str | None, sentiment: str
) -> None:
    """Questions are neutral and low, thanks satisfied, repeats frustrated, angry emoji angry."""
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.sentiment == sentiment
    if priority is not None:
        assert decision.priority == priority


async def test_every_field_has_a_confidence_that_says_when_it_guesses(pipeline: Pipeline) -> None:
    """Each field has a confidence: a clear outage is surer of its priority than a vague note."""
    clear = (
        await pipeline.triage(Ticket(text="Every API call returns 503, we are down."))
    ).decision
    vague = (await pipeline.triage(Ticket(text="hmm, the thing from before"))).decision
    for decision in (clear, vague):
        confidences = decision.all_confidences()
        assert set(confidences) == {"category", "priority", "sentiment", "team"}
        assert all(0.0 <= value <= 1.0 for value in confidences.values())
        assert confidences["category"] == decision.confidence
    assert clear.confidence_of("priority") > vague.confidence_of("priority")


def test_classify_json_prints_per_field_confidences(capsys: pytest.CaptureFixture[str]) -> None:
    """`classify --json` adds confidences for category, priority, sentiment and team."""
    assert main(["classify", "--json", "I was charged twice this month"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    confidences = record["confidences"]
    assert set(confidences) == {"category", "priority", "sentiment", "team"}
    assert confidences["category"] == record["confidence"]
    assert all(0.0 <= value <= 1.0 for value in confidences.values())


def _decision(level: str, **confidences: float) -> Decision:
    return Decision(
        category="technical",
        priority=level,
        team="engineering",
        sentiment="neutral",
        confidence=confidences.pop("category", 0.95),
        confidences=confidences,
        source="local",
        category_scores={"technical": 0.9, "general": 0.1},
    )


def _card(decision: Decision) -> TicketCard:
    return TicketCard(
        ticket_id=7,
        team="engineering",
        channel="C0ENGINEER",
        emoji=":large_orange_circle:",
        text="The export fails",
        author="U0CUSTOMER",
        permalink=None,
        decision=decision,
        escalation=Escalation(needs_human=False),
        draft=None,
        draft_status=None,
        decided_by=None,
    )


def test_the_team_post_names_the_unsure_fields_only() -> None:
    """The post's headline lists fields whose confidence is low, and none when all are sure."""
    unsure = _decision("high", priority=0.31, sentiment=0.45, team=0.95)
    _, blocks = card_message(_card(unsure))
    headline = blocks[0]["text"]["text"]
    assert "confidence 0.95 · unsure: priority 0.31, sentiment 0.45 · ticket #7" in headline
    sure = _decision("high", priority=0.9, sentiment=0.8, team=0.95)
    _, blocks = card_message(_card(sure))
    assert "unsure" not in blocks[0]["text"]["text"]


def test_an_unsure_high_priority_goes_to_a_human_with_that_reason() -> None:
    """A high or critical guess whose priority confidence is low needs a human, saying so."""
    config = load_config()
    ticket = Ticket(text="The export fails for me")
    for priority in ("high", "critical"):
        escalation = escalate(ticket, _decision(priority, priority=0.2), RuleMatch(), config)
        details = {reason.code: reason.detail for reason in escalation.reasons}
        assert escalation.needs_human
        assert details["high_priority_uncertain"].startswith(f"priority {priority} is unsure")


def test_an_unsure_low_priority_alone_pages_nobody() -> None:
    """A low ticket that is sure of its category but not of its priority needs no human."""
    config = load_config()
    decision = _decision("low", priority=0.2, sentiment=0.3, team=0.95)
    escalation = escalate(Ticket(text="How do I export?"), decision, RuleMatch(), config)
    assert not escalation.needs_human
    assert escalation.reasons == ()


@pytest.mark.parametrize("path", [None, ALTERNATIVE])
async def test_a_ticket_that_fits_no_category_goes_to_the_fallback_team(
    embedder: CachingEmbedder, path: Path | None
) -> None:
    """Off-topic tickets go to the config's fallback_team, not to the nearest category's team."""
    config = load_config(path)
    text = "What is the boiling point of olive oil?"
    natural = (await build_pipeline(config, embedder=embedder).triage(Ticket(text=text))).decision
    # A fallback team other than the one the nearest category would give, so the test cannot
    # pass by that team.
    fallback = next(team for team in config.team_names if team != natural.team)
    changed = config.model_copy(
        update={
            "fallback_team": fallback,
            "thresholds": config.thresholds.model_copy(update={"off_topic_similarity": 0.99}),
        }
    )
    triage = await build_pipeline(changed, embedder=embedder).triage(Ticket(text=text))
    assert triage.decision.off_topic
    assert triage.decision.team == fallback
    assert triage.escalation.teams[0] == fallback
    assert "off_topic" in {reason.code for reason in triage.escalation.reasons}


async def test_the_alternative_taxonomy_pages_a_calm_outage_by_config_alone(
    embedder: CachingEmbedder,
) -> None:
    """With three priorities and its own cues, the alternative config calls a calm outage high."""
    config = load_config(ALTERNATIVE)
    text = "Hi, just so you know: none of our users can open the app since noon."
    triage = await build_pipeline(config, embedder=embedder).triage(Ticket(text=text))
    assert triage.decision.priority == "high"
    assert "critical_priority" in {reason.code for reason in triage.escalation.reasons}


@pytest.mark.parametrize(("path", "engineers"), [(None, "engineering"), (ALTERNATIVE, "core_eng")])
@pytest.mark.parametrize(
    "text",
    [
        "production down, urgent!!",
        "prod down since 9am",
        "our website down since this morning",
        "checkout down!! nobody can pay",
        "Server offline since 6am, nothing we can do",
    ],
)
async def test_an_outage_written_as_a_headline_pages(
    embedder: CachingEmbedder, path: Path | None, engineers: str, text: str
) -> None:
    """An outage shouted as "X down", with no verb, is the top priority, paged, engineering's."""
    config = load_config(path)
    triage = await build_pipeline(config, embedder=embedder).triage(Ticket(text=text))
    assert triage.decision.priority == config.priorities[-1].name
    assert "critical_priority" in {reason.code for reason in triage.escalation.reasons}
    assert triage.decision.team == engineers


async def test_a_question_about_planned_downtime_is_not_an_outage(pipeline: Pipeline) -> None:
    """Downtime asked about in advance reports nothing down."""
    text = "Will the site be down during Sunday's maintenance window?"
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == "low"


def test_the_words_of_an_outage_page_even_when_the_scores_settle_lower() -> None:
    """An always-human level's cue in the text sends the ticket to a human, whatever was decided."""
    config = load_config()
    text = "Our entire company got locked out after the policy update, every account is suspended."
    decision = Decision(
        category="account",
        priority="high",
        team="account_management",
        sentiment="frustrated",
        confidence=0.95,
        confidences={"priority": 0.95, "sentiment": 0.9, "team": 0.95},
        source="local",
    )
    verdict = escalate(Ticket(text=text), decision, RuleMatch(), config)
    assert verdict.needs_human
    (reason,) = [r for r in verdict.reasons if r.code == "impact_cue"]
    assert "critical" in reason.detail
    calm = escalate(Ticket(text="How do I add a user?"), decision, RuleMatch(), config)
    assert "impact_cue" not in [r.code for r in calm.reasons]


@pytest.mark.parametrize(
    "text",
    [
        "I'm seeing invoices and contacts that belong to a completely different company.",
        "Customer A can see customer B's orders in their dashboard.",
        "Nobody in our company can log in this morning, SSO just loops back to the login page.",
        "We noticed an unknown IP logging into our admin account from another country at 3am.",
        "Our payments through your checkout are going to the wrong bank account since the update!!",
        "Payments are not going through for any of our customers.",
    ],
)
async def test_security_incidents_and_company_wide_failures_page(
    pipeline: Pipeline, text: str
) -> None:
    """Data shown to another customer, strangers' logins, money misrouted, nobody able to log in."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "One of our users, Maria, can't upload files; everyone else is fine.",
        "Everyone else on the team can log in, only I can't since the password change.",
        "Nobody can tell me how to export my data to CSV.",
    ],
)
async def test_one_person_affected_is_not_an_outage(pipeline: Pipeline, text: str) -> None:
    """'Everyone else is fine' names who is not affected: no critical, no page for it."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority != "critical"
    assert "impact_cue" not in [reason.code for reason in triage.escalation.reasons]


@pytest.mark.parametrize(
    "text",
    [
        "someone stole our API key",
        "Thank you! 🙏 P.S. credit card numbers of our users are visible on the public page",
        "Thanks 🙏 merci! danke! gracias! our servers are on fire",
        "cool cool, everything crashed",
        "Not a big deal, but all our customers see a blank page.",
        "noone can log in",
        "ok 👍 payments down",
    ],
)
async def test_a_calm_or_thankful_opening_does_not_hide_an_incident(
    pipeline: Pipeline, text: str
) -> None:
    """Thanks, 'no big deal' or a typo before the impact: still critical, still a human."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.decision.no_action is None
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "Someone got into our admin account overnight: there are API keys nobody here created.",
        "Two webhooks we never created appeared in our workspace and send data somewhere.",
        "Checkout requests have been failing with 502 for half an hour, across all regions.",
        "The last three days of orders are missing from every report, for all of our accounts.",
        "Somebody changed my password last night and I got a login alert from a city I've never "
        "been to. Please lock my account.",
        "All of our uploaded photos from last year show 'not found' now, and they are our only "
        "copy.",
        "The export we got today lists invoices and customer names we have never seen before.",
        "Our live secret key shows up in plain text in the page source of the checkout.",
        "Since the overnight sync every order in our account has the wrong delivery address.",
        "All builds are stuck in the queue since 9:40, nothing has started for an hour.",
    ],
)
async def test_calm_reports_of_a_breach_or_a_wide_failure_page(
    pipeline: Pipeline, text: str
) -> None:
    """A stranger inside an account, objects nobody made, failures or losses across every region."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority == "critical"
    assert triage.escalation.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "How do I export reports for all of our accounts at once?",
        "Which API keys have we created so far, and where do I see them?",
        "Is the new dashboard available in all regions yet?",
        "Do you keep a backup of every attachment, in case we delete one by mistake?",
        "How do I reset my password when I forget it?",
    ],
)
async def test_scope_words_in_a_question_are_not_an_outage(pipeline: Pipeline, text: str) -> None:
    """'All of our accounts' or 'all regions' in a plain question names no failure: no critical."""
    triage = await pipeline.triage(Ticket(text=text))
    assert triage.decision.priority != "critical"


async def test_another_customers_data_shown_is_engineerings_even_when_it_is_invoices(
    pipeline: Pipeline,
) -> None:
    """A data leak is the product's fault: engineering, critical, whatever the data are."""
    triage = await pipeline.triage(
        Ticket(text="The export endpoint returns other customers' invoices to our users.")
    )
    assert triage.decision.team == "engineering"
    assert triage.decision.priority == "critical"


@pytest.mark.parametrize(
    ("text", "angry"),
    [
        ("Our dashboard is down since 9am.", False),
        ("None of our users can log in since this morning, the page shows a 503. No rush.", False),
        ("I am done with you people. Cancel our contract.", True),
        ("Your app is garbage and your support is useless.", True),
        ("WHY IS THE EXPORT STILL BROKEN AFTER THREE WEEKS", True),
    ],
)
async def test_angry_needs_a_hostile_word_or_shouting(
    pipeline: Pipeline, text: str, angry: bool
) -> None:
    """A calm outage is never angry; hostile words, threats to leave or shouting are."""
    triage = await pipeline.triage(Ticket(text=text))
    assert (triage.decision.sentiment == "angry") is angry


@pytest.mark.parametrize(
    "text",
    [
        "We removed 4 users last month but we're still billed for all 30 seats",
        "This month's invoice added a 15% tax even though we are exempt",
    ],
)
async def test_money_taken_wrongly_is_high_not_an_incident(pipeline: Pipeline, text: str) -> None:
    """Seats removed but still billed, a tax nobody agreed: high, billing's, no security page."""
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.category == "billing"
    assert decision.priority == "high"


async def test_someone_removed_who_still_gets_in_is_a_security_incident(pipeline: Pipeline) -> None:
    """A removed person who can still log in is a security incident: critical, the account team."""
    triage = await pipeline.triage(
        Ticket(text="We offboarded Tom last month but he can still log in")
    )
    assert triage.decision.priority == "critical"
    assert triage.decision.category == "account"


@pytest.mark.parametrize(
    "text",
    [
        # Critical without the degraded cues' ceiling: it reads close to an outage.
        "Deliveries to our webhook fail now and then with a 504. Retries get them through.",
        "Webhook calls time out now and then with a 504, maybe 1 in 30; retries get them through.",
        "Some of our form entries don't arrive, not all of them, maybe one in ten.",
    ],
)
async def test_degraded_service_is_never_an_outage(pipeline: Pipeline, text: str) -> None:
    """Intermittent failures with a way around them are degraded, never critical.

    However close they read to an outage; and 'not all of them' is no scope of everyone.
    """
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.priority in ("medium", "high")


def test_a_cue_ceiling_must_name_a_priority(tmp_path: Path) -> None:
    """A cue_ceiling naming no priority is a config error that says where and what to use."""
    text = (Path(__file__).resolve().parents[1] / "routing" / "defaults" / "config.toml").read_text(
        "utf-8"
    )
    broken = tmp_path / "config.toml"
    broken.write_text(text.replace('cue_ceiling = "high"', 'cue_ceiling = "urgent"'), "utf-8")
    (tmp_path / "examples.jsonl").write_text(
        (Path(__file__).resolve().parents[1] / "routing" / "defaults" / "examples.jsonl").read_text(
            "utf-8"
        ),
        "utf-8",
    )
    with pytest.raises(Exception, match="cue_ceiling"):
        load_config(broken)


@pytest.mark.parametrize(
    "text",
    [
        "Checkout is slow and now completely unresponsive for all our shoppers",
        "Sometimes the sync deletes all contacts in the account",
        "Sometimes the export sends our customer list to the wrong email address",
        "Some users got logged in as a different person",
        "Randomly people see other users' messages",
        "Some of our records have been permanently deleted and we have no backup",
        "Some users can log in without a password",
        "Sometimes the login page accepts any password",
        "Our payments go to a different bank account sometimes",
        "Some of our customers' card numbers appear in the confirmation email in plain text",
        "1 in 3 of our orders vanished overnight",
        "Half the time the app shows another patient's records",
        "Some staff have admin rights they were never given and have been deleting projects",
    ],
)
async def test_an_incident_with_a_degraded_word_is_still_paged(
    pipeline: Pipeline, embedder: CachingEmbedder, text: str
) -> None:
    """'Sometimes', 'some users', 'slow' or '1 in 3' beside an outage, a loss or a breach: paged.

    A degraded cue caps a ticket below the top only when no cue of the top is there.
    """
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.priority == "critical"
    alternative = build_pipeline(load_config(ALTERNATIVE), embedder=embedder)
    assert (await alternative.triage(Ticket(text=text))).decision.priority == "high"


@pytest.mark.parametrize(
    "text",
    [
        "How do I lock my account when I go on holiday?",
        "Can you tell me if stopped dispatch orders are billed?",
        "What does stopped dispatch mean in the shipments tab?",
        "What is your policy if there are no other copies of a deleted file?",
        "What happens if someone gets into our account?",
        "How do I know if someone logged into my account?",
        "What should I do if our API key leaked?",
        "What happens if all our invoices are wrong, can I regenerate them?",
        "If a file is deleted and we don't have a backup, can you restore it?",
        "Does the secret key need to be in the page source for the widget?",
        "Should the secret key be in plain text in the env file?",
        "Is there a report of every shipment with the wrong address?",
        "We want every employee's payslip blank for the test run, how?",
        "Please lock our workspace while we migrate, someone from our team will unlock it Monday",
    ],
)
async def test_a_question_about_what_would_happen_is_not_high(
    pipeline: Pipeline, text: str
) -> None:
    """'What if our key leaked?', 'how do I lock my account?': no incident is reported."""
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.priority in ("low", "medium")


@pytest.mark.parametrize(
    "text",
    [
        "Quick question: what happens if the whole site goes down and all our data is lost?"
        " Just curious for a doc.",
        "Hypothetically, if everyone got locked out, what is the recovery process?",
        "Just curious: what happens if someone leaks our API key?",
        "For our security review: what happens if all our data is deleted by mistake?",
        "What would happen if every account got locked out? Asking for our runbook.",
        "Just wondering, how are outages handled?",
        "Do you have an SLA for outages?",
        "For our security review: how do you handle a leaked API key?",
        "Is there a status page for outages?",
    ],
)
async def test_a_hypothetical_question_with_an_opening_or_an_aside_is_not_high(
    pipeline: Pipeline, text: str
) -> None:
    """'Quick question:', 'Hypothetically,' or 'Just curious.' around a what-if reports nothing."""
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.priority in ("low", "medium")


@pytest.mark.parametrize(
    "text",
    [
        "Quick question: our whole site went down, what happens if all our data is lost?",
        "What happens now? Just curious, all our data is lost since this morning.",
        "Hypothetically, if everyone got locked out, who do we call? Because everyone is locked"
        " out right now.",
        "How do you handle an outage like the one we have right now?",
        "Do you have an SLA for outages? Our whole site has been down since 9am.",
    ],
)
async def test_a_hypothetical_opening_beside_a_report_is_still_paged(
    pipeline: Pipeline, text: str
) -> None:
    """An opening or an aside hides no report: what happened still makes it critical."""
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.priority == "critical"


@pytest.mark.parametrize(
    "text",
    [
        "What should I do, our API key leaked this morning?",
        "Our API key leaked. What should I do if they already used it?",
        "What happens if I restore the backup, all our records were deleted?",
    ],
)
async def test_a_question_that_reports_what_happened_is_still_paged(
    pipeline: Pipeline, text: str
) -> None:
    """A question beside a report, or with the words of now, is the report: critical."""
    decision = (await pipeline.triage(Ticket(text=text))).decision
    assert decision.priority == "critical"


@pytest.mark.parametrize(
    "text",
    [
        "all our projects were removed overnight",
        "our entire database was dropped",
        "every single file we uploaded is just not there anymore",
        "checkout has not taken a single order since 8am",
    ],
)
async def test_data_loss_told_in_other_verbs_is_critical(pipeline: Pipeline, text: str) -> None:
    """Data gone or sales stopped, told with verbs the cues do not list, is still critical."""
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == "critical"


@pytest.mark.parametrize(
    "text",
    [
        "I found an IDOR: if I change the id in /api/orders/5512 I get other merchants' orders",
        "Bumping the number at the end of /receipts/2201 to 2202 opens a receipt of another shop."
        " No permission check at all.",
        "Heads up, your S3 bucket with the nightly customer exports is public, I could list it",
        "The storage bucket holding our backups is world-readable without any credentials",
        "Password reset links never expire and can be reused as many times as you like",
        "Your magic login links still work after being used, I opened an old one and got in",
        "Someone took over our owner account and changed the payout bank details to theirs",
        "I got a notice that my account email was changed, but I didn't change it",
        "There's an XSS in the comment field: a script tag in a comment runs for every viewer",
        "Stored cross-site scripting in the team name, the payload fires for anyone opening it",
        "SQL injection in the search box: a single quote dumps the whole users table",
    ],
)
async def test_a_vulnerability_report_is_paged(
    pipeline: Pipeline, embedder: CachingEmbedder, text: str
) -> None:
    """A researcher's finding (IDOR, public bucket, reusable reset link, XSS, takeover): paged.

    Told calmly and without a word of scope, it is still a security incident: the top level.
    """
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == "critical"
    alternative = build_pipeline(load_config(ALTERNATIVE), embedder=embedder)
    assert (await alternative.triage(Ticket(text=text))).decision.priority == "high"


@pytest.mark.parametrize(
    "text",
    [
        "We haven't had a single order since the update, the checkout button does nothing",
        "Our shop hasn't taken an order in three hours, the pay button just spins",
        "Not one sale since 6am: shoppers reach checkout and the payment step never loads",
        "The checkout is broken for all shoppers since lunch, nobody can pay",
    ],
)
async def test_a_store_that_takes_no_orders_is_paged(
    pipeline: Pipeline, embedder: CachingEmbedder, text: str
) -> None:
    """A storefront that takes no orders at all is an outage of the business: the top level."""
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == "critical"
    alternative = build_pipeline(load_config(ALTERNATIVE), embedder=embedder)
    assert (await alternative.triage(Ticket(text=text))).decision.priority == "high"


@pytest.mark.parametrize(
    "text",
    [
        "Since yesterday's release nobody can export PDFs, everything else works",
        "The print button stopped doing anything for all of us since your release. Images still"
        " upload fine.",
        "Search returns no results for any term since your update, even for projects we open daily",
    ],
)
async def test_one_function_broken_for_everyone_is_high(pipeline: Pipeline, text: str) -> None:
    """One function down for the whole team, the rest working: blocked (high), not an outage."""
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == "high"


@pytest.mark.parametrize(
    "text",
    [
        "How do I enable 2FA?",
        "Do you have a SOC 2 report?",
        "What happens to our data during an outage?",
        "What happens to scheduled exports during a maintenance window?",
        "Do you test for XSS and SQL injection before each release?",
        "Is your API protected against IDOR?",
        "Do you have any protection against CSRF on your forms?",
    ],
)
@pytest.mark.parametrize("path", [None, ALTERNATIVE])
async def test_a_calm_security_or_outage_question_is_low(
    embedder: CachingEmbedder, path: Path | None, text: str
) -> None:
    """A how-to about security, or what an outage would do, reports nothing: the lowest level."""
    pipeline = build_pipeline(load_config(path), embedder=embedder)
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == "low"


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        (
            "My colleague left the company last month but she can still sign in to our "
            "workspace. How do we remove her?",
            "critical",
        ),
        ("SSO is still down, can we still log in with passwords?", "critical"),
        ("our login is down", "critical"),
        (
            "This is the third time I'm writing about the broken SSO. Nobody answers. Fix it or "
            "we're leaving.",
            "high",
        ),
        ("Our SAML login has been failing since this morning", "high"),
        ("What happens if SSO is down, can we still log in with passwords?", "low"),
        ("If our admin leaves, will we still be able to manage billing?", "low"),
        ("How do we remove a user who left the company?", "low"),
    ],
)
async def test_the_way_in_broken_or_open_to_someone_gone(
    pipeline: Pipeline, text: str, priority: str
) -> None:
    """Sign-in down is an outage, broken it blocks, an ex-colleague inside is an incident.

    A what-if about it ("if SSO is down, can we still ...") stays a question.
    """
    assert (await pipeline.triage(Ticket(text=text))).decision.priority == priority
