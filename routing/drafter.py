"""Offline drafts from per-category templates, calibrated to sentiment and priority."""

from __future__ import annotations

import re

from routing.config import TriageConfig
from routing.models import Decision, Draft

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

# Order, invoice and ticket references worth repeating back ("ORD-2847", "invoice #12345").
_REFERENCE = re.compile(
    r"#?\b[A-Z]{2,6}-\d{3,12}\b"
    r"|\b(?:order|invoice|ticket|case|booking)\s*(?:number|no\.?|#)?\s*[:#]?\s*(\d{4,12})\b",
    re.IGNORECASE,
)

DEFAULT_TEMPLATE = (
    "{greeting}{ack}Thanks for reaching out{reference}. The right team will follow up here."
    "\n\n{closing}"
)

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


class TemplateDrafter:
    """Fills the configured per-category templates; needs no model and no network."""

    def __init__(self, config: TriageConfig) -> None:
        self._config = config

    def draft(self, redacted_text: str, decision: Decision) -> Draft:
        """A reply for an agent to approve, in the tone the decision calls for."""
        drafting = self._config.drafting
        generic = drafting.templates.get("default", DEFAULT_TEMPLATE)
        # A guess is no basis for a category's wording ("our account team is checking..."):
        # when the category is unsure, the generic template says only that someone will look.
        unsure = (
            decision.off_topic or decision.confidence < self._config.thresholds.human_confidence
        )
        template = generic if unsure else drafting.templates.get(decision.category, generic)
        reference = find_reference(redacted_text)
        ack = _ACKNOWLEDGEMENTS.get(decision.sentiment, "")
        priority = self._config.priority(decision.priority)
        if priority.always_human:
            ack += "We've escalated this to the people on call. "
        text = template.format(
            greeting="Hi there,\n\n",
            ack=ack,
            reference=f" (reference {reference})" if reference else "",
            closing=drafting.signature,
        )
        return Draft(text=text.strip(), source="template")
