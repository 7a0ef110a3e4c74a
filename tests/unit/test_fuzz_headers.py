"""Header parsing under fuzzing, and every real-world corpus file.

Properties (Hypothesis):

- arbitrary bytes never make ``record_from_headers`` raise, and the record
  it gives is storable;
- a valid header block with ONE field corrupted (broken RFC 2047 words,
  unparseable dates, huge References, ``unlisted-recipients:;``, very long
  folded lines, NULs, raw 8-bit bytes, arbitrary junk) parses every OTHER
  field exactly as the clean block does: a bad header costs that field only.

Then every file of shared/corpora goes through ``record_from_headers`` and,
all together as one mbox file, through the mbox source into a store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kithkeep.connectors.mbox import MboxConfig, MboxSource, iter_mbox_headers
from kithkeep.headers import (
    MAX_REFERENCES,
    header_block,
    record_from_headers,
)
from kithkeep.records import MailBatch, MessageRecord
from kithkeep.schema import Message
from kithkeep.store import Store, message_from_row, message_row
from kithkeep.sync import sync_source
from tests.helpers import CORPORA, corpus_files

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# header name -> the MessageRecord attribute it fills
ATTR = {
    "From": "from_",
    "To": "to",
    "Cc": "cc",
    "Bcc": "bcc",
    "Date": "date",
    "Message-ID": "message_id",
    "In-Reply-To": "in_reply_to",
    "References": "references",
    "Subject": "subject",
    "List-Id": "list_id",
    "List-Post": "list_post",
    "Precedence": "precedence",
    "Auto-Submitted": "auto_submitted",
}
PARSED_FIELDS = (*ATTR.values(), "list_unsubscribe")


def parse(raw: bytes) -> MessageRecord:
    return record_from_headers(raw, account="a", folder="INBOX", uid="1")


def fields_of(p: MessageRecord) -> dict[str, Any]:
    return {a: getattr(p, a) for a in PARSED_FIELDS}


def storable(raw: bytes) -> None:
    """The record from ``raw`` survives the store's row conversion unchanged."""
    r = record_from_headers(raw, account="a", folder="INBOX", uid="1")
    row = message_row(r)
    back = message_from_row(type("Row", (), row)())
    assert back.from_ == r.from_ and back.references == r.references
    assert back.flags == r.flags and back.parse_errors == r.parse_errors


# ------------------------------------------------------------ arbitrary bytes


def header_like_bytes() -> st.SearchStrategy[bytes]:
    """Bytes that look a little like headers, so the parser gets past line one."""
    names = st.sampled_from([*ATTR, "X-Junk", "From ", "", " ", ":"]).map(str.encode)
    value = st.binary(max_size=200)
    line = st.tuples(names, value, st.sampled_from([b"\r\n", b"\n", b"\r", b""])).map(
        lambda t: t[0] + b": " + t[1] + t[2]
    )
    return st.lists(line, max_size=15).map(b"".join)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=3000), header_like_bytes()))
@example(raw=b"")
@example(raw=b"\x00" * 100)
@example(raw=b"\r" * 50 + b"From: a@b\r\n")
@example(raw=b"To: unlisted-recipients:;\r\n\r\n")
@example(raw=b"Subject: =?utf-8?b?====?=\r\nDate: \xff\xfe\r\n\r\n")
@example(raw=b"From: =?\x00?q?x?= <\x00@\x00>\r\n")
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    r = parse(raw)
    assert r.uid == "1" and r.message_id  # every message gets an id, synthetic if need be
    assert len(r.references) <= MAX_REFERENCES
    assert r.date is None or r.date.tzinfo == UTC
    storable(raw)


# -------------------------------------------- one corrupted field, others survive

_ATEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_DOMAIN = st.lists(_ATEXT, min_size=1, max_size=3).map(lambda p: ".".join([*p, "example"]))
_EMAIL = st.builds(lambda lp, d: f"{lp}@{d}", _ATEXT, _DOMAIN)
_NAME = st.one_of(
    st.just(""),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij ", min_size=1, max_size=20)
    .map(str.strip)
    .filter(bool),
    # a non-ASCII name, sent the standard way: an RFC 2047 encoded word
    st.text(alphabet="éüñøßçåÆΩλжд李小龍😀", min_size=1, max_size=8).map(
        lambda n: Header(n, "utf-8").encode()
    ),
)
_MAILBOX = st.builds(lambda n, e: f"{n} <{e}>" if n else e, _NAME, _EMAIL)
_MSGID = st.builds(lambda a, d: f"<{a}@{d}>", _ATEXT, _DOMAIN)
_DATE = st.builds(
    lambda dt, off: format_datetime(dt.replace(tzinfo=timezone(timedelta(minutes=off)))),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2035, 12, 31)),
    st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
)
_SUBJECT = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=60
    ),
    st.text(min_size=1, max_size=30).map(lambda s: Header(s, "utf-8").encode()),
)


@st.composite
def valid_headers(draw: st.DrawFn) -> dict[str, str]:
    """A well-formed header block as name -> value (ASCII; 8-bit text as encoded words)."""
    h = {
        "From": draw(_MAILBOX),
        "To": ", ".join(draw(st.lists(_MAILBOX, min_size=1, max_size=4))),
        "Date": draw(_DATE),
        "Message-ID": draw(_MSGID),
        "Subject": draw(_SUBJECT),
    }
    optional: dict[str, st.SearchStrategy[str]] = {
        "Cc": st.lists(_MAILBOX, min_size=1, max_size=3).map(", ".join),
        "Bcc": _MAILBOX,
        "In-Reply-To": _MSGID,
        "References": st.lists(_MSGID, min_size=1, max_size=8).map(" ".join),
        "List-Id": st.builds(lambda n, d: f"{n} <{d}>", _ATEXT, _DOMAIN),
        "List-Post": _EMAIL.map(lambda e: f"<mailto:{e}>"),
        "Precedence": st.sampled_from(["bulk", "list", "junk"]),
        "Auto-Submitted": st.sampled_from(["auto-generated", "auto-replied", "no"]),
    }
    for name, strat in optional.items():
        if draw(st.booleans()):
            h[name] = draw(strat)
    return h


def render(h: dict[str, str | bytes], order: list[str]) -> bytes:
    out = b""
    for name in order:
        v = h[name]
        out += name.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
    return out + b"\r\n"


def _huge_references(_v: str, d: st.DrawFn) -> bytes:
    n = d(st.integers(min_value=MAX_REFERENCES + 1, max_value=8000))
    return b" ".join(b"<ref%d@huge.example>" % i for i in range(n))


def _long_folded(v: str, d: st.DrawFn) -> bytes:
    words = d(st.integers(min_value=200, max_value=3000))
    return v.encode() + b"".join(b"\r\n\t" + b"w%d" % i for i in range(words))


def _insert(junk: bytes) -> Callable[[str, st.DrawFn], bytes]:
    def corrupt(v: str, d: st.DrawFn) -> bytes:
        raw = v.encode()
        i = d(st.integers(min_value=0, max_value=len(raw)))
        return raw[:i] + junk + raw[i:]

    return corrupt


_LINE_JUNK = st.binary(min_size=1, max_size=300).map(
    # any bytes but line ends: a corruption inside one field, not a new line
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
)

CORRUPTIONS: dict[str, Callable[[str, st.DrawFn], bytes]] = {
    "broken-rfc2047": lambda _v, d: d(
        st.sampled_from(
            [
                b"=?utf-8?q?unterminated",
                b"=?utf-8?b?!!!not-base64!!!?=",
                b"=?utf-8?b?4pi=?=",  # truncated UTF-8 sequence
                b"=?x-unknown-charset?q?abc?=",
                b"=?utf-8?x?bad-encoding?=",
                b"=??q?nocharset?=",
                b"=?utf-8*fr?q?lang?= tail",
                b"=?iso-2022-jp?b?GyRCJEgbKEI=?= =?koi8-r?q?=F0=F2?=",
                b"=?utf-8?q?" + b"=FF" * 200 + b"?=",
            ]
        )
    ),
    "unparseable-date": lambda _v, d: d(
        st.sampled_from(
            [
                b"yesterday at noon",
                b"Mon, 99 Foo 2026 99:99:99 +9999",
                b"32/13/2026",
                b"Tue, 1 Jan 0001 00:00:00 +1400",
                b"Fri, 31 Dec 9999 23:59:59 -1200",
                b"0",
                b"",
                b"Mon, 1 Jan 2026 10:00:00 +0100 (CET) (extra) (comments)",
            ]
        )
        | _LINE_JUNK
    ),
    "huge-references": _huge_references,
    "unlisted-recipients": lambda _v, d: d(
        st.sampled_from(
            [
                b"unlisted-recipients:;",
                b"undisclosed-recipients:;",
                b"Group: ;",
                b":;",
                b"<>",
                b"@",
                b'"unterminated <a@b>',
                b"a@b@c, <<x@y>>, (comment only)",
            ]
        )
    ),
    "long-folded-line": _long_folded,
    "nul": _insert(b"\x00"),
    "8-bit": lambda v, d: _insert(
        d(
            # at least one byte >= 0x80 (Latin-1, broken UTF-8, ...), no line ends
            st.tuples(st.integers(0x80, 0xFF), st.binary(max_size=39)).map(
                lambda t: bytes([t[0]]) + t[1].replace(b"\r", b"").replace(b"\n", b"")
            )
        )
    )(v, d),
    "junk": lambda _v, d: d(_LINE_JUNK),
}


@st.composite
def one_corrupted_field(draw: st.DrawFn) -> tuple[dict[str, str], list[str], str, str, bytes]:
    h = draw(valid_headers())
    order = draw(st.permutations(list(h)))
    kind = draw(st.sampled_from(sorted(CORRUPTIONS)))
    targets = sorted(h)
    if kind == "huge-references":
        targets = ["References"]
    elif kind == "unlisted-recipients":
        targets = [t for t in targets if t in ("From", "To", "Cc", "Bcc")]
    elif kind == "unparseable-date":
        targets = ["Date"]
    field = draw(st.sampled_from(targets))
    if field == "References" and field not in h:
        h[field] = draw(_MSGID)
        order.append(field)
    return h, order, kind, field, CORRUPTIONS[kind](h[field], draw)


@FUZZ
@given(case=one_corrupted_field())
def test_one_broken_field_costs_only_that_field(
    case: tuple[dict[str, str], list[str], str, str, bytes],
) -> None:
    h, order, _kind, field, bad = case
    clean_raw = render(dict(h), order)
    broken_raw = render({**h, field: bad}, order)
    clean = parse(clean_raw)
    broken = parse(broken_raw)
    assert clean.parse_errors == ()  # the generator makes valid blocks
    assert clean.message_id == h["Message-ID"][1:-1].lower()
    expected = fields_of(clean)
    got = fields_of(broken)
    lost = {ATTR[field]}
    if field == "List-Post":  # List-Post and List-Id are one boundary ("list")
        lost |= {"list_id"}
    if field == "List-Id":
        lost |= {"list_post"}
    for attr in PARSED_FIELDS:
        if attr not in lost:
            assert got[attr] == expected[attr], (attr, field, bad[:200])
    # the broken field is lost at most: never reported for another field
    assert set(broken.parse_errors) <= {field.lower(), "list", "precedence", "size"}
    storable(broken_raw)


# Found by this suite (and fixed): a lone CR inside a value ended the header
# line for email's parser, which took everything after it for the body.
def test_a_lone_cr_in_one_field_costs_only_that_field() -> None:
    clean = (
        b"From: Ana <ana@example.org>\r\nSubject: hello there\r\n"
        b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <m1@example.org>\r\n"
        b"References: <a@example.org> <b@example.org>\r\n\r\n"
    )
    broken = clean.replace(b"hello there", b"hello\rthere")
    want = fields_of(parse(clean))
    got = fields_of(parse(broken))
    assert {k: v for k, v in got.items() if k != "subject"} == {
        k: v for k, v in want.items() if k != "subject"
    }


@pytest.mark.parametrize(
    ("raw", "attr", "want"),
    [
        (b"Subject: caf\xc3\xa9 \xe2\x98\x95\r\n\r\n", "subject", "café ☕"),
        (
            b"From: Zo\xc3\xab <zoe@example.org>\r\n\r\n",
            "from_",
            (("Zoë", "zoe@example.org"),),
        ),
        (b"Subject: =?utf-8?q?caf=C3=A9?= \xe2\x98\x95\r\n\r\n", "subject", "café ☕"),
    ],
    ids=["subject", "from-name", "mixed-with-encoded-word"],
)
def test_raw_utf8_header_values_are_decoded(raw: bytes, attr: str, want: object) -> None:
    got = getattr(parse(raw), attr)
    if attr == "from_":
        got = tuple((a.name, a.email) for a in got)
    assert got == want


# ------------------------------------------------------------------- corpora


def _corpus() -> list[Path]:
    files = corpus_files()
    if not files:
        pytest.skip(f"corpora not found at {CORPORA}")
    return files


def test_every_corpus_file_through_the_header_parser() -> None:
    files = _corpus()
    parsed = 0
    with_errors = 0
    dated = 0
    for path in files:
        raw = path.read_bytes()
        block = header_block(raw)
        p = parse(block)
        assert p.message_id, path
        storable(block)
        parsed += 1
        with_errors += bool(p.parse_errors)
        dated += p.date is not None
    assert parsed == len(files) > 1000
    # the corpora are mostly mail: most messages have a date; few lose a field
    assert dated > len(files) / 2
    assert with_errors < len(files) / 10


def _mbox_of(files: list[Path]) -> bytes:
    """Every file as one message of an mbox (mboxrd quoting of From_ lines)."""
    out = bytearray()
    for path in files:
        raw = path.read_bytes().replace(b"\r\n", b"\n")
        out += b"From corpus@kithkeep Thu Jan  1 00:00:00 2026\n"
        for line in raw.split(b"\n"):
            if line.lstrip(b">").startswith(b"From "):
                line = b">" + line  # noqa: PLW2901 - the quoted line replaces it
            out += line + b"\n"
        out += b"\n"
    return bytes(out)


def test_every_corpus_file_through_an_mbox_file(tmp_path: Path) -> None:
    files = _corpus()
    mbox = tmp_path / "corpora.mbox"
    mbox.write_bytes(_mbox_of(files))
    assert sum(1 for _ in iter_mbox_headers(mbox)) == len(files)
    src = MboxSource("corpus", MboxConfig(path=str(mbox), chunk_size=100))
    with Store.open(f"sqlite:///{tmp_path / 'k.sqlite3'}") as store:
        result = sync_source(store, src)
        assert result.records == len(files)
        assert store.count(Message) == len(files)

        # each stored record is what the parser makes of that message's header block
        def key(m: Any) -> tuple[str, str, str]:
            return (m.message_id, m.subject, str(m.date))

        want = sorted(
            key(record_from_headers(h, account="corpus", folder="x", uid="x"))
            for h in iter_mbox_headers(mbox)
        )
        assert sorted(key(m) for m in store.iter_messages()) == want
        # a second sync of the unchanged file reads nothing and adds nothing
        again = sync_source(store, MboxSource("corpus", MboxConfig(path=str(mbox))))
        assert again.records == 0
        assert store.count(Message) == len(files)


def test_records_of_the_corpora_store_and_read_back(tmp_path: Path) -> None:
    files = _corpus()
    records = [
        record_from_headers(header_block(p.read_bytes()), account="c", folder="F", uid=str(i))
        for i, p in enumerate(files)
    ]
    with Store.open(f"sqlite:///{tmp_path / 'k.sqlite3'}") as store:
        store.apply_mail_batch(MailBatch(records=records), "c")
        back = {m.uid: m for m in store.iter_messages()}
    assert len(back) == len(records)
    for r in records:
        b = back[r.uid]
        assert b.message_id == r.message_id[:500]
        assert (b.subject, b.from_, b.to, b.references) == (r.subject, r.from_, r.to, r.references)
        assert b.date == r.date
