"""Raw records: what connectors produce and the store keeps.

Records hold metadata only. A message body never reaches this module.
Dates are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox from a header: display name and address as written (lower-cased)."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """The headers of one message in one folder of one account.

    ``uid`` is the IMAP UID (as text) or the file key for Maildir and mbox.
    ``message_id`` is normalized (no angle brackets, lower-cased); when the
    message has none it is a stable hash of its headers, prefixed ``kk-``.
    ``parse_errors`` names the fields that could not be parsed: a bad header
    costs that field, never the message.
    """

    account: str
    folder: str
    uid: str
    message_id: str
    date: datetime | None
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str = ""
    list_id: str | None = None
    list_post: str | None = None
    list_unsubscribe: bool = False
    precedence: str | None = None
    auto_submitted: str | None = None
    flags: frozenset[str] = frozenset()
    internal_date: datetime | None = None
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    # True when the folder is the account's sent folder (role, not name).
    in_sent_folder: bool = False
    # what machines' headers said (kithkeep.headers.SIGNALS)
    signals: frozenset[str] = frozenset()
    parse_errors: tuple[str, ...] = ()

    @property
    def effective_date(self) -> datetime | None:
        """Header Date, else INTERNALDATE (DESIGN.md, Records)."""
        return self.date or self.internal_date


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str = ""
    # RFC 5545 PARTSTAT: NEEDS-ACTION, ACCEPTED, DECLINED, TENTATIVE, DELEGATED
    partstat: str = "NEEDS-ACTION"
    # CUTYPE: INDIVIDUAL, GROUP, RESOURCE, ROOM, UNKNOWN
    cutype: str = "INDIVIDUAL"
    role: str = "REQ-PARTICIPANT"


# an event's title is cut to this many characters, on every calendar connector
MAX_EVENT_SUMMARY = 500


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One (occurrence of a) calendar event.

    An occurrence's identity is its iCalendar UID plus its start, the same on
    every connector, so that one meeting seen through two sources (a Google
    calendar and its .ics export, a CalDAV account and a shared link) is one
    meeting:

    - ``uid`` is the iCalendar UID (RFC 5545 ``UID``; Google's ``iCalUID``,
      Microsoft Graph's ``iCalUId``), never a server's own event id;
    - ``recurrence_id`` is empty for single events and, for an occurrence of
      a recurring event, the ISO 8601 UTC start the rule gave it (the
      ``RECURRENCE-ID``; Google's ``originalStartTime``, Graph's
      ``originalStart``), which a moved occurrence keeps. An all-day
      occurrence's date is midnight in the user's zone.

    :func:`occurrence_id` builds the pair. ``own`` is True when kithkeep itself
    wrote the event: own events never count as meetings.
    ``attendees_omitted`` is True when the server left attendees out of the
    list (Google's ``attendeesOmitted``): the meeting's size is unknown.
    """

    source: str
    uid: str
    recurrence_id: str
    start: datetime
    end: datetime
    all_day: bool = False
    status: str = "CONFIRMED"
    summary: str = ""
    organizer: str | None = None
    attendees: tuple[Attendee, ...] = ()
    my_status: str | None = None
    own: bool = False
    attendees_omitted: bool = False


def occurrence_id(uid: str, original_start: datetime | None) -> tuple[str, str]:
    """(uid, recurrence_id) of an occurrence, as :class:`EventRecord` defines them.

    ``original_start`` is the start the recurrence rule gave the occurrence
    (aware; None for a single event).
    """
    if original_start is None:
        return uid, ""
    return uid, original_start.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A source's saved position for one scope (a folder, a calendar, a file).

    ``state`` is JSON-serializable and opaque to the core.
    """

    source: str
    scope: str
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    folder: str
    uid: str
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class MailBatch:
    """A chunk of work the store commits in one transaction with its checkpoint.

    ``replace_folder`` drops the folder's stored records first (a new
    UIDVALIDITY): the rescan then re-adds what is still on the server.
    Messages come as records; how they are stored is the store's business.
    """

    records: Sequence[MessageRecord] = ()
    flag_updates: Sequence[FlagUpdate] = ()
    checkpoint: Checkpoint | None = None
    replace_folder: str | None = None


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Calendar changes committed in one transaction with their checkpoint.

    With ``replace`` every stored event of the source is dropped first (a full
    resync); ``deleted`` holds (uid, recurrence_id) pairs, where an empty
    recurrence id deletes every occurrence of the uid.
    """

    records: Sequence[EventRecord] = ()
    deleted: Sequence[tuple[str, str]] = ()
    checkpoint: Checkpoint | None = None
    replace: bool = False


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A user decision as the store keeps it (see :mod:`kithkeep.decisions`).

    ``person`` is an address; ``value`` depends on the kind (the other
    address of a merge, a tier, a cadence in days, a dismissal's evidence).
    """

    id: int
    kind: str
    person: str
    rule: str | None
    until: datetime | None
    value: str | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReminderState:
    """What kithkeep last wrote to a sink for one reminder key.

    ``status``: ``written`` (present in the sink as far as kithkeep knows) or
    ``dismissed`` (the user deleted it: never written again).
    """

    key: str
    uid: str
    start: datetime
    end: datetime
    content_hash: str
    status: str


@dataclass(frozen=True, slots=True)
class RunStatus:
    """How the last runs of a source (kind ``source``) or sink (``sink``) went."""

    kind: str
    source: str
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    next_run: datetime | None = None


class StoredMessage(NamedTuple):
    """A row of the store's messages table as the analysis reads it (raw column texts:
    the analysis decodes each distinct address list once)."""

    id: int
    gm_msgid: int | None
    message_id: str
    date: datetime | None  # the Date header, aware UTC
    internal_date: datetime | None  # when the server or the file got it
    from_json: str
    to_json: str
    cc_json: str
    bcc_json: str
    in_reply_to: str | None
    references_json: str
    subject: str
    flags: str
    in_sent_folder: bool
    gm_thrid: int | None
    signals: str = ""  # the header parser's signal words, space-separated


class MessageFacts(NamedTuple):
    """What the analysis' index needs of a stored message (see Store.changed_messages)."""

    id: int
    gm_msgid: int | None
    message_id: str
    date: datetime | None
    internal_date: datetime | None
    subject: str
    from_json: str
    to_json: str
    cc_json: str
    bcc_json: str
    list_id: str | None
    list_post: str | None
    list_unsubscribe: bool
    precedence: str | None
    auto_submitted: str | None
    in_sent_folder: bool
    signals: str | None  # the header parser's signal words, space-separated
