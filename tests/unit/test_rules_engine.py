"""The engine: rules together, the user's decisions, and the reminder budget.

Decisions are built as the store returns them (``DecisionRecord``); the CLI
tests check that the commands store them so and that they persist.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from kithkeep.config import RemindersConfig, RulesConfig
from kithkeep.decisions import dismissal_value, parse_span_days
from kithkeep.model.stats import Initiation, PendingMessage, PersonStats
from kithkeep.records import DecisionRecord
from kithkeep.rules.engine import REMINDING, judge

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RULES = RulesConfig()
BUDGET = RemindersConfig(max_per_week=5)
_ids = itertools.count(1)


def person(n: int = 1, **kw: object) -> PersonStats:
    base = PersonStats(
        person_id=f"p{n}",
        name=f"Person {n}",
        addresses=(f"person{n}@example.net", f"alt{n}@example.org"),
        first_contact=T0 - timedelta(days=700),
        last_contact=T0,
        last_in=T0 - timedelta(days=1),
        last_out=T0,
        messages_in=20,
        messages_out=20,
        is_tie=True,
        tier="close",
        tier_source="strength",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def decision(
    kind: str,
    person: str = "person1@example.net",
    *,
    rule: str | None = None,
    until: datetime | None = None,
    value: str | None = None,
    at: datetime = T0,
) -> DecisionRecord:
    return DecisionRecord(next(_ids), kind, person, rule, until, value, None, at)


def run(
    people: list[PersonStats],
    now: datetime,
    decisions: list[DecisionRecord] | None = None,
    budget: RemindersConfig = BUDGET,
) -> dict[tuple[str, str], str]:
    """(person, rule) -> status, judged with the clock frozen at ``now``."""
    with freeze_time(now):
        found = judge(people, datetime.now(UTC), RULES, budget, decisions or [])
    return {(f.person_id, f.rule): f.status for f in found}


def test_unanswered_suppresses_neglected_until_they_write() -> None:
    later = T0 + timedelta(days=90)  # past the close tier's 60 days
    quiet = person(unanswered_streak=3, last_in=T0 - timedelta(days=40))
    assert run([quiet], later) == {("p1", "unanswered"): "open"}
    # they wrote (the streak is over, and their message was the last contact)
    wrote = person(unanswered_streak=0, last_in=T0, last_contact=T0)
    assert run([wrote], later) == {("p1", "neglected"): "open"}


def test_suppression_holds_even_when_unanswered_is_dismissed() -> None:
    later = T0 + timedelta(days=90)
    quiet = person(unanswered_streak=4, last_in=T0 - timedelta(days=40))
    dismissed = decision("dismiss", rule="unanswered", at=later)
    assert run([quiet], later, [dismissed]) == {("p1", "unanswered"): "dismissed"}


def test_done_resets_neglected_then_it_comes_back_after_the_cadence() -> None:
    later = T0 + timedelta(days=90)
    p = person()
    assert run([p], later) == {("p1", "neglected"): "open"}
    done = decision("done", value=later.isoformat(), at=later)
    assert run([p], later, [done]) == {}
    assert run([p], later + timedelta(days=60), [done]) == {}
    assert run([p], later + timedelta(days=61), [done]) == {("p1", "neglected"): "open"}


def test_done_answers_a_pending_message_and_follows_up_a_meeting() -> None:
    msg = PendingMessage("<m@x>", T0, "Can we talk?", 1)
    p = person(pending_inbound=msg, last_out=T0 - timedelta(days=5), last_in=T0)
    p = replace(p, last_meeting=T0 - timedelta(hours=1), last_meeting_size=2)
    now = T0 + timedelta(days=4)
    assert run([p], now) == {("p1", "reply_owed"): "open", ("p1", "meeting_followup"): "open"}
    done = decision("done", value=(T0 + timedelta(days=2)).isoformat(), at=now)
    assert run([p], now, [done]) == {}
    # a done older than the message does not answer it
    old = decision("done", value=(T0 - timedelta(days=1)).isoformat(), at=now)
    assert ("p1", "reply_owed") in run([p], now, [old])


def test_done_matches_any_address_of_the_person() -> None:
    later = T0 + timedelta(days=90)
    done = decision("done", "alt1@example.org", value=later.isoformat(), at=later)
    assert run([person()], later, [done]) == {}


def test_snooze_hides_until_the_date() -> None:
    later = T0 + timedelta(days=90)
    until = later + timedelta(days=14)
    snooze = decision("snooze", until=until, at=later)
    assert run([person()], later, [snooze]) == {("p1", "neglected"): "snoozed"}
    assert run([person()], until - timedelta(seconds=1), [snooze]) == {
        ("p1", "neglected"): "snoozed"
    }
    assert run([person()], until, [snooze]) == {("p1", "neglected"): "open"}


def test_snooze_per_rule() -> None:
    later = T0 + timedelta(days=90)
    quiet = person(2, unanswered_streak=3, last_in=T0 - timedelta(days=40))
    until = later + timedelta(days=9)
    snooze = decision("snooze", "person2@example.net", rule="neglected", until=until, at=later)
    assert run([quiet], later, [snooze]) == {("p2", "unanswered"): "open"}


def test_snoozed_findings_get_no_reminder() -> None:
    later = T0 + timedelta(days=90)
    snooze = decision("snooze", until=later + timedelta(days=1), at=later)
    with freeze_time(later):
        (f,) = judge([person()], datetime.now(UTC), RULES, BUDGET, [snooze])
    assert f.status == "snoozed" and not f.remind and "until" in f.status_note


def test_dismiss_lasts_until_new_mail() -> None:
    later = T0 + timedelta(days=90)
    p = person()
    dismissed = decision(
        "dismiss", value=dismissal_value({"neglected": [T0.date().isoformat()]}, T0), at=later
    )
    assert run([p], later, [dismissed]) == {("p1", "neglected"): "dismissed"}
    # no new mail: still dismissed however long the silence grows
    assert run([p], later + timedelta(days=300), [dismissed]) == {("p1", "neglected"): "dismissed"}
    # new mail, then silence again: a new episode, flagged again
    newer = T0 + timedelta(days=100)
    p2 = person(last_contact=newer, last_in=newer)
    assert run([p2], newer + timedelta(days=61), [dismissed]) == {("p1", "neglected"): "open"}


def test_dismiss_of_one_rule_leaves_the_others() -> None:
    asks = tuple(
        Initiation(T0 - timedelta(days=100 * k), "them", "Quick favor?", True, 100.0)
        for k in range(4, 0, -1)
    )
    p = person(initiations=asks)
    now = T0 + timedelta(days=70)
    assert run([p], now) == {("p1", "neglected"): "open", ("p1", "one_way_ask"): "open"}
    dismissed = decision(
        "dismiss",
        rule="neglected",
        value=dismissal_value({"neglected": [T0.date().isoformat()]}, T0),
        at=now,
    )
    assert run([p], now, [dismissed]) == {
        ("p1", "neglected"): "dismissed",
        ("p1", "one_way_ask"): "open",
    }


def test_dismiss_without_a_finding_holds_until_newer_contact() -> None:
    later = T0 + timedelta(days=30)
    dismissed = decision("dismiss", value=dismissal_value({}, T0), at=later)
    assert run([person()], T0 + timedelta(days=90), [dismissed]) == {
        ("p1", "neglected"): "dismissed"
    }
    newer = T0 + timedelta(days=1)
    fresh = person(last_contact=newer, last_in=newer)
    assert run([fresh], newer + timedelta(days=90), [dismissed]) == {("p1", "neglected"): "open"}


def test_ignore_and_cadence_and_tier() -> None:
    later = T0 + timedelta(days=40)  # close tier: 60 days, not yet neglected
    assert run([person()], later) == {}
    assert run([person()], later, [decision("cadence", value="30")]) == {
        ("p1", "neglected"): "open"
    }
    assert run([person()], later, [decision("tier", value="inner")]) == {
        ("p1", "neglected"): "open"
    }
    ignored = [decision("cadence", value="30"), decision("ignore")]
    assert run([person()], later, ignored) == {}
    # a tier the user sets makes a contact a tie
    contact = person(is_tie=False, tier=None, tier_source=None)
    assert run([contact], later) == {}
    assert run([contact], later, [decision("tier", value="inner")]) == {("p1", "neglected"): "open"}


def test_budget_keeps_the_most_severe_reminders_and_skips_review_only() -> None:
    later = T0 + timedelta(days=400)
    people = [
        person(n, tier="inner" if n <= 2 else "wider", last_contact=T0 + timedelta(days=n))
        for n in range(1, 9)
    ]
    quiet = person(9, unanswered_streak=5, last_in=T0 - timedelta(days=40))
    with freeze_time(later):
        found = judge([*people, quiet], datetime.now(UTC), RULES, RemindersConfig(max_per_week=3))
    assert [f.severity for f in found] == sorted((f.severity for f in found), reverse=True)
    reminded = [f for f in found if f.remind]
    assert len(reminded) == 3
    assert {f.person_id for f in reminded} >= {"p1", "p2"}  # inner ties are the most severe
    over = [f for f in found if f.over_budget]
    assert len(over) == 5 and all(not f.remind for f in over)
    (u,) = [f for f in found if f.rule == "unanswered"]
    assert not u.remind and not u.over_budget


def test_snoozed_findings_do_not_use_the_budget() -> None:
    later = T0 + timedelta(days=400)
    people = [person(n, tier="inner" if n == 1 else "wider") for n in range(1, 4)]
    snooze = decision("snooze", until=later + timedelta(days=5), at=later)
    with freeze_time(later):
        found = judge(people, datetime.now(UTC), RULES, RemindersConfig(max_per_week=2), [snooze])
    by = {f.person_id: f for f in found}
    assert by["p1"].status == "snoozed" and not by["p1"].remind
    assert by["p2"].remind and by["p3"].remind


# ------------------------------------------------------------ properties

people_st = st.lists(
    st.builds(
        lambda n, silent, tier, streak, cadence: person(
            n,
            tier=tier,
            unanswered_streak=streak,
            cadence_days=cadence,
            last_contact=T0 - timedelta(days=silent),
            last_in=T0 - timedelta(days=silent),
            last_out=T0 - timedelta(days=silent),
        ),
        st.integers(1, 10_000),
        st.floats(0, 1000),
        st.sampled_from(["inner", "close", "wider", None]),
        st.integers(0, 6),
        st.one_of(st.none(), st.floats(1, 400)),
    ),
    max_size=25,
    unique_by=lambda p: p.person_id,
)


@settings(max_examples=60, deadline=None)
@given(people=people_st, max_per_week=st.integers(0, 6), snoozed=st.sets(st.integers(1, 10_000)))
def test_budget_and_status_invariants(
    people: list[PersonStats], max_per_week: int, snoozed: set[int]
) -> None:
    decisions = [
        decision("snooze", f"person{n}@example.net", until=T0 + timedelta(days=1)) for n in snoozed
    ]
    found = judge(people, T0, RULES, RemindersConfig(max_per_week=max_per_week), decisions)
    again = judge(list(reversed(people)), T0, RULES, RemindersConfig(max_per_week=max_per_week),
                  list(reversed(decisions)))  # fmt: skip
    assert found == again  # deterministic, whatever the order of people and decisions
    reminded = [f for f in found if f.remind]
    assert len(reminded) <= max_per_week
    assert all(f.status == "open" and f.rule in REMINDING for f in reminded)
    over = [f for f in found if f.over_budget]
    if over:
        assert len(reminded) == max_per_week
        assert min((f.severity for f in reminded), default=101) >= max(f.severity for f in over)
    for f in found:
        assert 1 <= f.severity <= 100
        assert (f.status == "snoozed") == (int(f.person_id[1:]) in snoozed)
        assert f.evidence
    # unanswered always suppresses neglected for the same person
    rules_by_person: dict[str, set[str]] = {}
    for f in found:
        rules_by_person.setdefault(f.person_id, set()).add(f.rule)
    assert not any({"unanswered", "neglected"} <= r for r in rules_by_person.values())


@pytest.mark.parametrize(
    ("text", "days"), [("30d", 30), ("2w", 14), ("3m", 90), ("1y", 365), ("10", 10), ("1.5w", 10.5)]
)
def test_spans(text: str, days: float) -> None:
    assert parse_span_days(text) == days


@pytest.mark.parametrize("text", ["", "soon", "0d", "-3d", "2 weeks", "w"])
def test_bad_spans(text: str) -> None:
    with pytest.raises(ValueError, match="not a span"):
        parse_span_days(text)


def test_a_reminder_the_user_deleted_dismisses_its_finding_and_frees_the_budget() -> None:
    later = T0 + timedelta(days=400)
    people = [person(n, tier="inner" if n == 1 else "wider") for n in range(1, 4)]
    cfg = RemindersConfig(max_per_week=2)
    with freeze_time(later):
        first = judge(people, datetime.now(UTC), RULES, cfg)
        top = next(f for f in first if f.person_id == "p1")
        assert top.remind and not next(f for f in first if f.person_id == "p3").remind
        found = judge(people, datetime.now(UTC), RULES, cfg, deleted_reminders={top.key})
    by = {f.person_id: f for f in found}
    assert by["p1"].status == "dismissed" and not by["p1"].remind
    assert "deleted" in by["p1"].status_note
    assert by["p2"].remind and by["p3"].remind
