"""The contract every ReminderSink passes (like vdirsyncer's tests/storage).

A test module subclasses :class:`SinkContract` and provides:

- ``make_sink()``: a sink on the backing calendar of this test; calling it
  again gives a fresh instance on the same calendar (the next run);
- ``user_move(ev, start, end)`` and ``user_delete(ev)``: what the user does in
  their calendar app, behind kithkeep's back.

The cases go through the real reconcile (plan, apply, a real SQLite store)
as well as through the bare interface.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kithkeep.config import Config, GeneralConfig
from kithkeep.errors import SinkRefused
from kithkeep.interfaces import Reminder, ReminderSink, SinkEvent
from kithkeep.reminders import load_state, reconcile, reminder_uid
from kithkeep.rules.base import Finding
from kithkeep.store import Store

# Monday 23 November 2026, 07:00 UTC: before working hours
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CONFIG = Config(general=GeneralConfig(timezone="UTC"))


def finding(person: str, name: str, *, explanation: str = "", due: datetime = NOW) -> Finding:
    return Finding(
        rule="neglected",
        person_id=person,
        person_name=name,
        severity=50,
        due=due,
        title=f"Reconnect with {name}",
        explanation=explanation or f"No contact with {name} for 90 days; the cadence is 60 days.",
        suggestion="Offer something useful: an article, an intro, news they would want.",
        evidence={"silence_days": 90, "cadence_days": 60},
        episode="2026-08-25",
    )


FINDINGS = [
    finding("p-ana", "Ana Silva"),
    finding("p-bo", "Bo Chen"),
    finding("p-cy", "Cy Okafor"),
]


def reminder(key: str, start: datetime, title: str = "Reconnect with Ana Silva") -> Reminder:
    return Reminder(
        key=key,
        uid=reminder_uid(key, "contract"),
        title=title,
        description="Because.\n\nDetails: kithkeep show p-ana",
        start=start,
        end=start + timedelta(minutes=15),
        alarm_minutes=10,
    )


class SinkContract:
    def make_sink(self) -> ReminderSink:
        raise NotImplementedError

    def user_move(self, ev: SinkEvent, start: datetime, end: datetime) -> None:
        raise NotImplementedError

    def user_delete(self, ev: SinkEvent) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- helpers

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
        yield s
        s.close()

    def run(
        self, store: Store, findings: list[Finding], *, force: bool = False, now: datetime = NOW
    ) -> dict[str, int]:
        sink = self.make_sink()
        try:
            return reconcile(sink, findings, CONFIG, store, now, force=force)
        finally:
            sink.close()

    def own(self) -> dict[str, SinkEvent]:
        sink = self.make_sink()
        try:
            return {e.key: e for e in sink.list_own()}
        finally:
            sink.close()

    # ------------------------------------------------------------ interface

    def test_empty_calendar_lists_nothing(self) -> None:
        assert self.own() == {}

    def test_create_round_trips(self) -> None:
        sink = self.make_sink()
        start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        r = reminder("neglected:p-ana:2026-08-25", start)
        ev = sink.create(r)
        sink.flush()
        sink.close()
        # the uid is the sink's own id for the event (Google's differs from r.uid)
        assert ev.uid
        assert (ev.key, ev.start, ev.end) == (r.key, r.start, r.end)
        listed = self.own()
        assert list(listed) == [r.key]
        got = listed[r.key]
        assert got.uid == ev.uid
        assert (got.start, got.end, got.title) == (r.start, r.end, r.title)
        assert got.description.strip() == r.description

    def test_update_and_delete(self) -> None:
        start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        sink = self.make_sink()
        sink.create(reminder("k:1", start))
        sink.create(reminder("k:2", start + timedelta(hours=1)))
        sink.flush()
        sink.close()
        sink = self.make_sink()
        current = {e.key: e for e in sink.list_own()}
        sink.update(current["k:1"], reminder("k:1", start, title="Reply to Ana Silva"))
        sink.delete(current["k:2"])
        sink.flush()
        sink.close()
        listed = self.own()
        assert list(listed) == ["k:1"]
        assert listed["k:1"].title == "Reply to Ana Silva"

    def test_busy_returns_intervals_in_range(self) -> None:
        sink = self.make_sink()
        lo, hi = NOW, NOW + timedelta(days=7)
        busy = sink.busy(lo, hi)
        sink.close()
        assert all(a < b and b > lo and a < hi for a, b in busy)

    # ------------------------------------------------------------ reconcile

    def test_second_run_makes_no_changes(self, store: Store) -> None:
        assert self.run(store, FINDINGS) == {"create": 3}
        assert self.run(store, FINDINGS) == {}
        listed = self.own()
        assert len(listed) == 3
        starts = sorted(e.start for e in listed.values())
        # three free 15-minute slots from 09:00 on the first working day, two per day
        assert starts[0] == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        assert all(s.astimezone(UTC).hour >= 9 for s in starts)
        ana = listed[FINDINGS[0].key]
        assert ana.title == "Reconnect with Ana Silva"
        # what to do and why, in words (the evidence dump stays out of calendars)
        for part in ("Offer something useful", "Why: No contact with Ana Silva"):
            assert part in ana.description
        assert "silence_days" not in ana.description
        assert "kithkeep show p-ana" in ana.description

    def test_user_moves_a_reminder(self, store: Store) -> None:
        self.run(store, FINDINGS)
        ana = self.own()[FINDINGS[0].key]
        moved = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
        self.user_move(ana, moved, moved + timedelta(minutes=30))
        # only bookkeeping: the sink keeps the user's time
        assert self.run(store, FINDINGS) == {"adopt": 1}
        assert self.run(store, FINDINGS) == {}
        # the text changes: the event is rewritten, still at the user's time
        changed = [finding("p-ana", "Ana Silva", explanation="Silent for 120 days."), *FINDINGS[1:]]
        assert self.run(store, changed) == {"update": 1}
        got = self.own()[FINDINGS[0].key]
        assert (got.start, got.end) == (moved, moved + timedelta(minutes=30))
        assert "Silent for 120 days." in got.description
        assert self.run(store, changed) == {}

    def test_user_deletes_one(self, store: Store) -> None:
        self.run(store, FINDINGS)
        self.user_delete(self.own()[FINDINGS[1].key])
        assert self.run(store, FINDINGS) == {"forget": 1}
        assert FINDINGS[1].key not in self.own()
        # dismissed: never written again
        assert self.run(store, FINDINGS) == {}
        assert load_state(store, self.make_sink().name)[FINDINGS[1].key].status == "dismissed"
        assert set(self.own()) == {FINDINGS[0].key, FINDINGS[2].key}

    def test_a_finding_resolves(self, store: Store) -> None:
        self.run(store, FINDINGS)
        assert self.run(store, FINDINGS[:2]) == {"delete": 1}
        assert set(self.own()) == {FINDINGS[0].key, FINDINGS[1].key}
        assert self.run(store, FINDINGS[:2]) == {}

    def test_empty_sink_is_refused_unless_forced(self, store: Store) -> None:
        self.run(store, FINDINGS)
        for ev in self.own().values():
            self.user_delete(ev)
        with pytest.raises(SinkRefused):
            self.run(store, FINDINGS)
        # forcing accepts the calendar as it is: the reminders count as deleted by the user
        assert self.run(store, FINDINGS, force=True) == {"forget": 3}
        assert self.own() == {}
        assert self.run(store, FINDINGS) == {}

    def test_user_deletes_the_only_reminder(self, store: Store) -> None:
        # one written reminder gone is a user's deletion, not an empty calendar
        assert self.run(store, FINDINGS[:1]) == {"create": 1}
        self.user_delete(self.own()[FINDINGS[0].key])
        assert self.run(store, FINDINGS[:1]) == {"forget": 1}
        assert self.run(store, FINDINGS[:1]) == {}
        assert self.own() == {}

    def test_reminders_written_under_the_old_uid_scheme_are_kept(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # before UIDs depended on the sink they came from the key alone
        legacy = {
            f.key: "kithkeep-" + hashlib.sha256(f.key.encode()).hexdigest()[:32] for f in FINDINGS
        }
        with monkeypatch.context() as m:
            m.setattr("kithkeep.reminders.reminder_uid", lambda key, _sink: legacy[key])
            assert self.run(store, FINDINGS[:2]) == {"create": 2}
        before = self.own()
        # found by their key: nothing to do
        assert self.run(store, FINDINGS[:2]) == {}
        # updated in place, keeping their UID
        changed = [finding("p-ana", "Ana Silva", explanation="Silent for 120 days."), FINDINGS[1]]
        assert self.run(store, changed) == {"update": 1}
        after = self.own()
        assert after[FINDINGS[0].key].uid == before[FINDINGS[0].key].uid
        assert "Silent for 120 days." in after[FINDINGS[0].key].description
        # and deleted when their finding resolves
        assert self.run(store, changed[:1]) == {"delete": 1}
        assert set(self.own()) == {FINDINGS[0].key}
        assert self.run(store, changed[:1]) == {}
