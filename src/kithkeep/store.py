"""The store: raw records, sync positions, decisions and derived data.

SQLite (WAL) under the platform data folder by default; any SQLAlchemy URL is
accepted. Alembic migrations run on open. Every batch from a source commits in
one transaction together with its checkpoint, so a crash at any point leaves
either the old or the new state, never half of a chunk, and a restart resumes
from the last checkpoint without counting anything twice (upserts by stable
keys).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from kithkeep._rowcodec import MESSAGE_COLUMNS, datetime_text, message_values
from kithkeep.errors import StoreError
from kithkeep.records import (
    Address,
    Attendee,
    Checkpoint,
    DecisionRecord,
    EventBatch,
    EventRecord,
    MailBatch,
    MessageFacts,
    MessageRecord,
    ReminderState,
    RunStatus,
    StoredMessage,
)
from kithkeep.schema import Base, Event, Message, Meta, SyncState

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")

# Core tables for bulk statements (the ORM classes type __table__ as FromClause).
MESSAGES: sa.Table = Base.metadata.tables["messages"]
EVENTS: sa.Table = Base.metadata.tables["events"]
SYNC_STATE: sa.Table = Base.metadata.tables["sync_state"]
META: sa.Table = Base.metadata.tables["meta"]
DERIVED_PEOPLE: sa.Table = Base.metadata.tables["derived_people"]
DECISIONS: sa.Table = Base.metadata.tables["decisions"]
FINDINGS: sa.Table = Base.metadata.tables["derived_findings"]
REMINDER_STATE: sa.Table = Base.metadata.tables["reminder_state"]
SOURCE_STATUS: sa.Table = Base.metadata.tables["source_status"]
INDEX: sa.Table = Base.metadata.tables["derived_index"]
CHANGED: sa.Table = Base.metadata.tables["changed_addresses"]

# kinds of rows in derived_index
MESSAGE, EVENT = 0, 1
# meta key of the change counter (see Store._next_seq)
_SEQ_KEY = "seq"


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default)."""
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if revision == "head" and current == head_revision():
            return
        log.info("migrating store from %s to %s", current or "empty", revision)
        command.upgrade(_alembic_config(conn), revision)


# sqlite3 binds int, float, str and bytes straight away, but sends every other
# value (None and bool among them) through its adapter protocol: a registry
# miss, then __adapt__ and __conform__ lookups, about half a microsecond per
# value. A message row holds about nine of them, which cost more than the
# row's insert. Registered adapters are found at the first lookup; these two
# bind exactly what sqlite3 would bind anyway (NULL; 1 or 0), so nothing else
# that uses sqlite3 in the process sees a difference.
# {}.get is a C function that returns None for None (a Python one costs a frame)
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
sqlite3.register_adapter(bool, int)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # 16 KiB pages for a new store (SQLite ignores this once the file has
    # content): a first sync of 100k messages stored in about 30% less time
    # than with 4 KiB pages, a quarter of the write calls (bench/imap_sync.py)
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def addrs_from_json(text: str) -> tuple[Address, ...]:
    return tuple(Address(name=n, email=e) for n, e in json.loads(text))


def _attendees_json(atts: Sequence[Attendee]) -> str:
    return json.dumps(
        [[a.email, a.name, a.partstat, a.cutype, a.role] for a in atts],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def attendees_from_json(text: str) -> tuple[Attendee, ...]:
    return tuple(
        Attendee(email=e, name=n, partstat=p, cutype=c, role=r)
        for e, n, p, c, r in json.loads(text)
    )


# the upsert of apply_mail_batch on SQLite: one prepared statement, values as
# SQLAlchemy's SQLite types would bind them (see datetime_text)
_MESSAGES_UPSERT_SQLITE = (
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}, seq) "  # noqa: S608 (constant names)
    f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))}, ?) "
    "ON CONFLICT (account, folder, uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*MESSAGE_COLUMNS[3:], "seq"))
)


_SET_FLAGS_SQLITE = (
    "UPDATE messages SET flags = ?, seq = ? WHERE account = ? AND folder = ? AND uid = ?"
)
_CHECKPOINT_UPSERT_SQLITE = (
    "INSERT INTO sync_state (source, scope, state_json, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (source, scope) DO UPDATE SET "
    "state_json = excluded.state_json, updated_at = excluded.updated_at"
)


def _sqlite_mail_steps(
    batch: MailBatch, account: str, seq: int
) -> list[tuple[str, Sequence[tuple[Any, ...]]]]:
    """A mail batch as SQLite statements and their rows, in the order they run
    (the folder reset of a new UIDVALIDITY is done before, by the store)."""
    steps: list[tuple[str, Sequence[tuple[Any, ...]]]] = []
    # the last copy wins when a chunk holds one location twice
    values = {(r.account, r.folder, r.uid): r for r in batch.records}
    steps.append(
        (
            _MESSAGES_UPSERT_SQLITE,
            [message_values(r, datetime_text, (seq,)) for r in values.values()],
        )
    )
    flags = [
        (" ".join(sorted(fu.flags)), seq, account, fu.folder, fu.uid) for fu in batch.flag_updates
    ]
    steps.append((_SET_FLAGS_SQLITE, flags))
    if (cp := batch.checkpoint) is not None:
        state = json.dumps(cp.state, sort_keys=True)
        stamp = datetime_text(datetime.now(UTC))
        steps.append((_CHECKPOINT_UPSERT_SQLITE, [(cp.source, cp.scope, state, stamp)]))
    return steps


class PersonRow(NamedTuple):
    """A row of derived_people."""

    root: str
    id: str
    name: str
    addresses_json: str
    is_tie: bool
    tier: str | None
    strength: float  # at the end of the last day with contact (kept free of the clock)
    last_contact: datetime | None
    stats_json: str


def message_row(r: MessageRecord) -> dict[str, Any]:
    """A record as column values of ``messages``."""
    return dict(zip(MESSAGE_COLUMNS, message_values(r), strict=True))


def message_from_row(row: Any) -> MessageRecord:
    return MessageRecord(
        account=row.account,
        folder=row.folder,
        uid=row.uid,
        message_id=row.message_id,
        date=row.date,
        internal_date=row.internal_date,
        from_=addrs_from_json(row.from_json),
        to=addrs_from_json(row.to_json),
        cc=addrs_from_json(row.cc_json),
        bcc=addrs_from_json(row.bcc_json),
        in_reply_to=row.in_reply_to,
        references=tuple(json.loads(row.references_json)),
        subject=row.subject,
        list_id=row.list_id,
        list_post=row.list_post,
        list_unsubscribe=row.list_unsubscribe,
        precedence=row.precedence,
        auto_submitted=row.auto_submitted,
        flags=frozenset(row.flags.split()) if row.flags else frozenset(),
        gm_msgid=row.gm_msgid,
        gm_thrid=row.gm_thrid,
        in_sent_folder=row.in_sent_folder,
        signals=frozenset(row.signals.split()) if row.signals else frozenset(),
        parse_errors=tuple(row.parse_errors.split(",")) if row.parse_errors else (),
    )


def event_row(r: EventRecord) -> dict[str, Any]:
    return {
        "source": r.source,
        "uid": r.uid[:500],
        "recurrence_id": r.recurrence_id,
        "start": r.start,
        "end": r.end,
        "all_day": r.all_day,
        "status": r.status,
        "summary": r.summary,
        "organizer": r.organizer,
        "attendees_json": _attendees_json(r.attendees),
        "my_status": r.my_status,
        "own": r.own,
        "attendees_omitted": r.attendees_omitted,
    }


def event_from_row(row: Any) -> EventRecord:
    return EventRecord(
        source=row.source,
        uid=row.uid,
        recurrence_id=row.recurrence_id,
        start=row.start,
        end=row.end,
        all_day=row.all_day,
        status=row.status,
        summary=row.summary,
        organizer=row.organizer,
        attendees=attendees_from_json(row.attendees_json),
        my_status=row.my_status,
        own=row.own,
        attendees_omitted=row.attendees_omitted,
    )


class Store:
    """The database behind kithkeep. Open with :meth:`open`; close when done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        try:
            path = _sqlite_file(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _owner_only(path)
            engine = sa.create_engine(url)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            if migrate_schema:
                migrate(engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store at {_safe_url(url)}: {_short(exc)}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open the store at {_safe_url(url)}: {exc.strerror}") from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or not at all."""
        with self.sessions.begin() as session:
            yield session

    @property
    def url(self) -> str:
        return _safe_url(self.engine.url.render_as_string(hide_password=True))

    # ------------------------------------------------------------- upserts

    def _upsert(
        self, session: Session, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]
    ) -> None:
        if not rows:
            return
        rows = _fit_rows(table, rows)
        dialect = self.engine.dialect.name
        update_cols = [c for c in rows[0] if c not in keys]
        if dialect in ("sqlite", "postgresql"):
            dialect_insert: Any
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            else:
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            # One compiled statement executed for all rows (DBAPI executemany):
            # a multi-VALUES statement is recompiled for every chunk, which
            # cost ~500 us per row in the IMAP benchmark.
            stmt = dialect_insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=keys,
                set_={c: stmt.excluded[c] for c in update_cols},
            )
            session.connection().execute(stmt, rows)
            return
        for row in rows:  # portable fallback for other databases
            cond = sa.and_(*(table.c[k] == row[k] for k in keys))
            res = session.execute(sa.update(table).where(cond).values(row))
            if res.rowcount == 0:  # type: ignore[attr-defined]
                session.execute(sa.insert(table).values(row))

    def _save_checkpoint(self, session: Session, cp: Checkpoint) -> None:
        row = {
            "source": cp.source,
            "scope": cp.scope,
            "state_json": json.dumps(cp.state, sort_keys=True),
            "updated_at": datetime.now(UTC),
        }
        self._upsert(session, SYNC_STATE, [row], ["source", "scope"])

    def apply_mail_batch(self, batch: MailBatch, account: str) -> None:
        """Commit one chunk of mail of ``account`` together with its checkpoint."""
        msgs = MESSAGES
        with self.transaction() as s:
            # every row the batch writes carries its change counter: the analysis
            # reads the rows written since it last ran
            seq = self._next_seq(s)
            if batch.replace_folder is not None:
                where = sa.and_(msgs.c.account == account, msgs.c.folder == batch.replace_folder)
                self._forget_indexed(s, MESSAGE, sa.select(msgs.c.id).where(where))
                s.execute(sa.delete(msgs).where(where))
            if self.engine.dialect.name == "sqlite":
                # raw statements of ready tuples: SQLAlchemy's per-row bind processing
                # cost as much as the insert itself
                conn = s.connection()
                for sql, values in _sqlite_mail_steps(batch, account, seq):
                    if values:
                        conn.exec_driver_sql(sql, list(values))
                return
            # the last copy wins when a chunk holds one location twice
            rows = {(r.account, r.folder, r.uid): message_row(r) for r in batch.records}
            self._upsert(
                s,
                msgs,
                [{**row, "seq": seq} for row in rows.values()],
                ["account", "folder", "uid"],
            )
            for fu in batch.flag_updates:
                s.execute(
                    sa.update(msgs)
                    .where(
                        msgs.c.account == account,
                        msgs.c.folder == fu.folder,
                        msgs.c.uid == fu.uid,
                    )
                    .values(flags=" ".join(sorted(fu.flags)), seq=seq)
                )
            if batch.checkpoint is not None:
                self._save_checkpoint(s, batch.checkpoint)

    def _next_seq(self, session: Session) -> int:
        """The next value of the store's change counter, taken in ``session``'s
        transaction: batches committed later always carry a higher one (the
        counter row stays locked until the commit)."""
        t = META
        got = session.execute(
            sa.update(t)
            .where(t.c.key == _SEQ_KEY)
            .values(value=sa.cast(sa.cast(t.c.value, sa.BigInteger) + 1, sa.Text))
            .returning(t.c.value)
        ).scalar_one_or_none()
        if got is None:
            session.execute(sa.insert(t).values(key=_SEQ_KEY, value="1"))
            return 1
        return int(got)

    def _forget_indexed(self, session: Session, kind: int, refs: sa.Select[Any]) -> None:
        """Before rows are deleted: the addresses they were filed under become changed
        (their people are recomputed), and their entries leave the index."""
        ix = INDEX
        cond = sa.and_(ix.c.kind == kind, ix.c.ref.in_(refs))
        addresses = session.execute(sa.select(ix.c.address).where(cond).distinct()).scalars()
        self._mark_changed(session, list(addresses))
        session.execute(sa.delete(ix).where(cond))

    def _mark_changed(self, session: Session, addresses: Sequence[str]) -> None:
        if not addresses:
            return
        have = set(
            session.execute(
                sa.select(CHANGED.c.address).where(CHANGED.c.address.in_(addresses))
            ).scalars()
        )
        new = [{"address": a} for a in sorted(set(addresses) - have)]
        if new:
            session.execute(sa.insert(CHANGED), new)

    def apply_event_batch(self, batch: EventBatch, source: str) -> None:
        """Commit calendar changes of one source together with its checkpoint."""
        events = EVENTS
        with self.transaction() as s:
            seq = self._next_seq(s)
            gone: list[sa.ColumnElement[bool]] = []
            if batch.replace:
                gone.append(events.c.source == source)
            for uid, rid in batch.deleted:
                cond = sa.and_(events.c.source == source, events.c.uid == uid)
                if rid:
                    cond = sa.and_(cond, events.c.recurrence_id == rid)
                gone.append(cond)
            for cond in gone:
                self._forget_indexed(s, EVENT, sa.select(events.c.id).where(cond))
                s.execute(sa.delete(events).where(cond))
            rows = {
                (r.source, r.uid, r.recurrence_id): {**event_row(r), "seq": seq}
                for r in batch.records
            }
            self._upsert(s, events, list(rows.values()), ["source", "uid", "recurrence_id"])
            if batch.checkpoint is not None:
                self._save_checkpoint(s, batch.checkpoint)

    # --------------------------------------------------------------- reads

    def checkpoints(self, source: str) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(SyncState.scope, SyncState.state_json).where(SyncState.source == source)
            )
            return {scope: json.loads(state) for scope, state in rows}

    def known_uids(self, account: str, folder: str) -> dict[str, frozenset[str]]:
        """UIDs (or file keys) stored for a folder, with their flags."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(Message.uid, Message.flags).where(
                    Message.account == account, Message.folder == folder
                )
            )
            return {uid: frozenset(flags.split()) for uid, flags in rows}

    def iter_messages(self, chunk: int = 5000) -> Iterator[MessageRecord]:
        with self.engine.connect() as c:
            result = c.execution_options(yield_per=chunk).execute(
                sa.select(MESSAGES).order_by(Message.id)
            )
            for row in result:
                yield message_from_row(row)

    def iter_events(self) -> Iterator[EventRecord]:
        with self.engine.connect() as c:
            for row in c.execute(sa.select(EVENTS).order_by(Event.id)):
                yield event_from_row(row)

    def count(self, table: type[Any]) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(Meta.value).where(Meta.key == key)).scalar_one_or_none()

    def set_meta(self, session: Session, key: str, value: str) -> None:
        self._upsert(session, META, [{"key": key, "value": value}], ["key"])

    # ------------------------------------------------------- derived data

    # ----------------------------------------------------------- decisions

    def add_decision(
        self,
        kind: str,
        person: str,
        *,
        rule: str | None = None,
        until: datetime | None = None,
        value: str | None = None,
        note: str | None = None,
        now: datetime | None = None,
        supersede: bool = False,
    ) -> int:
        """Store a decision and return its id; with ``supersede``, older active ones
        of the same kind, person and rule are deactivated in the same transaction."""
        from kithkeep.decisions import KINDS

        if kind not in KINDS:
            raise ValueError(f"unknown decision kind {kind!r}")
        t = DECISIONS
        with self.transaction() as s:
            if supersede:
                s.execute(
                    sa.update(t)
                    .where(
                        t.c.active.is_(True),
                        t.c.kind == kind,
                        t.c.person == person,
                        t.c.rule.is_(None) if rule is None else t.c.rule == rule,
                    )
                    .values(active=False)
                )
            res = s.execute(
                sa.insert(t)
                .returning(t.c.id)
                .values(
                    kind=kind,
                    person=person,
                    rule=rule,
                    until=until,
                    value=value,
                    note=note,
                    created_at=now or datetime.now(UTC),
                    active=True,
                )
            )
            return int(res.scalar_one())

    def deactivate_decisions(self, decision_ids: Sequence[int]) -> None:
        with self.transaction() as s:
            s.execute(
                sa.update(DECISIONS).where(DECISIONS.c.id.in_(decision_ids)).values(active=False)
            )

    def active_decisions(self) -> list[DecisionRecord]:
        """Every active decision, oldest first."""
        t = DECISIONS
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.active.is_(True)).order_by(t.c.id))
            return [
                DecisionRecord(
                    r.id, r.kind, r.person, r.rule, r.until, r.value, r.note, r.created_at
                )
                for r in rows
            ]

    def deactivate_decisions_for(
        self, kind: str, addresses: Iterable[str], rule: str | None = None
    ) -> int:
        """Undo: deactivate the active decisions of ``kind`` about any of ``addresses``
        (with ``rule``, only those about that rule). Returns how many were undone."""
        t = DECISIONS
        cond = [t.c.active.is_(True), t.c.kind == kind, t.c.person.in_(list(addresses))]
        if rule is not None:
            cond.append(t.c.rule == rule)
        with self.transaction() as s:
            ids = list(s.execute(sa.select(t.c.id).where(*cond)).scalars())
            if ids:
                s.execute(sa.update(t).where(t.c.id.in_(ids)).values(active=False))
            return len(ids)

    # ------------------------------------------------------------- analysis

    def change_seq(self) -> int:
        """The store's change counter: it grows with every batch of mail or events."""
        value = self.get_meta(_SEQ_KEY)
        return int(value) if value else 0

    def changed_messages(self, after: int, chunk: int = 5000) -> Iterator[list[MessageFacts]]:
        """The facts the index needs of every message written after change ``after``,
        in chunks (all of them for ``after`` -1)."""
        c = MESSAGES.c
        query = sa.select(
            c.id,
            c.gm_msgid,
            c.message_id,
            c.date,
            c.internal_date,
            c.subject,
            c.from_json,
            c.to_json,
            c.cc_json,
            c.bcc_json,
            c.list_id,
            c.list_post,
            c.list_unsubscribe,
            c.precedence,
            c.auto_submitted,
            c.in_sent_folder,
            c.signals,
        )
        if after >= 0:
            query = query.where(c.seq > after)
        for rows in self._chunks(query.order_by(c.id), chunk):
            yield [
                MessageFacts(
                    r[0],
                    r[1],
                    r[2],
                    None if r[3] is None else _as_utc(r[3]),
                    None if r[4] is None else _as_utc(r[4]),
                    r[5] or "",
                    *r[6:],
                )
                for r in rows
            ]

    def changed_events(self, after: int) -> list[tuple[int, EventRecord]]:
        """(row id, event) of every event written after change ``after`` (all for -1)."""
        query = sa.select(EVENTS)
        if after >= 0:
            query = query.where(EVENTS.c.seq > after)
        with self.engine.connect() as conn:
            return [(r.id, event_from_row(r)) for r in conn.execute(query.order_by(EVENTS.c.id))]

    def events_ended(self, after: datetime, until: datetime) -> list[EventRecord]:
        """Events whose end falls in (after, until]: meetings that count from now on."""
        e = EVENTS.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(EVENTS).where(e.end > after, e.end <= until))
            return [event_from_row(r) for r in rows]

    def indexed_addresses(self, kind: int, refs: Sequence[int]) -> set[str]:
        """The addresses rows ``refs`` of ``kind`` are filed under now."""
        ix = INDEX
        out: set[str] = set()
        with self.engine.connect() as conn:
            for part in _parts(refs):
                query = sa.select(ix.c.address).where(ix.c.kind == kind, ix.c.ref.in_(part))
                out.update(conn.execute(query).scalars())
        return out

    def changed_addresses(self) -> set[str]:
        """Addresses of records deleted since the analysis last ran."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(CHANGED.c.address)).scalars())

    def messages_of(self, addresses: Iterable[str]) -> list[tuple[str, StoredMessage]]:
        """(address, message) for every message filed under one of ``addresses``."""
        out: list[tuple[str, StoredMessage]] = []
        for part in _parts(sorted(set(addresses))):
            query = self._indexed_messages().where(INDEX.c.address.in_(part))
            out.extend((row[0], self._stored(row)) for rows in self._chunks(query) for row in rows)
        return out

    def all_indexed_messages(self) -> Iterator[tuple[str, list[StoredMessage]]]:
        """Every address of the index with its messages, one address at a time in
        address order: a full rebuild reads one person's messages at a time without
        holding the rest."""
        query = self._indexed_messages().order_by(INDEX.c.address, INDEX.c.ref)
        stored = self._stored
        current: str | None = None
        batch: list[StoredMessage] = []
        for rows in self._chunks(query):
            for row in rows:
                if row[0] != current:
                    if current is not None:
                        yield current, batch
                    current, batch = row[0], []
                batch.append(stored(row))
        if current is not None:
            yield current, batch

    def events_of(self, addresses: Iterable[str]) -> list[EventRecord]:
        """Every event filed under one of ``addresses`` (each once)."""
        out: dict[int, EventRecord] = {}
        ix = INDEX
        with self.engine.connect() as conn:
            for part in _parts(sorted(set(addresses))):
                refs = sa.select(ix.c.ref).where(ix.c.kind == EVENT, ix.c.address.in_(part))
                for r in conn.execute(sa.select(EVENTS).where(EVENTS.c.id.in_(refs))):
                    out[r.id] = event_from_row(r)
        return [out[k] for k in sorted(out)]

    def addresses_with(self, addresses: Iterable[str]) -> set[str]:
        """Every address filed with one of ``addresses`` on the same message or event."""
        ix, other = INDEX, INDEX.alias("other")
        found: set[str] = set()
        with self.engine.connect() as conn:
            for part in _parts(sorted(set(addresses))):
                query = (
                    sa.select(other.c.address)
                    .join(ix, sa.and_(ix.c.kind == other.c.kind, ix.c.ref == other.c.ref))
                    .where(ix.c.address.in_(part))
                    .distinct()
                )
                found.update(conn.execute(query).scalars())
        return found

    def mail_counts(self) -> dict[str, int]:
        """How many personal messages (copies once), copies beyond the first, bulk
        messages (copies once) and undated personal copies the store holds. Copies
        share the Gmail message id, else the Message-ID."""
        c = MESSAGES.c
        key = sa.func.coalesce(sa.cast(c.gm_msgid, sa.Text), c.message_id)
        # (every part is true or false, never NULL: NOT of a NULL would drop the row)
        bulk = sa.or_(
            c.list_id.is_not(None),
            c.list_unsubscribe.is_(True),
            sa.func.coalesce(c.precedence, "").in_(BULK_PRECEDENCE),
            sa.func.coalesce(c.auto_submitted, "no") != "no",
        )
        dated = sa.or_(c.date.is_not(None), c.internal_date.is_not(None))
        with self.engine.connect() as conn:
            rows, keys = conn.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(key))).where(
                    sa.not_(bulk), dated
                )
            ).one()
            bulk_keys = conn.execute(
                sa.select(sa.func.count(sa.distinct(key))).where(bulk)
            ).scalar_one()
            undated = conn.execute(
                sa.select(sa.func.count()).where(sa.not_(bulk), sa.not_(dated))
            ).scalar_one()
        return {
            "messages": int(keys),
            "duplicates": int(rows) - int(keys),
            "bulk": int(bulk_keys),
            "undated": int(undated),
        }

    def sent_folder_senders(self) -> list[tuple[str, str, str, int]]:
        """(account, folder, From address, messages) over every sent folder."""
        c = MESSAGES.c
        query = (
            sa.select(c.account, c.folder, c.from_json, sa.func.count())
            .where(c.in_sent_folder.is_(True))
            .group_by(c.account, c.folder, c.from_json)
        )
        out: list[tuple[str, str, str, int]] = []
        with self.engine.connect() as conn:
            for account, folder, from_json, n in conn.execute(query):
                try:
                    first = json.loads(from_json)[0][1]
                except (ValueError, IndexError, TypeError):
                    continue
                out.append((account, folder, str(first), int(n)))
        return out

    def _indexed_messages(self) -> sa.Select[Any]:
        c = MESSAGES.c
        return sa.select(
            INDEX.c.address,
            c.id,
            c.gm_msgid,
            c.message_id,
            c.date,
            c.internal_date,
            c.from_json,
            c.to_json,
            c.cc_json,
            c.bcc_json,
            c.in_reply_to,
            c.references_json,
            c.subject,
            c.flags,
            c.in_sent_folder,
            c.gm_thrid,
            c.signals,
        ).join(MESSAGES, sa.and_(INDEX.c.kind == MESSAGE, INDEX.c.ref == c.id))

    @staticmethod
    def _stored(row: Sequence[Any]) -> StoredMessage:
        """A row of :meth:`_indexed_messages` (its address first) as a message."""
        (_address, mid, gm, msgid, date, idate, frm, to, cc, bcc, irt, refs, subj, flags, sent,
         thr, signals) = row  # fmt: skip
        return StoredMessage(
            mid, gm, msgid,
            # no call for a missing date (INTERNALDATE is missing in most stores' rows)
            None if date is None else _as_utc(date),
            None if idate is None else _as_utc(idate),
            frm, to, cc, bcc, irt, refs, subj or "", flags or "", bool(sent), thr, signals or "",
        )  # fmt: skip

    def _chunks(self, query: sa.Select[Any], size: int = 5000) -> Iterator[list[Any]]:
        """The rows of ``query`` as the database driver returns them, a chunk at a time
        (SQLAlchemy's per-value processing costs more than the rest of reading)."""
        with self.engine.connect() as conn:
            compiled = query.compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
            )
            params = compiled.construct_params()
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if conn.dialect.paramstyle == "qmark":
                    cursor.execute(str(compiled), [params[k] for k in compiled.positiontup or ()])
                else:
                    cursor.execute(str(compiled), params)
                while chunk := cursor.fetchmany(size):
                    yield chunk
            finally:
                cursor.close()

    # ------------------------------------------------------------ reminders

    def reminder_states(self, sink: str | None = None) -> list[tuple[str, ReminderState]]:
        """(sink, state) of every reminder kithkeep wrote (to ``sink``, when given)."""
        t = REMINDER_STATE
        query = sa.select(t)
        if sink is not None:
            query = query.where(t.c.sink == sink)
        with self.engine.connect() as c:
            return [
                (r.sink, ReminderState(r.key, r.uid, r.start, r.end, r.content_hash, r.status))
                for r in c.execute(query)
            ]

    def save_reminder_states(
        self,
        sink: str,
        *,
        put: Sequence[ReminderState] = (),
        remove: Sequence[str] = (),
        dismiss: Sequence[str] = (),
    ) -> None:
        """In one transaction: store ``put`` (replacing the rows of their keys), delete
        the rows of ``remove`` and mark the rows of ``dismiss`` as dismissed."""
        if not (put or remove or dismiss):
            return
        t = REMINDER_STATE
        now = datetime.now(UTC)
        with self.transaction() as s:
            for key in dismiss:
                s.execute(
                    sa.update(t)
                    .where(t.c.sink == sink, t.c.key == key)
                    .values(status="dismissed", updated_at=now)
                )
            gone = [*remove, *(st.key for st in put)]
            if gone:
                s.execute(sa.delete(t).where(t.c.sink == sink, t.c.key.in_(gone)))
            if put:
                s.execute(
                    sa.insert(t),
                    [
                        {
                            "sink": sink,
                            "key": st.key,
                            "uid": st.uid,
                            "start": st.start,
                            "end": st.end,
                            "content_hash": st.content_hash,
                            "status": st.status,
                            "updated_at": now,
                        }
                        for st in put
                    ],
                )

    # ------------------------------------------------------------- findings

    # ---------------------------------------------------------- run status

    def run_statuses(self) -> dict[tuple[str, str], RunStatus]:
        """How the last runs of every source and sink went, by (kind, name)."""
        t = SOURCE_STATUS
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t)).all()
        return {
            (r.kind, r.source): RunStatus(
                r.kind, r.source, r.last_success, r.last_error, r.last_error_at, r.failures,
                r.next_run,
            )
            for r in rows
        }  # fmt: skip

    def update_run_status(self, kind: str, name: str, **values: object) -> None:
        """Set some fields of a source's or sink's run status (the row is made when new)."""
        t = SOURCE_STATUS
        with self.transaction() as s:
            res = s.execute(
                sa.update(t).where(t.c.kind == kind, t.c.source == name).values(**values)
            )
            if res.rowcount == 0:  # type: ignore[attr-defined]
                s.execute(sa.insert(t).values(kind=kind, source=name, **{"failures": 0, **values}))

    # ------------------------------------------------------- derived people

    def save_analysis(
        self,
        *,
        reindex: Sequence[tuple[int, Sequence[int], Sequence[tuple[str, int]]]] = (),
        people: Sequence[PersonRow] = (),
        remove_roots: Sequence[str] = (),
        judge_at: datetime | None = None,
        clear_changed: Sequence[str] = (),
        meta: Mapping[str, str | None] | None = None,
    ) -> None:
        """One step of the analysis, in one transaction.

        ``reindex``: (kind, refs, entries) — file rows ``refs`` of ``kind`` under
        ``entries`` ((address, ref) pairs) instead of where they were. ``people``
        replace the stored people of their roots, with ``judge_at`` (the rules must
        judge them again); the people of ``remove_roots`` are gone, with their
        findings. ``clear_changed``: changed addresses now dealt with. ``meta``:
        keys to set (None deletes).
        """
        ix, pt, ft = INDEX, DERIVED_PEOPLE, FINDINGS
        with self.transaction() as s:
            for kind, refs, entries in reindex:
                for part in _parts(refs):
                    s.execute(sa.delete(ix).where(ix.c.kind == kind, ix.c.ref.in_(part)))
                if entries:
                    # ready tuples through the driver: SQLAlchemy's per-row parameter
                    # building cost as much as the inserts themselves
                    conn = s.connection()
                    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                    conn.exec_driver_sql(
                        f"INSERT INTO derived_index (address, kind, ref) "  # noqa: S608
                        f"VALUES ({mark}, {mark}, {mark})",
                        [(a, kind, r) for a, r in entries],
                    )
            roots = sorted({*remove_roots, *(p.root for p in people)})
            for part in _parts(roots):
                old = sa.select(pt.c.id).where(pt.c.root.in_(part))
                s.execute(sa.delete(ft).where(ft.c.person_id.in_(old)))
                s.execute(sa.delete(pt).where(pt.c.root.in_(part)))
            if people:
                # a person id follows the smallest address: another root may hold it
                ids = [p.id for p in people]
                for part in _parts(ids):
                    s.execute(sa.delete(ft).where(ft.c.person_id.in_(part)))
                    s.execute(sa.delete(pt).where(pt.c.id.in_(part)))
                s.execute(sa.insert(pt), [{**p._asdict(), "judge_at": judge_at} for p in people])
            for part in _parts(sorted(clear_changed)):
                s.execute(sa.delete(CHANGED).where(CHANGED.c.address.in_(part)))
            for key, value in (meta or {}).items():
                if value is None:
                    s.execute(sa.delete(META).where(META.c.key == key))
                else:
                    self.set_meta(s, key, value)

    def reset_analysis(self, state_key: str) -> None:
        """Before a full rebuild: drop the analysis' state (so that a rebuild cut short
        is started again, not continued from), its index, people and findings."""
        with self.transaction() as s:
            s.execute(sa.delete(META).where(META.c.key == state_key))
            for table in (INDEX, CHANGED, FINDINGS, DERIVED_PEOPLE):
                s.execute(sa.delete(table))

    def people_json(self, roots: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(root, stored statistics) of every person (of ``roots``, when given)."""
        pt = DERIVED_PEOPLE
        query = sa.select(pt.c.root, pt.c.stats_json)
        with self.engine.connect() as conn:
            if roots is None:
                return [(r, j) for r, j in conn.execute(query.order_by(pt.c.id))]
            out: list[tuple[str, str]] = []
            for part in _parts(sorted(set(roots))):
                out.extend((r, j) for r, j in conn.execute(query.where(pt.c.root.in_(part))))
            return out

    def people_directory(self) -> list[tuple[str, str, str]]:
        """(id, name, addresses JSON) of every person, strongest first: enough to find
        one by what the user typed without reading everyone's statistics."""
        pt = DERIVED_PEOPLE
        query = sa.select(pt.c.id, pt.c.name, pt.c.addresses_json).order_by(
            pt.c.strength.desc(), pt.c.id
        )
        with self.engine.connect() as conn:
            return [(i, n, a) for i, n, a in conn.execute(query)]

    def person_json(self, person_id: str) -> str | None:
        """The stored statistics of one person, by id."""
        pt = DERIVED_PEOPLE
        with self.engine.connect() as conn:
            text: str | None = conn.execute(
                sa.select(pt.c.stats_json).where(pt.c.id == person_id)
            ).scalar()
        return text

    def people_to_judge(self, now: datetime) -> list[tuple[str, str]]:
        """(root, stored statistics) of the people whose verdicts may have changed."""
        pt = DERIVED_PEOPLE
        query = sa.select(pt.c.root, pt.c.stats_json).where(pt.c.judge_at <= now)
        with self.engine.connect() as conn:
            return [(r, j) for r, j in conn.execute(query.order_by(pt.c.id))]

    def roots_of(self, addresses: Iterable[str]) -> set[str]:
        """The roots of the stored people that hold one of ``addresses``."""
        wanted = set(addresses)
        found: set[str] = set()
        pt = DERIVED_PEOPLE
        with self.engine.connect() as conn:
            for root, text in conn.execute(sa.select(pt.c.root, pt.c.addresses_json)):
                if wanted.intersection(json.loads(text)):
                    found.add(root)
        return found

    def rejudge(
        self, *, roots: Iterable[str] | None = None, ids: Iterable[str] | None = None
    ) -> None:
        """Have the rules judge people again at the next cycle: those of ``roots`` or
        ``ids``, or everyone when neither is given."""
        pt = DERIVED_PEOPLE
        with self.transaction() as s:
            if roots is None and ids is None:
                s.execute(sa.update(pt).values(judge_at=_LONG_AGO))
                return
            for col, values in ((pt.c.root, roots), (pt.c.id, ids)):
                for part in _parts(sorted(set(values or ()))):
                    s.execute(sa.update(pt).where(col.in_(part)).values(judge_at=_LONG_AGO))

    def people_counts(self) -> tuple[int, int]:
        """(people, ties) as stored."""
        pt = DERIVED_PEOPLE
        with self.engine.connect() as conn:
            people, ties = conn.execute(
                sa.select(sa.func.count(), sa.func.count().filter(pt.c.is_tie.is_(True)))
            ).one()
        return int(people), int(ties)

    def save_findings(
        self, judged: Mapping[str, tuple[Sequence[Mapping[str, Any]], datetime | None]]
    ) -> None:
        """The findings of judged people, by person id: (finding rows, when to judge
        them again), replacing what was stored for them."""
        pt, ft = DERIVED_PEOPLE, FINDINGS
        with self.transaction() as s:
            for pid, (rows, again) in judged.items():
                s.execute(sa.delete(ft).where(ft.c.person_id == pid))
                if rows:
                    s.execute(sa.insert(ft), [dict(r) for r in rows])
                s.execute(sa.update(pt).where(pt.c.id == pid).values(judge_at=again))

    def findings_json(self, *, reminding: bool = False) -> list[str]:
        """Every stored finding (as Finding.to_json text); with ``reminding``, only those
        that want a calendar reminder (what the weekly budget shares out)."""
        query = sa.select(FINDINGS.c.data_json)
        if reminding:
            query = query.where(FINDINGS.c.remind.is_(True))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())


_string_limits: dict[str, dict[str, int | None]] = {}


def _fit_rows(table: sa.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Values every backend accepts: no NUL characters, strings cut to their column.

    PostgreSQL rejects both (and with the row, the whole batch) where SQLite
    takes them; one odd header must not stop a source at its chunk. (SQLite's
    raw message upsert keeps NULs: it accepts them.)
    """
    limits = _string_limits.get(table.name)
    if limits is None:
        limits = {
            c.name: getattr(c.type, "length", None)
            for c in table.columns
            if isinstance(c.type, sa.String)
        }
        _string_limits[table.name] = limits
    out = []
    for row in rows:
        fixed = None
        for k, v in row.items():
            if isinstance(v, str) and k in limits:
                limit = limits[k]
                w = v.replace("\x00", "") if "\x00" in v else v
                if limit is not None and len(w) > limit:
                    w = w[:limit]
                if w is not v:
                    if fixed is None:
                        fixed = dict(row)
                    fixed[k] = w
        out.append(row if fixed is None else fixed)
    return out


BULK_PRECEDENCE = ("bulk", "list", "junk")
# a judge_at that any clock has passed: judge at the next cycle
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)
# at most this many values in one IN (...): SQLite's limit is 32766, PostgreSQL's 65535
_PART = 500


def _parts(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), _PART):
        yield values[i : i + _PART]


def _as_utc(value: Any) -> datetime:
    """A date as the driver gives it (SQLite: text; PostgreSQL: naive) as aware UTC."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, memory, or a URI filename)."""
    parsed = sa.engine.make_url(url)
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    if db.startswith("file:") or parsed.query.get("uri"):
        return None  # a URI filename: SQLite reads the options in it
    return Path(db)


def _owner_only(path: Path) -> None:
    """The store holds who the user talks to: its file is created readable by the owner
    only, and a file left readable by others (a store from before) is made so. SQLite
    gives its -wal and -shm files the mode of the database file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:
            pass
        except PermissionError:  # someone else's file: say so, and open it all the same
            log.warning("%s is readable by others and not yours to make private", file)


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
