"""Per-person statistics: the numbers every rule stands on.

``PersonStats`` is serialized into ``derived_people.stats_json`` and printed
by ``kithkeep people --json``; its field names are a public interface
(documented in the README).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TIERS = ("inner", "close", "wider")


@dataclass(frozen=True)
class PendingMessage:
    """An inbound direct message still unanswered."""

    message_id: str
    date: datetime
    subject: str
    recipients: int
    # it replies to one of the user's messages (a "thanks!" may need no answer)
    is_reply: bool = False


@dataclass(frozen=True, init=False)
class Initiation:
    """A message that opened an exchange (no message from the other side for ``silence`` days)."""

    date: datetime
    side: str  # "me" | "them"
    subject: str
    answered: bool
    gap_days: float | None  # days since the previous contact of any kind; None for the first

    def __init__(
        self, date: datetime, side: str, subject: str, answered: bool, gap_days: float | None
    ) -> None:
        # The fields set in one go, in declaration order: the generated __init__ of a
        # frozen dataclass calls object.__setattr__ once per field, which cost most of
        # building the tens of thousands of initiations of an analysis.
        object.__setattr__(
            self,
            "__dict__",
            {
                "date": date,
                "side": side,
                "subject": subject,
                "answered": answered,
                "gap_days": gap_days,
            },
        )


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
    strength: float = 0.0
    peak_strength: float = 0.0
    tier: str | None = None
    tier_source: str | None = None  # "user" | "strength"
    is_tie: bool = False
    ignored: bool = False
    # the most recent initiations, oldest first (for one_way_ask)
    initiations: tuple[Initiation, ...] = field(default=())
    # added by the relationship model (issue 4); all have defaults
    messages_out_direct: int = 0
    messages_out_cc: int = 0
    exchanges: int = 0
    replies_me: int = 0  # the user's messages that reply to the person's
    replies_them: int = 0  # the person's messages that reply to the user's
    initiations_me_answered: int = 0
    initiations_them_answered: int = 0
    # messages plus meetings per calendar month, the last 24 months, oldest first
    monthly: tuple[int, ...] = field(default=())
    # added for meeting_followup: a meeting in a regular series needs no follow-up.
    # The last meeting is an occurrence of a recurring calendar event:
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

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (ISO dates, lists). Written for speed: analysis saves thousands."""
        out = self._plain()
        out["initiations"] = [
            {
                "date": iso(i.date),
                "side": i.side,
                "subject": i.subject,
                "answered": i.answered,
                "gap_days": i.gap_days,
            }
            for i in self.initiations
        ]
        return out

    def stored_json(self) -> str:
        """``to_json()`` as the store keeps it: ``STATS_ENCODER.encode(self.to_json())``.

        Built faster than that: the initiations, twenty per person and most of the
        text, are written out directly instead of as dicts for the encoder, which
        encodes each key anew and formats each float from scratch. The rest goes
        through the encoder. A property test checks that the texts are equal.
        """
        out = self._plain()
        out["initiations"] = []
        # Inside a JSON string every quote is escaped, so '"initiations":[]' occurs once:
        # where the encoder wrote the key and the empty list.
        return STATS_ENCODER.encode(out).replace(
            '"initiations":[]', '"initiations":' + _initiations_json(self.initiations), 1
        )

    def _plain(self) -> dict[str, Any]:
        """Every field but the initiations as a plain JSON value.

        The instance dict holds every field in declaration order (a frozen dataclass
        sets each once in ``__init__``): one C-level copy instead of a getattr per field.
        """
        out = dict(self.__dict__)
        for name in _DATE_FIELDS:
            v = out[name]
            if v is not None:
                out[name] = iso(v)
        out["addresses"] = list(self.addresses)
        out["monthly"] = list(self.monthly)
        out["pending_inbound"] = _nested(self.pending_inbound) if self.pending_inbound else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PersonStats:
        def dt(v: Any) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        kwargs = dict(data)
        for k in _DATE_FIELDS:
            kwargs[k] = dt(kwargs.get(k))
        kwargs["addresses"] = tuple(kwargs.get("addresses", ()))
        p = kwargs.get("pending_inbound")
        kwargs["pending_inbound"] = (
            PendingMessage(**{**p, "date": datetime.fromisoformat(p["date"])}) if p else None
        )
        kwargs["monthly"] = tuple(kwargs.get("monthly", ()))
        kwargs["initiations"] = tuple(
            Initiation(**{**i, "date": datetime.fromisoformat(i["date"])})
            for i in kwargs.get("initiations", ())
        )
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in known})


_TWO_DIGITS = tuple(f"{i:02d}" for i in range(100))


def iso(d: datetime) -> str:
    """``d.isoformat()``, twice as fast for a UTC date to the second (the usual one).

    Saving the statistics formats a hundred thousand dates and ``isoformat``
    costs more than parsing them did; other dates take ``isoformat`` itself.
    """
    if d.tzinfo is not UTC or d.microsecond or d.year < 1000:
        return d.isoformat()
    two = _TWO_DIGITS
    return (
        f"{d.year}-{two[d.month]}-{two[d.day]}T{two[d.hour]}:{two[d.minute]}:{two[d.second]}+00:00"
    )


_DATE_FIELDS = (
    "first_contact",
    "last_contact",
    "last_in",
    "last_out",
    "last_meeting",
    "previous_meeting",
)


def _nested(v: PendingMessage | Initiation) -> dict[str, Any]:
    d = dict(v.__dict__)
    d["date"] = iso(v.date)
    return d


# The stored form of the statistics (derived_people.stats_json) is to_json() encoded by this
# one encoder: json.dumps with non-default options builds a new encoder per call. The
# statistics hold no cycles, so it need not track the containers it enters.
STATS_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
# the function that encoder writes strings with (ensure_ascii=False)
_json_string = json.encoder.encode_basestring


def _initiations_json(inits: tuple[Initiation, ...]) -> str:
    """``STATS_ENCODER``'s text of ``to_json()``'s initiations, written out directly."""
    string = _json_string
    value = _json_value
    return (
        "["
        + ",".join(
            [
                # an ISO date holds nothing JSON escapes
                f'{{"date":"{iso(i.date)}","side":{string(i.side)},"subject":{string(i.subject)},'
                f'"answered":{value(i.answered)},"gap_days":{value(i.gap_days)}}}'
                for i in inits
            ]
        )
        + "]"
    )


# float -> its JSON text: gap_days are rounded to tenths of a day, so most values repeat
_FLOAT_JSON: dict[float, str] = {}


def _json_value(v: Any) -> str:
    """A scalar as STATS_ENCODER writes it."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is float and v:  # 0.0 and -0.0 are one key with two texts: never cached
        text = _FLOAT_JSON.get(v)
        if text is None:
            text = STATS_ENCODER.encode(v)
            if len(_FLOAT_JSON) < 4096:
                _FLOAT_JSON[v] = text
        return text
    return STATS_ENCODER.encode(v)
