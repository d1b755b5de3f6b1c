"""What the listeners work with, built once at start-up and passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from routing.config import TriageConfig
from routing.desk import Desk


@dataclass(frozen=True)
class Services:
    """The desk (every ticket action) and the config it runs on."""

    desk: Desk
    config: TriageConfig
