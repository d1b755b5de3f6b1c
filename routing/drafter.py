"""Offline drafts from per-category templates, calibrated to sentiment and priority."""

from __future__ import annotations

import re

from routing.config import TriageConfig
from routing.models import Decision, Draft
from routing.noise import read_message

# Phrases that commit us to a refund, a date or an outcome; a draft containing one is not used.
_PROMISE = re.compile(
    r"\b(?:"
    r"we(?:'ll| will| shall| are going to)\s+(?:refund|reimburse|credit|fix|resolve|restore)"
    r"|you(?:'ll| will)\s+(?:get|receive|be\s+(?:getting|refunded|reimbursed|credited))"
    r"|(?:refund|credit|reimbursement)\s+(?:has|have)\s+been"
    r"|(?:is|are|will\s+be)\s+(?:fixed|resolved|restored)\s+(?:by|within|today|tomorrow)"
    r"|by\s+(?:tomorrow|tonight|today|end\s+of\s+(?:day|week)"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
    r"|within\s+(?:the\s+next\s+)?\d+\s+(?:business\s+|working\s+)?"
    r"(?:minutes?|hours?|days?|weeks?)"
    r"|guarantee[ds]?"
    r"|i\s+promise|we\s+promise"
    r")\b",
    re.IGNORECASE,
)

# Details worth repeating back, each copied whole as the customer wrote it. References: an
# order, invoice or ticket word with its number ("Invoice INV-2024-118", "order #12345"), or a
# code of letters and digits joined by hyphens ("ORD-2847", "INV-2024-118").
_REFERENCE = re.compile(
    r"\b(?:order|invoice|ticket|case|booking|receipt|transaction|contract|quote)"
    r"(?:\s+(?:number|no\.?|id))?\s*[:#]?\s*#?(?=[A-Z0-9/-]*\d)[A-Z0-9]+(?:[-/][A-Z0-9]+)*\b"
    r"|#?\b[A-Z]{2,6}(?:-[A-Z0-9]+)*-\d[A-Z0-9]*(?:-[A-Z0-9]+)*\b"
    r"|#\d{4,12}\b",
    re.IGNORECASE,
)
# Error codes: "error 502 Bad Gateway", "error code E1234", "ERR_CONNECTION_REFUSED", "HTTP 500".
_HTTP_STATUS = (
    r"bad gateway|internal server error|not found|forbidden|unauthori[sz]ed|service unavailable"
    r"|gateway time-?out|bad request|too many requests|conflict|request timeout"
)
_ERROR_CODE = re.compile(
    rf"\b[1-5]\d\d\s+(?:{_HTTP_STATUS})\b"
    r"|\b(?:error|err|code|status|http)(?:\s+code)?\s*[:#]?\s*"
    rf"(?:[A-Z]{{0,4}}-?\d{{2,6}}|0x[0-9A-F]+|[A-Z][A-Z0-9]*_[A-Z0-9_]+)\b(?:\s+(?:{_HTTP_STATUS})\b)?"
    r"|\b[A-Z]{2,}(?:_[A-Z0-9]+)+\b"
    # A bare HTTP status said as one: "a 503", "returns 502", "500s", "503 errors".
    r"|\b(?:an?|the|returns?|returning|returned|get|getting|gets|got|throws?|throwing|threw|seeing|see"
    r"|giving|gives|with)\s+(?:http\s+)?[45]\d\d(?:s|\s+errors?|\s+responses?)?\b(?![.,:]\d)"
    r"|\b[45]\d\d(?:s\b|\s+(?:errors?|responses?|status(?:\s+codes?)?)\b)",
    re.IGNORECASE,
)
# The verb before a bare status ("returning HTTP 502"): the detail is the status itself.
_STATUS_VERB = re.compile(
    r"^(?:returns?|returning|returned|get|getting|gets|got|throws?|throwing|threw|seeing|see|giving"
    r"|gives|with)\s+",
    re.IGNORECASE,
)
# Plans: "the Pro plan", "Enterprise tier", "Business subscription".
_PLAN = re.compile(
    r"\b(?:free|starter|basic|pro|professional|premium|plus|team|teams|business|enterprise|growth"
    r"|scale|standard|advanced|ultimate|[A-Z][a-z]+)\s+(?:plan|tier|edition|package)\b"
)
# When it started: "since this morning", "since Monday", "yesterday at 10:30", "2024-03-01".
_DAY = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_WHEN = re.compile(
    rf"\bsince\s+(?:this\s+morning|yesterday|last\s+(?:night|week|month|{_DAY})|today|(?:{_DAY})"
    r"|the\s+(?:last\s+)?(?:update|upgrade|release|migration|outage|deploy(?:ment)?|weekend|renewal)"
    r"|\d{4}-\d{2}-\d{2}|v?\d+(?:\.\d+)+|(?:(?:about|around|approximately|roughly)\s+)?\d{1,2}(?::\d{2})?\s*(?:am|pm)?"
    r"(?:\s*(?:utc|gmt|cet|cest|est|edt|pst|pdt)\b)?|\d{4}-\d{2}-\d{2}"
    rf"|(?:{_MONTH})\b|(?:last|this)\s+(?:year|quarter|sprint))"
    rf"|\b(?:this\s+morning|last\s+night|yesterday|today|tonight|(?:last|on)\s+(?:{_DAY}|week))\b"
    r"|\b(?:(?:about|around|roughly|almost|over|nearly)\s+)?(?:\d+|an?|two|three|four|five|ten"
    r"|twenty|thirty|forty|fifty|a\s+few|a\s+couple\s+of|several)\s+(?:minutes?|mins?|hours?"
    r"|days?|weeks?)\s+ago\b"
    # How long it has lasted: "for the last 40 minutes", "in the past hour", "for two days now".
    r"|\b(?:for|in|over|during)\s+the\s+(?:last|past)\s+(?:(?:\d+|few|couple(?:\s+of)?|several"
    r"|two|three|four|five|ten|twenty|thirty|forty|fifty)\s+)?(?:minutes?|mins?|hours?|days?"
    r"|weeks?|hour|day|week)\b"
    r"|\bfor\s+(?:(?:about|around|over|almost|nearly)\s+)?(?:\d+|an?|two|three|four|five|ten"
    r"|twenty|thirty|forty|fifty|several)\s+(?:minutes?|mins?|hours?|days?)(?:\s+now)?\b"
    r"|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b"
    rf"|\b(?:{_MONTH})\s+\d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTH})\b"
    r"|\bat\s+\d{1,2}:\d{2}\b",
    re.IGNORECASE,
)
# "since we upgraded": it says when it started, but is no detail to quote ("since we" is none);
# a causal "since I'm on the Pro plan" counts too, which at worst asks one question fewer.
_SINCE_CLAUSE = re.compile(r"\bsince\s+\w+\s+\w+", re.IGNORECASE)
# The steps that lead to it: "when I click Save", "after updating", "every time I", "1. ... 2.".
_STEPS = re.compile(
    r"\b(?:when(?:ever)?|after|every\s+time|each\s+time|as\s+soon\s+as|if)\s+(?:I|we|you|a|the|"
    r"they|[a-z]+ing)\b|\bsteps?\b|\bthen\s+(?:I|we)\b|(?:^|\n)\s*(?:1[.)]|-|\*)\s",
    re.IGNORECASE,
)
# An error message given: a code, a quote, or "it says ...".
_ERROR_TEXT = re.compile(
    r"\b(?:says|said|shows|showing|reads|message|displays|pops up with)\b\s*[:\"'\u201c]"
    r"|[\"\u201c][^\"\u201d]{4,}[\"\u201d]|\berror\s*:",
    re.IGNORECASE,
)
# Words of a problem report: a message with them is more than a question.
_PROBLEM = re.compile(
    r"\b(?:error|errors|broken|fail(?:s|ed|ing|ure)?|crash(?:es|ed|ing)?|can't|cannot|can not"
    r"|couldn't|won't|doesn't|didn't|isn't|not\s+(?:working|loading|load|work)|down|wrong|"
    r"charged|twice|lost|missing|stuck|blocked|locked|bug|outage|slow|timeout|timed\s+out)\b",
    re.IGNORECASE,
)

# Words of a billing problem that _PROBLEM does not know: "20 seats instead of 12".
_BILLING_PROBLEM = re.compile(
    r"\b(?:instead\s+of|incorrect|overcharg\w*|extra\s+charges?|doesn't\s+match|does\s+not"
    r"\s+match|never\s+agreed|duplicate|refund|too\s+(?:high|much)|more\s+than|higher\s+than"
    r"|went\s+up|gone\s+up)\b",
    re.IGNORECASE,
)

DEFAULT_TEMPLATE = (
    "{greeting}{ack}Thanks for reaching out{reference}. The right team will follow up here."
    "{asks}\n\n{closing}"
)
# Used when the config has no template of that kind.
BUILTIN_TEMPLATES = {
    "no_action": "{greeting}Thanks for letting us know{reference}! "
    "We're here if you need anything else.\n\n{closing}",
    "vague": "{greeting}Thanks for reaching out. Could you tell us a little more about what you "
    "need help with, so the right team can pick it up?\n\n{closing}",
    "question": "{greeting}{ack}Thanks for your question{reference}. Our {team} team will answer "
    "it here.{asks}\n\n{closing}",
}

# What a draft may ask for, in the words it asks with, and what shows the ticket already gave it.
ASK_WORDS = {
    "started": "when it started",
    "steps": "the steps that lead to it",
    "error": "the error message you see",
    "reference": "the invoice or order number",
}

_ACKNOWLEDGEMENTS = {
    "angry": (
        "I'm sorry about this. I understand how disruptive it is, "
        "and I want to make sure it gets the right attention. "
    ),
    "frustrated": "I'm sorry for the trouble this has caused. ",
}


def find_promise(text: str) -> str | None:
    """The first phrase in text that promises a refund, a date or an outcome, if any."""
    match = _PROMISE.search(text)
    return match.group() if match else None


def find_reference(text: str) -> str | None:
    """The first order, invoice or ticket reference in text, as the customer wrote it."""
    match = _REFERENCE.search(text)
    if match is None:
        return None
    return match.group().strip()


# What routing.redact puts where it took something out: "[EMAIL]", "[NATIONAL_ID]".
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*\]")


# Amounts of money: "EUR 12.00", "$49", "50 EUR", "1,200 euros".
_AMOUNT = re.compile(
    r"(?:[$\u20ac\u00a3]|\b(?:EUR|USD|GBP|CHF|AUD|CAD)\s?)\d[\d,]*(?:\.\d+)?\b"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:EUR|USD|GBP|CHF|euros?|dollars?|pounds?)\b",
)
# Links, without the punctuation that ends the sentence they are in, nor the label Slack puts
# after a "|" in `<https://address|label>` (a label may show another address than the link's).
_URL = re.compile(r"\bhttps?://[^\s<>()\"'|]+[^\s<>()\"'.,;:!?|]")
_LINK_LABEL = re.compile(r"(?<=[^\s<>|])\|[^<>\n]*>")


def find_details(text: str) -> list[str]:
    """The ticket's own details worth repeating, whole and in order.

    References, error codes, plans, amounts, links and when it started; redaction placeholders
    never match.
    """
    return [detail for _, detail in _kinded_details(text)]


def _kinded_details(text: str) -> list[tuple[str, str]]:
    """find_details, each detail with its kind: reference, error, plan, amount, url or when."""
    # Redaction's placeholders ("[NATIONAL_ID]") are taken first, so no detail is made of them.
    found: list[tuple[int, int, str, str]] = [
        (*match.span(), "", "") for match in _PLACEHOLDER.finditer(text)
    ]
    # So is a Slack link's label: what the link shows, not where it goes, is no detail.
    found += [(*match.span(), "", "") for match in _LINK_LABEL.finditer(text)]
    patterns = (
        ("url", _URL),
        ("reference", _REFERENCE),
        ("error", _ERROR_CODE),
        ("plan", _PLAN),
        ("amount", _AMOUNT),
        ("when", _WHEN),
    )
    for kind, pattern in patterns:
        for match in pattern.finditer(text):
            start, end = match.span()
            # A detail inside one already found ("INV-2024-118" in "Invoice INV-2024-118").
            if any(start < other[1] and other[0] < end for other in found):
                continue
            found.append((start, end, kind, _STATUS_VERB.sub("", match.group().strip())))
    unique: dict[str, tuple[str, str]] = {}
    for _, _, kind, detail in sorted(found):
        if detail:
            unique.setdefault(detail.lower(), (kind, detail))
    return list(unique.values())


# "since 9am", "for the last 40 minutes": it is still going on.
_LASTING = re.compile(r"^(?:since|for|in|over|during)\b", re.IGNORECASE)
# A date said bare ("2024-03-01", "March 3", "3 May"): it takes an "on" in a sentence.
_BARE_DATE = re.compile(rf"^(?:\d|(?:{_MONTH})\b)", re.IGNORECASE)
_ON_AT = re.compile(r"^(?:on|at)\s+", re.IGNORECASE)
_AGO = re.compile(r"\bago$", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the|our|your|my)\s", re.IGNORECASE)


def _noun(kind: str, detail: str) -> str:
    """A detail as it reads inside a sentence: "error 500", "the Pro plan", "order #A-55231"."""
    if _ARTICLE.match(detail):
        return detail
    if kind == "error":
        if detail.isdigit():
            return f"error {detail}"
        if detail[0].isdigit():
            # "500s", "503 errors", "502 Bad Gateway".
            return f"the {detail}" if detail[-1] in "sS" else f"the {detail} error"
    if kind == "plan":
        return f"the {detail}"
    return detail


# Words that start a sentence in the ticket and go lower-case inside the draft's sentence.
_LOWER = re.compile(
    r"^(?:since|for|in|over|during|yesterday|today|this|last|on|at|about|around)\b",
    re.IGNORECASE,
)


def _when(detail: str) -> str:
    """A time as it reads after a noun: "since 9am", "on 2024-03-01", "yesterday"."""
    if _LOWER.match(detail):
        detail = detail[0].lower() + detail[1:]
    # "2 weeks ago" starts with a digit like "3 May" but is no date: "on 2 weeks ago" is wrong.
    if _BARE_DATE.match(detail) and not _AGO.search(detail):
        return f"on {detail}"
    return detail


def detail_phrase(text: str, *, after: str = "", satisfied: bool = False) -> str:
    """The ticket's details as words that follow the template's thanks, or "".

    "Thanks for the report" + " about error 500 since 9am"; with nothing but a time,
    " about what happened yesterday". `after` is the template's text before the phrase: after
    "reporting this" the phrase names the issue (" issue with order #A-55231"). A satisfied
    customer's time alone is no matter to name ("Thanks for your message about what happened
    yesterday" reads oddly to someone saying thanks).
    """
    kinded = _kinded_details(text)
    subjects = [_noun(kind, detail) for kind, detail in kinded if kind != "when"][:3]
    times = [detail for kind, detail in kinded if kind == "when"]
    pronoun = re.search(r"\b(?:this|it|that)\s*$", after, re.IGNORECASE) is not None
    if subjects:
        phrase = _listing(subjects) + (f" {_when(times[0])}" if times else "")
        return f" issue with {phrase}" if pronoun else f" about {phrase}"
    if not times or satisfied:
        return ""
    time = _when(times[0])
    if _LASTING.match(time):
        return f" issue you've had {time}" if pronoun else f" about what you've seen {time}"
    if pronoun:
        return " issue from " + _ON_AT.sub("", time)
    return f" about what happened {time}"


def given(text: str) -> set[str]:
    """Which of ASK_WORDS the ticket already gives: no draft asks for those again."""
    gave: set[str] = set()
    if _WHEN.search(text) or _SINCE_CLAUSE.search(text):
        gave.add("started")
    if _STEPS.search(text):
        gave.add("steps")
    if _ERROR_CODE.search(text) or _ERROR_TEXT.search(text):
        gave.add("error")
    if _REFERENCE.search(text):
        gave.add("reference")
    return gave


# A question typed without its question mark: "is there an API rate limit, and if so what is it".
_ASKS_FIRST = re.compile(
    r"^\W*(?:(?:hi|hello|hey|quick question)\W+)?(?:how|what|where|when|which|who|why|is\s+there"
    r"|are\s+there|do\s+you|does|can\s+(?:i|we|you)|could\s+you\s+tell|is\s+it\s+possible"
    r"|would\s+it\s+be\s+possible)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """A question that reports no problem ("Which plan includes SSO?", "is there a rate limit")."""
    asks = "?" in text or "\uff1f" in text or _ASKS_FIRST.match(text) is not None
    return asks and not _PROBLEM.search(text)


def english_draft_for(config: TriageConfig, language: str | None, source: str | None) -> bool:
    """True when a ticket in another language got an English template draft (agent: translate)."""
    if language is None or language == "en" or source != "template":
        return False
    return language not in config.drafting.languages


def _team_words(team: str) -> str:
    return team.replace("_", " ")


def _listing(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class TemplateDrafter:
    """Fills the configured per-category templates; needs no model and no network."""

    def __init__(self, config: TriageConfig) -> None:
        self._config = config

    def draft(self, redacted_text: str, decision: Decision) -> Draft:
        """A reply for an agent to approve, in the tone the decision calls for.

        It repeats the ticket's own details whole, asks only for what the ticket does not give,
        asks a satisfied customer for nothing, and names the team that will answer.
        """
        config = self._config
        drafting = config.drafting
        language = decision.language
        localized = drafting.languages.get(language, {}) if language else {}
        english = not localized
        templates = drafting.templates if english else localized
        generic = templates.get("default", DEFAULT_TEMPLATE if english else "")
        # A guess is no basis for a category's wording ("our account team is checking..."):
        # when the category is unsure, the generic template says only that someone will look.
        unsure = decision.off_topic or decision.confidence < config.thresholds.human_confidence
        questions = drafting.question_categories
        key: str = decision.category
        if decision.no_action is not None:
            key = "no_action"
        elif read_message(redacted_text).vague:
            key = "vague"
        elif (
            is_question(redacted_text)
            and (unsure or questions is None or decision.category in questions)
            and not config.priority(decision.priority).always_human
        ):
            # A question names the team that will answer it, even when its category is a guess:
            # that team's channel is where it goes.
            key = "question"
        elif unsure:
            key = "default"
        template = templates.get(key) or (BUILTIN_TEMPLATES.get(key) if english else None)
        if template is None and key == "question":
            template = templates.get(decision.category)
        template = template or generic
        if not template:
            # A language with some templates but not this one: the English draft, for the agent.
            return self._english(redacted_text, decision)
        ack = _ACKNOWLEDGEMENTS.get(decision.sentiment, "") if english else ""
        priority = config.priority(decision.priority)
        if priority.always_human and english and decision.no_action is None:
            ack += "We've escalated this to the people on call. "
        asks = (
            self._asks(
                redacted_text, decision, guessed=key == "default", question=key == "question"
            )
            if english and key != "no_action"
            else ""
        )
        reference = ""
        if key != "no_action" and english:
            reference = detail_phrase(
                redacted_text,
                after=template.split("{reference}")[0],
                satisfied=decision.sentiment == "satisfied",
            )
        elif key != "no_action":
            # Another language's template gets the details bare: "about" is English.
            found = find_details(redacted_text)[:4]
            reference = f" ({', '.join(found)})" if found else ""
        text = template.format(
            greeting=(drafting.greetings.get(language or "", "") or "Hi there,") + "\n\n",
            ack=ack,
            reference=reference,
            asks=asks,
            team=_team_words(decision.team),
            closing=drafting.signatures.get(language or "", "") or drafting.signature,
        )
        return Draft(text=text.strip(), source="template")

    def _english(self, redacted_text: str, decision: Decision) -> Draft:
        return self.draft(redacted_text, decision.model_copy(update={"language": "en"}))

    def _asks(
        self,
        redacted_text: str,
        decision: Decision,
        *,
        guessed: bool = False,
        question: bool = False,
    ) -> str:
        """What the draft still asks for, and who else has a part of the message.

        A guessed category asks for nothing of its own (stray words are asked for no invoice
        number), and neither does a question or a request that reports no problem ("Can I get
        our invoices in GBP?" needs no invoice number). An outage or a breach is asked only when
        it started: it is no bug to reproduce.
        """
        config = self._config
        sentences: list[str] = []
        others = [part for part in decision.parts if part.team != decision.team]
        if others:
            teams = _listing([f"our {_team_words(part.team)} team" for part in others])
            sentences.append(f"We've passed the rest of your message to {teams}.")
        satisfied = decision.sentiment == "satisfied"
        reports = _PROBLEM.search(redacted_text) or _BILLING_PROBLEM.search(redacted_text)
        wanted = (
            ()
            if guessed or question or not reports
            else config.drafting.asks.get(decision.category, ())
        )
        if config.priority(decision.priority).always_human:
            wanted = tuple(ask for ask in wanted if ask == "started")
        missing = [ask for ask in wanted if ask not in given(redacted_text)]
        if missing and not satisfied:
            sentences.append(f"To help, please share {_listing([ASK_WORDS[a] for a in missing])}.")
        return "".join(f" {sentence}" for sentence in sentences)
