"""Reconcile as plan, then apply: slots, the pure plan, and a stateful property test.

The property test drives random sequences of findings appearing and
resolving, the user moving and deleting reminders, and crashes half-way
through a write, against the in-memory sink and a real SQLite store; after
every step the sink and the store must agree with the rules in
kithkeep.reminders.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kithkeep.config import RemindersConfig
from kithkeep.errors import SinkError, SinkRefused
from kithkeep.interfaces import Reminder, SinkEvent
from kithkeep.reminders import (
    SlotFinder,
    StateRow,
    content_hash,
    describe,
    load_state,
    plan,
    reconcile,
    reminder_uid,
)
from kithkeep.store import REMINDER_STATE, Store
from tests.contract.sink_contract import CONFIG, NOW, finding
from tests.contract.test_sink_memory import MemoryCalendar, MemorySink

UTC_SLOTS = SlotFinder.from_config(RemindersConfig(), UTC)


# ------------------------------------------------------------------ slots


def test_first_free_slot_in_working_hours() -> None:
    # Monday 07:00: the first slot is 09:00 the same day
    assert UTC_SLOTS.find(NOW, [], {}) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_busy_time_is_skipped() -> None:
    busy = [(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), datetime(2026, 11, 23, 10, 5, tzinfo=UTC))]
    # 15-minute grid: 10:05 is busy, so 10:15
    assert UTC_SLOTS.find(NOW, busy, {}) == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)


def test_never_in_the_past() -> None:
    now = datetime(2026, 11, 23, 10, 7, tzinfo=UTC)
    assert UTC_SLOTS.find(now, [], {}) == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    late = datetime(2026, 11, 23, 16, 50, tzinfo=UTC)
    assert UTC_SLOTS.find(late, [], {}) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_weekend_and_full_days_are_skipped() -> None:
    saturday = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert UTC_SLOTS.find(saturday, [], {}) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    full = {date(2026, 11, 23): 2}  # max_per_day = 2
    assert UTC_SLOTS.find(NOW, [], full) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_working_hours_are_in_the_users_zone() -> None:
    berlin = SlotFinder.from_config(
        RemindersConfig(working_hours="09:00-12:00"), ZoneInfo("Europe/Berlin")
    )
    # 09:00 in Berlin is 08:00 UTC in November
    assert berlin.find(datetime(2026, 11, 23, 6, 0, tzinfo=UTC), [], {}) == datetime(
        2026, 11, 23, 8, 0, tzinfo=UTC
    )


def test_reminders_respect_max_per_day_and_busy(tmp_path: object) -> None:
    store = Store.open("sqlite://")
    cal = MemoryCalendar()
    findings = [finding(f"p{i}", f"Person {i}") for i in range(5)]
    assert reconcile(MemorySink("m", cal), findings, CONFIG, store, NOW) == {"create": 5}
    days: dict[date, int] = {}
    for ev in cal.events.values():
        days[ev.start.date()] = days.get(ev.start.date(), 0) + 1
        assert 9 <= ev.start.hour < 17 and ev.start.weekday() < 5 and ev.start >= NOW
    assert max(days.values()) == 2
    starts = sorted(e.start for e in cal.events.values())
    assert len(set(starts)) == 5
    store.close()


# ------------------------------------------------------------------ content


def test_description_explains_and_points_to_the_person() -> None:
    f = finding("p-ana", "Ana Silva")
    text = describe(f)
    assert f.title == "Reconnect with Ana Silva"
    assert text.startswith("Offer something useful")  # what to do comes first
    assert "Why: No contact with Ana Silva for 90 days" in text
    assert "silence_days" not in text  # the evidence stays in review --json and show
    assert text.endswith("Details: kithkeep show p-ana")


# ------------------------------------------------------------------ plan


def _reminder(key: str, start: datetime = NOW, title: str = "Reconnect with Ana") -> Reminder:
    return Reminder(
        key, reminder_uid(key, "m"), title, "why", start, start + timedelta(minutes=15), 10
    )


def _event(r: Reminder, **kw: object) -> SinkEvent:
    ev = SinkEvent(r.key, r.uid, r.start, r.end, r.title, r.description, '"1"')
    return replace(ev, **kw)  # type: ignore[arg-type]


def _row(r: Reminder, status: str = "written") -> StateRow:
    return StateRow(
        r.key, r.uid, r.start, r.end, content_hash(r.title, r.description, r.end - r.start), status
    )


def test_plan_keeps_a_stretched_event_and_ignores_whitespace() -> None:
    r = _reminder("k:1")
    later = NOW + timedelta(days=2)
    ev = _event(r, start=later, end=later + timedelta(hours=1), description="why\r\n")
    actions = plan([r], {r.key: ev}, {r.key: _row(r)})
    assert [(a.kind, a.reminder.start, a.reminder.end) for a in actions if a.reminder] == [
        ("adopt", later, later + timedelta(hours=1))
    ]


def test_plan_refuses_an_empty_sink_and_force_accepts_it() -> None:
    r1, r2 = _reminder("k:1"), _reminder("k:2")
    state = {r1.key: _row(r1), r2.key: _row(r2)}
    with pytest.raises(SinkRefused, match="none of the 2 reminders"):
        plan([r1, r2], {}, state)
    assert [a.kind for a in plan([r1, r2], {}, state, force=True)] == ["forget", "forget"]


def test_plan_takes_the_only_reminder_gone_for_a_deletion() -> None:
    # one reminder written, the sink shows none: the user deleted it, nothing is refused
    r = _reminder("k:1")
    assert [a.kind for a in plan([r], {}, {r.key: _row(r)})] == ["forget"]
    # also once its finding resolved: the row becomes a dismissed one
    assert [a.kind for a in plan([], {}, {r.key: _row(r)})] == ["drop"]
    # a dismissed row besides does not make it "several written"
    d = _reminder("k:0")
    assert [a.kind for a in plan([r], {}, {r.key: _row(r), d.key: _row(d, "dismissed")})] == [
        "forget"
    ]


def test_plan_drops_rows_of_resolved_reminders_the_user_had_deleted() -> None:
    r1, r2 = _reminder("k:1"), _reminder("k:2")
    state = {r1.key: _row(r1), r2.key: _row(r2)}
    actions = plan([r1], {r1.key: _event(r1)}, state)
    assert [(a.kind, a.key) for a in actions] == [("drop", "k:2")]


def test_a_deleted_reminder_of_a_resolved_finding_is_not_written_again() -> None:
    # found by the state machine below: the user deletes a reminder whose finding
    # resolved before kithkeep ran; the same episode coming back must stay deleted
    store = Store.open("sqlite://")
    cal = MemoryCalendar()
    f = finding("p-ana", "Ana Silva")
    g = finding("p-bo", "Bo Chen")
    reconcile(MemorySink("m", cal), [f, g], CONFIG, store, NOW)
    ev = next(e for e in cal.events.values() if e.key == f.key)
    del cal.events[ev.uid]
    assert reconcile(MemorySink("m", cal), [g], CONFIG, store, NOW) == {"drop": 1}
    assert reconcile(MemorySink("m", cal), [f, g], CONFIG, store, NOW) == {}
    assert {e.key for e in cal.events.values()} == {g.key}
    assert load_state(store, "m")[f.key].status == "dismissed"
    store.close()


def test_dismissed_stays_dismissed() -> None:
    store = Store.open("sqlite://")
    cal = MemoryCalendar()
    f = finding("p-ana", "Ana Silva")
    g = finding("p-bo", "Bo Chen")
    reconcile(MemorySink("m", cal), [f, g], CONFIG, store, NOW)
    ev = next(e for e in cal.events.values() if e.key == f.key)
    del cal.events[ev.uid]
    assert reconcile(MemorySink("m", cal), [f, g], CONFIG, store, NOW) == {"forget": 1}
    # later runs, days later: still not written again
    later = NOW + timedelta(days=3)
    assert reconcile(MemorySink("m", cal), [f, g], CONFIG, store, later) == {}
    assert {e.key for e in cal.events.values()} == {g.key}
    store.close()


# ------------------------------------------------------------------ stateful


class CrashingSink(MemorySink):
    """Fails (like a server that went away) after ``budget`` writes."""

    def __init__(self, name: str, cal: MemoryCalendar, budget: int) -> None:
        super().__init__(name, cal)
        self.budget = budget

    def _spend(self) -> None:
        if self.budget <= 0:
            raise SinkError("connection lost")
        self.budget -= 1

    def create(self, reminder: Reminder) -> SinkEvent:
        self._spend()
        return super().create(reminder)

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        self._spend()
        return super().update(current, reminder)

    def delete(self, current: SinkEvent) -> None:
        self._spend()
        super().delete(current)


PEOPLE = [f"p{i}" for i in range(6)]


_STORE: list[Store] = []


def _shared_store() -> Store:
    """One migrated store for every example (migrating costs more than a whole example)."""
    if not _STORE:
        _STORE.append(Store.open("sqlite://"))
    store = _STORE[0]
    with store.transaction() as s:
        s.execute(sa.delete(REMINDER_STATE))
    return store


class ReconcileMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = _shared_store()
        self.cal = MemoryCalendar()
        self.active: dict[str, str] = {}  # person -> explanation
        self.deleted_by_user: set[str] = set()  # keys
        self.clean = True  # the last step was a run that finished

    def findings(self) -> list[object]:
        return [finding(p, p.upper(), explanation=text) for p, text in sorted(self.active.items())]

    def _run(self, sink: MemorySink) -> None:
        try:
            reconcile(sink, self.findings(), CONFIG, self.store, NOW, force=True)  # type: ignore[arg-type]
            self.clean = True
        except SinkError:
            self.clean = False

    @rule(person=st.sampled_from(PEOPLE), text=st.sampled_from(["quiet", "very quiet"]))
    def finding_appears_or_changes(self, person: str, text: str) -> None:
        self.active[person] = text
        self.clean = False

    @rule(person=st.sampled_from(PEOPLE))
    def finding_resolves(self, person: str) -> None:
        self.active.pop(person, None)
        self.clean = False

    @rule(data=st.data())
    def user_moves_one(self, data: st.DataObject) -> None:
        if self.cal.events:
            uid = data.draw(st.sampled_from(sorted(self.cal.events)))
            ev = self.cal.events[uid]
            start = ev.start + timedelta(days=1, minutes=30)
            self.cal.events[uid] = replace(ev, start=start, end=start + timedelta(minutes=45))
            self.clean = False

    @rule(data=st.data())
    def user_deletes_one(self, data: st.DataObject) -> None:
        if self.cal.events:
            uid = data.draw(st.sampled_from(sorted(self.cal.events)))
            self.deleted_by_user.add(self.cal.events.pop(uid).key)
            self.clean = False

    @rule()
    def run(self) -> None:
        self._run(MemorySink("m", self.cal))

    @rule(budget=st.integers(min_value=0, max_value=2))
    def run_and_crash(self, budget: int) -> None:
        self._run(CrashingSink("m", self.cal, budget))

    @invariant()
    def one_event_per_key(self) -> None:
        keys = [e.key for e in self.cal.events.values()]
        assert len(keys) == len(set(keys))

    @invariant()
    def what_the_user_deleted_is_never_written_again(self) -> None:
        for ev in self.cal.events.values():
            assert ev.key not in self.deleted_by_user

    @invariant()
    def a_finished_run_leaves_exactly_the_wanted_reminders(self) -> None:
        if not self.clean:
            return
        wanted = {f.key for f in self.findings()} - self.deleted_by_user  # type: ignore[attr-defined]
        assert {e.key for e in self.cal.events.values()} == wanted
        state = load_state(self.store, "m")
        assert {k for k, s in state.items() if s.status == "written"} == wanted
        for ev in self.cal.events.values():
            row = state[ev.key]
            assert (row.start, row.end) == (ev.start, ev.end)


TestReconcileMachine = ReconcileMachine.TestCase
TestReconcileMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_core_imports_no_protocol_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kithkeep.reminders, kithkeep.google_auth, kithkeep.pipeline, kithkeep.cli;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('googleapiclient', 'google_auth_oauthlib', 'caldav', 'httplib2', 'imapclient', "
        "'niquests', 'requests'));"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
