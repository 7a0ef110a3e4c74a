"""What a rule returns: a finding that explains itself in numbers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# A finding's status after the user's decisions: only "open" findings can
# become calendar reminders; `kithkeep review --all` shows the others too.
STATUSES = ("open", "snoozed", "dismissed")


@dataclass(frozen=True)
class Finding:
    """A rule's verdict about one person.

    ``episode`` identifies this occurrence (for example the date of the last
    contact), so that a new episode gets a new reminder and a dismissed one
    stays dismissed. ``severity`` runs from 1 (mild) to 100 (urgent).
    ``summary`` is the one-line why for tables; ``explanation`` the full
    sentence with its numbers. ``status`` and ``status_note`` are set by the
    engine from the user's decisions; ``over_budget`` when the weekly budget
    left this finding without a reminder.
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
    summary: str = ""
    last_contact: datetime | None = None
    status: str = "open"
    status_note: str = ""
    over_budget: bool = False

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.person_id}:{self.episode}"


def days(td_seconds: float) -> float:
    return round(td_seconds / 86400, 1)


def days_between(earlier: datetime, later: datetime) -> float:
    """Days from ``earlier`` to ``later`` as a float (negative if reversed)."""
    return (later - earlier).total_seconds() / 86400


def short_hash(text: str) -> str:
    """A short stable token for an episode built from a long id (a Message-ID)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def display_name(name: str, addresses: tuple[str, ...]) -> str:
    return name or (addresses[0] if addresses else "someone")
