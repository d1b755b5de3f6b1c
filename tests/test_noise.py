"""The noise filter: messages that need no action, and vague requests for help."""

from __future__ import annotations

import pytest

from routing.noise import read_message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("thanks!", "thanks"),
        ("nvm it was our proxy, all good now", "resolved"),
        ("ignore my last message, wrong channel", "resolved"),
        ("Brilliant help today, cheers Sam, the refund came through already!", "praise"),
        ("Great support from Lee, he solved our problem in minutes. Five stars.", "praise"),
        ("Danke, jetzt läuft alles wieder!", "resolved"),
        ("Thank you so much!!", "thanks"),
        ("Thanks for your help, much appreciated 🙏", "thanks"),
        ("Thanks for the quick fix yesterday, everything works great now!", "resolved"),
        ("never mind, fixed it", "resolved"),
        ("Never mind, I figured it out. Thanks!", "resolved"),
        ("all good now", "resolved"),
        ("All sorted, you can close this.", "resolved"),
        ("ok", "acknowledgement"),
        ("Okay, got it.", "acknowledgement"),
        ("sounds good 👍", "acknowledgement"),
        ("👍", "emoji"),
        ("🙏🏽", "emoji"),
        (":+1:", "emoji"),
        ("✅ 🎉", "emoji"),
        ("¡Muchas gracias, ya funciona! 😊", "resolved"),
        ("gracias!", "thanks"),
        ("Merci beaucoup, c'est bon", "resolved"),
        ("Danke, alles gut", "resolved"),
        ("Obrigado!", "thanks"),
        ("ありがとうございます", "thanks"),
        ("谢谢", "thanks"),
        ("спасибо, всё работает", "resolved"),
        ("😂", "emoji"),
        ("👀 👀", "emoji"),
        (":joy:", "emoji"),
        ("nvm found the setting", "resolved"),
        ("Thanks a ton, all sorted on our end now.", "resolved"),
        ("Perfect, that's exactly what I needed. Have a good weekend!", "resolved"),
        ("Merci beaucoup pour votre aide rapide !", "thanks"),
    ],
)
def test_messages_that_need_no_action_are_recognised(text: str, kind: str) -> None:
    """Thanks, resolutions, acknowledgements and kind emoji, in many languages, need no action."""
    reading = read_message(text)
    assert reading.no_action == kind
    assert not reading.vague


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, but it is still broken",
        "thank you! still failing",
        "thanks. the export is still broken though",
        "Thanks, fix it please",
        "great, now the page crashes",
        "ok thanks, one more thing: can you add SSO",
        "All good now?",
        "Thanks for the invoice, but it shows 20 seats",
        "😡",
        "👍 but the login still fails",
        ":rage:",
        "не работает",
        "解決しない",
        "We need 5 more seats",
        "Thanks, urgent: production is down",
        "the refund came through but we were charged again",
        "you fixed the bug, but now the export fails",
        "wrong channel? the import is broken for us",
    ],
)
def test_a_message_that_also_reports_or_asks_is_never_noise(text: str) -> None:
    """A problem, a question, a request or an angry emoji next to a thank-you keeps the ticket."""
    assert read_message(text).no_action is None


@pytest.mark.parametrize(
    "text",
    ["Can you help me?", "hello??", "anyone there?", "Hi", "I have a question", "help pls"],
)
def test_vague_requests_for_help_are_marked_vague(text: str) -> None:
    """Greetings and asks for help with no detail are vague, not noise."""
    reading = read_message(text)
    assert reading.vague
    assert reading.no_action is None


@pytest.mark.parametrize(
    "text", ["Hi, I need help with my invoice", "Can you help me reset my password?", ""]
)
def test_a_request_that_says_what_is_wrong_is_not_vague(text: str) -> None:
    """Saying what the help is for (or saying nothing at all) is not a vague request."""
    assert not read_message(text).vague


@pytest.mark.parametrize("text", ["😡", ":rage:", "🔥🔥", "😤 ⚠️"])
def test_an_upset_emoji_alone_is_vague_not_noise(text: str) -> None:
    """An angry, sad or alarm emoji alone needs a person who asks what is wrong."""
    reading = read_message(text)
    assert reading.no_action is None
    assert reading.vague


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Never mind, we found the problem on our side. Sorry for the noise!", "resolved"),
        ("Thanks for the quick refund, didn't expect it so fast!", "thanks"),
        ("Thanks a lot Priya, have a great weekend!", "thanks"),
        ("Hi Tom, all sorted now, thanks", "resolved"),
    ],
)
def test_a_cause_on_our_side_a_thanks_for_a_refund_and_a_name_need_no_action(
    text: str, kind: str
) -> None:
    """The customer's own fix, thanks for a refund, a name after a thank-you: no action."""
    assert read_message(text).no_action == kind


@pytest.mark.parametrize(
    "text",
    [
        "Thanks Priya, but the refund never arrived",
        "Hi Tom, found the problem: your export drops the last column",
    ],
)
def test_a_name_or_a_found_problem_with_an_ask_is_still_a_ticket(text: str) -> None:
    """A name or 'found the problem' next to an ask or a report stays a ticket."""
    assert read_message(text).no_action is None


@pytest.mark.parametrize(
    "text",
    [
        "The new editor is fantastic, our writers love it",
        "Love the new dashboard!",
        "Amazing work on the calendar sync, the team is thrilled",
        "Thanks, love the new editor!",
        "The reporting feature is great. We use it daily.",
    ],
)
def test_praise_that_asks_nothing_needs_no_action(text: str) -> None:
    """Praise may name any feature: a praising word and nothing that asks or complains."""
    assert read_message(text).no_action == "praise"


@pytest.mark.parametrize(
    "text",
    [
        "Love how the app logs me out every 5 minutes",
        "Great, another outage.",
        "Fantastic. Just fantastic. Third time this week.",
        "The new editor is great but tables are missing",
        "Your export is amazing, could you add PDF?",
        "I would love to see dark mode",
        "Love the product, hate the billing page",
        "The new pricing is outrageous, I love paying double",
        "Wow, amazing, it only took 3 days to answer",
        "Great tool, shame the mobile app crashes",
        "Love the new dashboard, the numbers are wrong though",
        "I'd love to see keyboard shortcuts on the board",
        "We would love a dark mode",
        " ".join(["Love the new dashboard"] * 10),
        # Questions and commands that happen to use a praising word.
        "what's the best way to export everything",
        "did the new editor get better",
        "tell me the best plan for a team of 5",
        "create a report of the best performing agents",
    ],
)
def test_praise_with_a_complaint_an_ask_or_sarcasm_is_a_ticket(text: str) -> None:
    """Contrast, asks, problems, negative words, sarcasm's markers and length keep the ticket."""
    assert read_message(text).no_action is None


@pytest.mark.parametrize(
    "text",
    [
        "Thank you so much Maria, the webhook fix worked perfectly. Have a great weekend!",
        "Thanks Tom, that fixed the report layout. Have a nice day",
        "All good now, the export went through. Have a good one!",
    ],
)
def test_a_resolution_that_ends_with_a_wish_needs_no_action(text: str) -> None:
    """'Have a great weekend' is a wish, not a question that opens with 'have a'."""
    assert read_message(text).no_action == "resolved"


@pytest.mark.parametrize(
    "text",
    [
        "All good now, the export went through. Cheers",
        "Sorted, the sync ran overnight",
        "thanks Tom, that fixed the report layout",
    ],
)
def test_a_resolution_may_say_what_works_again(text: str) -> None:
    """A resolution that opens the message may name what works again: no action needed."""
    assert read_message(text).no_action == "resolved"


@pytest.mark.parametrize(
    "text",
    [
        "since the update the export gives me an empty file, then it works on the second try",
        "All good now, but the invoice still shows 20 seats",
        "Thanks, that fixed the login but exports still fail",
        "thanks, works now on desktop, mobile is blank",
        "the export went through, all good apart from the dates",
    ],
)
def test_a_resolution_beside_a_problem_is_a_ticket(text: str) -> None:
    """'It works on the second try' reports a problem; a resolution with a 'but' is a ticket."""
    assert read_message(text).no_action is None


@pytest.mark.parametrize(
    "text",
    [
        # A second sentence that praises nothing reports something.
        "The new editor is fantastic. Saving takes 40 seconds",
        "Fantastic work on the redesign. Our invoices page shows someone else's company",
        "Loving the new reports. The totals are off by 10% for March",
        "The new search is amazing. It shows other customers' documents",
        "Super helpful team! We were locked out for 3 hours today",
        "Love the product. Our account was hacked and the password changed",
        "Fantastic tool, our team depends on it. Production is offline since 9am",
        "Love the app. Data from last week disappeared",
        "Great, just great. The sync wiped my files",
        "Das neue Dashboard ist super. Der Export liefert leere Dateien",
        # A question without its question mark.
        "The new editor is fantastic, our writers love it. Is there a dark mode",
        "the new editor is fantastic, our writers love it, any plans for offline mode",
        # Inflected problem words: "deleting", "invoices".
        "Brilliant job deleting my invoices",
    ],
)
def test_praise_beside_a_report_or_a_question_is_a_ticket(text: str) -> None:
    """Each clause of praise must praise: a clause that reports or asks keeps the ticket."""
    assert read_message(text).no_action is None


@pytest.mark.parametrize(
    "text",
    [
        "thanks, fixed for the web app; mobile shows a white screen",
        "Resolved, the export went through. Our database is corrupted",
        "Thanks Priya, that fixed the payslip layout. Our payroll of 400 staff goes out at 5pm "
        "and the tax figures are all zero",
        "Gracias, ya funciona el login. Ahora la factura salió duplicada",
        "Merci, ça marche. Sauf que nos données ont été supprimées",
    ],
)
def test_a_resolution_then_a_report_is_a_ticket(text: str) -> None:
    """After an opening resolution, every clause must say what works: any other reports."""
    assert read_message(text).no_action is None


@pytest.mark.parametrize(
    "text",
    ["Love the new dashboard, great job team!", "The new editor is fantastic 10/10"],
)
def test_praise_with_a_rating_or_a_thanks_to_the_team_needs_no_action(text: str) -> None:
    """A rating is not a number of anything, and a second clause of praise is praise."""
    assert read_message(text).no_action == "praise"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # A wry or neutral emoji beside the words says nothing is wrong; an unkind one does.
        ("posted in the wrong channel, sorry 😅🙃", "resolved"),
        ("got it 👀", "acknowledgement"),
        # Going to try what support suggested: nothing to do until they say how it went.
        ("okay, I'll give that a try", "acknowledgement"),
        ("thanks, will try it", "thanks"),
        # "Works again" in the languages the phrases list already has.
        ("Gracias, funciona de nuevo", "resolved"),
        ("Tout fonctionne, merci !", "resolved"),
        ("Obrigado, voltou a funcionar", "resolved"),
    ],
)
def test_neutral_emoji_and_trying_a_suggestion_need_no_action(text: str, kind: str) -> None:
    assert read_message(text).no_action == kind


@pytest.mark.parametrize(
    "text", ["wrong channel again?? 😡", "I'll try, but the import still fails 🙃", "ok 🔥🔥"]
)
def test_a_problem_or_an_unkind_emoji_is_still_no_noise(text: str) -> None:
    assert read_message(text).no_action is None
