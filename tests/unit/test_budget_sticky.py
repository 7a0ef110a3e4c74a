"""The reminder budget is sticky: a finding whose reminder is in the calendar keeps its place.

Severities drift from day to day; without stickiness two findings near the
cut swap places and the calendar sees a delete and a create on every swap.
The engine alone (``judge`` with ``written_reminders``), then the engine, the
pipeline's key lookup and reconcile together on the in-memory sink.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from kithkeep.config import RemindersConfig, RulesConfig
from kithkeep.model.stats import PersonStats
from kithkeep.pipeline import written_reminder_keys
from kithkeep.records import DecisionRecord
from kithkeep.reminders import reconcile
from kithkeep.rules.base import Finding
from kithkeep.rules.engine import budget, judge
from kithkeep.store import Store
from tests.contract.sink_contract import CONFIG
from tests.contract.test_sink_memory import MemoryCalendar, MemorySink

RULES = RulesConfig()
ONE = RemindersConfig(max_per_week=1)
MET = datetime(2026, 11, 16, 16, 0, tzinfo=UTC)  # a Monday
DAY1 = MET + timedelta(days=1, hours=1)  # the follow-up is fresh: 64
DAY4 = MET + timedelta(days=4, hours=1)  # it has faded: 54, while Ben's silence grew: 58
DAY8 = MET + timedelta(days=8)  # the follow-up expired


def ana() -> PersonStats:
    """A new acquaintance met at MET: meeting_followup, fading from 65 to 45 over a week."""
    return PersonStats(
        person_id="p-ana",
        name="Ana",
        addresses=("ana@example.net",),
        last_contact=MET,
        last_out=MET - timedelta(days=3),
        last_meeting=MET,
        last_meeting_size=2,
    )


def ben() -> PersonStats:
    """An inner tie (cadence 21 days) silent 22 days at DAY1: neglected, growing."""
    last = DAY1 - timedelta(days=22)
    return PersonStats(
        person_id="p-ben",
        name="Ben",
        addresses=("ben@example.net",),
        last_contact=last,
        last_in=last,
        last_out=last,
        messages_in=30,
        messages_out=30,
        is_tie=True,
        tier="inner",
        tier_source="strength",
    )


def at(
    now: datetime,
    written: frozenset[str] = frozenset(),
    decisions: list[DecisionRecord] | None = None,
    reminders: RemindersConfig = ONE,
) -> dict[str, Finding]:
    with freeze_time(now):
        found = judge(
            [ana(), ben()],
            datetime.now(UTC),
            RULES,
            reminders,
            decisions or [],
            written_reminders=written,
        )
    return {f.person_id: f for f in found}


def test_the_severities_swap_between_the_two_days() -> None:
    day1, day4 = at(DAY1), at(DAY4)
    assert day1["p-ana"].rule == "meeting_followup" and day1["p-ben"].rule == "neglected"
    assert day1["p-ana"].severity > day1["p-ben"].severity
    assert day4["p-ana"].severity < day4["p-ben"].severity
    # ranked afresh, the place moves from Ana to Ben: what the sticky budget prevents
    assert day1["p-ana"].remind and day4["p-ben"].remind and not day4["p-ana"].remind


def test_a_written_reminder_keeps_its_place_while_open() -> None:
    day1 = at(DAY1)
    written = frozenset({day1["p-ana"].key})
    day4 = at(DAY4, written)
    assert day4["p-ana"].remind and not day4["p-ana"].over_budget
    assert not day4["p-ben"].remind and day4["p-ben"].over_budget
    # still sorted by severity: the place is sticky, the review order is not
    assert list(day4) == ["p-ben", "p-ana"]
    # once Ana's finding has resolved (the follow-up window ended), Ben gets the place
    day8 = at(DAY8, written)
    assert "p-ana" not in day8 and day8["p-ben"].remind


def test_a_written_reminder_snoozed_or_dismissed_frees_its_place() -> None:
    key = at(DAY1)["p-ana"].key
    snooze = DecisionRecord(
        1, "snooze", "ana@example.net", None, DAY4 + timedelta(days=3), None, None, DAY4
    )
    day4 = at(DAY4, frozenset({key}), [snooze])
    assert day4["p-ana"].status == "snoozed" and not day4["p-ana"].remind
    assert day4["p-ben"].remind


def test_new_findings_fill_the_places_left_by_severity() -> None:
    day4 = at(DAY4, frozenset(), reminders=RemindersConfig(max_per_week=2))
    assert day4["p-ana"].remind and day4["p-ben"].remind
    none = at(DAY4, frozenset({at(DAY1)["p-ana"].key}), reminders=RemindersConfig(max_per_week=0))
    assert not any(f.remind for f in none.values())


def test_more_written_than_places_keeps_the_most_severe_written() -> None:
    written = frozenset({at(DAY1)["p-ana"].key, at(DAY4)["p-ben"].key})
    day4 = at(DAY4, written)  # the budget shrank to one
    assert day4["p-ben"].remind and not day4["p-ana"].remind


# ------------------------------------------------------ with reconcile


def test_no_reminder_churn_when_severities_swap() -> None:
    store = Store.open("sqlite://")
    cal = MemoryCalendar()
    config = replace(CONFIG, reminders=replace(CONFIG.reminders, sink="m", max_per_week=1))

    def run(now: datetime) -> tuple[dict[str, Finding], dict[str, int]]:
        # what pipeline.analyze_and_act does: the keys written before, judge, reconcile
        written = written_reminder_keys(store, "m")
        found = at(now, written, reminders=config.reminders)
        counts = reconcile(MemorySink("m", cal), list(found.values()), config, store, now)
        return found, counts

    day1, counts = run(DAY1)
    assert counts == {"create": 1}
    assert {e.key for e in cal.events.values()} == {day1["p-ana"].key}
    first = dict(cal.events)
    day4, counts = run(DAY4)
    assert day4["p-ana"].severity < day4["p-ben"].severity
    assert counts.get("create", 0) == 0 and counts.get("delete", 0) == 0  # no churn
    assert cal.events == first  # the same event, untouched
    # the follow-up expires: its reminder goes, and the place goes to Ben
    day8, counts = run(DAY8)
    assert counts == {"create": 1, "delete": 1}
    assert {e.key for e in cal.events.values()} == {day8["p-ben"].key}
    assert written_reminder_keys(store, "m") == {day8["p-ben"].key}
    assert written_reminder_keys(store, "") == frozenset()
    store.close()


# ------------------------------------------------------------ properties


def _finding(n: int, severity: int, status: str, remind: bool) -> Finding:
    return Finding(
        rule="neglected",
        person_id=f"p{n}",
        person_name=f"P{n}",
        severity=severity,
        due=MET,
        title="t",
        explanation="e",
        suggestion="s",
        remind=remind and status == "open",  # as judge gives them: only open ones remind
        episode="e1",
        status=status,
    )


findings_st = st.lists(
    st.builds(
        _finding,
        st.integers(1, 10_000),
        st.integers(1, 100),
        st.sampled_from(["open", "open", "snoozed", "dismissed"]),
        st.booleans(),
    ),
    max_size=20,
    unique_by=lambda f: f.person_id,
)


@settings(max_examples=100, deadline=None)
@given(findings=findings_st, places=st.integers(0, 6), data=st.data())
def test_sticky_budget_invariants(
    findings: list[Finding], places: int, data: st.DataObject
) -> None:
    keys = [f.key for f in findings]
    written = frozenset(data.draw(st.sets(st.sampled_from(keys))) if keys else set())
    out = budget(findings, places, written)
    assert out == budget(list(reversed(findings)), places, written)  # deterministic
    assert [f.severity for f in out] == sorted((f.severity for f in out), reverse=True)
    wanting = [f for f in findings if f.remind and f.status == "open"]
    kept = [f for f in out if f.remind]
    over = [f for f in out if f.over_budget]
    assert len(kept) == min(places, len(wanting))
    assert len(kept) + len(over) == len(wanting)
    sticky = [f for f in wanting if f.key in written]
    kept_keys = {f.key for f in kept}
    if len(sticky) <= places:
        assert all(f.key in kept_keys for f in sticky)  # every written one keeps its place
        fresh_kept = [f.severity for f in kept if f.key not in written]
        fresh_over = [f.severity for f in over if f.key not in written]
        if fresh_kept and fresh_over:
            assert min(fresh_kept) >= max(fresh_over)  # the rest by severity
    else:
        assert all(f.key in written for f in kept)  # only written ones, the most severe
        dropped = [f.severity for f in over if f.key in written]
        assert min((f.severity for f in kept), default=101) >= max(dropped)
