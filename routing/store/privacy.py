"""What the store keeps beyond the ticket itself is redacted first (both backends)."""

from __future__ import annotations

import json
from typing import Any

from routing.models import LabeledExample
from routing.redact import redact


def redacted(value: Any) -> Any:
    """A JSON-like value with every string in it redacted (audit before/after states)."""
    if isinstance(value, str):
        return redact(value).text
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    return value


def audit_json(value: Any) -> str:
    """An audit state as stored: redacted, then JSON."""
    return json.dumps(redacted(value))


def correction_json(example: LabeledExample) -> str:
    """A correction as stored: the customer's words redacted, the labels as the agent set them."""
    return example.model_copy(update={"text": redact(example.text).text}).model_dump_json()
