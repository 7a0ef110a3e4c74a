"""The database schema (SQLAlchemy 2 typed ORM).

Raw tables hold what cannot be recomputed: records from sources, sync
positions, what was written to reminder sinks, and the user's decisions.
Derived tables (``derived_*``) hold people statistics and findings; they can be
dropped and rebuilt from the raw tables at any time.

Every schema change comes with an Alembic revision in ``kithkeep/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: identical on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# ----------------------------------------------------------------- raw


class Message(Base):
    """One message's headers in one folder of one account."""

    __tablename__ = "messages"
    # No index on message_id or gm_msgid: no query looks a message up by them
    # (analysis reads the table whole), and each cost every insert (0003).
    __table_args__ = (UniqueConstraint("account", "folder", "uid", name="uq_messages_location"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(500))
    uid: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(500))
    date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    internal_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # address lists as JSON [[name, email], ...]: read together, never queried apart
    from_json: Mapped[str] = mapped_column(Text, default="[]")
    to_json: Mapped[str] = mapped_column(Text, default="[]")
    cc_json: Mapped[str] = mapped_column(Text, default="[]")
    bcc_json: Mapped[str] = mapped_column(Text, default="[]")
    in_reply_to: Mapped[str | None] = mapped_column(String(500), nullable=True)
    references_json: Mapped[str] = mapped_column(Text, default="[]")
    subject: Mapped[str] = mapped_column(Text, default="")
    list_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    list_post: Mapped[str | None] = mapped_column(String(300), nullable=True)
    list_unsubscribe: Mapped[bool] = mapped_column(Boolean, default=False)
    precedence: Mapped[str | None] = mapped_column(String(40), nullable=True)
    auto_submitted: Mapped[str | None] = mapped_column(String(40), nullable=True)
    flags: Mapped[str] = mapped_column(Text, default="")
    gm_msgid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    gm_thrid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    in_sent_folder: Mapped[bool] = mapped_column(Boolean, default=False)
    # the header parser's signal words (kithkeep.headers.SIGNALS), space-separated;
    # NULL for messages stored before kithkeep read them
    signals: Mapped[str | None] = mapped_column(String(200), nullable=True)
    parse_errors: Mapped[str] = mapped_column(Text, default="")
    # the change counter of the batch that last wrote the row (the analysis reads what
    # changed since it last ran; see Store.apply_mail_batch)
    seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)


class Event(Base):
    """One calendar event occurrence."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "uid", "recurrence_id", name="uq_events_occurrence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    uid: Mapped[str] = mapped_column(String(500))
    recurrence_id: Mapped[str] = mapped_column(String(100), default="")
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(40), default="CONFIRMED")
    summary: Mapped[str] = mapped_column(Text, default="")
    organizer: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # [[email, name, partstat, cutype, role], ...]
    attendees_json: Mapped[str] = mapped_column(Text, default="[]")
    my_status: Mapped[str | None] = mapped_column(String(40), nullable=True)
    own: Mapped[bool] = mapped_column(Boolean, default=False)
    # the server cut the attendee list (Google's attendeesOmitted): size unknown
    attendees_omitted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)


class SyncState(Base):
    """A source's saved position for one scope (folder, calendar, file)."""

    __tablename__ = "sync_state"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    scope: Mapped[str] = mapped_column(String(500), primary_key=True)
    state_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReminderState(Base):
    """What kithkeep last wrote to a sink for one reminder key.

    ``status``: ``written`` (present in the sink as far as we know) or
    ``dismissed`` (the user deleted it: never write it again).
    """

    __tablename__ = "reminder_state"

    sink: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    uid: Mapped[str] = mapped_column(String(300))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="written")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Decision(Base):
    """A user decision (snooze, dismiss, done, ignore, cadence, tier, merge, ...).

    ``person`` is an address (the person's primary address when the decision
    was made), so decisions survive rebuilding derived data.
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    person: Mapped[str] = mapped_column(String(300), index=True)
    rule: Mapped[str | None] = mapped_column(String(60), nullable=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SourceStatus(Base):
    """How the daemon's last runs of a source (or the reminders sink) went.

    Operational data, not derived: it records attempts and errors that cannot
    be recomputed. ``kind`` is ``source`` or ``sink`` (a sink and a source may
    share a name). ``failures`` counts failures in a row; ``next_run`` is when
    the daemon will try again (later and later while a source keeps failing).
    """

    __tablename__ = "source_status"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_run: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# ------------------------------------------------------------- derived


class DerivedIndex(Base):
    """Which messages (kind 0) and events (kind 1) name an address (derived).

    Every personal message is filed under each normalized address of its From,
    To, Cc and Bcc, the user's own left out; every event under its attendees'
    and organizer's. A person's statistics are computed from the rows filed
    under their addresses, so the analysis never reads the whole store to
    update a few people.
    """

    __tablename__ = "derived_index"
    __table_args__ = (Index("ix_derived_index_ref", "kind", "ref"),)

    address: Mapped[str] = mapped_column(String(), primary_key=True)
    kind: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ref: Mapped[int] = mapped_column(Integer, primary_key=True)


class DerivedPerson(Base):
    """A person with statistics (derived; kept up to date by the analysis).

    ``root`` is the person's root address (their smallest, see
    kithkeep.model.merges); a person is recomputed and stored by it.
    ``judge_at`` is the earliest time the rules may judge them differently
    with nothing else changed (None: never by the clock alone).
    """

    __tablename__ = "derived_people"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    root: Mapped[str | None] = mapped_column(String(), nullable=True, index=True)
    judge_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    name: Mapped[str] = mapped_column(Text, default="")
    addresses_json: Mapped[str] = mapped_column(Text)
    is_tie: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[str | None] = mapped_column(String(20), nullable=True)
    strength: Mapped[float] = mapped_column(Float, default=0.0)
    last_contact: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stats_json: Mapped[str] = mapped_column(Text)


class DerivedFinding(Base):
    """A rule's finding about a person (derived; rebuilt by judging)."""

    __tablename__ = "derived_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    rule: Mapped[str] = mapped_column(String(60))
    person_id: Mapped[str] = mapped_column(String(40), index=True)
    severity: Mapped[int] = mapped_column(Integer)
    due: Mapped[datetime] = mapped_column(UTCDateTime)
    title: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text)
    suggestion: Mapped[str] = mapped_column(Text, default="")
    evidence_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    # before the weekly budget: whether the finding wants a calendar reminder
    remind: Mapped[bool] = mapped_column(Boolean, default=False)
    # the whole finding (kithkeep.rules.base.Finding.to_json)
    data_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


class ChangedAddress(Base):
    """Addresses of records deleted since the analysis last ran (a folder rescanned
    after a new UIDVALIDITY, calendar events gone): their people are recomputed."""

    __tablename__ = "changed_addresses"

    address: Mapped[str] = mapped_column(String(), primary_key=True)


class Meta(Base):
    """Small key/value facts about the store (last analysis, last run)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
