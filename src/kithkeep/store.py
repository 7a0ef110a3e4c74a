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
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, pool
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
    MessageRecord,
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
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "  # noqa: S608 (constant names)
    f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))}) "
    "ON CONFLICT (account, folder, uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in MESSAGE_COLUMNS[3:])
)


_DELETE_FOLDER_SQLITE = "DELETE FROM messages WHERE account = ? AND folder = ?"
_SET_FLAGS_SQLITE = "UPDATE messages SET flags = ? WHERE account = ? AND folder = ? AND uid = ?"
_CHECKPOINT_UPSERT_SQLITE = (
    "INSERT INTO sync_state (source, scope, state_json, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (source, scope) DO UPDATE SET "
    "state_json = excluded.state_json, updated_at = excluded.updated_at"
)


def _sqlite_mail_steps(
    batch: MailBatch, account: str
) -> list[tuple[str, Sequence[tuple[Any, ...]]]]:
    """A mail batch as SQLite statements and their rows, in the order they run."""
    steps: list[tuple[str, Sequence[tuple[Any, ...]]]] = []
    if batch.replace_folder is not None:
        steps.append((_DELETE_FOLDER_SQLITE, [(account, batch.replace_folder)]))
    # the last copy wins when a chunk holds one location twice
    values = {(r.account, r.folder, r.uid): r for r in batch.records}
    steps.append(
        (_MESSAGES_UPSERT_SQLITE, [message_values(r, datetime_text) for r in values.values()])
    )
    flags = [(" ".join(sorted(fu.flags)), account, fu.folder, fu.uid) for fu in batch.flag_updates]
    steps.append((_SET_FLAGS_SQLITE, flags))
    if (cp := batch.checkpoint) is not None:
        state = json.dumps(cp.state, sort_keys=True)
        stamp = datetime_text(datetime.now(UTC))
        steps.append((_CHECKPOINT_UPSERT_SQLITE, [(cp.source, cp.scope, state, stamp)]))
    return steps


# the columns of derived_people in the order replace_people takes its rows
PEOPLE_COLUMNS = (
    "id",
    "name",
    "addresses_json",
    "is_tie",
    "tier",
    "strength",
    "last_contact",
    "stats_json",
)
_LAST_CONTACT = PEOPLE_COLUMNS.index("last_contact")
_PEOPLE_INSERT_SQLITE = (
    f"INSERT INTO derived_people ({', '.join(PEOPLE_COLUMNS)}) "  # noqa: S608 (constant names)
    f"VALUES ({', '.join('?' * len(PEOPLE_COLUMNS))})"
)
_PEOPLE_SELECT_SQLITE = f"SELECT {', '.join(PEOPLE_COLUMNS)} FROM derived_people"  # noqa: S608


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
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True, mode=0o700
                )
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
    def threadsafe(self) -> bool:
        """Whether another thread may write through this store at the same time.

        Not for an in-memory SQLite database: each thread would get a
        database of its own (SingletonThreadPool) or share one connection.
        """
        return not isinstance(self.engine.pool, (pool.SingletonThreadPool, pool.StaticPool))

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
        if self.engine.dialect.name == "sqlite":
            # raw statements of ready tuples: SQLAlchemy's per-row bind processing
            # cost as much as the insert itself
            steps = _sqlite_mail_steps(batch, account)
            with self.transaction() as s:
                conn = s.connection()
                for sql, values in steps:
                    if values:
                        conn.exec_driver_sql(sql, list(values))
            return
        msgs = MESSAGES
        # the last copy wins when a chunk holds one location twice
        rows = {(r.account, r.folder, r.uid): message_row(r) for r in batch.records}
        with self.transaction() as s:
            if batch.replace_folder is not None:
                s.execute(
                    sa.delete(msgs).where(
                        msgs.c.account == account, msgs.c.folder == batch.replace_folder
                    )
                )
            self._upsert(s, msgs, list(rows.values()), ["account", "folder", "uid"])
            for fu in batch.flag_updates:
                s.execute(
                    sa.update(msgs)
                    .where(
                        msgs.c.account == account,
                        msgs.c.folder == fu.folder,
                        msgs.c.uid == fu.uid,
                    )
                    .values(flags=" ".join(sorted(fu.flags)))
                )
            if batch.checkpoint is not None:
                self._save_checkpoint(s, batch.checkpoint)

    def apply_event_batch(self, batch: EventBatch, source: str) -> None:
        """Commit calendar changes of one source together with its checkpoint."""
        events = EVENTS
        with self.transaction() as s:
            if batch.replace:
                s.execute(sa.delete(events).where(events.c.source == source))
            for uid, rid in batch.deleted:
                cond = sa.and_(events.c.source == source, events.c.uid == uid)
                if rid:
                    cond = sa.and_(cond, events.c.recurrence_id == rid)
                s.execute(sa.delete(events).where(cond))
            rows = {(r.source, r.uid, r.recurrence_id): event_row(r) for r in batch.records}
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

    # ------------------------------------------------------- derived people

    def replace_people(self, rows: Sequence[tuple[Any, ...]], meta: dict[str, str]) -> None:
        """Make the derived people table hold exactly ``rows`` (values of ``PEOPLE_COLUMNS``)
        and set ``meta``, in one transaction."""
        with self.transaction() as s:
            # the meta first: on SQLite its write takes the write lock, so the table read
            # below is the one the rest of the transaction changes (no writer in between)
            for key, value in meta.items():
                self.set_meta(s, key, value)
            if self.engine.dialect.name == "sqlite":
                _replace_people_sqlite(s.connection(), rows, compare=bool(meta))
                return
            # Core statements on the table, not the ORM class: an ORM bulk insert groups
            # the rows by which values are None and sends hundreds of statements
            s.execute(sa.delete(DERIVED_PEOPLE))
            if rows:
                s.execute(
                    sa.insert(DERIVED_PEOPLE),
                    [dict(zip(PEOPLE_COLUMNS, r, strict=True)) for r in rows],
                )


def _replace_people_sqlite(
    conn: Connection, rows: Sequence[tuple[Any, ...]], *, compare: bool
) -> None:
    """The people table made to hold ``rows``, writing only the rows that differ.

    Most people's statistics are the same from one analysis to the next, and
    writing the whole table anew (megabytes of JSON) cost most of saving, so the
    stored rows are read and compared first (``compare``: the transaction holds
    the write lock already); when most differ, the table is rewritten. Values
    are bound as tuples, the date as SQLAlchemy would bind it: its per-row bind
    processing cost more than the insert itself.
    """
    k = _LAST_CONTACT
    values = [(*r[:k], datetime_text(r[k]), *r[k + 1 :]) for r in rows]
    stored: dict[str, tuple[Any, ...]] = {}
    if compare:
        stored = {row[0]: tuple(row) for row in conn.exec_driver_sql(_PEOPLE_SELECT_SQLITE)}
    # a stored row equals its new values exactly when it is unchanged (0/1 equal False/True)
    changed = [v for v in values if stored.pop(v[0], None) != v]
    if not compare or len(changed) > len(values) // 2:
        conn.exec_driver_sql("DELETE FROM derived_people")
        changed = values
    else:
        # what is left in stored are people who are no more (merged, or their mail gone)
        gone = [(pid,) for pid in stored] + [(v[0],) for v in changed]
        if gone:
            conn.exec_driver_sql("DELETE FROM derived_people WHERE id = ?", gone)
    if changed:
        conn.exec_driver_sql(_PEOPLE_INSERT_SQLITE, changed)


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


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]
