"""Per-person statistics: the numbers every rule stands on.

``PersonStats`` is serialized into ``derived_people.stats_json`` and printed
by ``kithkeep people --json``; its field names are a public interface
(documented in the README).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TIERS = ("inner", "close", "wider")


@dataclass(frozen=True)
class PendingMessage:
    """An inbound direct message still unanswered."""

    message_id: str
    date: datetime
    subject: str
    recipients: int


@dataclass(frozen=True)
class Initiation:
    """A message that opened an exchange (no message from the other side for ``silence`` days)."""

    date: datetime
    side: str  # "me" | "them"
    subject: str
    answered: bool
    gap_days: float | None  # days since the previous contact of any kind; None for the first


@dataclass(frozen=True)
class PersonStats:
    person_id: str
    name: str
    addresses: tuple[str, ...]
    first_contact: datetime | None = None
    last_contact: datetime | None = None
    last_in: datetime | None = None
    last_out: datetime | None = None
    last_meeting: datetime | None = None
    last_meeting_size: int | None = None
    messages_in: int = 0
    messages_out: int = 0
    messages_in_direct: int = 0
    messages_in_cc: int = 0
    meetings: int = 0
    initiations_me: int = 0
    initiations_them: int = 0
    # share of the other side's initiations that this side answered
    reply_rate_me: float | None = None
    reply_rate_them: float | None = None
    median_reply_hours_me: float | None = None
    median_reply_hours_them: float | None = None
    # median gap in days between exchanges (days with contact)
    cadence_days: float | None = None
    # the user's messages since the person last wrote
    unanswered_streak: int = 0
    pending_inbound: PendingMessage | None = None
    strength: float = 0.0
    peak_strength: float = 0.0
    tier: str | None = None
    tier_source: str | None = None  # "user" | "strength"
    is_tie: bool = False
    ignored: bool = False
    # the most recent initiations, oldest first (for one_way_ask)
    initiations: tuple[Initiation, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, datetime):
                return v.isoformat()
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            return v

        return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PersonStats:
        def dt(v: Any) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        kwargs = dict(data)
        for k in ("first_contact", "last_contact", "last_in", "last_out", "last_meeting"):
            kwargs[k] = dt(kwargs.get(k))
        kwargs["addresses"] = tuple(kwargs.get("addresses", ()))
        p = kwargs.get("pending_inbound")
        kwargs["pending_inbound"] = (
            PendingMessage(**{**p, "date": datetime.fromisoformat(p["date"])}) if p else None
        )
        kwargs["initiations"] = tuple(
            Initiation(**{**i, "date": datetime.fromisoformat(i["date"])})
            for i in kwargs.get("initiations", ())
        )
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in known})
