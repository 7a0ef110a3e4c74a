"""Per-person statistics: the numbers every rule stands on.

``PersonStats`` is stored in ``derived_people.stats_json`` (:meth:`stored_json`)
and printed by ``kithkeep people --json`` (:meth:`to_json`, a public interface
documented in docs/json.md).

The stored form does not depend on the clock, so statistics computed on
different days compare equal, and a person nobody wrote to since keeps their
row untouched: today's decayed ``strength`` and the ``monthly`` counts of the
last 24 months are worked out from ``strength_base``/``strength_day`` and
``month_counts`` for a given day by :meth:`PersonStats.at`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TIERS = ("inner", "close", "wider")
MONTHS = 24  # the months ``monthly`` shows, the current one last
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An inbound direct message still unanswered."""

    message_id: str
    date: datetime
    subject: str
    recipients: int
    # it replies to one of the user's messages (a "thanks!" may need no answer)
    is_reply: bool = False


@dataclass(frozen=True, slots=True)
class Initiation:
    """A message that opened an exchange (no message from the other side for ``silence`` days)."""

    date: datetime
    side: str  # "me" | "them"
    subject: str
    answered: bool
    gap_days: float | None  # days since the previous contact of any kind; None for the first


def month_index(d: datetime) -> int:
    """Months since year 0 of a date's UTC month (January 2026 is 2026 * 12)."""
    u = d.astimezone(UTC)
    return u.year * 12 + u.month - 1


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
    # median gap in days between the starts of exchanges (a reply, or contact within a
    # day of the previous one, continues an exchange rather than starting one)
    cadence_days: float | None = None
    # the user's messages since the person last wrote (those with the person in To)
    unanswered_streak: int = 0
    pending_inbound: PendingMessage | None = None
    # today's decayed strength (see at()) and its highest value over the relationship
    strength: float = 0.0
    peak_strength: float = 0.0
    tier: str | None = None
    tier_source: str | None = None  # "user" | "strength"
    is_tie: bool = False
    ignored: bool = False
    # the most recent initiations, oldest first (for one_way_ask)
    initiations: tuple[Initiation, ...] = field(default=())
    messages_out_direct: int = 0
    messages_out_cc: int = 0
    exchanges: int = 0
    replies_me: int = 0  # the user's messages that reply to the person's
    replies_them: int = 0  # the person's messages that reply to the user's
    initiations_me_answered: int = 0
    initiations_them_answered: int = 0
    # messages plus meetings per calendar month (UTC), the last 24 months, oldest first
    monthly: tuple[int, ...] = field(default=())
    # a meeting in a regular series needs no follow-up: the last meeting is an
    # occurrence of a recurring calendar event
    last_meeting_recurring: bool = False
    # the meeting before the last one
    previous_meeting: datetime | None = None
    # median gap in days between the most recent meetings (up to 5 of them); None
    # with fewer than three meetings
    meeting_cadence_days: float | None = None
    # added for reminder texts (issue 18): the last exchange, so that a reminder can name
    # it and link to it. last_kind: "in" | "out" | "meeting" ("" with no contact);
    # last_subject: its subject, or the meeting's title; last_message_id: its normalized
    # Message-ID ("" for a meeting); last_meeting_title: the title of last_meeting.
    last_kind: str = ""
    last_subject: str = ""
    last_message_id: str = ""
    last_meeting_title: str = ""
    # their messages known only from the user's replies to them (the originals are not
    # in any folder kithkeep reads): contact like the others, not in messages_in
    messages_in_inferred: int = 0
    # an automated sender (a machine without List headers; kithkeep.model.automation):
    # what kind and why, or None for a person. Never a tie, never flagged.
    automated: str | None = None
    automated_reason: str = ""
    # the clock-free form of `strength` and `monthly` (stored, not shown):
    # the strength at the end of the last day with contact, that day (days since
    # the epoch), and contacts by month_index()
    strength_base: float = 0.0
    strength_day: float = 0.0
    month_counts: tuple[tuple[int, int], ...] = field(default=())

    def at(self, now: datetime, half_life_days: float) -> PersonStats:
        """These statistics as of ``now``: today's decayed strength, the last 24 months."""
        decay = max(0.0, now.timestamp() / DAY - (self.strength_day + 1)) / half_life_days
        strength = round(self.strength_base * 0.5**decay, 3) if self.strength_base else 0.0
        this = month_index(now)
        counts = dict(self.month_counts)
        monthly = tuple(counts.get(m, 0) for m in range(this - MONTHS + 1, this + 1))
        # a copy with the two fields set: dataclasses.replace runs __init__ again over
        # every field, which costs more than the rest of a full rebuild's saving
        out = copy.copy(self)
        object.__setattr__(out, "strength", strength)
        object.__setattr__(out, "monthly", monthly)
        return out

    def to_json(self) -> dict[str, Any]:
        """The public JSON form (``people --json``): plain values, ISO dates."""
        out = self._plain()
        for name in _CLOCK_FREE:
            del out[name]
        return out

    def stored_json(self) -> str:
        """The stored form: everything but what depends on the clock."""
        out = self._plain()
        del out["strength"], out["monthly"]
        return _ENCODER.encode(out)

    def _plain(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in _FIELDS}
        for name in _DATE_FIELDS:
            v = out[name]
            if v is not None:
                out[name] = v.isoformat()
        out["addresses"] = list(self.addresses)
        out["monthly"] = list(self.monthly)
        out["month_counts"] = [list(mc) for mc in self.month_counts]
        p = self.pending_inbound
        out["pending_inbound"] = (
            None
            if p is None
            else {
                "message_id": p.message_id,
                "date": p.date.isoformat(),
                "subject": p.subject,
                "recipients": p.recipients,
                "is_reply": p.is_reply,
            }
        )
        out["initiations"] = [
            {
                "date": i.date.isoformat(),
                "side": i.side,
                "subject": i.subject,
                "answered": i.answered,
                "gap_days": i.gap_days,
            }
            for i in self.initiations
        ]
        return out

    @classmethod
    def from_stored(cls, text: str, now: datetime, half_life_days: float) -> PersonStats:
        """A stored row's statistics as of ``now``."""
        return cls.from_json(json.loads(text)).at(now, half_life_days)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PersonStats:
        def dt(v: Any) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        kwargs = {k: v for k, v in data.items() if k in _NAMES}
        for k in _DATE_FIELDS:
            kwargs[k] = dt(kwargs.get(k))
        kwargs["addresses"] = tuple(kwargs.get("addresses", ()))
        p = kwargs.get("pending_inbound")
        kwargs["pending_inbound"] = (
            PendingMessage(**{**p, "date": datetime.fromisoformat(p["date"])}) if p else None
        )
        kwargs["monthly"] = tuple(kwargs.get("monthly", ()))
        # JSON gives [month, count] pairs of ints back
        kwargs["month_counts"] = tuple(map(tuple, kwargs.get("month_counts", ())))
        iso = datetime.fromisoformat
        # positional, in the stored order (every command reads thousands of these)
        kwargs["initiations"] = tuple(
            Initiation(iso(i["date"]), i["side"], i["subject"], i["answered"], i["gap_days"])
            for i in kwargs.get("initiations", ())
        )
        return cls(**kwargs)


_FIELDS = dataclasses.fields(PersonStats)
_NAMES = frozenset(f.name for f in _FIELDS)
_CLOCK_FREE = ("strength_base", "strength_day", "month_counts")
_DATE_FIELDS = (
    "first_contact",
    "last_contact",
    "last_in",
    "last_out",
    "last_meeting",
    "previous_meeting",
)
# one encoder: json.dumps with options builds a new one per call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
