"""Slack's Block Kit limits for messages and modals, reported the way Slack reports them.

Each check returns Slack-style complaints such as
`must be less than 3001 characters [json-pointer:/blocks/0/text/text]`; an empty list means Slack
would accept the payload. Limits are those of docs.slack.dev (see /work/shared/slack/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

MESSAGE_MAX_BLOCKS = 50
MODAL_MAX_BLOCKS = 100

# Elements an actions block or a section accessory may hold.
INTERACTIVE_ELEMENTS = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "overflow",
        "radio_buttons",
        "timepicker",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)
INPUT_ELEMENTS = (INTERACTIVE_ELEMENTS - {"button", "overflow"}) | {
    "plain_text_input",
    "email_text_input",
    "url_text_input",
    "number_input",
    "rich_text_input",
    "file_input",
}
RICH_TEXT_ELEMENTS = frozenset(
    {"rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote"}
)


class _Check:
    """Collects complaints, each tagged with the JSON pointer of the offending value."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{message} [json-pointer:{path}]")

    def string(self, obj: dict[str, Any], key: str, path: str, *, max_len: int) -> None:
        """An optional string field: a non-empty string of at most max_len characters."""
        if key not in obj:
            return
        value = obj[key]
        if not isinstance(value, str) or not value:
            self.fail(f"{path}/{key}", "must be a non-empty string")
        elif len(value) > max_len:
            self.fail(f"{path}/{key}", f"must be less than {max_len + 1} characters")

    def text(self, obj: Any, path: str, *, max_len: int, plain_only: bool = False) -> None:
        """A required text object: plain_text (or mrkdwn where allowed) with non-empty text."""
        if obj is None:
            self.fail(path, "missing required field")
            return
        if not isinstance(obj, dict):
            self.fail(path, "must be a text object")
            return
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if obj.get("type") not in allowed:
            self.fail(f"{path}/type", f"must be one of: {', '.join(allowed)}")
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            self.fail(f"{path}/text", "must be more than 0 characters")
        elif len(value) > max_len:
            self.fail(f"{path}/text", f"must be less than {max_len + 1} characters")

    def items(self, value: Any, path: str, *, max_items: int) -> list[Any]:
        """A required non-empty array of at most max_items items; returns the items to check."""
        if not isinstance(value, list):
            self.fail(path, "must be an array")
            return []
        if not value:
            self.fail(path, "must provide at least 1 item")
        elif len(value) > max_items:
            self.fail(path, f"no more than {max_items} items allowed")
        return value


def message_block_errors(blocks: list[Any]) -> list[str]:
    """Slack's complaints about a message's blocks (chat.postMessage, chat.update, ephemeral)."""
    check = _Check()
    _blocks(check, blocks, "/blocks", max_blocks=MESSAGE_MAX_BLOCKS)
    return check.errors


def view_errors(view: Any) -> list[str]:
    """Slack's complaints about a modal view passed to views.open."""
    check = _Check()
    if not isinstance(view, dict):
        check.fail("/view", "must be an object")
        return check.errors
    if view.get("type") != "modal":
        check.fail("/view/type", "must be one of: modal")
    check.text(view.get("title"), "/view/title", max_len=24, plain_only=True)
    for key in ("submit", "close"):
        if key in view:
            check.text(view[key], f"/view/{key}", max_len=24, plain_only=True)
    check.string(view, "private_metadata", "/view", max_len=3000)
    check.string(view, "callback_id", "/view", max_len=255)
    check.string(view, "external_id", "/view", max_len=255)
    blocks = view.get("blocks")
    if blocks is None:
        check.fail("/view/blocks", "missing required field")
    else:
        _blocks(check, blocks, "/view/blocks", max_blocks=MODAL_MAX_BLOCKS)
        has_input = isinstance(blocks, list) and any(
            isinstance(block, dict) and block.get("type") == "input" for block in blocks
        )
        # Slack cannot submit input without a submit button, so it refuses such a modal.
        if has_input and "submit" not in view:
            check.fail("/view/submit", "missing required field when the view has input blocks")
    return check.errors


def metadata_error(metadata: Any) -> str | None:
    """The Slack error for a message's `metadata` argument, or None when it is acceptable."""
    if not isinstance(metadata, dict):
        return "invalid_metadata_format"
    if "entities" in metadata:
        # Work Object entity metadata has its own schema, which the bot does not use.
        return None
    event_type = metadata.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        return "invalid_metadata_schema"
    if not isinstance(metadata.get("event_payload", {}), dict):
        return "invalid_metadata_schema"
    return None


def _blocks(check: _Check, blocks: Any, path: str, *, max_blocks: int) -> None:
    if not isinstance(blocks, list):
        check.fail(path, "must be an array")
        return
    if len(blocks) > max_blocks:
        check.fail(path, f"no more than {max_blocks} items allowed")
    seen_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{path}/{index}"
        if not isinstance(block, dict):
            check.fail(where, "must be an object")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            check.string(block, "block_id", where, max_len=255)
            # Slack answers invalid_blocks when two blocks of one message share a block_id.
            if isinstance(block_id, str) and block_id in seen_ids:
                check.fail(f"{where}/block_id", f"duplicate block_id: {block_id}")
            if isinstance(block_id, str):
                seen_ids.add(block_id)
        validate = _BLOCK_CHECKS.get(str(block.get("type")))
        if validate is None:
            check.fail(f"{where}/type", f"unsupported block type: {block.get('type')!r}")
        else:
            validate(check, block, where)


def _section(check: _Check, block: dict[str, Any], path: str) -> None:
    if "text" not in block and "fields" not in block:
        check.fail(f"{path}/text", "missing required field (a section needs text or fields)")
    if "text" in block:
        check.text(block["text"], f"{path}/text", max_len=3000)
    if "fields" in block:
        for index, item in enumerate(check.items(block["fields"], f"{path}/fields", max_items=10)):
            check.text(item, f"{path}/fields/{index}", max_len=2000)
    if "accessory" in block:
        _element(check, block["accessory"], f"{path}/accessory", INTERACTIVE_ELEMENTS | {"image"})


def _header(check: _Check, block: dict[str, Any], path: str) -> None:
    check.text(block.get("text"), f"{path}/text", max_len=150, plain_only=True)


def _context(check: _Check, block: dict[str, Any], path: str) -> None:
    elements = check.items(block.get("elements"), f"{path}/elements", max_items=10)
    for index, element in enumerate(elements):
        where = f"{path}/elements/{index}"
        if isinstance(element, dict) and element.get("type") == "image":
            _image(check, element, where)
        else:
            check.text(element, where, max_len=3000)


def _actions(check: _Check, block: dict[str, Any], path: str) -> None:
    elements = check.items(block.get("elements"), f"{path}/elements", max_items=25)
    for index, element in enumerate(elements):
        _element(check, element, f"{path}/elements/{index}", INTERACTIVE_ELEMENTS)


def _divider(check: _Check, block: dict[str, Any], path: str) -> None:
    """A divider has nothing to check beyond its block_id."""


def _input(check: _Check, block: dict[str, Any], path: str) -> None:
    check.text(block.get("label"), f"{path}/label", max_len=2000, plain_only=True)
    if "hint" in block:
        check.text(block["hint"], f"{path}/hint", max_len=2000, plain_only=True)
    if "element" not in block:
        check.fail(f"{path}/element", "missing required field")
    else:
        _element(check, block["element"], f"{path}/element", INPUT_ELEMENTS)


def _rich_text(check: _Check, block: dict[str, Any], path: str) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list):
        check.fail(f"{path}/elements", "must be an array")
        return
    for index, element in enumerate(elements):
        if not isinstance(element, dict) or element.get("type") not in RICH_TEXT_ELEMENTS:
            check.fail(f"{path}/elements/{index}/type", "unsupported rich text element")


def _image(check: _Check, block: dict[str, Any], path: str) -> None:
    if "image_url" in block:
        check.string(block, "image_url", path, max_len=3000)
    elif "slack_file" not in block:
        check.fail(f"{path}/image_url", "missing required field")
    if "alt_text" not in block:
        check.fail(f"{path}/alt_text", "missing required field")
    check.string(block, "alt_text", path, max_len=2000)
    if "title" in block:
        check.text(block["title"], f"{path}/title", max_len=2000, plain_only=True)


def _element(check: _Check, element: Any, path: str, allowed: frozenset[str]) -> None:
    if not isinstance(element, dict):
        check.fail(path, "must be an object")
        return
    kind = element.get("type")
    if kind not in allowed:
        check.fail(f"{path}/type", f"unsupported element type: {kind!r}")
        return
    if kind == "image":
        _image(check, element, path)
        return
    check.string(element, "action_id", path, max_len=255)
    if kind == "button":
        check.text(element.get("text"), f"{path}/text", max_len=75, plain_only=True)
        check.string(element, "value", path, max_len=2000)
        check.string(element, "url", path, max_len=3000)
        if element.get("style", "primary") not in ("primary", "danger"):
            check.fail(f"{path}/style", "must be one of: primary, danger")


_BLOCK_CHECKS: MappingProxyType[str, Callable[[_Check, dict[str, Any], str], None]] = (
    MappingProxyType(
        {
            "section": _section,
            "header": _header,
            "context": _context,
            "actions": _actions,
            "divider": _divider,
            "input": _input,
            "rich_text": _rich_text,
            "image": _image,
        }
    )
)
