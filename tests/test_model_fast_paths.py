"""The shortcuts analysis takes for speed give what the plain computations give (Hypothesis).

Each shortcut is compared with the straightforward code it replaces, on
inputs built to hit its edges: References JSON that needs escaping, runs of
equal dates, dates in other zones or with microseconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kithkeep.model.messages import KEY, TS, Msg, _canonical_order, _refs_from_json
from kithkeep.model.stats import iso
from kithkeep.store import _refs_json

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
    text = _refs_json(tuple(refs))
    assert _refs_from_json(text) == decoded(text) == tuple(refs)


@given(st.lists(IDS, max_size=5), st.sampled_from([(",", ":"), (", ", ": ")]), st.booleans())
def test_references_written_by_other_encoders(
    refs: list[str], separators: tuple[str, str], ascii_only: bool
) -> None:
    text = json.dumps(refs, separators=separators, ensure_ascii=ascii_only)
    assert _refs_from_json(text) == decoded(text)


@given(st.text(alphabet=st.sampled_from('[]",\\ab\x01'), max_size=12))
@example('["a\x01"]')  # a raw control character: JSON rejects it
@example('["]')
@example('[""]')
def test_references_text_that_is_not_a_list_of_strings(text: str) -> None:
    try:
        expected = decoded(text)
    except TypeError:  # valid JSON that is no sequence: the same error both ways
        return
    assert _refs_from_json(text) == expected


def msg(ts: float, key: str) -> Msg:
    return (ts, key, "", key, "[]", "[]\n[]\n[]", None, (), "", False, False, False, None, 0)


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
