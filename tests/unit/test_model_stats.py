"""Each statistic and each boundary of the relationship model, on hand-built records.

The builders at the top are shared by the other ``test_model_*`` modules.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from kithkeep.config import AnalysisConfig
from kithkeep.model.analyze import Analysis, analyze
from kithkeep.model.stats import PersonStats
from kithkeep.model.vcard import Card
from kithkeep.records import Address, Attendee, DecisionRecord, EventRecord, MessageRecord
from kithkeep.store import _as_utc

ME = "sam@example.org"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CFG = AnalysisConfig()
_ids = itertools.count(1)


def day(n: float, hours: float = 0) -> datetime:
    return T0 + timedelta(days=n, hours=hours)


def addrs(*emails: str) -> tuple[Address, ...]:
    return tuple(Address(e.split("@")[0].title(), e) for e in emails)


def mail(
    frm: str,
    to: Sequence[str],
    when: datetime | None,
    *,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    mid: str | None = None,
    irt: str | None = None,
    refs: Sequence[str] = (),
    subject: str = "hello",
    sent: bool | None = None,
    folder: str | None = None,
    flags: Sequence[str] = (),
    name: str | None = None,
    **extra: object,
) -> MessageRecord:
    """One message; sent mail (From: ME) goes to the sent folder unless told otherwise."""
    n = next(_ids)
    is_sent = frm == ME if sent is None else sent
    return MessageRecord(
        account="acct",
        folder=folder or ("Sent" if is_sent else "INBOX"),
        uid=str(n),
        message_id=mid or f"m{n}@test",
        date=when,
        from_=(Address(name if name is not None else frm.split("@", maxsplit=1)[0].title(), frm),),
        to=addrs(*to),
        cc=addrs(*cc),
        bcc=addrs(*bcc),
        in_reply_to=irt,
        references=tuple(refs),
        subject=subject,
        flags=frozenset(flags),
        in_sent_folder=is_sent,
        **extra,  # type: ignore[arg-type]
    )


def event(
    start: datetime,
    attendees: Sequence[tuple[str, str]],
    *,
    minutes: int = 60,
    status: str = "CONFIRMED",
    organizer: str | None = ME,
    own: bool = False,
    my_status: str | None = None,
    uid: str | None = None,
    cutypes: dict[str, str] | None = None,
) -> EventRecord:
    return EventRecord(
        source="cal",
        uid=uid or f"ev{next(_ids)}",
        recurrence_id="",
        start=start,
        end=start + timedelta(minutes=minutes),
        status=status,
        summary="meeting",
        organizer=organizer,
        attendees=tuple(
            Attendee(e, partstat=st, cutype=(cutypes or {}).get(e, "INDIVIDUAL"))
            for e, st in attendees
        ),
        my_status=my_status,
        own=own,
    )


def decision(
    n: int, kind: str, person: str, value: str | None = None, **kw: object
) -> DecisionRecord:
    return DecisionRecord(
        id=n,
        kind=kind,
        person=person,
        rule=None,
        until=kw.get("until"),  # type: ignore[arg-type]
        value=value,
        note=None,
        created_at=T0,
    )


def run(
    messages: Sequence[MessageRecord],
    events: Sequence[EventRecord] = (),
    cfg: AnalysisConfig = CFG,
    now: datetime = NOW,
    *,
    decisions: Sequence[DecisionRecord] = (),
    cards: Sequence[Card] = (),
    me: Sequence[str] = (ME,),
    extra_me: Sequence[str] = (),
) -> Analysis:
    return analyze(messages, events, cfg, me, now, extra_me, decisions=decisions, cards=cards)


def person(result: Analysis, address: str) -> PersonStats:
    for p in result.people:
        if address in p.addresses:
            return p
    raise AssertionError(f"{address} is not a person: {[p.addresses for p in result.people]}")


def nobody(result: Analysis, address: str) -> bool:
    return all(address not in p.addresses for p in result.people)


def exchange(
    other: str, start: float, reply_after_hours: float | None = 20, me_first: bool = True
) -> list[MessageRecord]:
    """One exchange: an opening and (optionally) a threaded reply."""
    frm, to = (ME, other) if me_first else (other, ME)
    first = mail(frm, [to], day(start), subject="news")
    if reply_after_hours is None:
        return [first]
    reply = mail(
        to, [frm], day(start, reply_after_hours), irt=first.message_id,
        refs=[first.message_id], subject="Re: news",
    )  # fmt: skip
    return [first, reply]


# ------------------------------------------------------------------ counts


def test_direction_direct_and_cc_counts() -> None:
    r = run(
        [
            mail(ME, ["ana@gmail.com"], day(0)),
            mail(ME, ["ben@x.org"], day(1), cc=["ana@gmail.com"]),
            mail("ana@gmail.com", [ME], day(2)),
            mail("ana@gmail.com", ["ben@x.org"], day(3), cc=[ME]),
        ]
    )
    ana = person(r, "ana@gmail.com")
    assert (ana.messages_out, ana.messages_out_direct, ana.messages_out_cc) == (2, 1, 1)
    assert (ana.messages_in, ana.messages_in_direct, ana.messages_in_cc) == (2, 1, 1)
    assert ana.first_contact == day(0) and ana.last_contact == day(3)
    assert ana.last_out == day(1) and ana.last_in == day(3)
    # free-mail domains are people; a co-recipient of an inbound message is not a contact
    assert person(r, "ben@x.org").messages_in == 0


def test_copies_in_several_folders_count_once_and_unite_flags() -> None:
    m = mail("ana@x.org", [ME], day(0), mid="same@x")
    copy = mail("ana@x.org", [ME], day(0), mid="same@x", folder="Archive", flags=["\\Answered"])
    gm1 = mail("ben@x.org", [ME], day(1), mid="a@x", gm_msgid=77)
    gm2 = mail("ben@x.org", [ME], day(1), mid="b@x", gm_msgid=77, folder="Important")
    r = run([m, copy, gm1, gm2])
    assert person(r, "ana@x.org").messages_in == 1
    assert person(r, "ana@x.org").pending_inbound is None  # \\Answered on one copy counts
    assert person(r, "ben@x.org").messages_in == 1
    assert r.duplicates == 2


def test_undated_messages_use_internaldate_or_are_skipped() -> None:
    r = run(
        [
            mail("ana@x.org", [ME], None, internal_date=day(3)),
            mail("ben@x.org", [ME], None),
        ]
    )
    assert person(r, "ana@x.org").last_in == day(3)
    assert nobody(r, "ben@x.org") and r.skipped_undated == 1


# --------------------------------------------------------------------- me


def test_me_from_config_and_sources() -> None:
    msgs = [
        mail("sam.work@corp.example", ["ana@x.org"], day(0), sent=True),
        mail("ana@x.org", ["sam.work@corp.example"], day(1)),
        mail("login@imap.example", ["ben@x.org"], day(2), sent=False),
        mail("ben@x.org", ["owner@cal.example"], day(3)),
    ]
    known = ["login@imap.example", "owner@cal.example", "not-an-address"]
    r = run(msgs, me=[ME, "sam.work@corp.example"], extra_me=known)
    assert {"sam@example.org", "sam.work@corp.example", "login@imap.example"} <= r.me
    assert "owner@cal.example" in r.me
    ana = person(r, "ana@x.org")
    assert (ana.messages_out, ana.messages_in, ana.messages_in_direct) == (1, 1, 1)
    ben = person(r, "ben@x.org")
    assert (ben.messages_out, ben.messages_in, ben.messages_in_direct) == (1, 1, 1)
    assert all(a not in r.me for p in r.people for a in p.addresses)


def test_a_sent_folder_sender_is_not_silently_me() -> None:
    # an address found only as the From of sent mail is not the user's without being
    # said (kithkeep me add): its mail to third parties is not the user's contact
    msgs = [
        mail("sam.work@corp.example", ["ana@x.org"], day(0), sent=True),
        mail("ana@x.org", ["sam.work@corp.example"], day(1)),
    ]
    r = run(msgs)
    assert "sam.work@corp.example" not in r.me
    ana = person(r, "ana@x.org")
    assert (ana.messages_out, ana.messages_in, ana.messages_in_direct) == (0, 1, 0)


def test_vcard_with_my_address_adds_the_others_to_me() -> None:
    r = run(
        [mail("ana@x.org", ["sam@home.example"], day(0))],
        cards=[Card("Sam", ("sam@example.org", "sam@home.example"))],
    )
    assert "sam@home.example" in r.me
    assert person(r, "ana@x.org").messages_in_direct == 1


# ------------------------------------------------------------------- noise


@pytest.mark.parametrize(
    "extra",
    [
        {"list_id": "<dev.lists.example.org>"},
        {"list_unsubscribe": True},
        {"precedence": "bulk"},
        {"precedence": "list"},
        {"precedence": "junk"},
        {"auto_submitted": "auto-generated"},
        {"auto_submitted": "auto-replied"},
    ],
)
def test_bulk_and_automatic_mail_is_not_personal(extra: dict[str, object]) -> None:
    r = run([mail("ana@x.org", [ME], day(0), **extra)])
    assert nobody(r, "ana@x.org") and r.skipped_bulk == 1


def test_auto_submitted_no_is_personal() -> None:
    r = run([mail("ana@x.org", [ME], day(0), auto_submitted="no")])
    assert person(r, "ana@x.org").messages_in == 1


@pytest.mark.parametrize(
    "address",
    [
        "noreply@github.com",
        "no-reply@shop.example",
        "do-not-reply@bank.example",
        "donotreply@x.example",
        "notifications@x.example",
        "info@company.example",
        "support@company.example",
        "mailer-daemon@mx.example",
        "bounces+123@mail.example",
        "c_18a@resource.calendar.google.com",
    ],
)
def test_role_no_reply_and_resource_addresses_are_not_people(address: str) -> None:
    r = run([mail(address, [ME], day(0)), mail(ME, [address], day(1))])
    assert nobody(r, address)


def test_extra_role_local_parts_from_config() -> None:
    cfg = AnalysisConfig(role_local_parts=("frontdesk",))
    r = run([mail("frontdesk@hotel.example", [ME], day(0))], cfg=cfg)
    assert nobody(r, "frontdesk@hotel.example")


def test_free_mail_domains_are_people() -> None:
    r = run(
        [mail(f"friend@{d}", [ME], day(0)) for d in ("gmail.com", "gmx.de", "web.de", "yahoo.com")]
    )
    assert len(r.people) == 4


@pytest.mark.parametrize(("n", "counted"), [(10, True), (11, False)])
def test_max_recipients_boundary(n: int, counted: bool) -> None:
    crowd = [f"guest{i}@x.org" for i in range(n)]
    r = run([mail(ME, crowd, day(0)), mail("guest0@x.org", [ME, *crowd[1:]][:n], day(1))])
    g = person(r, "guest0@x.org") if not nobody(r, "guest0@x.org") else None
    if counted:
        assert g is not None and g.messages_out == 1 and g.messages_in == 1
    else:
        assert g is None and r.skipped_mass == 2


def test_recipients_are_counted_once_each_across_to_cc_bcc() -> None:
    to = [f"p{i}@x.org" for i in range(6)]
    # 6 in To, the same 6 again in Cc and Bcc: 6 recipients, not 18
    r = run([mail(ME, to, day(0), cc=to, bcc=to)])
    assert person(r, "p0@x.org").messages_out == 1


def test_mailing_list_addresses_and_my_own_posts_are_not_personal() -> None:
    list_msg = mail(
        "priya@x.org", ["dev@lists.example.org"], day(0),
        list_id="Dev <dev.lists.example.org>", list_post="<mailto:dev@lists.example.org>",
    )  # fmt: skip
    # my post to the list carries no List-Id (the list adds it on the way out)
    my_post = mail(ME, ["dev@lists.example.org"], day(1), cc=["priya@x.org"])
    # a list learnt from List-Id alone (no List-Post): Google Groups style
    other_list = mail("bob@y.org", ["team@groups.example.com"], day(2),
                      list_id="<team.groups.example.com>")  # fmt: skip
    my_post2 = mail(ME, ["team@groups.example.com"], day(3))
    direct = mail(ME, ["priya@x.org"], day(4))
    r = run([list_msg, my_post, other_list, my_post2, direct])
    assert {"dev@lists.example.org", "team@groups.example.com"} <= r.list_addresses
    assert nobody(r, "dev@lists.example.org") and nobody(r, "team@groups.example.com")
    assert person(r, "priya@x.org").messages_out == 1  # only the direct one
    assert r.skipped_list == 2


# ----------------------------------------------------------------- replies


def test_reply_latency_each_way_counts_the_first_reply_only() -> None:
    a = mail(ME, ["ana@x.org"], day(0), mid="a@x")
    b = mail("ana@x.org", [ME], day(0, 5), mid="b@x", irt="a@x", refs=["a@x"])
    b2 = mail("ana@x.org", [ME], day(0, 9), irt="a@x", refs=["a@x"])  # a second reply to a
    c = mail(ME, ["ana@x.org"], day(1, 5), irt="b@x", refs=["a@x", "b@x"])  # 24 h after b
    ana = person(run([a, b, b2, c]), "ana@x.org")
    assert ana.median_reply_hours_them == 5.0
    assert ana.median_reply_hours_me == 24.0
    assert (ana.replies_them, ana.replies_me) == (2, 1)


def test_reply_found_through_references_when_in_reply_to_is_missing_or_mine() -> None:
    a = mail("ana@x.org", [ME], day(0), mid="a@x")
    mine = mail(ME, ["ana@x.org"], day(0, 1), mid="m@x", irt="a@x", refs=["a@x"])
    # Ana follows up on her own message: In-Reply-To names her own message, References
    # hold mine: the reply is to mine
    own_follow = mail("ana@x.org", [ME], day(0, 3), irt="zz@x", refs=["a@x", "m@x", "zz@x"])
    ana = person(run([a, mine, own_follow]), "ana@x.org")
    assert ana.median_reply_hours_them == 2.0
    assert ana.median_reply_hours_me == 1.0


def test_reply_walks_up_through_own_messages() -> None:
    a = mail("ana@x.org", [ME], day(0), mid="a@x")
    m1 = mail(ME, ["ana@x.org"], day(0, 2), mid="m1@x", irt="a@x")  # In-Reply-To only
    m2 = mail(ME, ["ana@x.org"], day(0, 3), mid="m2@x", irt="m1@x")  # replies to my own
    ana = person(run([a, m1, m2]), "ana@x.org")
    assert ana.replies_me == 2  # both of mine reply to Ana's thread
    assert ana.median_reply_hours_me == 2.0  # latency from the first reply only


def test_references_loops_and_missing_roots_never_hang() -> None:
    x = mail("ana@x.org", [ME], day(0), mid="x@x", irt="y@x", refs=["root-missing@x", "y@x"])
    y = mail(ME, ["ana@x.org"], day(0, 1), mid="y@x", irt="x@x", refs=["x@x"])
    selfref = mail("ana@x.org", [ME], day(0, 2), mid="s@x", irt="s@x", refs=["s@x", "s@x"])
    long_chain = [
        mail(ME, ["ana@x.org"], day(1, i), mid=f"c{i}@x", irt=f"c{i - 1}@x" if i else "nope@x")
        for i in range(40)
    ]
    ana = person(run([x, y, selfref, *long_chain]), "ana@x.org")
    assert ana.messages_in == 2 and ana.messages_out == 41


def test_reply_dated_before_its_parent_is_not_a_reply() -> None:
    a = mail("ana@x.org", [ME], day(5), mid="a@x")
    early = mail(ME, ["ana@x.org"], day(1), irt="a@x")
    ana = person(run([a, early]), "ana@x.org")
    assert ana.replies_me == 0 and ana.median_reply_hours_me is None


def test_gmail_thread_id_links_replies_without_headers() -> None:
    a = mail("ana@x.org", [ME], day(0), gm_thrid=5)
    b = mail(ME, ["ana@x.org"], day(0, 6), gm_thrid=5)
    other_thread = mail(ME, ["ana@x.org"], day(0, 7), gm_thrid=6)
    ana = person(run([a, b, other_thread]), "ana@x.org")
    assert ana.replies_me == 1 and ana.median_reply_hours_me == 6.0


def test_reply_prefix_links_a_reply_that_lost_its_headers() -> None:
    a = mail("ana@x.org", [ME], day(0), subject="plans")
    b = mail(ME, ["ana@x.org"], day(0, 4), subject="AW: plans")
    # after the silence it replies to nothing kithkeep has: to a message of theirs that is
    # gone (counted apart, with no reply time)
    late = mail(ME, ["ana@x.org"], day(30), subject="Re: plans")
    ana = person(run([a, b, late]), "ana@x.org")
    assert ana.median_reply_hours_me == 4.0
    assert (ana.replies_me, ana.messages_in, ana.messages_in_inferred) == (2, 1, 1)


# ------------------------------------------------------------- initiations


def test_initiation_needs_silence_from_the_other_side() -> None:
    msgs = [
        mail("ana@x.org", [ME], day(0)),  # first message: an initiation by them
        mail(ME, ["ana@x.org"], day(14)),  # exactly 14 days later: not an initiation
        mail(ME, ["ana@x.org"], day(28, 1)),  # 14 days and 1 hour after Ana: an initiation
        mail("ana@x.org", [ME], day(29)),  # unthreaded, but within silence of mine: not
    ]
    ana = person(run(msgs), "ana@x.org")
    assert (ana.initiations_them, ana.initiations_me) == (1, 1)
    assert [(i.side, i.date) for i in ana.initiations] == [("them", day(0)), ("me", day(28, 1))]
    assert ana.initiations[0].gap_days is None
    assert ana.initiations[1].gap_days == 14.0


def test_a_late_threaded_reply_is_not_an_initiation() -> None:
    a = mail("ana@x.org", [ME], day(0), mid="a@x")
    late = mail(ME, ["ana@x.org"], day(40), irt="a@x")
    ana = person(run([a, late]), "ana@x.org")
    assert ana.initiations_me == 0 and ana.initiations_them == 1
    assert ana.reply_rate_me == 1.0


def test_meeting_counts_as_contact_from_both_sides_for_silence() -> None:
    ev = event(day(0), [(ME, "ACCEPTED"), ("ana@x.org", "ACCEPTED")])
    msgs = [mail("ana@x.org", [ME], day(3))]
    ana = person(run(msgs, [ev]), "ana@x.org")
    assert ana.initiations_them == 0


def test_reply_rates_each_way() -> None:
    msgs = [
        *exchange("ana@x.org", 0, 20, me_first=True),  # mine, answered
        *exchange("ana@x.org", 30, None, me_first=True),  # mine, unanswered
        *exchange("ana@x.org", 60, 20, me_first=True),  # mine, answered
        *exchange("ana@x.org", 90, 20, me_first=False),  # theirs, answered
        *exchange("ana@x.org", 120, None, me_first=False),  # theirs, unanswered
    ]
    ana = person(run(msgs), "ana@x.org")
    assert (ana.initiations_me, ana.initiations_them) == (3, 2)
    assert (ana.initiations_me_answered, ana.initiations_them_answered) == (2, 1)
    assert ana.reply_rate_them == round(2 / 3, 3)
    assert ana.reply_rate_me == 0.5
    assert [i.answered for i in ana.initiations] == [True, False, True, True, False]


def test_unthreaded_answer_before_the_next_opening_counts_and_flag_counts() -> None:
    msgs = [
        mail(ME, ["ana@x.org"], day(0)),
        mail("ana@x.org", [ME], day(2)),  # no headers, but she wrote back
        mail("ana@x.org", [ME], day(40), flags=["\\Answered"]),  # I replied elsewhere
    ]
    ana = person(run(msgs), "ana@x.org")
    assert ana.reply_rate_them == 1.0 and ana.reply_rate_me == 1.0


def test_no_initiations_means_no_rate() -> None:
    ana = person(run([mail(ME, ["ana@x.org"], day(0))]), "ana@x.org")
    assert ana.reply_rate_me is None and ana.reply_rate_them == 0.0


# ------------------------------------------------------------------ cadence


def test_cadence_is_the_gap_between_exchanges_not_reply_days() -> None:
    msgs = [m for k in range(8) for m in exchange("chloe@gmx.de", 30 * k, 24)]
    chloe = person(run(msgs), "chloe@gmx.de")
    assert chloe.cadence_days == 30.0
    assert chloe.exchanges == 8


def test_cadence_weekly_correspondent_below_silence() -> None:
    msgs = [m for k in range(10) for m in exchange("ana@x.org", 7 * k, 30, me_first=k % 2 == 0)]
    ana = person(run(msgs), "ana@x.org")
    assert ana.cadence_days == 7.0


def test_cadence_bursts_within_a_day_are_one_exchange() -> None:
    msgs = []
    for k in range(4):
        msgs += [mail(ME, ["ana@x.org"], day(20 * k, h)) for h in (0, 2, 5)]
    ana = person(run(msgs), "ana@x.org")
    assert ana.exchanges == 4 and ana.cadence_days == 20.0


def test_cadence_needs_two_exchanges() -> None:
    ana = person(run(exchange("ana@x.org", 0)), "ana@x.org")
    assert ana.cadence_days is None and ana.exchanges == 1


# ----------------------------------------------------- streak and pending


def test_unanswered_streak_counts_my_messages_since_they_last_wrote() -> None:
    msgs = [
        mail("elena@x.org", [ME], day(0)),
        mail(ME, ["elena@x.org"], day(1)),
        mail(ME, ["elena@x.org"], day(20)),
        mail(ME, ["elena@x.org"], day(40)),
    ]
    assert person(run(msgs), "elena@x.org").unanswered_streak == 3
    # copying her on a thread to someone else asks nothing of her
    msgs.append(mail(ME, ["ben@x.org"], day(50), cc=["elena@x.org"]))
    assert person(run(msgs), "elena@x.org").unanswered_streak == 3
    msgs.append(mail("elena@x.org", [ME], day(41)))
    assert person(run(msgs), "elena@x.org").unanswered_streak == 0


def test_pending_inbound_is_the_newest_direct_unanswered_message() -> None:
    first = mail("grace@x.org", [ME], day(0), subject="one")
    second = mail("grace@x.org", [ME], day(1), subject="two?")
    cc_only = mail("grace@x.org", ["ben@x.org"], day(2), cc=[ME], subject="fyi")
    grace = person(run([first, second, cc_only]), "grace@x.org")
    assert grace.pending_inbound is not None
    assert grace.pending_inbound.subject == "two?" and grace.pending_inbound.date == day(1)
    assert grace.pending_inbound.recipients == 1 and not grace.pending_inbound.is_reply


@pytest.mark.parametrize("how", ["sent", "flag", "threaded"])
def test_pending_inbound_answered(how: str) -> None:
    q = mail("grace@x.org", [ME], day(0), mid="q@x", flags=["\\Answered"] if how == "flag" else [])
    msgs = [q]
    if how == "sent":
        msgs.append(mail(ME, ["grace@x.org"], day(1)))
    if how == "threaded":
        msgs.append(mail(ME, ["grace@x.org"], day(1), irt="q@x"))
    assert person(run(msgs), "grace@x.org").pending_inbound is None


def test_pending_inbound_that_replies_to_me_is_marked() -> None:
    a = mail(ME, ["grace@x.org"], day(0), mid="a@x")
    thanks = mail("grace@x.org", [ME], day(1), irt="a@x", subject="Re: thanks!")
    pend = person(run([a, thanks]), "grace@x.org").pending_inbound
    assert pend is not None and pend.is_reply


# ----------------------------------------------------------------- meetings


def test_meetings_that_count_and_those_that_do_not() -> None:
    a, b = "ana@x.org", "ben@x.org"
    evs = [
        event(day(1), [(ME, "ACCEPTED"), (a, "ACCEPTED")]),  # counts for Ana
        event(day(2), [(ME, "ACCEPTED"), (a, "DECLINED"), (b, "ACCEPTED")]),  # Ana declined
        event(day(3), [(ME, "DECLINED"), (a, "ACCEPTED")]),  # I declined
        event(day(4), [(ME, "ACCEPTED"), (a, "ACCEPTED")], status="CANCELLED"),
        event(day(5), [(ME, "ACCEPTED"), (a, "ACCEPTED")], own=True),  # kithkeep's reminder
        event(NOW - timedelta(minutes=30), [(ME, "ACCEPTED"), (a, "ACCEPTED")]),  # not ended
        event(day(6), [(ME, "ACCEPTED"), (a, "ACCEPTED")], my_status="DECLINED"),
        event(day(7), [("x@y.org", "ACCEPTED"), (a, "ACCEPTED")], organizer="x@y.org"),  # not mine
    ]
    r = run([], evs)
    ana = person(r, a)
    assert ana.meetings == 1 and ana.last_meeting == day(1, 1)
    assert ana.last_meeting_size == 2
    assert person(r, b).meetings == 1


def test_meeting_size_boundary_rooms_do_not_count_and_are_not_people() -> None:
    room = "atlas@resource.calendar.google.com"
    people8 = [(ME, "ACCEPTED")] + [(f"p{i}@x.org", "ACCEPTED") for i in range(7)]
    ok = event(day(1), [*people8, (room, "ACCEPTED"), ("r2@x.org", "ACCEPTED")],
               cutypes={"r2@x.org": "ROOM"})  # fmt: skip
    big = event(day(2), [*people8, ("p9@x.org", "ACCEPTED")])
    r = run([], [ok, big])
    assert person(r, "p0@x.org").meetings == 1
    assert nobody(r, room) and nobody(r, "r2@x.org") and nobody(r, "p9@x.org")


def test_organizer_is_me_without_being_an_attendee_and_tentative_counts() -> None:
    ev = event(day(1), [("ana@x.org", "TENTATIVE")])
    assert person(run([], [ev]), "ana@x.org").meetings == 1


def test_the_same_occurrence_in_two_calendars_counts_once() -> None:
    e1 = event(day(1), [(ME, "ACCEPTED"), ("ana@x.org", "ACCEPTED")], uid="u1")
    e2 = EventRecord(**{**{s: getattr(e1, s) for s in EventRecord.__slots__}, "source": "cal2"})
    assert person(run([], [e1, e2]), "ana@x.org").meetings == 1


# ---------------------------------------------------------- strength, ties


def test_tie_needs_min_messages_each_way() -> None:
    two_each = [m for k in range(2) for m in exchange("ana@x.org", 30 * k)]
    three_each = [m for k in range(3) for m in exchange("ana@x.org", 30 * k)]
    assert not person(run(two_each), "ana@x.org").is_tie
    ana = person(run(three_each), "ana@x.org")
    assert ana.is_tie and ana.tier in ("inner", "close", "wider")
    assert ana.tier_source == "strength"


def test_one_way_contact_has_no_strength_and_is_no_tie() -> None:
    msgs = [mail("farid@x.org", [ME], day(k)) for k in range(10)]
    farid = person(run(msgs), "farid@x.org")
    assert farid.strength == 0.0 and farid.peak_strength == 0.0 and not farid.is_tie


def test_outgoing_weighs_more_and_strength_decays_with_half_life() -> None:
    mine = person(run([mail(ME, ["a@x.org"], day(0)), mail("a@x.org", [ME], day(0))]), "a@x.org")
    assert mine.peak_strength == 2.5  # 1.5 out + 1 in on one day
    cfg = AnalysisConfig(half_life_days=10)
    # the contact day (Jan 5, UTC) ends at midnight; ten days later is one half-life
    faded = person(
        run([mail(ME, ["a@x.org"], day(0)), mail("a@x.org", [ME], day(0))], cfg=cfg,
            now=datetime(2026, 1, 16, tzinfo=UTC)),
        "a@x.org",
    )  # fmt: skip
    assert faded.strength == 1.25


def test_a_burst_of_messages_on_one_day_is_one_days_weight() -> None:
    burst = [mail(ME, ["a@x.org"], day(0, h / 10)) for h in range(30)]
    burst.append(mail("a@x.org", [ME], day(0, 5)))
    assert person(run(burst), "a@x.org").peak_strength == 2.5


def test_tier_comes_from_the_peak_so_a_fading_tie_keeps_it() -> None:
    # two years of weekly exchanges, then two years of silence (four half-lives)
    msgs = [m for k in range(100) for m in exchange("old@x.org", 7 * k, 20)]
    now = day(7 * 100 + 730)
    old = person(run(msgs, now=now), "old@x.org")
    assert old.tier == "inner"
    assert old.strength < AnalysisConfig().close_strength < old.peak_strength


def test_rare_ties_are_wider() -> None:
    msgs = [m for k in range(4) for m in exchange("rare@x.org", 365 * k, 20)]
    assert person(run(msgs, now=day(4 * 365)), "rare@x.org").tier == "wider"


# ------------------------------------------------------- decisions, merges


def test_ignore_decision_makes_a_person_never_a_tie() -> None:
    msgs = [m for k in range(5) for m in exchange("ana@x.org", 10 * k)]
    r = run(msgs, decisions=[decision(1, "ignore", "Ana@X.org")])
    ana = person(r, "ana@x.org")
    assert ana.ignored and not ana.is_tie and ana.tier is None


def test_expired_ignore_no_longer_applies() -> None:
    msgs = [m for k in range(5) for m in exchange("ana@x.org", 10 * k)]
    d = decision(1, "ignore", "ana@x.org", until=NOW - timedelta(days=1))
    assert not person(run(msgs, decisions=[d]), "ana@x.org").ignored


def test_tier_decision_sets_tier_and_tie_newest_wins() -> None:
    msgs = [mail("ana@x.org", [ME], day(0))]
    ds = [decision(1, "tier", "ana@x.org", "wider"), decision(2, "tier", "ana@x.org", "inner")]
    ana = person(run(msgs, decisions=ds), "ana@x.org")
    assert (ana.tier, ana.tier_source, ana.is_tie) == ("inner", "user", True)
    bad = person(run(msgs, decisions=[decision(1, "tier", "ana@x.org", "bff")]), "ana@x.org")
    assert bad.tier is None and not bad.is_tie


def test_merge_decision_joins_addresses_and_unmerge_splits_them() -> None:
    msgs = [
        *exchange("isabel@work.example", 0),
        *exchange("Isabel.Gomez+home@gmail.com", 10),
    ]
    merged = run(
        msgs, decisions=[decision(1, "merge", "isabel@work.example", "isabelgomez@gmail.com")]
    )
    isa = person(merged, "isabel@work.example")
    assert set(isa.addresses) == {"isabel@work.example", "isabelgomez@gmail.com"}
    assert (isa.messages_out, isa.messages_in) == (2, 2)
    split = run(
        msgs,
        decisions=[
            decision(1, "merge", "isabel@work.example", "isabelgomez@gmail.com"),
            decision(2, "unmerge", "isabelgomez@gmail.com", "isabel@work.example"),
        ],
    )
    assert len(split.people) == 2


def test_merge_with_my_own_address_is_refused() -> None:
    r = run([mail("ana@x.org", [ME], day(0))], decisions=[decision(1, "merge", "ana@x.org", ME)])
    assert person(r, "ana@x.org").addresses == ("ana@x.org",)


def test_decision_named_role_address_becomes_a_person() -> None:
    # hello@ is a role local part, but this is Jane's personal domain and the user said so
    msgs = [mail("hello@janedoe.example", [ME], day(0))]
    assert nobody(run(msgs), "hello@janedoe.example")
    r = run(msgs, decisions=[decision(1, "tier", "hello@janedoe.example", "close")])
    assert person(r, "hello@janedoe.example").tier == "close"


def test_vcard_groups_addresses_and_names_the_person() -> None:
    msgs = [mail("ana@work.example", [ME], day(0), name="A. Silva"),
            mail("ana.silva@gmail.com", [ME], day(1))]  # fmt: skip
    card = Card("Ana Silva", ("ana@work.example", "anasilva@gmail.com"))
    r = run(msgs, cards=[card])
    ana = person(r, "ana@work.example")
    assert set(ana.addresses) == {"ana@work.example", "anasilva@gmail.com"}
    assert ana.name == "Ana Silva" and ana.messages_in == 2


def test_display_name_is_the_most_common_header_name() -> None:
    msgs = [
        mail("ana@x.org", [ME], day(k), name=n) for k, n in enumerate(["Ana", "Ana S", "Ana S"])
    ]
    assert person(run(msgs), "ana@x.org").name == "Ana S"


def test_person_id_is_stable_and_addresses_ordered_by_use() -> None:
    msgs = [
        mail("b@x.org", [ME], day(0)),
        mail("b@x.org", [ME], day(1)),
        mail("a@x.org", [ME], day(2)),
    ]
    ds = [decision(1, "merge", "a@x.org", "b@x.org")]
    p1 = person(run(msgs, decisions=ds), "a@x.org")
    p2 = person(run(list(reversed(msgs)), decisions=ds), "a@x.org")
    assert p1.person_id == p2.person_id and p1.addresses == ("b@x.org", "a@x.org")


# ------------------------------------------------------------ monthly, json


def test_monthly_counts_cover_24_months_ending_this_month() -> None:
    now = datetime(2026, 11, 15, tzinfo=UTC)
    msgs = [
        mail(ME, ["a@x.org"], datetime(2026, 11, 2, tzinfo=UTC)),
        mail("a@x.org", [ME], datetime(2026, 11, 3, tzinfo=UTC)),
        mail(ME, ["a@x.org"], datetime(2024, 12, 1, tzinfo=UTC)),  # the first month shown
        mail(ME, ["a@x.org"], datetime(2024, 11, 30, tzinfo=UTC)),  # too old
    ]
    p = person(run(msgs, now=now), "a@x.org")
    assert len(p.monthly) == 24 and p.monthly[-1] == 2 and p.monthly[0] == 1
    assert sum(p.monthly) == 3


def test_stats_json_round_trip() -> None:
    msgs = [m for k in range(4) for m in exchange("ana@x.org", 20 * k, 5, me_first=k % 2 == 0)]
    msgs.append(mail("ana@x.org", [ME], day(100)))
    ana = person(
        run(msgs, [event(day(3), [(ME, "ACCEPTED"), ("ana@x.org", "ACCEPTED")])]), "ana@x.org"
    )
    assert ana.pending_inbound is not None and ana.initiations
    # the stored form holds no figure that depends on the clock: read back as of a
    # clock, it gives that day's strength and months
    assert PersonStats.from_stored(ana.stored_json(), NOW, CFG.half_life_days) == ana
    later = NOW + timedelta(days=CFG.half_life_days)
    aged = PersonStats.from_stored(ana.stored_json(), later, CFG.half_life_days)
    assert aged.strength == pytest.approx(ana.strength / 2, rel=0.01)
    shift = (later.year - NOW.year) * 12 + later.month - NOW.month
    assert aged.monthly[-1] == 0 and aged.monthly[:-shift] == ana.monthly[shift:]


@freeze_time("2026-11-01 12:00:00")
def test_store_analysis_uses_the_clock(tmp_path: object) -> None:
    from pathlib import Path

    from kithkeep.model.refresh import analyze_store, stored_people
    from kithkeep.records import MailBatch
    from kithkeep.store import Store

    store = Store.open(f"sqlite:///{Path(str(tmp_path)) / 's.sqlite3'}")
    try:
        store.apply_mail_batch(MailBatch(records=exchange("ana@x.org", 0, 5)), "acct")
        result = analyze_store(store, CFG, [ME], datetime.now(UTC))
        assert store.get_meta("analyzed_at") == NOW.isoformat()
        assert stored_people(store, NOW, CFG.half_life_days) == result.people
    finally:
        store.close()


# ------------------------------------------------------------ serialization, dates


def test_to_json_has_every_field_in_declaration_order() -> None:
    r = run(exchange("ana@x.org", 0) + exchange("ana@x.org", 30, me_first=False))
    data = person(r, "ana@x.org").to_json()
    # the clock-free form behind strength and monthly is stored, not shown
    hidden = {"strength_base", "strength_day", "month_counts"}
    assert list(data) == [f.name for f in dataclasses.fields(PersonStats) if f.name not in hidden]
    assert data["initiations"] and all(
        list(i) == ["date", "side", "subject", "answered", "gap_days"] for i in data["initiations"]
    )
    stored = PersonStats.from_stored(person(r, "ana@x.org").stored_json(), NOW, CFG.half_life_days)
    assert stored == person(r, "ana@x.org")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05 09:00:00.000000", datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),
        ("2026-01-05 09:00:00.123456", datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-05T09:00:00", datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),
        ("2026-01-05T11:00:00+02:00", datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),  # its own offset
    ],
)
def test_stored_date_text_is_read_as_utc(text: str, expected: datetime) -> None:
    got = _as_utc(text)  # the store's one reading of its date columns
    assert got == expected and got.tzinfo is UTC
