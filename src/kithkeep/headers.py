"""Parse a raw header block into the fields of a :class:`MessageRecord`.

Every field is parsed inside its own error boundary: a malformed header costs
that field (recorded in ``parse_errors``), never the message. The parser uses
``email``'s compat32 policy plus our own decoding because ``policy.default``
is about twenty times slower and raises on some real-world headers (for
example ``To: unlisted-recipients:;`` on Python 3.11).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from kithkeep.records import Address, MessageRecord

log = logging.getLogger(__name__)

# The header fields kithkeep reads; IMAP fetches exactly these
# (BODY.PEEK[HEADER.FIELDS (...)]).
HEADER_FIELDS: tuple[str, ...] = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "Precedence",
    "Auto-Submitted",
)

# References of a long thread can hold hundreds of ids; the newest matter most.
MAX_REFERENCES = 50
MAX_ADDRESSES = 500
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_MAX_HEADER_BYTES = 256 * 1024

_parser = BytesHeaderParser(policy=compat32)


@dataclass(slots=True)
class ParsedHeaders:
    """The fields of one header block; ``errors`` names the fields lost."""

    message_id: str = ""
    date: datetime | None = None
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str = ""
    list_id: str | None = None
    list_post: str | None = None
    list_unsubscribe: bool = False
    precedence: str | None = None
    auto_submitted: str | None = None
    errors: list[str] = field(default_factory=list)


def header_block(raw: bytes) -> bytes:
    """The header part of a raw message (up to the first empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        idx = raw.find(sep)
        if idx != -1:
            return raw[: idx + len(sep)]
    return raw


def _fix_surrogates(value: str) -> str:
    """compat32 keeps undecodable bytes as surrogates; decode them as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raw = value.encode("ascii", "surrogateescape")
        return raw.decode("utf-8", "replace")
    return value


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; unknown charsets degrade to replacement characters."""
    value = _fix_surrogates(value)
    if "=?" not in value:
        return " ".join(value.split())
    parts: list[str] = []
    for chunk, charset in decode_header(value):
        if isinstance(chunk, bytes):
            try:
                parts.append(chunk.decode(charset or "ascii", "replace"))
            except LookupError:
                parts.append(chunk.decode("utf-8", "replace"))
        else:
            parts.append(chunk)
    return " ".join("".join(parts).split())


def parse_addresses(values: Iterable[str]) -> tuple[Address, ...]:
    """Mailboxes of address headers; groups, empty and address-less entries are dropped."""
    out: list[Address] = []
    for name, raw_email in getaddresses([_fix_surrogates(v) for v in values]):
        email = raw_email.strip().strip("<>").strip().lower()
        if "@" not in email or " " in email:
            continue
        out.append(Address(name=decode_words(name).strip('"').strip(), email=email))
        if len(out) >= MAX_ADDRESSES:
            break
    return tuple(out)


def normalize_message_id(value: str | None) -> str | None:
    """``<Abc@Host>`` -> ``abc@host``; the first id when several are given."""
    if not value:
        return None
    value = _fix_surrogates(value)
    m = _MSGID_RE.search(value)
    token = m.group(1) if m else value.strip().split()[0] if value.strip() else ""
    token = token.strip("<>").strip().lower()
    return token or None


def parse_references(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    ids = [m.lower() for m in _MSGID_RE.findall(_fix_surrogates(value))]
    # keep order, drop duplicates (loops), keep the newest MAX_REFERENCES
    unique = list(dict.fromkeys(ids))
    return tuple(unique[-MAX_REFERENCES:])


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = parsedate_to_datetime(_fix_surrogates(value).strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def synthetic_message_id(msg: Message) -> str:
    """A stable id for a message without Message-ID, from fields every copy shares."""
    h = hashlib.sha256()
    for name in ("From", "To", "Cc", "Date", "Subject"):
        for v in msg.get_all(name) or ():
            h.update(_fix_surrogates(str(v)).strip().encode("utf-8", "replace"))
        h.update(b"\0")
    return "kk-" + h.hexdigest()[:32]


def parse_header_block(raw: bytes) -> ParsedHeaders:
    """Parse one header block. Never raises for malformed input."""
    out = ParsedHeaders()
    if len(raw) > _MAX_HEADER_BYTES:
        # a 200 KB header exists in the wild; keep the start, where the fields are
        raw = raw[:_MAX_HEADER_BYTES]
        out.errors.append("size")
    try:
        msg = _parser.parsebytes(raw)
    except Exception:  # the parser is lenient; this is belt and braces
        log.warning("unparseable header block (%d bytes)", len(raw), exc_info=True)
        out.errors.append("headers")
        out.message_id = "kk-" + hashlib.sha256(raw).hexdigest()[:32]
        return out

    def first(name: str) -> str | None:
        v = msg.get(name)
        return None if v is None else str(v)

    def attempt(fieldname: str, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except Exception as exc:  # one field lost, never the message
            out.errors.append(fieldname)
            log.debug("header %s unparseable: %s", fieldname, type(exc).__name__)

    def _mid() -> None:
        out.message_id = normalize_message_id(first("Message-ID")) or ""

    def _date() -> None:
        out.date = parse_date(first("Date"))

    def _addr(name: str, attr: str) -> None:
        setattr(out, attr, parse_addresses(str(v) for v in msg.get_all(name) or ()))

    def _irt() -> None:
        out.in_reply_to = normalize_message_id(first("In-Reply-To"))

    def _refs() -> None:
        out.references = parse_references(first("References"))

    def _subject() -> None:
        s = first("Subject")
        out.subject = decode_words(s)[:500] if s else ""

    def _lists() -> None:
        lid = first("List-Id")
        out.list_id = decode_words(lid)[:300] if lid else None
        lpost = first("List-Post")
        out.list_post = _fix_surrogates(lpost).strip()[:300] if lpost else None
        out.list_unsubscribe = msg.get("List-Unsubscribe") is not None

    def _bulk() -> None:
        p = first("Precedence")
        out.precedence = p.strip().lower()[:40] if p else None
        a = first("Auto-Submitted")
        out.auto_submitted = a.strip().lower().split(";")[0].strip()[:40] if a else None

    attempt("message-id", _mid)
    attempt("date", _date)
    attempt("from", lambda: _addr("From", "from_"))
    attempt("to", lambda: _addr("To", "to"))
    attempt("cc", lambda: _addr("Cc", "cc"))
    attempt("bcc", lambda: _addr("Bcc", "bcc"))
    attempt("in-reply-to", _irt)
    attempt("references", _refs)
    attempt("subject", _subject)
    attempt("list", _lists)
    attempt("precedence", _bulk)
    if not out.message_id:
        try:
            out.message_id = synthetic_message_id(msg)
        except Exception:
            out.message_id = "kk-" + hashlib.sha256(raw).hexdigest()[:32]
    return out


def record_from_headers(
    raw: bytes,
    *,
    account: str,
    folder: str,
    uid: str,
    flags: frozenset[str] = frozenset(),
    internal_date: datetime | None = None,
    in_sent_folder: bool = False,
    gm_msgid: int | None = None,
    gm_thrid: int | None = None,
) -> MessageRecord:
    """A MessageRecord from a raw header block. Never raises for malformed input."""
    p = parse_header_block(raw)
    return MessageRecord(
        account=account,
        folder=folder,
        uid=uid,
        message_id=p.message_id,
        date=p.date,
        from_=p.from_,
        to=p.to,
        cc=p.cc,
        bcc=p.bcc,
        in_reply_to=p.in_reply_to,
        references=p.references,
        subject=p.subject,
        list_id=p.list_id,
        list_post=p.list_post,
        list_unsubscribe=p.list_unsubscribe,
        precedence=p.precedence,
        auto_submitted=p.auto_submitted,
        flags=flags,
        internal_date=internal_date,
        gm_msgid=gm_msgid,
        gm_thrid=gm_thrid,
        in_sent_folder=in_sent_folder,
        parse_errors=tuple(p.errors),
    )


def read_header_block(path: str, limit: int = 1 << 20) -> bytes:
    """The header block of a message file, reading no more of the body than a chunk."""
    buf = b""
    with open(path, "rb") as fh:
        while len(buf) < limit:
            chunk = fh.read(65536)
            if not chunk:
                break
            buf += chunk
            for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
                idx = buf.find(sep)
                if idx != -1:
                    return buf[: idx + len(sep)]
    return buf[:limit]


# --------------------------------------------------------------------------
# Fast path (IMAP bulk sync). The same fields and the same per-field error
# boundaries as parse_header_block, without building an email.message.Message
# and without email.utils' general address parser for the common simple
# shapes ("Name <a@b>", "a@b"). Anything unusual falls back: a whole block
# that is not plain "Name: value" lines goes to parse_header_block, an address
# header that is not simple goes to parse_addresses. tests/test_imap.py checks
# that both paths agree on every message of the shared corpora.

_WANTED = {f.lower(): f for f in HEADER_FIELDS}
_FIELD_RE = re.compile(r"([\x21-\x39\x3b-\x7e]+):")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# a display name without specials (dots allowed, as email.utils allows them)
_SIMPLE_MAILBOX_RE = re.compile(
    rf"\s*(?:([^\"<>(),;:@\[\]\\\s][^\"<>(),;:@\[\]\\]*?)\s*<({_ADDR})>|<({_ADDR})>|({_ADDR}))\s*"
)


# a block of plain "Name: value" lines with folded continuations, then an
# optional empty line; anything else goes to the full parser
_PLAIN_BLOCK_RE = re.compile(
    r"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)*(?:\r?\n)?"
)
_FIELD_VALUE_RE = re.compile(
    r"^([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.MULTILINE
)


def split_header_fields(raw: bytes) -> dict[str, list[str]] | None:
    """Values of the wanted fields by lower-case name, exactly as compat32 gives them.

    None when the block is not a plain sequence of header lines (a Unix
    ``From `` line, a line that is neither a field nor a continuation, bare
    CR line ends) or holds raw 8-bit bytes (compat32 turns those into
    unknown-8bit headers; the synthetic Message-ID must come out the same
    on both paths): the caller then uses the full parser.
    """
    if not raw.isascii():
        return None
    text = raw.decode("ascii")
    if not text.endswith("\n"):
        text += "\n"
    if _PLAIN_BLOCK_RE.fullmatch(text) is None:
        return None
    found: dict[str, list[str]] = {}
    for name, value in _FIELD_VALUE_RE.findall(text):
        key = name.lower()
        if key in _WANTED:
            # compat32 keeps the folding line breaks inside a value
            found.setdefault(key, []).append(value)
    return found


_MONTH_NUM = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
# the shape nearly every mailer writes: "Mon, 1 Jan 2024 10:00:00 +0100"
_SIMPLE_DATE_RE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) "
    r"(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
    r"(?:\s*\([^()]*\))?\s*"
)
_tz_by_offset: dict[int, timezone] = {}


def parse_date_fast(value: str | None) -> datetime | None:
    """parse_date for the common shape; parse_date (email.utils) for anything else."""
    if not value:
        return None
    m = _SIMPLE_DATE_RE.fullmatch(value)
    month = _MONTH_NUM.get(m.group(2).lower()) if m else None
    if m is None or month is None:
        return parse_date(value)
    day, _mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59:
        return parse_date(value)  # email.utils has its own rules for these
    offset = (int(zh) * 60 + int(zm)) * (-1 if sign == "-" else 1)
    tz = _tz_by_offset.get(offset)
    if tz is None:
        tz = _tz_by_offset[offset] = timezone(timedelta(minutes=offset))
    dt = datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    return dt.astimezone(UTC)


def _name_fast(name: str) -> str:
    if "=?" in name:
        return decode_words(name).strip('"').strip()
    return " ".join(name.split()).strip('"').strip()


def parse_addresses_fast(values: list[str]) -> tuple[Address, ...]:
    """parse_addresses for the common simple shapes; the general parser otherwise."""
    out: list[Address] = []
    for folded in values:
        value = folded.replace("\r", "").replace("\n", "") if "\n" in folded else folded
        for part in value.split(","):
            if not part.strip():
                continue
            m = _SIMPLE_MAILBOX_RE.fullmatch(part)
            if m is None:
                return parse_addresses(values)
            name, email = m.group(1), m.group(2) or m.group(3) or m.group(4)
            name = _name_fast(name) if name else ""
            out.append(Address(name=name, email=email.lower()))
            if len(out) >= MAX_ADDRESSES:
                return tuple(out)
    return tuple(out)


def parse_header_block_fast(raw: bytes) -> ParsedHeaders:
    """parse_header_block's result, faster for ordinary header blocks. Never raises."""
    if len(raw) > _MAX_HEADER_BYTES:
        return parse_header_block(raw)
    try:
        fields = split_header_fields(raw)
    except Exception:
        fields = None
    if fields is None:
        return parse_header_block(raw)
    out = ParsedHeaders()
    get = fields.get
    err = out.errors

    def first(name: str) -> str | None:
        v = get(name)
        return v[0] if v else None

    try:
        out.message_id = normalize_message_id(first("message-id")) or ""
    except Exception:
        err.append("message-id")
    try:
        out.date = parse_date_fast(first("date"))
    except Exception:
        err.append("date")
    for name, attr in (("from", "from_"), ("to", "to"), ("cc", "cc"), ("bcc", "bcc")):
        values = get(name)
        if values:
            try:
                setattr(out, attr, parse_addresses_fast(values))
            except Exception:
                err.append(name)
    try:
        out.in_reply_to = normalize_message_id(first("in-reply-to"))
    except Exception:
        err.append("in-reply-to")
    try:
        out.references = parse_references(first("references"))
    except Exception:
        err.append("references")
    try:
        s = first("subject")
        out.subject = decode_words(s)[:500] if s else ""
    except Exception:
        err.append("subject")
    try:
        lid = first("list-id")
        out.list_id = decode_words(lid)[:300] if lid else None
        lpost = first("list-post")
        out.list_post = _fix_surrogates(lpost).strip()[:300] if lpost else None
        out.list_unsubscribe = "list-unsubscribe" in fields
    except Exception:
        err.append("list")
    try:
        p = first("precedence")
        out.precedence = p.strip().lower()[:40] if p else None
        a = first("auto-submitted")
        out.auto_submitted = a.strip().lower().split(";")[0].strip()[:40] if a else None
    except Exception:
        err.append("precedence")
    if not out.message_id:
        out.message_id = _synthetic_from_fields(fields, raw)
    return out


def _synthetic_from_fields(fields: dict[str, list[str]], raw: bytes) -> str:
    """synthetic_message_id over already split fields (same digest)."""
    try:
        h = hashlib.sha256()
        for name in ("from", "to", "cc", "date", "subject"):
            for v in fields.get(name) or ():
                h.update(_fix_surrogates(v).strip().encode("utf-8", "replace"))
            h.update(b"\0")
        return "kk-" + h.hexdigest()[:32]
    except Exception:
        return "kk-" + hashlib.sha256(raw).hexdigest()[:32]


def record_from_headers_fast(
    raw: bytes,
    *,
    account: str,
    folder: str,
    uid: str,
    flags: frozenset[str] = frozenset(),
    internal_date: datetime | None = None,
    in_sent_folder: bool = False,
    gm_msgid: int | None = None,
    gm_thrid: int | None = None,
) -> MessageRecord:
    """record_from_headers through the fast parser. Never raises for malformed input."""
    p = parse_header_block_fast(raw)
    return MessageRecord(
        account=account,
        folder=folder,
        uid=uid,
        message_id=p.message_id,
        date=p.date,
        from_=p.from_,
        to=p.to,
        cc=p.cc,
        bcc=p.bcc,
        in_reply_to=p.in_reply_to,
        references=p.references,
        subject=p.subject,
        list_id=p.list_id,
        list_post=p.list_post,
        list_unsubscribe=p.list_unsubscribe,
        precedence=p.precedence,
        auto_submitted=p.auto_submitted,
        flags=flags,
        internal_date=internal_date,
        gm_msgid=gm_msgid,
        gm_thrid=gm_thrid,
        in_sent_folder=in_sent_folder,
        parse_errors=tuple(p.errors),
    )
