"""The analysis' C loops (kithkeep/model/_loops.c) against their Python twins.

messages.py and person.py use the compiled reader, walk, strength and monthly
counts when the extension is built, and the Python functions otherwise; both
must give the same messages and statistics for every mailbox. Checked three
ways: whole analyses of generated mailboxes with meetings, direct calls on
generated time lines with every kind of thread link (loops in References,
parents dated after their replies, Gmail threads, reply subjects), and the
real corpora read from a store.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kithkeep.config import AnalysisConfig
from kithkeep.model import analyze, messages, person, stats
from kithkeep.model.analyze import Analysis, analyze_store
from kithkeep.model.messages import Msg, Recipients, refs_from_json
from kithkeep.model.person import DAY, PersonContext
from kithkeep.model.stats import STATS_ENCODER, Initiation, iso
from kithkeep.records import EventRecord
from tests.unit.test_model_properties import PEOPLE, mailboxes
from tests.unit.test_model_scenario import CORPORA, ME, analyzed, corpora_store, plant
from tests.unit.test_model_stats import NOW, T0, event, run

pytestmark = pytest.mark.skipif(not person.COMPILED, reason="the C extension is not built")

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_python_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "_messages_from_rows", messages._messages_from_rows_python)
    monkeypatch.setattr(analyze, "_timelines", analyze._timelines_python)
    monkeypatch.setattr(person, "_walk", person._walk_python)
    monkeypatch.setattr(person, "_strength", person._strength_python)
    monkeypatch.setattr(person, "_monthly", person._monthly_python)


def analyses(msgs: list[Any], events: list[EventRecord]) -> tuple[Analysis, Analysis]:
    compiled = run(msgs, events)
    with pytest.MonkeyPatch.context() as m:
        with_python_twins(m)
        python = run(msgs, events)
    return compiled, python


@st.composite
def meetings(draw: st.DrawFn) -> list[EventRecord]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        start = T0 + timedelta(days=draw(st.integers(0, 300)), hours=draw(st.integers(0, 23)))
        who = draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=2, unique=True))
        out.append(event(start, [(a, "ACCEPTED") for a in who]))
    return out


@SETTINGS
@given(mailboxes(), meetings())
def test_analysis_is_the_same_with_either_walk(msgs: list[Any], events: list[EventRecord]) -> None:
    compiled, python = analyses(msgs, events)
    assert compiled.people == python.people


@pytest.mark.skipif(not CORPORA.is_dir(), reason="shared/corpora is not beside the repository")
def test_real_corpora_give_the_same_people_with_either_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = corpora_store(tmp_path)
    try:
        compiled = analyze_store(store, AnalysisConfig(), [ME], NOW, save=False)
        compiled_msgs = messages.read_msgs(store)
        with_python_twins(monkeypatch)
        python = analyze_store(store, AnalysisConfig(), [ME], NOW, save=False)
        python_msgs = messages.read_msgs(store)
    finally:
        store.close()
    assert len(compiled.people) > 50
    assert compiled.people == python.people
    assert len(compiled_msgs[0]) > 500
    assert compiled_msgs == python_msgs  # the messages and the prelude


def test_planted_people_are_the_same_with_either_loops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scenario of every kind of person: lists, mass mail, no-reply, merges, meetings."""
    store, vcf = plant(tmp_path)
    try:
        compiled = analyzed(store, vcf)
        with_python_twins(monkeypatch)
        python = analyzed(store, vcf)
    finally:
        store.close()
    assert compiled.skipped_list and compiled.skipped_mass  # the list and mass paths ran
    assert (compiled.people, compiled.skipped_list, compiled.skipped_mass) == (
        python.people,
        python.skipped_list,
        python.skipped_mass,
    )


def test_malformed_rows_raise_instead_of_crashing() -> None:
    parser = messages.AddrParser()
    assert messages.LOOPS is not None

    def read(rows: Any) -> int:
        return int(
            messages.LOOPS.messages_from_rows(
                rows,
                [],
                parser.sender_cache,
                parser.sender_text,
                parser.rc_cache,
                parser.recipients_text,
                set(),
                [],
            )
        )

    row = (1.0, None, "2020-01-01 00:00:00", "<a@x>", "[]", "[]\n[]\n[]", None, "[]", "")
    row += (0, 0, 0, None, 1, None)
    assert read([row]) == 0
    assert read([(*row[:2], None, *row[3:])]) == 1  # undated: counted and left out
    for bad in ([row[:-1]], [list(row)], (row,)):
        with pytest.raises(TypeError):
            read(bad)


def _timeline(rnd: random.Random, n: int) -> tuple[list[Msg], list[person.Item]]:
    """Messages with every kind of link, and one person's time line over them."""
    rc = Recipients((), frozenset(), frozenset())
    msgs: list[Msg] = []
    ts = 1.6e9
    for i in range(n):
        ts += rnd.choice([0.0, 60.0, 3600.0, DAY, 20 * DAY, 90 * DAY])
        # links to any message, earlier or later (a parent dated after its reply), or none
        irt = f"m{rnd.randrange(n)}" if rnd.random() < 0.5 else rnd.choice([None, "", "gone"])
        refs = [f"m{rnd.randrange(n)}" for _ in range(rnd.randrange(4))]  # loops included
        linked = bool(irt) or bool(refs)
        subject = rnd.choice(["hi", "Re: hi", "AW: x", ""])
        thrid = rnd.choice([None, 1, 2])
        msgs.append(
            (
                ts,
                f"m{i}",
                None,
                f"m{i}",
                "a@x.org",
                "",
                rc,
                irt,
                tuple(refs),
                subject,
                rnd.random() < 0.2,
                linked,
                False,
                thrid,
                i,
            )
        )
    items: list[person.Item] = [
        (m[0], rnd.choice([person.IN, person.OUT]), i, rnd.random() < 0.7)
        for i, m in enumerate(msgs)
        if rnd.random() < 0.8
    ]
    # meetings at the messages' times and in between (the index points into meetings)
    for k in range(rnd.randrange(4)):
        items.append((rnd.choice(msgs)[0] + rnd.choice([0.0, 1800.0]), person.MEETING, k, True))
    return msgs, sorted(items)


def _walk_with(fn: Any, msgs: list[Msg], items: list[person.Item], silence: float) -> Any:
    ctx = PersonContext(msgs, [], {m[3]: i for i, m in enumerate(msgs)}, frozenset(), CFG, NOW)
    return fn(
        items,
        msgs,
        ctx.by_id,
        ctx.known_ancestors,
        refs_from_json,
        ctx.reply_subjects,
        ctx.reply_subject,
        silence,
    )


CFG = AnalysisConfig()


@pytest.mark.parametrize("seed", range(300))
def test_walk_strength_and_months_equal_the_python_twins(seed: int) -> None:
    rnd = random.Random(seed)
    msgs, items = _timeline(rnd, rnd.randrange(1, 40))
    silence = rnd.choice([0.0, 14 * DAY, 60 * DAY])
    assert person._C is not None
    assert _walk_with(person._C.walk, msgs, items, silence) == _walk_with(
        person._walk_python, msgs, items, silence
    )
    args = (items, rnd.choice([1.0, 90.0, 365.0]), NOW.timestamp(), person._WEIGHTS)
    assert person._C.strength(*args) == person._strength_python(*args)
    bounds = person.month_starts(NOW)
    assert person._C.monthly(items, bounds) == person._monthly_python(items, bounds)


def test_initiations_answered_in_place_are_the_same_objects_shape() -> None:
    """The walk's initiations are lists person_stats reads by position: [kind, index,
    gap seconds or None, answered] with the item's own kind and index objects."""
    rnd = random.Random(7)
    msgs, items = _timeline(rnd, 30)
    assert person._C is not None
    inits = _walk_with(person._C.walk, msgs, items, 14 * DAY)[8]
    assert inits and all(isinstance(i, list) and len(i) == 4 for i in inits)
    assert all(type(i[3]) is bool and (i[2] is None or type(i[2]) is float) for i in inits)
    assert inits[0][2] is None  # the first contact has no gap before it


@pytest.mark.parametrize(
    "bad",
    [
        [(1.0, 0, 0)],  # a 3-tuple
        [(1.0, 5, 0, True)],  # an unknown kind
        [(1.0, 0, 99, True)],  # an index past the messages
        [("x", 0, 0, True)],  # a timestamp that is not a number
        "not a list",
    ],
)
def test_malformed_time_lines_raise_instead_of_crashing(bad: Any) -> None:
    rnd = random.Random(1)
    msgs, _ = _timeline(rnd, 3)
    assert person._C is not None
    with pytest.raises((TypeError, ValueError, IndexError)):
        _walk_with(person._C.walk, msgs, bad, 14 * DAY)
    if isinstance(bad, list) and bad and len(bad[0]) != 4:
        with pytest.raises(TypeError):
            person._C.strength(bad, 90.0, 0.0, person._WEIGHTS)
        with pytest.raises(TypeError):
            person._C.monthly(bad, person.month_starts(NOW))


# dates of every kind iso() meets: UTC to the second (written in C), with microseconds,
# before the year 1000, naive, and in another zone (these go to iso() itself)
DATES = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.none()
).flatmap(
    lambda d: st.sampled_from(
        [
            d.replace(microsecond=0, tzinfo=UTC),
            d.replace(tzinfo=UTC),
            d,
            d.replace(tzinfo=timezone(timedelta(hours=-5))),
        ]
    )
)
GAPS = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(DATES, st.sampled_from(["me", "them"]), st.text(), st.booleans(), GAPS),
        max_size=6,
    )
)
def test_initiations_json_equals_the_python_twin(fields: list[Any]) -> None:
    inits = tuple(Initiation(*f) for f in fields)
    assert stats._initiations_json(inits) == stats._initiations_json_python(inits)
    if all(f[4] is None or (isinstance(f[4], float) and math.isfinite(f[4])) for f in fields):
        # what STATS_ENCODER itself writes (it writes no other text for non-finite floats)
        expected = STATS_ENCODER.encode(
            [dataclasses.asdict(i) | {"date": iso(i.date)} for i in inits]
        )
        assert stats._initiations_json(inits) == expected
