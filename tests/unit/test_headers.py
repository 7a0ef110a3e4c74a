"""Header parsing: the one parser's grammar, limits and caches; a bad header costs one field."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kithkeep import headers
from kithkeep.headers import (
    MAX_ADDRESSES,
    MAX_BULK_KEYWORD,
    MAX_HEADER_BYTES,
    MAX_LIST_HEADER,
    MAX_MESSAGE_ID,
    MAX_REFERENCES,
    MAX_SUBJECT,
    decode_words,
    header_block,
    normalize_message_id,
    parse_addresses,
    parse_date,
    parse_references,
    read_header_block,
    record_from_headers,
)
from kithkeep.records import Address, MessageRecord
from tests.helpers import CORPORA, corpus_files


def parse(raw: bytes) -> MessageRecord:
    return record_from_headers(raw, account="a", folder="INBOX", uid="1")


def test_plain_headers() -> None:
    raw = (
        b"From: Ana Silva <Ana.Silva@Example.org>\r\n"
        b'To: sam@example.org, "Rivera, Sam" <sam.rivera@example.org>\r\n'
        b"Cc: ben@example.org\r\n"
        b"Date: Tue, 03 Nov 2026 10:15:00 +0100\r\n"
        b"Message-ID: <ABC@host.example>\r\n"
        b"In-Reply-To: <prev@host.example>\r\n"
        b"References: <root@host> <prev@host.example>\r\n"
        b"Subject: =?utf-8?q?Caf=C3=A9_tomorrow=3F?=\r\n\r\n"
    )
    p = parse(raw)
    assert p.parse_errors == ()
    assert p.message_id == "abc@host.example"
    assert p.date == datetime(2026, 11, 3, 9, 15, tzinfo=UTC)
    assert [a.email for a in p.from_] == ["ana.silva@example.org"]
    assert p.from_[0].name == "Ana Silva"
    assert [a.email for a in p.to] == ["sam@example.org", "sam.rivera@example.org"]
    assert p.to[1].name == "Rivera, Sam"
    assert p.in_reply_to == "prev@host.example"
    assert p.references == ("root@host", "prev@host.example")
    assert p.subject == "Café tomorrow?"


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        (b"Content-Type: multipart/report; report-type=delivery-status\r\n", {"report"}),
        (b"Content-Type: message/disposition-notification\r\n", {"report"}),
        (b"Content-Class: urn:content-classes:calendarmessage\r\n", {"calendar"}),
        (b"Content-Type: text/calendar; method=REPLY\r\n", {"calendar"}),
        (b"X-Autoreply: yes\r\n", {"autoreply"}),
        (b"X-Autorespond: vacation\r\n", {"autoreply"}),
        (b"Return-Path: <>\r\n", {"null-sender"}),
        (b"Return-Path: < >\r\n", {"null-sender"}),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", {"unsubscribe-post"}),
        (b"Feedback-ID: 1:campaign:esp\r\n", {"feedback-id"}),
        (b"X-Auto-Response-Suppress: OOF, AutoReply\r\n", {"suppress-autoreply"}),
        # what people's mail carries says nothing
        (b"Content-Type: multipart/alternative; boundary=x\r\n", set()),
        (b"Content-Type: text/plain; charset=utf-8\r\n", set()),
        (b"Return-Path: <ana@example.org>\r\n", set()),
        (b"X-Auto-Response-Suppress: None\r\n", set()),
        (b"X-Mailer: Outlook\r\n", set()),
    ],
)
def test_what_machines_write_becomes_signal_words(fields: bytes, want: set[str]) -> None:
    raw = b"From: ana@example.org\r\nSubject: Re: news\r\n" + fields + b"\r\n"
    p = parse(raw)
    assert p.signals == want
    assert p.parse_errors == ()
    assert set(p.signals) <= set(headers.SIGNALS)


def test_signal_fields_are_fetched() -> None:
    # IMAP fetches HEADER_FIELDS only: a signal field left out would never be seen
    assert set(headers.SIGNAL_FIELDS) <= set(headers.HEADER_FIELDS)


def test_broken_fields_cost_only_themselves() -> None:
    raw = (
        b"From: Someone <someone@example.org>\n"
        b"To: unlisted-recipients:; (no To-header on input)\n"
        b"Date: not a date at all\n"
        b"Subject: =?x-unknown-charset?q?abc?= \xff\xfe raw bytes\n\n"
    )
    p = parse(raw)
    assert "date" in p.parse_errors
    assert p.date is None
    assert p.to == ()  # the group has no mailbox
    assert p.from_[0].email == "someone@example.org"
    assert "raw bytes" in p.subject
    # no Message-ID: a stable synthetic one
    assert p.message_id.startswith("kk-")
    assert parse(raw).message_id == p.message_id


def test_references_loops_and_caps() -> None:
    refs = " ".join(f"<id{i}@x>" for i in range(500)) + " <id1@x> <id2@x>"
    out = parse_references(refs)
    assert len(out) == MAX_REFERENCES
    assert len(set(out)) == len(out)
    assert out[-1] == "id499@x"


def test_message_id_normalization() -> None:
    assert normalize_message_id(" <A@B> ") == "a@b"
    assert normalize_message_id("A@B") == "a@b"
    assert normalize_message_id("") is None


def test_header_block_stops_at_blank_line() -> None:
    assert header_block(b"A: b\r\n\r\nbody") == b"A: b\r\n\r\n"
    assert header_block(b"A: b\n\nbody") == b"A: b\n\n"
    assert header_block(b"A: b") == b"A: b"


def test_naive_date_is_utc() -> None:
    p = parse(b"Date: Tue, 03 Nov 2026 10:15:00 -0000\n\n")
    assert p.date == datetime(2026, 11, 3, 10, 15, tzinfo=UTC)


# ------------------------------------------------------------ the grammar


def test_unix_from_lines_and_nameless_lines_are_skipped() -> None:
    raw = (
        b"From ana@example.org Tue Nov  3 10:15:00 2026\n"
        b"Subject: one\n"
        b": no name\n"
        b" continues the nameless line\n"
        b"From misplaced@example.org Tue Nov  3 10:15:00 2026\n"
        b"To: sam@example.org\n\n"
    )
    p = parse(raw)
    assert (p.subject, [a.email for a in p.to], p.parse_errors) == ("one", ["sam@example.org"], ())


def test_a_stray_line_ends_the_block_as_in_email_compat32() -> None:
    # a line that is neither a field nor a continuation starts the body
    p = parse(b"Subject: kept\nnot a header line\nTo: sam@example.org\n\n")
    assert (p.subject, p.to) == ("kept", ())


def test_folded_values_keep_their_line_breaks_until_decoded() -> None:
    raw = (
        b"Subject: a long\r\n\tsubject\r\n"
        b"List-Post: <mailto:list@example.org>,\r\n <https://example.org/post>\r\n"
        b"To: Ana <ana@example.org>,\r\n Sam <sam@example.org>\r\n\r\n"
    )
    p = parse(raw)
    assert p.subject == "a long subject"
    assert p.list_post == "<mailto:list@example.org>,\r\n <https://example.org/post>"
    assert [a.email for a in p.to] == ["ana@example.org", "sam@example.org"]


def test_cr_line_ends_and_a_lone_cr_inside_a_value() -> None:
    old_mac = parse(b"Subject: one\rTo: sam@example.org\r\r")
    assert (old_mac.subject, old_mac.to[0].email) == ("one", "sam@example.org")
    lone = parse(b"Subject: one\rtwo\r\nTo: sam@example.org\r\n\r\n")
    assert (lone.subject, lone.to[0].email) == ("one two", "sam@example.org")


def test_8bit_values_are_read_as_utf8_in_every_field() -> None:
    # the Precedence and Auto-Submitted of the compat32 parser kept the raw
    # bytes as surrogates, which no database can store
    raw = b"Precedence: bulk\xe9\r\nAuto-Submitted: auto\xc3\xa9\r\nSubject: \xff\x00x\r\n\r\n"
    p = parse(raw)
    assert (p.precedence, p.auto_submitted, p.subject) == ("bulk\ufffd", "autoé", "\ufffd\x00x")
    for value in (p.precedence, p.auto_submitted, p.subject):
        value.encode("utf-8")  # no surrogates


def test_an_encoded_surrogate_is_replaced_not_kept() -> None:
    # ED A0 80 would be U+D800 in UTF-8; no database takes a lone surrogate
    p = parse(b"Subject: a\xed\xa0\x80b\r\nFrom: Zo\xed\xa0\x80 <z@example.org>\r\n\r\n")
    assert p.subject.startswith("a\ufffd") and p.subject.endswith("b")
    assert p.from_[0].email == "z@example.org"
    (p.subject + p.from_[0].name).encode("utf-8")


def test_the_synthetic_id_depends_on_the_shared_fields_only() -> None:
    a = b"From: ana@example.org\r\nSubject: hi\r\nX-Other: 1\r\n\r\n"
    b = b"X-Other: 2\r\nFrom: ana@example.org\r\nSubject: hi\r\n\r\n"
    c = b"From: ana@example.org\r\nSubject: hi!\r\n\r\n"
    ids = [parse(x).message_id for x in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("kk-")


# ------------------------------------------------------------- the limits


def test_each_field_is_cut_at_its_limit() -> None:
    long_id = "x" * (MAX_MESSAGE_ID + 50) + "@example.org"
    raw = (
        f"Message-ID: <{long_id}>\r\n"
        f"In-Reply-To: <{long_id}>\r\n"
        f"References: <{long_id}>\r\n"
        f"Subject: {'s' * (MAX_SUBJECT + 9)}\r\n"
        f"List-Id: {'l' * (MAX_LIST_HEADER + 9)}\r\n"
        f"List-Post: {'p' * (MAX_LIST_HEADER + 9)}\r\n"
        f"Precedence: {'b' * (MAX_BULK_KEYWORD + 9)}\r\n"
        f"Auto-Submitted: {'a' * (MAX_BULK_KEYWORD + 9)}\r\n"
        f"To: {', '.join(f'p{i}@example.org' for i in range(MAX_ADDRESSES + 20))}\r\n\r\n"
    ).encode()
    p = parse(raw)
    cut = long_id[:MAX_MESSAGE_ID]
    assert (p.message_id, p.in_reply_to, p.references) == (cut, cut, (cut,))
    assert len(p.subject) == MAX_SUBJECT
    assert len(p.list_id or "") == len(p.list_post or "") == MAX_LIST_HEADER
    assert len(p.precedence or "") == len(p.auto_submitted or "") == MAX_BULK_KEYWORD
    assert len(p.to) == MAX_ADDRESSES and p.to[-1].email == f"p{MAX_ADDRESSES - 1}@example.org"
    assert p.parse_errors == ()


def test_a_header_over_the_size_limit_keeps_its_start(tmp_path: Path) -> None:
    filler = b"X-Filler: " + b"f" * 998 + b"\r\n"
    raw = b"Subject: first\r\n" + filler * (MAX_HEADER_BYTES // len(filler) + 5) + b"\r\nbody"
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    block = read_header_block(str(path))
    assert len(block) > MAX_HEADER_BYTES  # the file reader says there was more
    p = parse(block)
    assert (p.subject, p.parse_errors) == ("first", ("size",))


# ------------------------------------------------------------------ dates


def test_one_date_parser_for_header_dates_and_internaldate() -> None:
    want = datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)
    assert parse_date("Wed, 17 Jul 1996 02:44:25 -0700") == want
    assert parse_date("17-Jul-1996 02:44:25 -0700") == want  # IMAP INTERNALDATE
    assert parse_date(" 17 Jul 96 09:44:25 GMT (comment)") == want  # obsolete forms
    assert parse_date("17 Jul 1996 09:44:25") == want  # no zone: UTC
    assert parse_date(None) is None
    with pytest.raises(ValueError):
        parse_date("yesterday")
    with pytest.raises(ValueError):
        parse_date("17 Jul 1996 09:44:25 +9999")  # no such zone


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Wed Jul 17 02:44:25 1996", (1996, 7, 17, 2, 44, 25)),  # asctime
        ("Thursday, April 09, 2003 9:00 AM", (2003, 4, 9, 9, 0, 0)),  # AM: no zone
        ("Sat, 8 May 2010 16.03.09 +0200", (2010, 5, 8, 14, 3, 9)),  # dotted time
        ("8 May 2010 16:03 EST", (2010, 5, 8, 21, 3, 0)),  # no seconds, a zone name
        ("Mon, 1 Jan 2024 10:00:00+0100", (2024, 1, 1, 9, 0, 0)),  # the zone glued on
        ("1 Jan 2024 10:00:00 CET", (2024, 1, 1, 10, 0, 0)),  # an unknown zone: UTC
        ("1 Jan 2024 10:00:00 +01:00", (2024, 1, 1, 10, 0, 0)),  # not RFC 5322: UTC
        ("1 Jan 69 10:00:00 +0000", (1969, 1, 1, 10, 0, 0)),
        ("1 Jan 68 10:00:00 +0000", (2068, 1, 1, 10, 0, 0)),
        ("Foo, 1 January 2024 10:00:00 -0000 (no zone) extra", (2024, 1, 1, 10, 0, 0)),
    ],
)
def test_the_obsolete_and_odd_forms_mail_carries(text: str, want: tuple[int, ...]) -> None:
    assert parse_date(text) == datetime(*want, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "17-Jul-1996 02:44:25 -0700 extra",  # RFC 850 ends with its zone
        "17-Jul-1996 02:44:25",  # ... and has one
        "31 Feb 2024 10:00:00 +0000",  # no such day
        "1 Foo 2024 10:00:00 +0000",
        "2024-01-01 10:00:00",
    ],
)
def test_what_is_no_date(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


def test_the_corpus_dates_read_as_email_utils_reads_them() -> None:
    """kithkeep read dates with email.utils before: on real mail nothing moves."""
    files = corpus_files()
    if not files:
        pytest.skip(f"corpora not found at {CORPORA}")
    seen = 0
    for path in files:
        block = header_block(path.read_bytes())
        dates = headers._split(block).get("date")
        if not dates:
            continue
        text = dates[0].strip()
        try:
            reference = parsedate_to_datetime(text)
        except (ValueError, TypeError, IndexError):
            continue  # not a date to email.utils either (kithkeep may still read one)
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=UTC)
        seen += 1
        assert parse(block).date == reference, (path, text)
    assert seen > 500


# -------------------------------------------------------------- addresses

# What email.utils makes of a header, without the cache: the reference.
ADDRESS_TEXT = st.lists(
    st.sampled_from(
        [
            *'ab.@ ,"<>():;\\[]\r\n\t',
            *("=?utf-8?q?Zo=C3=AB?=", "x@y.org", "Ann <a@b.c>", '"L, F"', "G: a@b, c@d;"),
        ]
    ),
    max_size=25,
).map("".join)


def reference_addresses(values: list[str]) -> tuple[Address, ...]:
    out = []
    for name, raw_email in getaddresses(values):
        email = raw_email.strip().strip("<>").strip().lower()
        if "@" in email and " " not in email:
            out.append(Address(decode_words(name).strip('"').strip(), email))
    return tuple(out[:MAX_ADDRESSES])


@settings(max_examples=2000, deadline=None)
@given(st.lists(ADDRESS_TEXT, min_size=1, max_size=3))
@example(['"Rivera, Sam" <s@x.org>, ana@x.org'])
@example(["a@b c@d, e@f"])
@example(["<a@b@c>, d@e"])
@example(['"unterminated <a@b>, c@d', "e@f"])
@example(["Group: a@b, c@d;, e@f"])
@example(["<@route,@route2:a@b>, c@d"])
@example(["a@b (Ann, B), c@d"])
def test_the_address_caches_give_what_email_utils_reads(values: list[str]) -> None:
    """Cached per whole value, or per mailbox of a plain list: the result is email.utils' own.

    The part cache is left filled between examples, so parts read in one
    header are reused in another.
    """
    headers._list_cache.clear()
    assert parse_addresses(values) == reference_addresses(values)


def test_a_repeated_address_header_gives_the_same_tuple() -> None:
    first = parse_addresses(["Ana <ana@example.org>, Sam <sam@example.org>"])
    assert parse_addresses(["Ana <ana@example.org>, Sam <sam@example.org>"]) is first
