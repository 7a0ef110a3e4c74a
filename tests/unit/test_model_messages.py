"""Messages as the analysis reads them: the store's rows and records give the same views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kithkeep.model.messages import (
    AddrParser,
    MessageView,
    Recipients,
    _ms,
    canonical_order,
    references_of,
    refs_from_json,
)
from kithkeep.records import MailBatch
from kithkeep.store import Store
from tests.unit.test_model_stats import ME, T0, mail

IDS = st.text(alphabet=st.sampled_from('ab<>@."\\,[] \x00\x1f\u2028é'), max_size=8)


@given(st.lists(IDS, max_size=5))
def test_references_round_trip_through_json(refs: list[str]) -> None:
    assert refs_from_json(json.dumps(refs)) == tuple(refs)


@given(st.text(alphabet=st.sampled_from('[]",\\ab\x01{}1'), max_size=12))
def test_references_text_that_is_not_a_list_of_strings_is_empty_or_its_strings(
    text: str,
) -> None:
    got = refs_from_json(text)
    assert isinstance(got, tuple) and all(isinstance(r, str) for r in got)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.booleans(),
)
def test_a_date_to_the_millisecond_whole_seconds_without_rounding(d: datetime, whole: bool) -> None:
    """_ms skips round() for whole seconds: the value is the same float as rounding gives."""
    if whole:
        d = d.replace(microsecond=0)
    got = _ms(d)
    assert got == round(d.timestamp(), 3) and repr(got) == repr(round(d.timestamp(), 3))
    assert abs(got - d.timestamp()) <= 0.0005 + 1e-9
    assert _ms(d + timedelta(microseconds=1)) >= got


def _view(ts: float, key: str) -> MessageView:
    rc = Recipients((), frozenset(), frozenset())
    date = datetime.fromtimestamp(ts, UTC)
    return MessageView(ts, key, date, key, None, "", rc, None, (), "", False, False, None, 0)


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 1.5, 2.0, 1e9, 1e9 + 0.001]), st.text(max_size=3)),
        unique_by=lambda kv: kv[1],
    )
)
def test_canonical_order_is_by_date_then_key(pairs: list[tuple[float, str]]) -> None:
    views = [_view(ts, key) for ts, key in pairs]
    assert canonical_order(list(views)) == sorted(views, key=lambda v: (v.ts, v.key))


def test_a_stored_row_and_its_record_give_the_same_view() -> None:
    record = mail(
        "Ana@X.org",
        [ME, "ben+tag@gmail.com"],
        T0,
        cc=["chloe@y.org"],
        irt="a@x",
        refs=["z@x", "a@x"],
        flags=["\\Answered", "\\Seen"],
        gm_thrid=7,
    )
    store = Store.open("sqlite://")
    try:
        store.apply_mail_batch(MailBatch(records=[record]), "acct")
        store.save_analysis(reindex=[(0, [], [("ana@x.org", 1)])])
        ((_, row),) = store.messages_of(["ana@x.org"])
    finally:
        store.close()
    parser = AddrParser()
    from_store = parser.view(row)
    from_record = parser.record_view(record)
    assert from_record is not None
    assert references_of(from_store) == references_of(from_record) == ("z@x", "a@x")
    # the same, but where each path keeps it: the row id, or the record's location
    fields = [f for f in MessageView._fields if f not in ("references", "location")]
    assert [getattr(from_store, f) for f in fields] == [getattr(from_record, f) for f in fields]
    assert from_store.recipients.every == {"sam@example.org", "ben@gmail.com", "chloe@y.org"}
    assert from_store.answered and from_store.linked and from_store.thread == 7
