"""Label names: a data set's labels as the config's categories, priorities or sentiments."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Literal, TypeAlias

from routing.config import (
    CategoryConfig,
    PriorityConfig,
    SentimentConfig,
    TriageConfig,
    validate_config,
)
from routing.errors import UserError

# Which decided field is measured against the label column.
EvalField: TypeAlias = Literal["category", "priority", "sentiment", "team"]
EVAL_FIELDS: tuple[EvalField, ...] = ("category", "priority", "sentiment", "team")


def sanitize_label(label: str) -> str:
    """Make a category name of a label: lower case, accents dropped, `_` for anything else."""
    text = unicodedata.normalize("NFKD", label)
    text = "".join(char for char in text if not unicodedata.combining(char)).lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text or not text[0].isalpha():
        text = f"label_{text}".rstrip("_")
    return text


def label_words(label: str) -> str:
    """Turn a label into words, the rubric of a category made from it."""
    return re.sub(r"[\s_\-]+", " ", label).strip().lower()


def category_names_for_labels(config: TriageConfig, labels: Iterable[str]) -> dict[str, str]:
    """Map each label to its category name: itself if a category, else its sanitised name.

    A label whose sanitised name is a category (`Billing` -> `billing`) is that category; names
    that would clash get `_2`, `_3`, ... The result does not depend on the order of labels.
    """
    return names_for_labels(config.category_names, labels)


def names_for_labels(names: Iterable[str], labels: Iterable[str]) -> dict[str, str]:
    """Map each label to a label name of a field: itself if one of names, else sanitised."""
    existing = set(names)
    unique = sorted(set(labels))
    mapping = {label: label for label in unique if label in existing}
    taken = set(existing)
    for label in unique:
        if label in mapping:
            continue
        base = sanitize_label(label)
        if base in existing and base not in mapping.values():
            mapping[label] = base
            continue
        name, number = base, 2
        while name in taken:
            name, number = f"{base}_{number}", number + 1
        taken.add(name)
        mapping[label] = name
    return mapping


def taxonomy_for_labels(
    config: TriageConfig, labels: Iterable[str], *, exact: bool = False
) -> TriageConfig:
    """Return the config with a category for every label (see category_names_for_labels).

    A new category's team is the fallback team and its rubric the label in words. With exact,
    the categories are exactly the labels': the config's other categories are dropped, with
    the hotword rules and drafting entries keyed by them. The result passes validate_config.
    """
    mapping = category_names_for_labels(config, labels)
    if not mapping:
        raise UserError("no labels to build a taxonomy from")
    label_of = {category: label for label, category in mapping.items()}
    categories = [
        category for category in config.categories if not exact or category.name in label_of
    ]
    present = {category.name for category in categories}
    for category_name in sorted(label_of, key=lambda name: label_of[name]):
        if category_name not in present:
            categories.append(
                CategoryConfig(
                    name=category_name,
                    team=config.fallback_team,
                    rubric=label_words(label_of[category_name]),
                )
            )
    kept = {category.name for category in categories}
    drafting = config.drafting
    updated = config.model_copy(
        update={
            "categories": tuple(categories),
            "rules": config.rules.model_copy(
                update={
                    "hotwords": tuple(
                        rule for rule in config.rules.hotwords if rule.category in kept
                    )
                }
            ),
            "drafting": drafting.model_copy(
                update={
                    "instructions": _keyed_by(drafting.instructions, kept),
                    "templates": _keyed_by(drafting.templates, kept),
                    "asks": {key: asks for key, asks in drafting.asks.items() if key in kept},
                    "question_categories": None
                    if drafting.question_categories is None
                    else tuple(name for name in drafting.question_categories if name in kept),
                    "languages": {},
                }
            ),
        }
    )
    validate_config(updated)
    return updated


def field_taxonomy_for_labels(
    config: TriageConfig, field: EvalField, labels: Iterable[str]
) -> TriageConfig:
    """Return the config whose priorities or sentiments are exactly the labels' names.

    A label that is already a label of the field keeps its config (rubric, phrases, flags); a
    new one gets its words as rubric. The default becomes the first label when the config's
    default is not among them. The categories stay as they are.
    """
    mapping = names_for_labels(field_labels(config, field), labels)
    if not mapping:
        raise UserError("no labels to build a taxonomy from")
    # The config's labels keep their order (priorities run from least to most urgent); new
    # ones follow, sorted.
    config_order = field_labels(config, field)
    wanted = set(mapping.values())
    names = [name for name in config_order if name in wanted]
    names += sorted(wanted - set(names))
    if field == "priority":
        known_priorities = {level.name: level for level in config.priorities}
        priorities = tuple(
            known_priorities.get(name)
            or PriorityConfig(name=name, rubric=label_words(name), emoji=":white_circle:")
            for name in names
        )
        default = config.default_priority if config.default_priority in names else names[0]
        # Category caps name the config's priorities; they mean nothing for the new ones.
        categories = tuple(
            category
            if category.max_priority in (None, *names)
            else category.model_copy(update={"max_priority": None})
            for category in config.categories
        )
        updated = config.model_copy(
            update={"priorities": priorities, "default_priority": default, "categories": categories}
        )
    elif field == "sentiment":
        known = {sentiment.name: sentiment for sentiment in config.sentiments}
        sentiments = tuple(
            known.get(name) or SentimentConfig(name=name, rubric=label_words(name))
            for name in names
        )
        default = config.default_sentiment if config.default_sentiment in names else names[0]
        updated = config.model_copy(update={"sentiments": sentiments, "default_sentiment": default})
    else:
        raise UserError(f"--field {field}: only priority and sentiment labels can be replaced")
    validate_config(updated)
    return updated


def _keyed_by(entries: Mapping[str, str], categories: set[str]) -> dict[str, str]:
    return {key: value for key, value in entries.items() if key in categories or key == "default"}


PLURAL = {
    "category": "categories",
    "priority": "priorities",
    "sentiment": "sentiments",
    "team": "teams",
}


def field_labels(config: TriageConfig, field: EvalField) -> tuple[str, ...]:
    """The config's label names of a field, in config order."""
    if field == "priority":
        return tuple(level.name for level in config.priorities)
    if field == "sentiment":
        return tuple(sentiment.name for sentiment in config.sentiments)
    if field == "team":
        return tuple(team.name for team in config.teams)
    return config.category_names
