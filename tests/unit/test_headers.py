"""Header parsing: a bad header costs that field, never the message."""

from __future__ import annotations

from datetime import UTC, datetime

from kithkeep.headers import (
    header_block,
    normalize_message_id,
    parse_header_block,
    parse_references,
)


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
    p = parse_header_block(raw)
    assert p.errors == []
    assert p.message_id == "abc@host.example"
    assert p.date == datetime(2026, 11, 3, 9, 15, tzinfo=UTC)
    assert [a.email for a in p.from_] == ["ana.silva@example.org"]
    assert p.from_[0].name == "Ana Silva"
    assert [a.email for a in p.to] == ["sam@example.org", "sam.rivera@example.org"]
    assert p.to[1].name == "Rivera, Sam"
    assert p.in_reply_to == "prev@host.example"
    assert p.references == ("root@host", "prev@host.example")
    assert p.subject == "Café tomorrow?"


def test_broken_fields_cost_only_themselves() -> None:
    raw = (
        b"From: Someone <someone@example.org>\n"
        b"To: unlisted-recipients:; (no To-header on input)\n"
        b"Date: not a date at all\n"
        b"Subject: =?x-unknown-charset?q?abc?= \xff\xfe raw bytes\n\n"
    )
    p = parse_header_block(raw)
    assert "date" in p.errors
    assert p.date is None
    assert p.to == ()  # the group has no mailbox
    assert p.from_[0].email == "someone@example.org"
    assert "raw bytes" in p.subject
    # no Message-ID: a stable synthetic one
    assert p.message_id.startswith("kk-")
    assert parse_header_block(raw).message_id == p.message_id


def test_references_loops_and_caps() -> None:
    refs = " ".join(f"<id{i}@x>" for i in range(500)) + " <id1@x> <id2@x>"
    out = parse_references(refs)
    assert len(out) == 50
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
    p = parse_header_block(b"Date: Tue, 03 Nov 2026 10:15:00 -0000\n\n")
    assert p.date == datetime(2026, 11, 3, 10, 15, tzinfo=UTC)
