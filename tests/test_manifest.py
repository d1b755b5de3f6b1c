"""manifest.yml: valid by Slack's own schema, and asking for exactly what the bot uses."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # ships no types
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "manifest.yml"
SCHEMAS = Path(__file__).resolve().parent / "slack_reference" / "manifest-schema"
# Where manifest.schema.json's $refs point; mapped to the local copies, nothing is fetched.
REMOTE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"

EXPECTED_SCOPES = {
    "chat:write",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "reactions:read",
    "usergroups:read",
    "commands",
}
EXPECTED_EVENTS = {"message.channels", "message.groups", "reaction_added"}

Manifest = dict[str, Any]


def _json(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _manifest() -> Manifest:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _dispatcher() -> Draft7Validator:
    """Slack's all-versions schema, its versioned $refs resolved to the local files."""
    registry: Registry[Any] = Registry().with_resources(
        (f"{REMOTE}manifest.schema.{version}.json", Resource.from_contents(_json(local)))
        for version, local in (
            ("1.0.0", "schemas_manifest.schema.1.0.0.json"),
            ("2.0.0", "schemas_manifest.schema.2.0.0.json"),
        )
    )
    schema = _json("manifest.schema.json")
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, registry=registry)


def _v1() -> Draft7Validator:
    """The 1.0.0 schema alone, to name the keyword a broken manifest trips on."""
    schema = _json("schemas_manifest.schema.1.0.0.json")
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(validator: Draft7Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def test_manifest_validates_against_slacks_schema() -> None:
    """manifest.yml is valid by Slack's manifest schema, dispatched to the 1.0.0 version."""
    manifest = _manifest()
    assert manifest["_metadata"]["major_version"] == 1
    assert _errors(_dispatcher(), manifest) == []
    assert _errors(_v1(), manifest) == []


@pytest.mark.parametrize(
    "example", ["tests_manifests_v1_manifest.valid.json", "tests_manifests_v2_manifest.valid.json"]
)
def test_slacks_valid_examples_validate(example: str) -> None:
    """Slack's own valid example manifests (v1 and v2) pass the same validator wiring."""
    assert _errors(_dispatcher(), _json(example)) == []


def _drop_command_description(manifest: Manifest) -> None:
    del manifest["features"]["slash_commands"][0]["description"]


def _command_without_slash(manifest: Manifest) -> None:
    manifest["features"]["slash_commands"][0]["command"] = "triage"


def _misspelt_setting(manifest: Manifest) -> None:
    manifest["settings"]["socket_mode"] = manifest["settings"].pop("socket_mode_enabled")


def _interactivity_without_is_enabled(manifest: Manifest) -> None:
    del manifest["settings"]["interactivity"]["is_enabled"]


def _name_too_long(manifest: Manifest) -> None:
    manifest["display_information"]["name"] = "Triage bot " * 4


def _duplicate_event(manifest: Manifest) -> None:
    manifest["settings"]["event_subscriptions"]["bot_events"].append("reaction_added")


@pytest.mark.parametrize(
    ("breakage", "keyword"),
    [
        (_drop_command_description, "required"),
        (_command_without_slash, "pattern"),
        (_misspelt_setting, "additionalProperties"),
        (_interactivity_without_is_enabled, "required"),
        (_name_too_long, "maxLength"),
        (_duplicate_event, "uniqueItems"),
    ],
)
def test_broken_manifest_fails_validation(
    breakage: Callable[[Manifest], None], keyword: str
) -> None:
    """A broken copy of manifest.yml is rejected, for the broken rule: validation really runs."""
    broken = copy.deepcopy(_manifest())
    breakage(broken)
    assert not _dispatcher().is_valid(broken)
    assert keyword in {error.validator for error in _v1().iter_errors(broken)}


def test_unknown_major_version_fails_validation() -> None:
    """A manifest naming a schema version Slack lacks matches no branch of the dispatcher."""
    broken = copy.deepcopy(_manifest())
    broken["_metadata"]["major_version"] = 3
    assert not _dispatcher().is_valid(broken)


def test_schema_leaves_scope_names_unchecked() -> None:
    """Slack's schema accepts any scope name, so only the exact-scopes test below catches typos."""
    manifest = copy.deepcopy(_manifest())
    manifest["oauth_config"]["scopes"]["bot"].append("chat:wrtie")
    assert _dispatcher().is_valid(manifest)


def test_background_color_is_a_hex_colour() -> None:
    """background_color matches the schema's pattern, spelt `regex` there and so never checked."""
    schema = _json("schemas_manifest.schema.1.0.0.json")
    color = schema["definitions"]["app-manifests.v1.display_information.schema"]["properties"][
        "background_color"
    ]
    assert "pattern" not in color
    assert re.fullmatch(color["regex"], _manifest()["display_information"]["background_color"])


def test_manifest_requests_exactly_the_scopes_the_bot_uses() -> None:
    """The bot token asks for exactly the expected scopes, and no user token scopes at all."""
    scopes = _manifest()["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert set(scopes["bot"]) == EXPECTED_SCOPES


def test_manifest_subscribes_exactly_the_bots_events() -> None:
    """The bot subscribes to exactly message.channels, message.groups and reaction_added."""
    subscriptions = _manifest()["settings"]["event_subscriptions"]
    assert set(subscriptions) == {"bot_events"}
    assert set(subscriptions["bot_events"]) == EXPECTED_EVENTS


def test_manifest_declares_the_triage_command() -> None:
    """/triage is the one slash command, with a description, usage hint and escaped mentions."""
    commands = _manifest()["features"]["slash_commands"]
    assert [command["command"] for command in commands] == ["/triage"]
    (triage,) = commands
    assert triage["description"] == "Triage tickets: reclassify, status, oncall, stats, help"
    assert triage["usage_hint"].startswith("reclassify <ticket>")
    assert triage["should_escape"] is True
    assert "url" not in triage


def test_manifest_enables_interactivity_and_socket_mode() -> None:
    """Interactivity and Socket Mode are on, so no request URL is needed anywhere."""
    manifest = _manifest()
    settings = manifest["settings"]
    assert settings["interactivity"] == {"is_enabled": True}
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]


def test_manifest_bot_user_and_display_information() -> None:
    """The bot user is "Triage", not always online; the app is called "Triage bot"."""
    manifest = _manifest()
    assert manifest["features"]["bot_user"] == {"display_name": "Triage", "always_online": False}
    assert manifest["display_information"]["name"] == "Triage bot"
    assert manifest["display_information"]["description"]


def test_the_bot_calls_no_method_that_needs_users_read() -> None:
    """No users.* Web API call in bot/ or routing/ (the sandbox's stand-in aside): no users:read."""
    calls = re.compile(r"\.users_\w+\(|[\"']users\.\w+[\"']")
    callers = [
        path.relative_to(REPO).as_posix()
        for folder in ("bot", "routing")
        for path in (REPO / folder).rglob("*.py")
        if "sandbox" not in path.parts and calls.search(path.read_text(encoding="utf-8"))
    ]
    assert callers == []
    assert "users:read" not in _manifest()["oauth_config"]["scopes"]["bot"]
