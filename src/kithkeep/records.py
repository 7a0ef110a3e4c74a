"""Raw records: what connectors produce and the store keeps.

Records hold metadata only. A message body never reaches this module.
Dates are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One (occurrence of a) calendar event.

    ``recurrence_id`` is empty for single events and, for expanded recurring
    events, the ISO start of the occurrence. ``own`` is True when kithkeep
    itself wrote the event: own events never count as meetings.
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
