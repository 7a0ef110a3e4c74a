"""Reminders: from findings to calendar events, reconciled as plan, then apply.

A desired reminder has a stable key (rule, person, episode) and a UID derived
from it and the sink's identity (see :func:`reminder_uid`). Reconciling
compares the desired reminders with the events kithkeep finds in the sink (by
key) and with what it last wrote there (``reminder_state``):

- missing and never written -> create, in the first free working slot;
- present -> keep the sink's start and end (the user may have moved or
  stretched it), update the text if it changed;
- written before but gone from the sink -> the user deleted it: dismissed,
  never written again (also when the sink itself refuses to re-create the
  event because the user deleted it: Google answers 409, see
  :class:`UserDeleted`);
- present but no longer desired -> delete (the finding resolved);
- gone from the sink and no longer desired -> the user deleted it: its row is
  kept as dismissed, so the same episode is never written again.

If the sink suddenly shows none of several events kithkeep had written, it
refuses to act (like vdirsyncer's StorageEmpty) unless forced; forcing
accepts the sink as it is, so the missing events count as deleted by the user.
One written reminder gone is what a user deleting it looks like, so that alone
is never refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import partial
from urllib.parse import quote

from kithkeep.config import Config, RemindersConfig
from kithkeep.errors import SinkRefused, UserDeleted
from kithkeep.interfaces import Reminder, ReminderSink, SinkEvent
from kithkeep.model.identity import GMAIL_DOMAINS
from kithkeep.records import ReminderState
from kithkeep.rules.base import Finding
from kithkeep.store import Store

log = logging.getLogger(__name__)

SLOT_MINUTES = 15
SEARCH_DAYS = 60


def reminder_uid(key: str, sink_id: str) -> str:
    """A UID derived from the reminder key and the sink's identity
    (:meth:`ReminderSink.identity`): the same key in the same calendar always
    gives the same event, and two calendars never share a UID. Servers that
    schedule (Cyrus, ...) refuse a UID that exists in another calendar of the
    account, so a UID from the key alone kept a second store or a second
    reminders calendar on one account from writing anything.

    Reminders written before (``"kithkeep-" + sha256(key)[:32]``) are still
    found by their key, and keep their UID when updated.
    """
    digest = hashlib.sha256(f"{sink_id}\n{key}".encode()).hexdigest()
    return "kithkeep-" + digest[:32]


# ------------------------------------------------------------ the reminder's text


@dataclass(frozen=True)
class Exchange:
    """The message or meeting a finding is about, as its evidence records it."""

    heading: str  # "Their message", "The meeting", "Last exchange"
    kind: str  # "in" (they wrote) | "out" (you wrote) | "meeting" | "" (unknown)
    subject: str
    date: datetime | None
    message_id: str  # normalized, without angle brackets; "" when there is none

    def line(self) -> str:
        """``Their message: “Dinner Friday?”, 2026-11-30``, for a reminder or the CLI."""
        subject = f"\u201c{self.subject}\u201d" if self.subject else "(no subject)"
        when = f", {self.date:%Y-%m-%d}" if self.date else ""
        who = {"in": " (they wrote)", "out": " (you wrote)", "meeting": " (a meeting)"}
        extra = who.get(self.kind, "") if self.heading == LAST_EXCHANGE else ""
        return f"{self.heading}: {subject}{when}{extra}"


LAST_EXCHANGE = "Last exchange"


def _date(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def exchange_of(f: Finding) -> Exchange | None:
    """The exchange behind a finding, from the evidence keys its rule writes.

    reply_owed: the message waiting for a reply; meeting_followup: the meeting;
    neglected: the last exchange. Other findings (review only) have none.
    """
    ev = f.evidence
    if "message_date" in ev:
        return Exchange(
            "Their message", "in", str(ev.get("subject") or ""), _date(ev["message_date"]),
            str(ev.get("message_id") or ""),
        )  # fmt: skip
    if "meeting_end" in ev:
        return Exchange(
            "The meeting", "meeting", str(ev.get("meeting_title") or ""),
            _date(ev["meeting_end"]), "",
        )  # fmt: skip
    if "last_subject" in ev:
        return Exchange(
            LAST_EXCHANGE, str(ev.get("last_kind") or ""), str(ev["last_subject"] or ""),
            _date(ev.get("last_contact")), str(ev.get("last_message_id") or ""),
        )  # fmt: skip
    return None


def _real_message_id(message_id: str) -> bool:
    # a message without Message-ID gets a synthetic "kk-<hash>" that no mail client knows
    return "@" in message_id


def mid_url(message_id: str) -> str:
    """RFC 2392 ``mid:`` URL of a message (mail clients open it, ``xdg-open`` passes it on)."""
    return "mid:" + quote(message_id, safe="@!$'()*,;:~.-_")


def gmail_url(message_id: str, account: str = "") -> str:
    """Gmail's search for the message by its Message-ID, in ``account`` when given."""
    # /mail/u/ADDRESS/ picks the signed-in account by address (u/0/: the first one)
    who = quote(account, safe="@") if account else "0"
    return f"https://mail.google.com/mail/u/{who}/#search/rfc822msgid%3A" + quote(
        message_id, safe=""
    )


def gmail_account(config: Config) -> str | None:
    """The Gmail address of the user's mail, "" for Gmail without a known address,
    None when the mail is not in Gmail (then a reminder links no Gmail search)."""
    for cc in config.sources:
        if cc.type != "imap":
            continue
        host = str(cc.options.get("host", "")).lower()
        if host.endswith(tuple(GMAIL_DOMAINS)) or cc.options.get("oauth2_google"):
            return str(cc.options.get("username", ""))
    for address in config.general.me:
        if address.lower().rsplit("@", 1)[-1] in GMAIL_DOMAINS:
            return address
    return None


def message_links(message_id: str, gmail: str | None = None) -> list[tuple[str, str]]:
    """(label, URL) pairs that open a message: mid:, and Gmail's search for a Gmail user."""
    if not _real_message_id(message_id):
        return []
    links = [("Open the message", mid_url(message_id))]
    if gmail is not None:
        links.append(("In Gmail", gmail_url(message_id, gmail)))
    return links


def describe(f: Finding, *, gmail: str | None = None) -> str:
    """What to do, the exchange it is about (with links to open it), why, and the
    command that shows the person. ``gmail``: see :func:`gmail_account`.

    Plain sentences for a calendar: the evidence in numbers stays in
    ``kithkeep review --json`` and ``kithkeep show``. Nothing in it depends on
    the clock or on where the config file is, or every run (or a moved config)
    would rewrite the event. No trailing newline: some calendars strip it, and
    the next run would see a changed description.
    """
    parts = [f.suggestion]
    ex = exchange_of(f)
    if ex is not None:
        lines = [ex.line()]
        lines += [f"{label}: {url}" for label, url in message_links(ex.message_id, gmail)]
        parts.append("\n".join(lines))
    parts.append(f"Why: {f.explanation}")
    parts.append(f"Details: kithkeep show {f.person_id}")
    return "\n\n".join(parts)


def describer(config: Config) -> Callable[[Finding], str]:
    """:func:`describe` with what the config says (a Gmail account for its links)."""
    return partial(describe, gmail=gmail_account(config))


def _same_text(a: str, b: str) -> bool:
    """Equal up to line endings and surrounding whitespace (servers normalize both)."""
    return a.replace("\r\n", "\n").strip() == b.replace("\r\n", "\n").strip()


def content_hash(title: str, description: str, duration: timedelta) -> str:
    h = hashlib.sha256(f"{title}\0{description}\0{int(duration.total_seconds())}".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class SlotFinder:
    """First free slot within working hours on working days, never in the past."""

    tz: tzinfo
    hours: tuple[int, int]
    days: frozenset[int]
    duration: timedelta
    max_per_day: int

    @classmethod
    def from_config(cls, cfg: RemindersConfig, tz: tzinfo) -> SlotFinder:
        return cls(
            tz=tz,
            hours=cfg.working_minutes,
            days=cfg.weekdays,
            duration=timedelta(minutes=cfg.duration_minutes),
            max_per_day=cfg.max_per_day,
        )

    def find(
        self,
        earliest: datetime,
        busy: Sequence[tuple[datetime, datetime]],
        per_day: dict[date, int],
    ) -> datetime | None:
        local = earliest.astimezone(self.tz)
        day = local.date()
        for _ in range(SEARCH_DAYS):
            if day.weekday() in self.days and per_day.get(day, 0) < self.max_per_day:
                start_min, end_min = self.hours
                m = start_min
                while m + self.duration.total_seconds() / 60 <= end_min:
                    slot = datetime.combine(day, time(m // 60, m % 60), self.tz)
                    slot_end = slot + self.duration
                    if slot >= earliest and not any(b0 < slot_end and slot < b1 for b0, b1 in busy):
                        return slot.astimezone(UTC)
                    m += SLOT_MINUTES
            day += timedelta(days=1)
        return None


@dataclass(frozen=True)
class Action:
    # "create" | "update" | "delete" write to the sink; "forget" (the user deleted
    # it: dismissed), "adopt" (record what the sink has) and "drop" (the user
    # deleted it and its finding resolved: dismissed too) only touch the store
    kind: str
    key: str
    reminder: Reminder | None = None
    current: SinkEvent | None = None


# what kithkeep last wrote to a sink, by reminder key (the store's reminder_state rows)
StateRow = ReminderState


def load_state(store: Store, sink: str) -> dict[str, ReminderState]:
    return {st.key: st for _, st in store.reminder_states(sink)}


def desired_reminders(
    findings: Iterable[Finding],
    cfg: RemindersConfig,
    tz: tzinfo,
    now: datetime,
    state: dict[str, StateRow],
    actual: dict[str, SinkEvent],
    busy: Sequence[tuple[datetime, datetime]],
    sink_id: str,
    *,
    text: Callable[[Finding], str] = describe,
) -> list[Reminder]:
    """Reminders for the findings that keep ``remind``, placed in free slots.

    A reminder already in the sink keeps its start (the user may have moved
    it); a new one takes the first free slot on or after its due date.
    """
    slots = SlotFinder.from_config(cfg, tz)
    duration = timedelta(minutes=cfg.duration_minutes)
    taken: list[tuple[datetime, datetime]] = list(busy)
    per_day: dict[date, int] = {}
    for ev in actual.values():
        taken.append((ev.start, ev.end))
        d = ev.start.astimezone(tz).date()
        per_day[d] = per_day.get(d, 0) + 1
    out: list[Reminder] = []
    for f in findings:
        if not f.remind:
            continue
        key = f.key
        st = state.get(key)
        if st is not None and st.status == "dismissed":
            continue
        current = actual.get(key)
        if current is not None:
            start = current.start
        elif st is not None and st.status == "written":
            start = st.start  # the user deleted it; plan() turns this into "forget"
        else:
            found = slots.find(max(f.due, now), taken, per_day)
            if found is None:
                log.warning("no free slot within %d days for %s", SEARCH_DAYS, key)
                continue
            start = found
            taken.append((start, start + duration))
            d = start.astimezone(tz).date()
            per_day[d] = per_day.get(d, 0) + 1
        out.append(
            Reminder(
                key=key,
                uid=reminder_uid(key, sink_id),
                title=f.title,
                description=text(f),
                start=start,
                end=start + duration,
                alarm_minutes=cfg.alarm_minutes,
            )
        )
    return out


def plan(
    desired: Sequence[Reminder],
    actual: dict[str, SinkEvent],
    state: dict[str, StateRow],
    *,
    force: bool = False,
) -> list[Action]:
    """The actions that bring the sink to the desired reminders. Pure: no I/O."""
    written = [s for s in state.values() if s.status == "written"]
    # one reminder gone is a user's deletion (plan turns it into "forget" or
    # "drop"); all of several gone at once looks like the wrong or a reset calendar
    if len(written) > 1 and not actual and not force:
        raise SinkRefused(
            f"the sink shows none of the {len(written)} reminders kithkeep wrote there; "
            "refusing to act in case it is the wrong calendar or came back empty",
            hint="check the sink, then run again with --force to accept it as it is",
        )
    actions: list[Action] = []
    wanted = {r.key for r in desired}
    for r in desired:
        current = actual.get(r.key)
        st = state.get(r.key)
        if current is None:
            if st is not None and st.status == "written":
                # written before, gone now: the user deleted it (with --force too:
                # forcing accepts the sink as it is)
                actions.append(Action("forget", r.key, r))
            else:
                actions.append(Action("create", r.key, r))
            continue
        # keep the start and end the sink has: the user may have moved or stretched it
        r_kept = replace(r, start=current.start, end=current.end)
        if not _same_text(current.title, r.title) or not _same_text(
            current.description, r.description
        ):
            actions.append(Action("update", r.key, r_kept, current))
        elif (
            st is None
            or st.status != "written"
            or st.start != current.start
            or st.end != current.end
            # a kill between an update's sink write and its state commit leaves the
            # sink right and the recorded text old: record what the sink holds
            or st.content_hash != content_hash(r.title, r.description, current.end - current.start)
        ):
            actions.append(Action("adopt", r.key, r_kept, current))
    for key, current in sorted(actual.items()):
        if key not in wanted:
            actions.append(Action("delete", key, None, current))
    for key, st in sorted(state.items()):
        if st.status == "written" and key not in wanted and key not in actual:
            # the user deleted it, and its finding has resolved since: nothing to do
            # in the sink, but the deletion still stands should the same episode
            # come back (its row becomes a dismissed one, which no longer counts
            # for the empty-sink check)
            actions.append(Action("drop", key))
    return actions


def apply(sink: ReminderSink, actions: Sequence[Action], store: Store) -> dict[str, int]:
    """Carry out a plan, make it durable in the sink, then record it in the store.

    A crash after the sink write and before the store commit is harmless: the
    next run finds the events by key and adopts them (no duplicates). When a
    write fails half-way, what was done so far is still flushed and recorded
    before the error propagates, so the next run starts from the truth.
    """
    counts: dict[str, int] = {}
    # Forget resolved reminders before deleting them from the sink: killed in
    # between, a "written" row with no event would later read as a user deletion
    # and dismiss the finding for good; an event with no row is simply deleted
    # (or adopted) by the next run.
    _record(store, sink.name, [(a, None) for a in actions if a.kind == "delete"])
    results: list[tuple[Action, SinkEvent | None]] = []
    try:
        for a in actions:
            ev: SinkEvent | None = None
            if a.kind == "create" and a.reminder:
                try:
                    ev = sink.create(a.reminder)
                except UserDeleted:
                    log.info("%s: %s was deleted by the user: dismissed", sink.name, a.key)
                    a = replace(a, kind="forget")  # noqa: PLW2901 - the action it turned into
            elif a.kind == "update" and a.reminder and a.current:
                ev = sink.update(a.current, a.reminder)
            elif a.kind == "delete" and a.current:
                sink.delete(a.current)
            elif a.kind == "adopt":
                ev = a.current
            results.append((a, ev))
            counts[a.kind] = counts.get(a.kind, 0) + 1
    except BaseException:
        # the deletes not carried out leave their events in the sink: their rows
        # come back, or a user's later deletion of them would go unnoticed
        done = {id(a) for a, _ in results}
        _record(
            store,
            sink.name,
            [
                (Action("adopt", a.key, _reminder_of(a.current), a.current), a.current)
                for a in actions
                if a.kind == "delete" and a.current is not None and id(a) not in done
            ],
        )
        # keep what was done before the failure; a failing flush records nothing,
        # since file sinks only make their writes durable there
        sink.flush()
        _record(store, sink.name, results)
        raise
    sink.flush()
    _record(store, sink.name, results)
    return counts


def _reminder_of(ev: SinkEvent) -> Reminder:
    """What an event in the sink says of its reminder (to record it again)."""
    return Reminder(ev.key, ev.uid, ev.title, ev.description, ev.start, ev.end, 0)


def _record(store: Store, sink: str, results: Sequence[tuple[Action, SinkEvent | None]]) -> None:
    """Record what the actions did, in one transaction."""
    put: list[ReminderState] = []
    remove: list[str] = []
    dismiss: list[str] = []
    for a, ev in results:
        if a.kind == "drop":
            dismiss.append(a.key)
            continue
        if a.kind == "delete":
            remove.append(a.key)
            continue
        r = a.reminder
        assert r is not None
        start = ev.start if ev else r.start
        end = ev.end if ev else r.end
        put.append(
            ReminderState(
                key=a.key,
                uid=ev.uid if ev else r.uid,
                start=start,
                end=end,
                content_hash=content_hash(r.title, r.description, end - start),
                status="dismissed" if a.kind == "forget" else "written",
            )
        )
    store.save_reminder_states(sink, put=put, remove=remove, dismiss=dismiss)


def reconcile(
    sink: ReminderSink,
    findings: Iterable[Finding],
    config: Config,
    store: Store,
    now: datetime,
    *,
    force: bool = False,
) -> dict[str, int]:
    """Plan and apply reminders for ``findings`` in ``sink``; returns action counts."""
    tz = config.general.tz
    state = load_state(store, sink.name)
    actual = {e.key: e for e in sink.list_own()}
    busy = sink.busy(now, now + timedelta(days=SEARCH_DAYS))
    desired = desired_reminders(
        findings,
        config.reminders,
        tz,
        now,
        state,
        actual,
        busy,
        sink.identity(),
        text=describer(config),
    )
    actions = plan(desired, actual, state, force=force)
    counts = apply(sink, actions, store)
    log.info("reminders in %s: %s", sink.name, json.dumps(counts, sort_keys=True) or "no change")
    return counts
