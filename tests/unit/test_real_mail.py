"""True on real mail: each class a real mailbox holds, in both directions.

For every class, a small mailbox built here: the machine (or the wrong
conclusion) is filtered, and the human who looks like one is kept.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from kithkeep.headers import record_from_headers
from kithkeep.model.me import my_addresses, proposals
from kithkeep.model.merges import suggest_merges
from kithkeep.records import Address, MailBatch, MessageRecord
from kithkeep.store import Store
from tests.unit.test_model_stats import (
    ME,
    NOW,
    T0,
    day,
    decision,
    exchange,
    mail,
    nobody,
    person,
    run,
)

# ------------------------------------------------------- someone else in my sent folder

ASSISTANT = "lena.hoff@corp.example"
ROBOT = "tickets@helpdesk.example"


def _assistant_mailbox() -> list:  # type: ignore[type-arg]
    msgs = []
    for k in range(12):
        # the assistant and the owner write to each other
        msgs += exchange(ASSISTANT, 7 * k, me_first=k % 2 == 0)
        # she sends from the owner's mailbox: her From, in the owner's sent folder
        msgs.append(mail(ASSISTANT, [ROBOT], day(7 * k, 2), sent=True, subject="ticket"))
        msgs.append(mail(ASSISTANT, ["carl@client.example"], day(7 * k, 3), sent=True))
    for k in range(40):  # the owner's own sent mail: most of the folder
        msgs.append(mail(ME, ["dora@x.example"], day(k, 5), sent=True))
    return msgs


def test_an_assistant_sending_from_my_sent_folder_is_a_person_not_me() -> None:
    r = run(_assistant_mailbox())
    assert ASSISTANT not in r.me
    lena = person(r, ASSISTANT)
    assert lena.messages_in >= 12 and lena.messages_out >= 12 and lena.is_tie
    # her mail to others is not the owner's contact with them
    assert nobody(r, "carl@client.example")
    assert nobody(r, ROBOT)


def test_sent_folders_propose_their_majority_sender_never_a_minority_one() -> None:
    store = Store.open("sqlite://")
    try:
        owner_alias = "sam.old@example.net"
        msgs = [
            *[mail(owner_alias, ["dora@x.example"], day(k), sent=True) for k in range(40)],
            *[mail(ASSISTANT, [ROBOT], day(k, 1), sent=True) for k in range(12)],
        ]
        store.apply_mail_batch(MailBatch(records=msgs), "acct")
        found = proposals(store.sent_folder_senders(), [ME], [])
        assert [(p.address, p.messages) for p in found] == [(owner_alias, 40)]
        assert "77%" in found[0].reason
        # once it is one of mine (or declined), it is not proposed again
        assert proposals(store.sent_folder_senders(), [ME, owner_alias], []) == []
        assert proposals(store.sent_folder_senders(), [ME], [owner_alias]) == []
    finally:
        store.close()


def test_me_add_and_remove_decide_and_say_where_each_address_came_from() -> None:
    alias = "sam.old@example.net"
    msgs = [mail(alias, ["ana@x.org"], day(k), sent=True) for k in range(3)] + [
        mail("ana@x.org", [alias], day(k, 5)) for k in range(3)
    ]
    before = run(msgs)
    assert alias not in before.me and person(before, "ana@x.org").messages_out == 0
    added = run(msgs, decisions=[decision(1, "me", alias, "add")])
    assert alias in added.me
    assert person(added, "ana@x.org").messages_out == 3
    # a login the user says is not theirs (a shared mailbox) is not
    removed = run(
        msgs,
        extra_me=["shared@corp.example"],
        decisions=[decision(1, "me", "shared@corp.example", "remove")],
    )
    assert "shared@corp.example" not in removed.me
    listed = my_addresses(
        [ME], [("login@imap.example", "account login")], [decision(1, "me", alias, "add")], []
    )
    assert {(m.address, m.sources) for m in listed} == {
        (ME, ("config",)),
        ("login@imap.example", ("account login",)),
        (alias, ("you (kithkeep me add)",)),
    }


# ------------------------------------------------------ machines without List headers

MACHINES = [
    "donotreply.system@bank.example",
    "alerts.desk@ops.example",
    "office.of.the.president@university.example",
    "owner-staff@lists.example",
    "staff-request@lists.example",
    "leave-1234-abcd@lists.corp.example",
    "unsubscribe-42@mailer.example",
    "customer.care@shop.example",
    "offers@news.brand.example",
    "deals@e.esp.example",
    "statements@mail01.bank.example",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301@tracker.example",
    "bill.8837261@utility.example",
]


@pytest.mark.parametrize("machine", MACHINES)
def test_a_machine_without_list_headers_is_not_a_person(machine: str) -> None:
    msgs = [mail(machine, [ME], day(10 * k), subject=f"Your update {k}") for k in range(4)]
    r = run(msgs)
    if nobody(r, machine):  # a no-reply address: never a person at all
        return
    p = person(r, machine)
    assert p.automated is not None and p.automated_reason
    assert not p.is_tie


def test_a_colleague_who_wrote_and_never_got_an_answer_is_a_person() -> None:
    msgs = [mail("jane.doe@corp.example", [ME], day(10 * k), subject="Lunch?") for k in range(3)]
    jane = person(run(msgs), "jane.doe@corp.example")
    assert jane.automated is None


def test_a_machine_looking_address_i_wrote_to_is_a_person() -> None:
    desk = "alerts.desk@ops.example"
    msgs = [mail(desk, [ME], day(10 * k)) for k in range(4)] + [mail(ME, [desk], day(41))]
    assert person(run(msgs), desk).automated is None


def test_a_machine_never_becomes_a_finding() -> None:
    from kithkeep.config import RulesConfig
    from kithkeep.decisions import PersonDecisions
    from kithkeep.rules.engine import judge_person

    machine = "alerts.desk@ops.example"
    r = run([mail(machine, [ME], day(10 * k)) for k in range(4)])
    now = T0 + timedelta(days=300)
    assert judge_person(person(r, machine), now, RulesConfig(), PersonDecisions()) == []


# ------------------------------------------------------------ one person, two domains


def _people(*specs: tuple[str, str, str]) -> list:  # type: ignore[type-arg]
    """One exchange with each (address, display name or "" for none)."""
    msgs = []
    for address, name, _ in specs:
        msgs.append(mail(address, [ME], day(1), name=name))
        out = mail(ME, [address], day(2))
        msgs.append(replace(out, to=(Address(name, address),)))
    return run(msgs).people


def test_the_same_mailbox_name_at_two_domains_is_suggested() -> None:
    people = _people(("jdoyle@firm-one.example", "", ""), ("jdoyle@firm-two.example", "", ""))
    (s,) = suggest_merges(people)
    assert "'jdoyle'" in s.reason and "two domains" in s.reason


def test_a_common_first_name_at_two_domains_is_not() -> None:
    people = _people(("maria@firm-one.example", "", ""), ("maria@firm-two.example", "", ""))
    assert suggest_merges(people) == []


def test_initials_variants_at_one_domain_with_an_agreeing_name_are_suggested() -> None:
    people = _people(
        ("anne.berg@corp.example", "", ""),
        ("a.k.berg@corp.example", "Berg, Anne K.", ""),
        ("tom.berg@corp.example", "Tom Berg", ""),  # another Berg: not suggested
    )
    found = suggest_merges(people)
    assert len(found) == 1
    pair = {found[0].a.addresses[0], found[0].b.addresses[0]}
    assert pair == {"anne.berg@corp.example", "a.k.berg@corp.example"}
    assert "surname" in found[0].reason


def test_initials_variants_without_a_name_that_agrees_are_not() -> None:
    people = _people(("anne.berg@corp.example", "", ""), ("aberg@corp.example", "", ""))
    assert suggest_merges(people) == []
    named = _people(("anne.berg@corp.example", "", ""), ("aberg@corp.example", "Anne Berg", ""))
    assert len(suggest_merges(named)) == 1


# ------------------------------------------------------------- my reply implies theirs


def test_my_replies_to_messages_that_are_gone_end_the_unanswered_streak() -> None:
    ana = "ana@x.org"
    # fifteen replies of mine to messages of hers that are in no folder kithkeep reads
    msgs = [
        mail(ME, [ana], day(7 * k), irt=f"gone{k}@x.org", refs=[f"gone{k}@x.org"], subject="Re: q")
        for k in range(15)
    ]
    p = person(run(msgs), ana)
    # each reply answers a message of hers: only the latest waits for an answer
    assert p.unanswered_streak == 1
    assert (p.messages_in, p.messages_in_inferred, p.messages_out) == (0, 15, 15)
    assert p.initiations_them == p.initiations_them_answered


def test_new_messages_of_mine_that_reply_to_nothing_still_go_unanswered() -> None:
    ana = "ana@x.org"
    msgs = [mail(ana, [ME], day(0), mid="hers@x.org")] + [
        mail(ME, [ana], day(30 + 7 * k), subject="news") for k in range(4)
    ]
    p = person(run(msgs), ana)
    assert p.unanswered_streak == 4 and p.messages_in_inferred == 0


def test_a_reply_all_to_someone_else_infers_nothing_for_those_in_copy() -> None:
    msgs = [mail(ME, ["ben@y.org"], day(1), cc=["ana@x.org"], irt="gone@z.org", subject="Re: x")]
    r = run(msgs)
    assert person(r, "ana@x.org").messages_in_inferred == 0
    assert person(r, "ben@y.org").messages_in_inferred == 1


# ----------------------------------------------------------------- placeholder dates


def test_placeholder_dates_fall_back_to_when_the_message_arrived() -> None:
    arrived = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    msgs = [
        mail("ana@x.org", [ME], datetime(1980, 1, 1, tzinfo=UTC), internal_date=arrived),
        mail("ana@x.org", [ME], datetime(1970, 1, 1, tzinfo=UTC)),  # nothing to fall back on
        mail("ana@x.org", [ME], datetime(2099, 1, 1, tzinfo=UTC), internal_date=arrived),
        mail(ME, ["ana@x.org"], day(100)),
    ]
    r = run(msgs)
    ana = person(r, "ana@x.org")
    assert ana.first_contact == arrived
    assert ana.messages_in == 2 and r.skipped_undated == 1


def test_a_plausible_old_date_is_kept() -> None:
    old = datetime(1996, 5, 1, tzinfo=UTC)
    ana = person(run([mail("ana@x.org", [ME], old), mail(ME, ["ana@x.org"], day(1))]), "ana@x.org")
    assert ana.first_contact == old


# ------------------------------------------------------ meeting plumbing and auto-replies


@pytest.mark.parametrize(
    "subject",
    [
        "Accepted: Lunch",
        "Declined: Weekly sync",
        "Tentative: Planning",
        "Invitation: Review @ Mon 10:00",
        "Updated invitation: Review",
        "Angenommen: Mittagessen",
        "Automatic reply: Lunch?",
        "Out of Office: back Monday",
        "Abwesenheitsnotiz: Urlaub",
        "Read: Contract",
        "Undeliverable: Contract",
    ],
)
def test_meeting_plumbing_and_auto_replies_are_not_conversation(subject: str) -> None:
    ana = "ana@x.org"
    msgs = [*exchange(ana, 0), *exchange(ana, 20), *exchange(ana, 40)]
    msgs += [mail(ME, [ana], day(60 + k), subject="news") for k in range(3)]
    before = person(run(msgs), ana)
    # their automatic message after mine neither answers it nor asks for a reply
    after = person(run([*msgs, mail(ana, [ME], day(64), subject=subject)]), ana)
    assert after.unanswered_streak == before.unanswered_streak == 3
    assert after.pending_inbound is None and after.messages_in == before.messages_in


def test_a_human_subject_that_starts_like_plumbing_is_conversation() -> None:
    ana = "ana@x.org"
    msgs = [*exchange(ana, 0), mail(ana, [ME], day(10), subject="Accepting the offer?")]
    assert person(run(msgs), ana).pending_inbound is not None


# ------------------------------------------------------------- what the headers say


def _from_headers(
    frm: str, to: str, when: datetime, subject: str, extra: str = "", irt: str | None = None
) -> MessageRecord:
    """A message as a source reads it: its raw header block through the header parser."""
    lines = [
        f"From: {frm}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{next(_raw_ids)}@example.org>",
        *([f"In-Reply-To: <{irt}>", f"References: <{irt}>"] if irt else []),
    ]
    raw = ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()
    return record_from_headers(raw, account="acct", folder="INBOX", uid=str(next(_raw_ids)))


_raw_ids = itertools.count(1)


@pytest.mark.parametrize(
    "extra",
    [
        "Content-Class: urn:content-classes:calendarmessage\r\n",
        "Content-Type: text/calendar; method=REPLY\r\n",
        "X-Autoreply: yes\r\n",
        "Return-Path: <>\r\n",
        "Content-Type: multipart/report; report-type=disposition-notification\r\n",
    ],
)
def test_a_message_whose_headers_say_automatic_is_not_conversation(extra: str) -> None:
    ana = "ana@x.org"
    msgs = [*exchange(ana, 0), *exchange(ana, 20)]
    mine = [mail(ME, [ana], day(60 + k), subject="news") for k in range(3)]
    msgs += mine
    before = person(run(msgs), ana)
    # a subject that says nothing: only the headers tell it is automatic
    answer = _from_headers(ana, ME, day(64), "Re: news", extra, irt=mine[-1].message_id)
    after = person(run([*msgs, answer]), ana)
    assert after.unanswered_streak == before.unanswered_streak == 3
    assert after.messages_in == before.messages_in and after.pending_inbound is None
    # the same answer with the headers people's mail carries is an answer
    plain = _from_headers(
        ana, ME, day(64), "Re: news", "Content-Type: text/plain\r\nReturn-Path: <ana@x.org>\r\n",
        irt=mine[-1].message_id,
    )  # fmt: skip
    answered = person(run([*msgs, plain]), ana)
    assert answered.unanswered_streak == 0 and answered.messages_in == before.messages_in + 1


def test_a_bulk_sender_with_a_person_s_address_is_told_by_its_headers() -> None:
    anna = "anna@brand.example"  # an address like anyone's
    bulk = "Feedback-ID: 17:newsletter:esp\r\n"
    msgs = [_from_headers(anna, ME, day(10 * k), f"Our news {k}", bulk) for k in range(4)]
    p = person(run(msgs), anna)
    assert p.automated == "automated"
    assert (
        p.automated_reason
        == "4 of its 4 messages carry a bulk sender's feedback-loop id (Feedback-ID)"
    )
    # the same address and messages without those headers: a person
    plain = [_from_headers(anna, ME, day(10 * k), f"Our news {k}") for k in range(4)]
    assert person(run(plain), anna).automated is None
    # one such message among a person's mail does not make them a machine
    mixed = [*plain, _from_headers(anna, ME, day(50), "Invitation", bulk)]
    assert person(run(mixed), anna).automated is None
    # and whoever I write to is a person, whatever their headers
    written = [*msgs, mail(ME, [anna], day(45))]
    assert person(run(written), anna).automated is None


def test_a_sender_who_only_ever_bcc_s_me_outside_any_conversation_is_a_bulk_sender() -> None:
    sender = "kim.park@corp.example"
    bcc = [mail(sender, ["all-staff@corp.example"], day(5 * k)) for k in range(12)]
    p = person(run(bcc), sender)
    assert p.automated == "bulk sender" and "12 of its 12" in p.automated_reason
    # a colleague who wrote to me as often, by name, and never got an answer: a person
    direct = [mail(sender, [ME], day(5 * k)) for k in range(12)]
    assert person(run(direct), sender).automated is None
    # a few such messages: too few to tell
    assert person(run(bcc[:3]), sender).automated is None
    # to a group alias, but in conversations (replies in threads): a person
    threaded = [replace(m, in_reply_to=f"root{k}@corp.example") for k, m in enumerate(bcc)]
    assert person(run(threaded), sender).automated is None


def test_the_store_keeps_signals_for_the_analysis() -> None:
    from kithkeep.config import AnalysisConfig
    from kithkeep.model.refresh import analyze_store

    anna, ana = "anna@brand.example", "ana@x.org"
    bulk = "Feedback-ID: 17:newsletter:esp\r\n"
    msgs = [_from_headers(anna, ME, day(10 * k), f"Our news {k}", bulk) for k in range(4)]
    msgs += [*exchange(ana, 0), mail(ME, [ana], day(30), subject="news")]
    msgs.append(_from_headers(ana, ME, day(31), "Re: news", "X-Autoreply: yes\r\n"))
    store = Store.open("sqlite://")
    try:
        store.apply_mail_batch(MailBatch(records=msgs), "acct")
        stored = analyze_store(store, AnalysisConfig(), [ME], NOW)
        records = run(msgs)
        for r in (stored, records):
            assert person(r, anna).automated == "automated"
            assert person(r, ana).unanswered_streak == 1
    finally:
        store.close()


# ------------------------------------------------------------------------ the clock


def test_now_replays_the_judgement_of_another_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kithkeep import clock
    from kithkeep.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with pytest.raises(SystemExit):
        main(["demo", "--dir", str(tmp_path / "demo"), "--json"])
    capsys.readouterr()
    config = str(tmp_path / "demo" / "config.toml")
    later = (datetime.now(UTC) + timedelta(days=730)).date().isoformat()
    try:
        with pytest.raises(SystemExit) as exc:
            main(["--now", later, "--config", config, "review", "--json"])
        assert exc.value.code == 0
        then = json.loads(capsys.readouterr().out)
        assert clock.now().date().isoformat() == later
    finally:
        clock.set_now(None)
    with pytest.raises(SystemExit):
        main(["--config", config, "review", "--json"])
    today = json.loads(capsys.readouterr().out)
    # two years on, with nothing written since, more ties have gone quiet
    neglected = [sum(f["rule"] == "neglected" for f in found) for found in (today, then)]
    assert neglected[1] > neglected[0]
    monkeypatch.setenv("KITHKEEP_NOW", "not a date")
    with pytest.raises(SystemExit) as bad:
        main(["--config", config, "review"])
    assert bad.value.code == 2
