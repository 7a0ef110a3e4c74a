"""Properties of the analysis that hold for any mailbox (Hypothesis).

Duplicating a message changes nothing; merging two people gives the union;
counts equal the sums over messages; the order of arrival does not matter;
and reading from the store gives what analyzing the records gives.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kithkeep.model.identity import normalize
from kithkeep.model.refresh import analyze_store
from kithkeep.records import MailBatch, MessageRecord
from kithkeep.store import Store
from tests.unit.test_model_stats import CFG, ME, NOW, T0, decision, event, mail, run

PEOPLE = ("ana@x.org", "ben@y.org", "chloe@gmx.de", "dmitri.ivanov@gmail.com")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mailboxes(draw: st.DrawFn, allow_cc: bool = True) -> list[MessageRecord]:
    """Messages between the user and a few people: threads, Cc, flags, Gmail ids."""
    n = draw(st.integers(min_value=1, max_value=30))
    out: list[MessageRecord] = []
    for i in range(n):
        who = draw(st.sampled_from(PEOPLE))
        outbound = draw(st.booleans())
        when = T0 + timedelta(days=draw(st.integers(0, 300)), seconds=draw(st.integers(0, 86399)))
        cc = [draw(st.sampled_from(PEOPLE))] if allow_cc and draw(st.booleans()) else []
        cc = [c for c in cc if c != who]
        parent = draw(st.none() | st.integers(0, max(0, i - 1))) if out else None
        irt = out[parent].message_id if parent is not None else None
        refs = [out[parent].message_id] if parent is not None and draw(st.booleans()) else []
        subject = draw(st.sampled_from(["hi", "Re: hi", "question?", "AW: plans"]))
        flags = ["\\Answered"] if not outbound and draw(st.booleans()) else []
        thrid = draw(st.none() | st.integers(1, 3))
        out.append(
            mail(
                ME if outbound else who,
                [who] if outbound else [ME],
                when,
                cc=cc,
                mid=f"h{i}@test",
                irt=irt,
                refs=refs,
                subject=subject,
                flags=flags,
                gm_thrid=thrid,
            )
        )
    return out


def copy_of(m: MessageRecord, folder: str) -> MessageRecord:
    return dataclasses.replace(m, folder=folder, uid=f"{m.uid}-{folder}", in_sent_folder=False)


@SETTINGS
@given(mailboxes(), st.data())
def test_duplicating_messages_changes_nothing(
    msgs: list[MessageRecord], data: st.DataObject
) -> None:
    picked = data.draw(st.lists(st.sampled_from(msgs), max_size=len(msgs)))
    copies = [copy_of(m, "Archive") for m in picked]
    assert run(msgs + copies).people == run(msgs).people


@SETTINGS
@given(mailboxes(), st.randoms())
def test_order_of_arrival_does_not_matter(msgs: list[MessageRecord], rnd: object) -> None:
    shuffled = list(msgs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert run(shuffled).people == run(msgs).people


@SETTINGS
@given(mailboxes())
def test_counts_equal_the_sums_over_messages(msgs: list[MessageRecord]) -> None:
    r = run(msgs)
    inbound = [m for m in msgs if m.from_[0].email != ME]
    outbound = [m for m in msgs if m.from_[0].email == ME]
    assert sum(p.messages_in for p in r.people) == len(inbound)
    assert sum(p.messages_out for p in r.people) == sum(
        len({a.email for a in (*m.to, *m.cc)}) for m in outbound
    )
    for p in r.people:
        assert p.messages_in == p.messages_in_direct + p.messages_in_cc
        assert p.messages_out == p.messages_out_direct + p.messages_out_cc
        assert p.initiations_me_answered <= p.initiations_me
        assert p.initiations_them_answered <= p.initiations_them
        assert len(p.initiations) == min(20, p.initiations_me + p.initiations_them)
        assert p.peak_strength >= p.strength >= 0
        assert p.unanswered_streak <= p.messages_out
        assert sum(p.monthly) <= p.messages_in + p.messages_out + p.meetings
        assert 1 <= p.exchanges <= p.messages_in + p.messages_out + p.meetings


@SETTINGS
@given(mailboxes(allow_cc=False), st.sampled_from(PEOPLE), st.sampled_from(PEOPLE))
def test_merging_two_people_gives_the_union(msgs: list[MessageRecord], a: str, b: str) -> None:
    evs = [event(T0 + timedelta(days=3), [(ME, "ACCEPTED"), (a, "ACCEPTED")])]
    apart = {p.addresses[0]: p for p in run(msgs, evs).people}
    merged_run = run(msgs, evs, decisions=[decision(1, "merge", a, b)])
    parts = [apart[x] for x in {normalize(a), normalize(b)} if x in apart]
    if not parts:
        return
    merged = next(p for p in merged_run.people if set(p.addresses) & {normalize(a), normalize(b)})
    assert set(merged.addresses) == {x for p in parts for x in p.addresses}
    for f in ("messages_in", "messages_out", "meetings", "messages_in_direct"):
        assert getattr(merged, f) == sum(getattr(p, f) for p in parts), f
    assert merged.first_contact == min(p.first_contact for p in parts if p.first_contact)
    assert merged.last_contact == max(p.last_contact for p in parts if p.last_contact)
    assert len(merged_run.people) == len(apart) - len(parts) + 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mailboxes())
def test_store_path_equals_records_path(msgs: list[MessageRecord]) -> None:
    store = Store.open("sqlite:///:memory:")
    try:
        store.apply_mail_batch(MailBatch(records=msgs), "acct")
        from_store = analyze_store(store, CFG, [ME], NOW)
        assert from_store.people == run(msgs).people
    finally:
        store.close()


def test_store_path_equals_records_path_on_every_backend(database_url: str) -> None:
    """SQLite gives dates as text and PostgreSQL as naive datetimes: the same statistics."""
    msgs = [
        mail(ME, ["ana@x.org"], T0, mid="a@x"),
        mail("ana@x.org", [ME], T0 + timedelta(hours=5), mid="b@x", irt="a@x", refs=["a@x"]),
        mail("ana@x.org", [ME], T0 + timedelta(days=30, microseconds=250_000), subject="q?"),
        mail("news@x.org", [ME], T0, list_unsubscribe=True),
        mail("ben@y.org", [ME], None, internal_date=T0 + timedelta(days=2), gm_thrid=9),
    ]
    store = Store.open(database_url)
    try:
        store.apply_mail_batch(MailBatch(records=msgs), "acct")
        from_store = analyze_store(store, CFG, [ME], NOW)
        assert from_store.people == run(msgs).people
        assert from_store.skipped_bulk == 1
        ana = next(p for p in from_store.people if p.name == "Ana")
        assert ana.last_in == T0 + timedelta(days=30, microseconds=250_000)
        assert ana.median_reply_hours_them == 5.0
    finally:
        store.close()
