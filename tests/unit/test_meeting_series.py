"""Meetings in a regular series (a weekly 1:1) need no follow-up; a one-off meeting does.

The model's meeting facts (``last_meeting_recurring``, ``previous_meeting``,
``meeting_cadence_days``) on hand-built events, then ``meeting_followup`` on
them and on the whole analysis, with the clock frozen by freezegun.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from kithkeep.config import MeetingFollowupConfig
from kithkeep.errors import ConfigError
from kithkeep.model.stats import PersonStats
from kithkeep.records import Attendee, EventRecord
from kithkeep.rules import meeting_followup
from tests.unit.test_model_stats import ME, day, event, person, run

ANA = "ana@x.org"
SECOND = timedelta(seconds=1)


@contextmanager
def clock(at: datetime) -> Iterator[datetime]:
    with freeze_time(at):
        yield datetime.now(UTC)


def occurrence(start: datetime, uid: str = "weekly-1on1") -> EventRecord:
    """One expanded occurrence of a recurring event: the recurrence id is its original start."""
    return EventRecord(
        source="cal",
        uid=uid,
        recurrence_id=start.isoformat(),
        start=start,
        end=start + timedelta(minutes=30),
        status="CONFIRMED",
        summary="1:1",
        organizer=ME,
        attendees=(Attendee(ME, partstat="ACCEPTED"), Attendee(ANA, partstat="ACCEPTED")),
    )


def one_off(start: datetime) -> EventRecord:
    return event(start, [(ME, "ACCEPTED"), (ANA, "ACCEPTED")], minutes=30)


def ana_at(events: Sequence[EventRecord], now: datetime) -> PersonStats:
    return person(run([], events, now=now), ANA)


def follow_up_at(events: Sequence[EventRecord], now: datetime) -> bool:
    """Does meeting_followup fire for Ana at ``now`` (analysis and rule on the same clock)?"""
    with clock(now) as frozen:
        p = ana_at(events, frozen)
        return meeting_followup.evaluate(p, frozen, MeetingFollowupConfig()) is not None


# ------------------------------------------------------------------ the model


def test_recurring_occurrence_is_marked_and_a_single_event_is_not() -> None:
    after = day(10)
    assert ana_at([occurrence(day(1))], after).last_meeting_recurring
    assert not ana_at([one_off(day(1))], after).last_meeting_recurring
    # the last meeting decides: a one-off after the series, or an occurrence after a one-off
    assert not ana_at([occurrence(day(1)), one_off(day(3))], after).last_meeting_recurring
    assert ana_at([one_off(day(1)), occurrence(day(3))], after).last_meeting_recurring


def test_previous_meeting_and_meeting_cadence() -> None:
    now = day(60)
    one = ana_at([one_off(day(1))], now)
    assert one.previous_meeting is None and one.meeting_cadence_days is None
    two = ana_at([one_off(day(1)), one_off(day(8))], now)
    assert two.previous_meeting == day(1) + timedelta(minutes=30)  # meetings count at their end
    assert two.meeting_cadence_days is None  # one gap is no rhythm
    weekly = ana_at([one_off(day(n)) for n in (1, 8, 15)], now)
    assert weekly.previous_meeting == day(8) + timedelta(minutes=30)
    assert weekly.meeting_cadence_days == 7.0
    # the recent rhythm only: a monthly past, then four weekly meetings
    mixed = ana_at([one_off(day(n)) for n in (-120, -90, -60, -30, 0, 7, 14, 21, 28)], now)
    assert mixed.meeting_cadence_days == 7.0


def test_new_fields_survive_json() -> None:
    p = ana_at([occurrence(day(n)) for n in (1, 8, 15)], day(30))
    assert p.last_meeting_recurring and p.previous_meeting and p.meeting_cadence_days == 7.0
    assert PersonStats.from_stored(p.stored_json(), day(30), 180) == p
    # statistics saved before these fields existed still load
    old = {k: v for k, v in p.to_json().items() if k not in {
        "last_meeting_recurring", "previous_meeting", "meeting_cadence_days"}}  # fmt: skip
    loaded = PersonStats.from_json(old)
    assert not loaded.last_meeting_recurring and loaded.previous_meeting is None


# ------------------------------------------------------------------ the rule


MET = datetime(2026, 4, 7, 16, 0, tzinfo=UTC)


def stats(**kw: object) -> PersonStats:
    base = PersonStats(
        person_id="p1",
        name="Ana",
        addresses=(ANA,),
        last_meeting=MET,
        last_meeting_size=2,
        last_contact=MET,
        last_out=MET - timedelta(days=3),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_rule_skips_a_recurring_occurrence_unless_configured() -> None:
    with clock(MET + timedelta(days=2)) as now:
        assert meeting_followup.evaluate(stats(), now, MeetingFollowupConfig()) is not None
        recurring = stats(last_meeting_recurring=True)
        assert meeting_followup.evaluate(recurring, now, MeetingFollowupConfig()) is None
        keep = MeetingFollowupConfig(skip_recurring=False)
        assert meeting_followup.evaluate(recurring, now, keep) is not None


@pytest.mark.parametrize(
    ("cadence", "previous_gap", "fires"),
    [
        (35.0, 35.0, False),  # at the threshold: still regular
        (35.1, 35.0, True),  # rhythm slower than regular_days
        (7.0, 35.0, False),
        (7.0, 35.0 + 1 / 86400, True),  # a weekly series that ended: this one stands alone
        (None, 7.0, True),  # fewer than three meetings: no rhythm known
    ],
)
def test_rule_skips_a_regular_rhythm_of_separate_events(
    cadence: float | None, previous_gap: float, fires: bool
) -> None:
    p = stats(meeting_cadence_days=cadence, previous_meeting=MET - timedelta(days=previous_gap))
    with clock(MET + timedelta(days=2)) as now:
        found = meeting_followup.evaluate(p, now, MeetingFollowupConfig())
        assert (found is not None) is fires
        # 0 turns the rhythm test off
        assert meeting_followup.evaluate(p, now, MeetingFollowupConfig(regular_days=0)) is not None


def test_regular_days_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="regular_days"):
        MeetingFollowupConfig(regular_days=-1)


# ------------------------------------------------------- analysis and rule together


def test_weekly_recurring_one_on_one_never_asks_for_a_follow_up() -> None:
    series = [occurrence(day(7 * n)) for n in range(8)]
    for n in range(8):
        end = day(7 * n) + timedelta(minutes=30)
        assert not follow_up_at(series[: n + 1], end + timedelta(days=2))


def test_weekly_separate_events_ask_only_until_the_rhythm_shows() -> None:
    meetings = [one_off(day(7 * n)) for n in range(4)]
    end = [day(7 * n) + timedelta(minutes=30) for n in range(4)]
    # the first two are one-offs as far as anyone can tell: follow up
    assert follow_up_at(meetings[:1], end[0] + timedelta(days=2))
    assert follow_up_at(meetings[:2], end[1] + timedelta(days=2))
    # from the third on they are a weekly series
    assert not follow_up_at(meetings[:3], end[2] + timedelta(days=2))
    assert not follow_up_at(meetings[:4], end[3] + timedelta(days=2))


def test_one_off_meeting_still_asks_for_a_follow_up_in_its_window() -> None:
    meetings = [one_off(day(1))]
    end = day(1) + timedelta(minutes=30)
    assert not follow_up_at(meetings, end + timedelta(days=1) - SECOND)
    assert follow_up_at(meetings, end + timedelta(days=1))
    assert follow_up_at(meetings, end + timedelta(days=7))
    assert not follow_up_at(meetings, end + timedelta(days=7) + SECOND)


def test_a_meeting_long_after_a_series_ended_is_a_fresh_one() -> None:
    series = [occurrence(day(7 * n)) for n in range(6)]
    later = one_off(day(200))
    assert follow_up_at([*series, later], day(200) + timedelta(days=2))
