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
                # decode_header hands back the plain parts beside encoded words as
                # raw-unicode-escape bytes: decoding them as ASCII would lose raw UTF-8
                parts.append(chunk.decode(charset or "raw-unicode-escape", "replace"))
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


_LONE_CR = re.compile(rb"\r(?!\n)")


def _normalize_line_ends(raw: bytes) -> bytes:
    """CR-only files (old Mac mail) get LF line ends; a lone CR inside a value
    becomes a space, since email's parser would end the header there and lose
    every later field."""
    if b"\r" not in raw:
        return raw
    if b"\n" not in raw:
        return raw.replace(b"\r", b"\n")
    return _LONE_CR.sub(b" ", raw)


def parse_header_block(raw: bytes) -> ParsedHeaders:
    """Parse one header block. Never raises for malformed input."""
    out = ParsedHeaders()
    if len(raw) > _MAX_HEADER_BYTES:
        # a 200 KB header exists in the wild; keep the start, where the fields are
        raw = raw[:_MAX_HEADER_BYTES]
        out.errors.append("size")
    raw = _normalize_line_ends(raw)
    try:
        msg = _parser.parsebytes(raw)
    except Exception:  # the parser is lenient; this is belt and braces
        log.warning("unparseable header block (%d bytes)", len(raw), exc_info=True)
        out.errors.append("headers")
        out.message_id = "kk-" + hashlib.sha256(raw).hexdigest()[:32]
        return out

    # Raw values: compat32's get() wraps a value holding 8-bit bytes in an
    # "unknown-8bit" Header, which turns raw UTF-8 (RFC 6532) into U+FFFD before
    # _fix_surrogates could decode it.
    values: dict[str, list[str]] = {}
    for hname, hvalue in msg.raw_items():
        values.setdefault(hname.lower(), []).append(str(hvalue))

    def first(name: str) -> str | None:
        found = values.get(name.lower())
        return found[0] if found else None

    def all_of(name: str) -> list[str]:
        return values.get(name.lower(), [])

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
        setattr(out, attr, parse_addresses(all_of(name)))

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
        out.list_unsubscribe = first("List-Unsubscribe") is not None

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


# One scan validates and splits a block: each match is a field line with its
# folded continuations, the empty line that ends the block, or (last group)
# any other character, which means the block is not plain "Name: value"
# lines (a Unix "From " line, a stray line, bare CR line ends, an empty line
# in the middle) and goes to the full parser.
_BLOCK_TOKEN_RE = re.compile(
    r"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)\r?\n"
    r"|\r?\n\Z"
    r"|(.)",
    re.DOTALL,
)
# field name as written -> the key of a wanted field, or "" (not wanted)
_key_of: dict[str, str] = {}


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
    found: dict[str, list[str]] = {}
    key_of = _key_of
    for name, value, stray in _BLOCK_TOKEN_RE.findall(text):
        if stray:
            return None
        if not name:  # the empty line at the end
            continue
        key = key_of.get(name)
        if key is None:
            key = name.lower()
            if key not in _WANTED:
                key = ""
            if len(key_of) < 2048:
                key_of[name] = key
        if key:
            # compat32 keeps the folding line breaks inside a value
            if key in found:
                found[key].append(value)
            else:
                found[key] = [value]
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


_utc_shift: dict[str, timedelta] = {}


def _date_ascii(value: str | None) -> datetime | None:
    """parse_date_fast for ASCII text; the common layout without a regex.

    ``[Ddd, ]D[D] Mon YYYY hh:mm:ss +zzzz`` with single spaces, read by
    position from the end; any other text goes to parse_date_fast.
    """
    if (
        value
        and 25 <= len(value) <= 31
        and value[-6] == " "
        and value[-15] == " "
        and value[-20] == " "
        and value[-24] == " "
        and value[-12] == ":"
        and value[-9] == ":"
        and value[-5] in "+-"
    ):
        day = value[:-24]
        if len(day) > 2:
            if day[3:5] != ", " or not day[:3].isalpha():
                return parse_date_fast(value)
            day = day[5:]
        digits = value[-19:-15] + value[-14:-12] + value[-11:-9] + value[-8:-6] + value[-4:]
        month = _MONTH_NUM.get(value[-23:-20].lower())
        if 1 <= len(day) <= 2 and day.isdigit() and digits.isdigit() and month is not None:
            hh, mm, ss = int(value[-14:-12]), int(value[-11:-9]), int(value[-8:-6])
            if hh <= 23 and mm <= 59 and ss <= 59:
                zone = value[-5:]
                shift = _utc_shift.get(zone)
                if shift is None:
                    minutes = int(zone[1:3]) * 60 + int(zone[3:5])
                    shift = timedelta(minutes=-minutes if zone[0] == "+" else minutes)
                    if len(_utc_shift) < 512:
                        _utc_shift[zone] = shift
                dt = datetime(int(value[-19:-15]), month, int(day), hh, mm, ss, tzinfo=UTC)
                return dt + shift if shift else dt
    return parse_date_fast(value)


def _name_fast(name: str) -> str:
    if "=?" in name:
        return decode_words(name).strip('"').strip()
    return " ".join(name.split()).strip('"').strip()


# Caches of the address fast path. A mailbox (one comma-separated part) maps
# to its Address, or to None when it is not a simple shape (the whole header
# then goes to the general parser); a one-line address header maps to its
# result, so a repeated From/To value costs a dict lookup and yields the same
# tuple (store.py caches its JSON by identity). Both are bounded: cleared
# when full.
_CACHE_MAX = 20000
_mailbox_cache: dict[str, Address | None] = {}
_addr_header_cache: dict[str, tuple[Address, ...]] = {}


def _mailbox(part: str) -> Address | None:
    m = _SIMPLE_MAILBOX_RE.fullmatch(part)
    if m is None:
        return None
    name, email = m.group(1), m.group(2) or m.group(3) or m.group(4)
    return Address(name=_name_fast(name) if name else "", email=email.lower())


def _parse_addresses_simple(values: list[str]) -> tuple[Address, ...]:
    out: list[Address] = []
    cache = _mailbox_cache
    for folded in values:
        value = folded.replace("\r", "").replace("\n", "") if "\n" in folded else folded
        for part in value.split(","):
            if part in cache:
                addr = cache[part]
            else:
                if not part.strip():
                    continue
                addr = _mailbox(part)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[part] = addr
            if addr is None:
                return parse_addresses(values)
            out.append(addr)
            if len(out) >= MAX_ADDRESSES:
                return tuple(out)
    return tuple(out)


def parse_addresses_fast(values: list[str]) -> tuple[Address, ...]:
    """parse_addresses for the common simple shapes; the general parser otherwise."""
    if len(values) != 1:
        return _parse_addresses_simple(values)
    value = values[0]
    hit = _addr_header_cache.get(value)
    if hit is None:
        hit = _parse_addresses_simple(values)
        if len(_addr_header_cache) >= _CACHE_MAX:
            _addr_header_cache.clear()
        _addr_header_cache[value] = hit
    return hit


# what the fast parser gives for one block, in MessageRecord's field order
_FastFields = tuple[
    str,  # message_id
    "datetime | None",  # date
    tuple[Address, ...],  # from_
    tuple[Address, ...],  # to
    tuple[Address, ...],  # cc
    tuple[Address, ...],  # bcc
    "str | None",  # in_reply_to
    tuple[str, ...],  # references
    str,  # subject
    "str | None",  # list_id
    "str | None",  # list_post
    bool,  # list_unsubscribe
    "str | None",  # precedence
    "str | None",  # auto_submitted
    tuple[str, ...],  # errors
]


def _msgid_ascii(value: str | None) -> str | None:
    """normalize_message_id for ASCII text (no surrogates to fix)."""
    if not value:
        return None
    m = _MSGID_RE.search(value)
    if m is not None:
        token = m.group(1)
    else:
        stripped = value.strip()
        token = stripped.split()[0] if stripped else ""
    token = token.strip("<>").strip().lower()
    return token or None


def _fast_fields(raw: bytes) -> _FastFields | None:
    """The fields of an ordinary (ASCII, plain-lines) block; None: use the full parser.

    The same per-field error boundaries as parse_header_block. Values are
    ASCII here, so the surrogate fixing of the general helpers is skipped.
    """
    if len(raw) > _MAX_HEADER_BYTES:
        return None
    try:
        fields = split_header_fields(raw)
    except Exception:
        fields = None
    if fields is None:
        return None
    get = fields.get
    errors: list[str] = []
    message_id = ""
    date = None
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to = None
    references: tuple[str, ...] = ()
    subject = ""
    list_id = list_post = precedence = auto_submitted = None
    list_unsubscribe = False

    v = get("message-id")
    if v is not None:
        try:
            message_id = _msgid_ascii(v[0]) or ""
        except Exception:
            errors.append("message-id")
    v = get("date")
    if v is not None:
        try:
            date = _date_ascii(v[0])
        except Exception:
            errors.append("date")
    v = get("from")
    if v is not None:
        try:
            from_ = parse_addresses_fast(v)
        except Exception:
            errors.append("from")
    v = get("to")
    if v is not None:
        try:
            to = parse_addresses_fast(v)
        except Exception:
            errors.append("to")
    v = get("cc")
    if v is not None:
        try:
            cc = parse_addresses_fast(v)
        except Exception:
            errors.append("cc")
    v = get("bcc")
    if v is not None:
        try:
            bcc = parse_addresses_fast(v)
        except Exception:
            errors.append("bcc")
    v = get("in-reply-to")
    if v is not None:
        try:
            in_reply_to = _msgid_ascii(v[0])
        except Exception:
            errors.append("in-reply-to")
    v = get("references")
    if v is not None:
        try:
            # lower-casing ASCII first changes none of the brackets or spaces
            refs = _MSGID_RE.findall(v[0].lower()) if v[0] else []
            if len(refs) > 1:
                refs = list(dict.fromkeys(refs))
            references = tuple(refs[-MAX_REFERENCES:])
        except Exception:
            errors.append("references")
    v = get("subject")
    if v is not None:
        try:
            s = v[0]
            if s:
                subject = (" ".join(s.split()) if "=?" not in s else decode_words(s))[:500]
        except Exception:
            errors.append("subject")
    if "list-id" in fields or "list-post" in fields or "list-unsubscribe" in fields:
        try:
            lid = fields["list-id"][0] if "list-id" in fields else None
            list_id = decode_words(lid)[:300] if lid else None
            lpost = fields["list-post"][0] if "list-post" in fields else None
            list_post = lpost.strip()[:300] if lpost else None
            list_unsubscribe = "list-unsubscribe" in fields
        except Exception:
            errors.append("list")
    if "precedence" in fields or "auto-submitted" in fields:
        try:
            p = fields["precedence"][0] if "precedence" in fields else None
            precedence = p.strip().lower()[:40] if p else None
            a = fields["auto-submitted"][0] if "auto-submitted" in fields else None
            auto_submitted = a.strip().lower().split(";")[0].strip()[:40] if a else None
        except Exception:
            errors.append("precedence")
    if not message_id:
        message_id = _synthetic_from_fields(fields, raw)
    return (
        message_id,
        date,
        from_,
        to,
        cc,
        bcc,
        in_reply_to,
        references,
        subject,
        list_id,
        list_post,
        list_unsubscribe,
        precedence,
        auto_submitted,
        tuple(errors),
    )


def parse_header_block_fast(raw: bytes) -> ParsedHeaders:
    """parse_header_block's result, faster for ordinary header blocks. Never raises."""
    f = _fast_fields(raw)
    if f is None:
        return parse_header_block(raw)
    return ParsedHeaders(*f[:14], errors=list(f[14]))


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
    f = _fast_fields(raw)
    if f is None:
        return record_from_headers(
            raw,
            account=account,
            folder=folder,
            uid=uid,
            flags=flags,
            internal_date=internal_date,
            in_sent_folder=in_sent_folder,
            gm_msgid=gm_msgid,
            gm_thrid=gm_thrid,
        )
    # positional, in MessageRecord's field order (faster than keywords)
    return MessageRecord(
        account,
        folder,
        uid,
        *f[:14],
        flags,
        internal_date,
        gm_msgid,
        gm_thrid,
        in_sent_folder,
        f[14],
    )
