"""The shortcuts analysis takes for speed give what the plain computations give (Hypothesis).

Each shortcut is compared with the straightforward code it replaces, on
inputs built to hit its edges: References JSON that needs escaping, runs of
equal dates, dates in other zones or with microseconds, statistics whose
texts need escaping or spell the JSON the stored form is spliced at.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kithkeep._rowcodec import references_json
from kithkeep.model.messages import KEY, TS, Msg, Recipients, _canonical_order, refs_from_json
from kithkeep.model.stats import STATS_ENCODER, Initiation, PendingMessage, PersonStats, iso

# ids with the characters that matter to JSON: quotes, backslashes, control characters
IDS = st.text(alphabet=st.sampled_from('ab<>@."\\,[] \x00\x1f\u2028é'), max_size=8)


def decoded(text: str) -> Any:
    """What the References column decodes to with json itself (empty when invalid)."""
    try:
        return tuple(json.loads(text)) if text and text != "[]" else ()
    except ValueError:
        return ()


@given(st.lists(IDS, max_size=5))
def test_references_as_the_store_writes_them(refs: list[str]) -> None:
    text = references_json(tuple(refs))
    assert refs_from_json(text) == decoded(text) == tuple(refs)


@given(st.lists(IDS, max_size=5), st.sampled_from([(",", ":"), (", ", ": ")]), st.booleans())
def test_references_written_by_other_encoders(
    refs: list[str], separators: tuple[str, str], ascii_only: bool
) -> None:
    text = json.dumps(refs, separators=separators, ensure_ascii=ascii_only)
    assert refs_from_json(text) == decoded(text)


@given(st.text(alphabet=st.sampled_from('[]",\\ab\x01'), max_size=12))
@example('["a\x01"]')  # a raw control character: JSON rejects it
@example('["]')
@example('[""]')
def test_references_text_that_is_not_a_list_of_strings(text: str) -> None:
    try:
        expected = decoded(text)
    except TypeError:  # valid JSON that is no sequence: the same error both ways
        return
    assert refs_from_json(text) == expected


def msg(ts: float, key: str) -> Msg:
    rc = Recipients((), frozenset(), frozenset())
    return (ts, key, "", key, None, "", rc, None, (), "", False, False, False, None, 0)


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 1.5, 2.0, 1e9, 1e9 + 0.001]), st.text(max_size=3)),
        unique_by=lambda kv: kv[1],
    )
)
def test_canonical_order_is_by_date_then_key(pairs: list[tuple[float, str]]) -> None:
    msgs = [msg(ts, key) for ts, key in pairs]
    expected = sorted(msgs, key=itemgetter(TS, KEY))
    assert _canonical_order(list(msgs)) == expected


ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(0), "Z"), None])


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)), ZONES)
def test_iso_is_isoformat(d: datetime, zone: timezone | None) -> None:
    value = d.replace(tzinfo=zone)
    assert iso(value) == value.isoformat()
    assert iso(value.replace(microsecond=0)) == value.replace(microsecond=0).isoformat()


# texts with what JSON escapes, and the JSON the stored form is put together at
TEXTS = st.text(alphabet=st.sampled_from('a"\\:[]\n\x00é☃'), max_size=6) | st.just(
    '"initiations":[]'
)
DATES = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))]))
FLOATS = st.none() | st.floats() | st.sampled_from([0.0, -0.0, 25.3, 1e300, math.inf, math.nan])
INITIATIONS = st.builds(
    Initiation,
    date=DATES,
    side=st.sampled_from(["me", "them"]) | TEXTS,
    subject=TEXTS,
    answered=st.booleans(),
    gap_days=FLOATS,
)
PEOPLE = st.builds(
    PersonStats,
    person_id=TEXTS,
    name=TEXTS,
    addresses=st.lists(TEXTS, max_size=2).map(tuple),
    first_contact=st.none() | DATES,
    last_meeting=st.none() | DATES,
    messages_in=st.integers(),
    reply_rate_me=FLOATS,
    pending_inbound=st.none()
    | st.builds(PendingMessage, TEXTS, DATES, TEXTS, st.integers(), st.booleans()),
    strength=st.floats(),
    tier=st.none() | TEXTS,
    is_tie=st.booleans(),
    initiations=st.lists(INITIATIONS, max_size=4).map(tuple),
    monthly=st.lists(st.integers(), max_size=3).map(tuple),
)


@given(PEOPLE)
def test_stored_statistics_are_the_encoded_json(p: PersonStats) -> None:
    assert p.stored_json() == STATS_ENCODER.encode(p.to_json())


@given(INITIATIONS)
def test_an_initiation_is_built_like_a_dataclass(i: Initiation) -> None:
    """Initiation sets its fields itself, for speed: every field, in declaration order."""
    names = [f.name for f in dataclasses.fields(Initiation)]
    assert list(i.__dict__) == names
    assert dataclasses.replace(i) == i == Initiation(**{n: getattr(i, n) for n in names})
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.side = "me"  # type: ignore[misc]
