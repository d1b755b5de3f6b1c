"""The one reader of the environment and `.env`: a frozen settings object built at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from routing.errors import UserError


class Settings(BaseModel):
    """Secrets and deployment choices; the taxonomy and policy live in the config file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Path of the taxonomy/policy TOML; None uses the packaged default.
    triage_config: Path | None = Field(default=None, alias="TRIAGE_CONFIG")
    # Any OpenAI-compatible key; without it the bot stays fully offline.
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    # Overrides the config's [llm].base_url (e.g. a local vLLM or Ollama server).
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    log_level: str = Field(default="WARNING", alias="TRIAGE_LOG_LEVEL")


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> Settings:
    """Settings from `.env` (if present) overridden by the process environment."""
    dotenv_file = dotenv_path if dotenv_path is not None else Path(".env")
    from_file = {
        key: value
        for key, value in (dotenv_values(dotenv_file) if dotenv_file.is_file() else {}).items()
        if value is not None
    }
    merged = {**from_file, **(dict(os.environ) if environ is None else dict(environ))}
    # An empty variable means "not set", as in most deployment tools.
    cleaned = {key: value for key, value in merged.items() if value != ""}
    try:
        return Settings.model_validate(cleaned)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise UserError(f"setting {name}: {first['msg']}") from error
