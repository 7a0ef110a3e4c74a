"""What a rule returns: a finding that explains itself in numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Finding:
    """A rule's verdict about one person.

    ``episode`` identifies this occurrence (for example the date of the last
    contact), so that a new episode gets a new reminder and a dismissed one
    stays dismissed. ``severity`` runs from 1 (mild) to 100 (urgent).
    """

    rule: str
    person_id: str
    person_name: str
    severity: int
    due: datetime
    title: str
    explanation: str
    suggestion: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remind: bool = True
    episode: str = ""

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.person_id}:{self.episode}"


def days(td_seconds: float) -> float:
    return round(td_seconds / 86400, 1)
