"""The compiled IMAP bulk path gives exactly the rows of the Python path.

``connectors/_imapfast.c`` turns header FETCH responses straight into store
rows. Its reference is ``imap_rows.python_row``: the same header parser and
row encoding every other source uses. For each input below, the rows of the
compiled ``scan_rows`` must equal ``python_scan_rows``' value for value:

- every message of the shared corpora, as sent (LF) and with CRLF line ends;
- generated header blocks built to hit each branch of the C code: folding,
  every whitespace Python knows in ASCII, encoded words, quoted and odd
  addresses, dates in and out of the common layout (30 February, year 1,
  offsets that cross a year), References with repeats in other cases and
  more than 50 ids, control characters, 8-bit bytes, missing Message-IDs;
- the benchmark's generated mail;
- a response stream cut into pieces of every size and mixed with responses
  of other shapes, read through RawSession.uid_fetch_rows.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kithkeep.connectors import imap_rows
from kithkeep.connectors.imap_fetch import RawSession
from kithkeep.headers import header_block
from kithkeep.rowcodec import MESSAGE_COLUMNS
from tests.helpers import REPO, corpus_files

pytestmark = pytest.mark.skipif(
    not imap_rows.COMPILED, reason="the compiled IMAP path is not built"
)

HEADER_ITEM = b"BODY[HEADER.FIELDS (FROM TO CC DATE MESSAGE-ID SUBJECT)]"


def response(seq: int, uid: int, header: bytes, flags: bytes, idate: bytes) -> bytes:
    """One FETCH response of the usual shape."""
    return (
        b'* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "%s" %s {%d}\r\n'
        % (seq, uid, flags, idate, HEADER_ITEM, len(header))
        + header
        + b")\r\n"
    )


def both(buf: bytes, *, folder: str = "INBOX", sent: bool = False) -> list[Any]:
    """The rows of both paths (asserted equal), with what the scan returned."""
    fast = imap_rows.scan_rows(buf, 0, 1, 1 << 30, "acct", folder, sent)
    slow = imap_rows.python_scan_rows(buf, 0, 1, 1 << 30, "acct", folder, sent)
    for a, b in zip(fast[0], slow[0], strict=True):
        diff = {c: (x, y) for c, x, y in zip(MESSAGE_COLUMNS, a, b, strict=True) if x != y}
        assert not diff, diff
        assert [type(x) for x in a] == [type(y) for y in b]
    assert fast[1:] == slow[1:]
    return list(fast[0])


def one(
    header: bytes, flags: bytes = b"\\Seen", idate: bytes = b"01-Jan-2024 10:00:00 +0000"
) -> Any:
    rows = both(response(1, 7, header, flags, idate))
    assert len(rows) == 1
    return rows[0]


# ------------------------------------------------------------------ corpora


def corpus_blocks() -> Iterator[bytes]:
    for path in corpus_files():
        if path.suffix.lower() in (".ics", ".py", ".md", ".json", ".vcf"):
            continue
        block = header_block(path.read_bytes())
        yield block
        crlf = block.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if crlf != block:
            yield crlf


def test_every_corpus_message_gives_the_same_row() -> None:
    blocks = list(corpus_blocks())
    assert len(blocks) > 900
    stream = b"".join(
        response(i + 1, i + 1, b, b"\\Seen \\Answered", b"17-Jul-1996 02:44:25 -0700")
        for i, b in enumerate(blocks)
    )
    rows = both(stream)
    assert len(rows) == len(blocks)
    # the compiled path wrote most of them itself (else this test proves little)
    imap_rows._imapfast.clear_caches()
    made_in_c = sum(
        imap_rows._imapfast.encode_header(b, "a", "f", "1", "", None, False) is not None
        for b in blocks
    )
    assert made_in_c > len(blocks) // 2


def test_the_benchmark_mail_gives_the_same_rows() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import imap_sync
    finally:
        sys.path.remove(str(REPO / "bench"))
    rng = random.Random(7)
    people = imap_sync._people(300, rng)
    blocks = [
        header_block(imap_sync.message(i, rng, people, sent=i % 4 == 0)).replace(b"\n", b"\r\n")
        for i in range(3000)
    ]
    stream = b"".join(
        response(i + 1, i + 1, b, b"\\Seen" if i % 3 else b"", b"01-Jan-2024 10:00:00 +0000")
        for i, b in enumerate(blocks)
    )
    assert len(both(stream, folder="Sent", sent=True)) == 3000


# ------------------------------------------------------- generated headers

# every character class the C code treats apart
ODD_TEXT = st.lists(
    st.sampled_from(
        [
            *"aZ09 .@<>,;:\"'()[]\\=?_-+!#",
            *("\t", "\x0b", "\x0c", "\x1c", "\x1f", "\x01", "\x7f", "=?", "?=", "\r\n "),
        ]
    ),
    max_size=40,
).map("".join)
NAMES = st.sampled_from(["Ann", "Ann  B", "=?utf-8?q?Ann=C3=A9?=", "A.\x1cB", "J\x01", ""])
ADDRS = st.sampled_from(
    ["a@b.example", "A.B@Ex-ample.ORG", "a..b@c", "a@b.", "a@-x", "x@y z", "@b", "a@b@c", "a"]
)


@st.composite
def mailbox(draw: st.DrawFn) -> str:
    name, addr = draw(NAMES), draw(ADDRS)
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return f"{name} <{addr}>"
    if shape == 1:
        return f"<{addr}>"
    if shape == 2:
        return f" {addr} "
    if shape == 3:
        return f'"{name}" <{addr}>'
    if shape == 4:
        return f"{name}\r\n <{addr}>"
    return draw(ODD_TEXT)


@st.composite
def date_value(draw: st.DrawFn) -> str:
    day = draw(st.sampled_from(["1", "01", "28", "29", "30", "31", "0", "x"]))
    mon = draw(st.sampled_from(["Jan", "feb", "FEB", "Dec", "Foo"]))
    year = draw(st.sampled_from(["2024", "2023", "0001", "0002", "9998", "9999", "1900"]))
    clock = draw(st.sampled_from(["10:00:00", "23:59:59", "00:00:00", "24:00:00", "1:2:3"]))
    zone = draw(st.sampled_from(["+0000", "-1200", "+1400", "+0099", "GMT", "-0000"]))
    dow = draw(st.sampled_from(["", "Mon, ", "Mon,", "Xyz, ", "12, "]))
    tail = draw(st.sampled_from(["", " (CET)", "  ", "\t"]))
    return f"{dow}{day} {mon} {year} {clock} {zone}{tail}"


@st.composite
def references(draw: st.DrawFn) -> str:
    ids = draw(st.lists(st.sampled_from(["a@x", "A@X", "b@y", "c<d@z", "e f@g"]), max_size=8))
    many = draw(st.sampled_from([0, 0, 60, 80]))
    ids += [f"id{i % 70}@Many" for i in range(many)]
    sep = draw(st.sampled_from([" ", "\r\n ", "", "\t"]))
    return sep.join(f"<{i}>" for i in ids) + draw(st.sampled_from(["", " junk", "<>", "<x"]))


FIELD_VALUES: dict[str, st.SearchStrategy[str]] = {
    "From": st.lists(mailbox(), min_size=0, max_size=3).map(", ".join),
    "To": st.lists(mailbox(), min_size=0, max_size=4).map(",".join),
    "Cc": st.lists(mailbox(), min_size=0, max_size=4).map(" , ".join),
    "Bcc": st.lists(mailbox(), max_size=2).map(",".join),
    "Date": st.one_of(date_value(), ODD_TEXT),
    "Message-ID": st.sampled_from(["<Abc@Host>", " <a@b> <c@d>", "plain@id", "<>", "", " x y "]),
    "In-Reply-To": st.sampled_from(["<R@H>", "<<r@h>>", "no brackets", ""]),
    "References": references(),
    "Subject": st.one_of(ODD_TEXT, st.sampled_from(["=?utf-8?b?w6k=?= x", "Re:  a\t b "])),
    "List-Id": st.sampled_from(["Team <team.example>", "=?utf-8?q?T=C3=A9am?= <t>", " ", ""]),
    "List-Post": st.sampled_from(["<mailto:t@example>", "  NO  ", ""]),
    "List-Unsubscribe": st.just("<mailto:x@y>"),
    "Precedence": st.sampled_from(["bulk", " LIST ", "junk\x1c", "", "\x0b"]),
    "Auto-Submitted": st.sampled_from(["auto-replied; x", " No ", ";", "AUTO-GENERATED"]),
    "X-Other": ODD_TEXT,
}


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    names = draw(st.lists(st.sampled_from(list(FIELD_VALUES)), max_size=12))
    if draw(st.booleans()):
        names.append("Message-ID")
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    lines = []
    for name in names:
        written = draw(st.sampled_from([name, name.lower(), name.upper()]))
        sep = draw(st.sampled_from([": ", ":", ":\t", ":  "]))
        lines.append(f"{written}{sep}{draw(FIELD_VALUES[name])}{eol}")
    raw = "".join(lines).encode("utf-8") + draw(st.sampled_from([eol.encode(), b""]))
    if draw(st.integers(0, 9)) == 0:  # a stray byte somewhere: the Python path
        at = draw(st.integers(0, len(raw)))
        raw = (
            raw[:at] + draw(st.sampled_from([b"\xc3\xa9", b"\r", b"\n\n", b"From x\n"])) + raw[at:]
        )
    return raw


GEN = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@GEN
@given(header=header_blocks())
@example(header=b"Message-ID: <a@b>\r\nDate: Sat, 31 Dec 9999 23:00:00 -0200\r\n\r\n")
@example(header=b"Message-ID: <a@b>\r\nDate: 1 Jan 0001 00:00:00 +0100\r\n\r\n")
@example(header=b"Message-ID: <a@b>\r\nDate: Thu, 29 Feb 2024 23:30:00 -0100\r\n\r\n")
@example(header=b"Message-ID: <a@b>\r\nDate: Fri, 30 Feb 2024 10:00:00 +0000\r\n\r\n")
@example(header=b"Message-ID: <a@b>\r\nTo: =?utf-8?q?\\ud800?= <a@b>\r\n\r\n")
@example(header=b"Message-ID: <a@b>\r\nFrom: =?utf-8?b?IiBc?= <a@b>\r\n\r\n")
@example(header=b"Message-ID: <a@b>\r\nSubject: " + b"x " * 400 + b"\r\n\r\n")
@example(header=b"message-id:<a@b>\nfrom:a@b\nfrom:c@d\n")
@example(header=b"Message-ID: <a@b>\r\nTo: " + b"a@b," * 600 + b"\r\n\r\n")
@example(header=b"")
def test_generated_headers_give_the_same_row(header: bytes) -> None:
    one(header)


@GEN
@given(
    flags=st.sampled_from(
        [b"", b"\\Seen", b"\\Recent \\Seen", b"$Label \\Answered", b"\\Seen \\Seen"]
    ),
    idate=st.sampled_from(
        [
            b"01-Jan-2024 10:00:00 +0000",
            b" 1-Jan-2024 10:00:00 +0000",
            b"31-Feb-2024 10:00:00 +0000",
            b"01-jan-2024 10:00:00 +0000",
            b"01-Jan-0000 10:00:00 +0000",
            b"17-Jul-1996 02:44:25 -0700",
            b"01-Jan-2024 24:00:00 +0000",
            b"garbage",
            b"",
        ]
    ),
)
def test_flags_and_internal_dates_give_the_same_row(flags: bytes, idate: bytes) -> None:
    one(b"Message-ID: <a@b>\r\nFrom: A <a@b>\r\n\r\n", flags, idate)


# --------------------------------------------------------------- the stream


class _Pieces:
    """A socket file handing out the data in pieces of one size."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.pos, self.size = data, 0, size

    def read1(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + min(n, self.size)]
        self.pos += len(out)
        return out


class _FakeImap:
    def __init__(self, data: bytes, size: int) -> None:
        self.file = _Pieces(data, size)

    def send(self, data: bytes) -> None:
        pass


def _mixed_stream() -> bytes:
    h = b"Message-ID: <m%d@x>\r\nFrom: A <a@example.org>\r\nSubject: {5} )\r\n\r\n"
    parts = []
    for i in range(1, 40):
        header = h % i
        if i % 7 == 0:  # MODSEQ and another order: the general path
            parts.append(
                b'* %d FETCH (UID %d MODSEQ (3) FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000"'
                b" %s {%d}\r\n%s)\r\n" % (i, i, HEADER_ITEM, len(header), header)
            )
        elif i % 11 == 0:
            parts.append(b"* %d EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\n" % i)
        elif i % 5 == 0:  # Gmail's order and ids; a keyword that names an item
            flags = b"\\Seen UID" if i % 10 == 0 else b"\\Seen"
            parts.append(
                b"* %d FETCH (X-GM-THRID %d X-GM-MSGID %d UID %d FLAGS (%s) "
                b'INTERNALDATE "02-Jan-2024 00:00:00 +0000" %s {%d}\r\n%s)\r\n'
                % (i, 1000 + i, 2000 + i, i, flags, HEADER_ITEM, len(header), header)
            )
        elif i % 13 == 0:  # no FLAGS, no INTERNALDATE
            parts.append(
                b"* %d FETCH (UID %d %s {%d}\r\n%s)\r\n" % (i, i, HEADER_ITEM, len(header), header)
            )
        else:
            parts.append(response(i, i, header, b"\\Seen", b"02-Jan-2024 00:00:00 +0000"))
    parts.append(b"kk1 OK done\r\n")
    return b"".join(parts)


def _chunks(data: bytes, piece: int, *, compiled: bool, min_uid: int = 1) -> list[Any]:
    raw = RawSession(_FakeImap(data, piece))  # type: ignore[arg-type]
    scan = imap_rows.scan_rows if compiled else imap_rows.python_scan_rows
    return list(
        raw.uid_fetch_rows(
            "1:*",
            "X",
            scan=lambda buf, pos, low, n: scan(buf, pos, low, n, "acct", "INBOX", False),
            other=lambda it: imap_rows.item_row(it, "acct", "INBOX", False),
            min_uid=min_uid,
            limit=5,
        )
    )


@pytest.mark.parametrize("piece", [1, 2, 3, 17, 64, 1 << 20])
def test_a_stream_cut_anywhere_gives_the_same_chunks(piece: int) -> None:
    data = _mixed_stream()
    whole = _chunks(data, 1 << 20, compiled=False)
    assert _chunks(data, piece, compiled=True) == whole
    rows = [r for chunk, _top, _last in whole for r in chunk]
    # every message with a header, once, in order; chunks of 5, the rest last
    assert [r[2] for r in rows] == [str(i) for i in range(1, 40) if i % 11]
    assert [len(c) for c, _t, last in whole] == [5] * 7 + [1]
    assert [last for _c, _t, last in whole] == [False] * 7 + [True]
    assert whole[-1][1] == 39
    by_uid = {r[2]: dict(zip(MESSAGE_COLUMNS, r, strict=True)) for r in rows}
    assert (by_uid["15"]["gm_msgid"], by_uid["15"]["gm_thrid"]) == (2015, 1015)
    assert by_uid["20"]["flags"] == "UID \\Seen"
    assert (by_uid["26"]["flags"], by_uid["26"]["internal_date"]) == ("", None)


def test_uids_below_the_checkpoint_give_no_row() -> None:
    chunks = _chunks(_mixed_stream(), 64, compiled=True, min_uid=30)
    assert [r[2] for c, _t, _l in chunks for r in c] == [str(i) for i in range(30, 40) if i % 11]
