"""What a rule returns: a finding that explains itself in numbers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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

    def to_json(self) -> dict[str, Any]:
        """Every field as plain JSON (ISO dates); :meth:`from_json` reads it back."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("due", "last_contact"):
            if out[name] is not None:
                out[name] = out[name].isoformat()
        out["evidence"] = json.loads(json.dumps(self.evidence, default=str))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["due"] = datetime.fromisoformat(kwargs["due"])
        if kwargs.get("last_contact"):
            kwargs["last_contact"] = datetime.fromisoformat(kwargs["last_contact"])
        return cls(**kwargs)


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


# A moment just after a threshold: verdicts flip once it is passed, not at it. A
# millisecond, well above the rounding of day counts held as floats, so that a
# verdict is never judged again just before the threshold it waits for.
TICK = timedelta(milliseconds=1)


def after_days(start: datetime, days: float) -> datetime:
    """The first moment when more than ``days`` days have passed since ``start``."""
    return start + timedelta(days=days) + TICK


def earliest(*moments: datetime | None) -> datetime | None:
    """The earliest of the moments given (None when there is none)."""
    found = [m for m in moments if m is not None]
    return min(found) if found else None
