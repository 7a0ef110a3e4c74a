"""Parse a raw header block into the fields of a :class:`MessageRecord`.

One parser for every source (IMAP, Maildir, mbox): :func:`parse_header_block`
splits the block into its fields with one regular expression over the whole
header grammar, then reads each wanted field inside its own error boundary: a
malformed header costs that field (named in ``errors``), never the message.

Splitting follows ``email``'s compat32 parser, which kithkeep used before
(``policy.default`` is about twenty times slower and raises on some
real-world headers, for example ``To: unlisted-recipients:;`` on Python
3.11): a field runs on over lines that start with a space or a tab, its value
keeps the folding line breaks; a Unix ``From `` line, a line that starts with
a colon and a continuation line without a field are skipped; an empty line,
or any other line, ends the block. Two things are done on purpose that
compat32 did not do: the block is read as UTF-8 (RFC 6532) with replacement
of invalid bytes, once, instead of per value, and lone CRs are made line ends
(a file with CR line ends) or spaces (a CR inside a value), because email's
parser ended the header at such a CR and lost every later field.

Every limit on a field is named once here (``MAX_*``); the store's columns
are at least this wide.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.header import decode_header
from email.utils import getaddresses, parsedate_to_datetime
from typing import NamedTuple

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

# ------------------------------------------------------------------ limits
# A 200 KB header exists in the wild; the fields are at its start. Sources
# that read files read no more than this of a message (plus one line).
MAX_HEADER_BYTES = 256 * 1024
# References of a long thread can hold hundreds of ids; the newest matter most.
MAX_REFERENCES = 50
# mailboxes kept per address header (To of a mass mailing)
MAX_ADDRESSES = 500
# a Message-ID, In-Reply-To or References entry (the store's id columns)
MAX_MESSAGE_ID = 500
MAX_SUBJECT = 500
# List-Id and List-Post
MAX_LIST_HEADER = 300
# Precedence and Auto-Submitted (keywords)
MAX_BULK_KEYWORD = 40
# entries of each value cache below; a full cache is emptied
MAX_CACHE = 20000

_MSGID_RE = re.compile(r"<([^<>\s]+)>")


class ParsedHeaders(NamedTuple):
    """The fields of one header block; ``errors`` names the fields lost."""

    message_id: str
    date: datetime | None
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    list_id: str | None
    list_post: str | None
    list_unsubscribe: bool
    precedence: str | None
    auto_submitted: str | None
    errors: tuple[str, ...]


# ------------------------------------------------------------ one field each


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, folding whitespace to single spaces.

    Unknown charsets degrade to replacement characters.
    """
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


# An address list whose top level holds only mailboxes separated by commas
# (names as atoms or quoted strings, addresses bare or in angle brackets; no
# comments, groups, routes, domain literals or escapes outside quotes) is
# cached mailbox by mailbox: email.utils reads such a list as the mailboxes
# of its comma-separated parts, one after the other. Any other list is cached
# whole. Either way email.utils' parser reads it (tests/unit/test_headers.py
# holds the two to the same result).
_PLAIN = r'[^,"()\\:;<>\[\]]'
_QUOTED = r'"(?:[^"\\\r]|\\[^\r])*"'
_ANGLE = r'<[^,"()\\:;<>\[\]\r\n]*>'
_PLAIN_LIST_RE = re.compile(rf"(?:{_PLAIN}|{_QUOTED}|{_ANGLE}|,)*")
_LIST_PART_RE = re.compile(rf"(?:{_PLAIN}|{_QUOTED}|{_ANGLE})+")
_list_cache: dict[str, tuple[Address, ...]] = {}
_part_cache: dict[str, tuple[Address, ...]] = {}


def _mailboxes(text: str) -> tuple[Address, ...]:
    """The mailboxes email.utils finds in ``text``, without groups and address-less entries."""
    out: list[Address] = []
    for name, raw_email in getaddresses([text]):
        email = raw_email.strip().strip("<>").strip().lower()
        if "@" not in email or " " in email:
            continue
        out.append(Address(name=decode_words(name).strip('"').strip(), email=email))
    return tuple(out)


def parse_addresses(values: Sequence[str]) -> tuple[Address, ...]:
    """Mailboxes of one address header (all its occurrences), at most MAX_ADDRESSES.

    A repeated value gives the same tuple object (the store caches its
    encoding by identity).
    """
    text = values[0] if len(values) == 1 else ", ".join(values)
    hit = _list_cache.get(text)
    if hit is not None:
        return hit
    if _PLAIN_LIST_RE.fullmatch(text):
        out: list[Address] = []
        for part in _LIST_PART_RE.findall(text):
            found = _part_cache.get(part)
            if found is None:
                found = _mailboxes(part)
                if len(_part_cache) >= MAX_CACHE:
                    _part_cache.clear()
                _part_cache[part] = found
            out.extend(found)
        result = tuple(out[:MAX_ADDRESSES])
    else:
        result = _mailboxes(text)[:MAX_ADDRESSES]
    if len(_list_cache) >= MAX_CACHE:
        _list_cache.clear()
    _list_cache[text] = result
    return result


def normalize_message_id(value: str | None) -> str | None:
    """``<Abc@Host>`` -> ``abc@host``; the first id when several are given."""
    if not value:
        return None
    m = _MSGID_RE.search(value)
    if m is not None:
        token = m.group(1)
    else:
        stripped = value.strip()
        token = stripped.split()[0] if stripped else ""
    token = token.strip("<>").strip().lower()[:MAX_MESSAGE_ID]
    return token or None


def parse_references(value: str | None) -> tuple[str, ...]:
    """The ids of a References value, oldest first, without repeats (loops), the newest kept."""
    if not value:
        return ()
    ids = [m.lower()[:MAX_MESSAGE_ID] for m in _MSGID_RE.findall(value)]
    if len(ids) > 1:
        ids = list(dict.fromkeys(ids))
    return tuple(ids[-MAX_REFERENCES:])


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date (obsolete forms included) as aware UTC; raises ValueError when malformed.

    The one date parser of kithkeep: the Date header of every source and
    IMAP's INTERNALDATE (``17-Jul-1996 02:44:25 -0700``, the obsolete RFC 850
    form, which imapclient reads with the same email.utils function). A date
    without a zone, or with ``-0000``, is taken as UTC.
    """
    if not value:
        return None
    dt = parsedate_to_datetime(value.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _synthetic_message_id(fields: dict[str, list[str]], raw: bytes) -> str:
    """A stable id for a message without Message-ID, from fields every copy shares."""
    try:
        h = hashlib.sha256()
        for name in ("from", "to", "cc", "date", "subject"):
            for v in fields.get(name) or ():
                h.update(v.strip().encode("utf-8", "replace"))
            h.update(b"\0")
        return "kk-" + h.hexdigest()[:32]
    except Exception:  # belt and braces: hashing text does not fail
        return "kk-" + hashlib.sha256(raw).hexdigest()[:32]


# ---------------------------------------------------------------- the block

_WANTED = frozenset(f.lower() for f in HEADER_FIELDS)
# One match per line of the block (the block always ends with a line end):
# 1, 2: a field name and its value with the folded lines that continue it;
# (no group) a skipped line: a Unix "From " line, a line starting with a
# colon, a continuation line that continues no field;
# 3: the end: the empty line, or a line that is none of the above.
_LINE_RE = re.compile(
    r"([!-9;-~]+):[ \t]*([^\n]*\n(?:[ \t][^\n]*\n)*)"
    r"|(?:From |:|[ \t])[^\n]*\n"
    r"|([^\n]*\n)"
)
_LONE_CR = re.compile(rb"\r(?!\n)")
# field name as written -> its lower-case key when wanted, else ""
_name_key: dict[str, str] = {}


def _split(raw: bytes) -> dict[str, list[str]]:
    """The values of the wanted fields by lower-case name, in order, as compat32 gives them."""
    if b"\r" in raw:
        # CR-only files (old Mac mail) get LF line ends; a lone CR inside a
        # value becomes a space
        raw = raw.replace(b"\r", b"\n") if b"\n" not in raw else _LONE_CR.sub(b" ", raw)
    text = raw.decode("utf-8", "replace")
    if not text.endswith("\n"):
        text += "\n"
    found: dict[str, list[str]] = {}
    for name, folded, end in _LINE_RE.findall(text):
        if end:
            break
        if not name:
            continue
        key = _name_key.get(name)
        if key is None:
            key = name.lower()
            if key not in _WANTED:
                key = ""
            if len(_name_key) < MAX_CACHE:
                _name_key[name] = key
        if key:
            # the line end of the last line is not part of the value
            value = folded.rstrip("\r\n")
            if key in found:
                found[key].append(value)
            else:
                found[key] = [value]
    return found


def parse_header_block(raw: bytes) -> ParsedHeaders:
    """Parse one header block. Never raises for malformed input."""
    errors: list[str] = []
    if len(raw) > MAX_HEADER_BYTES:
        raw = raw[:MAX_HEADER_BYTES]
        errors.append("size")
    try:
        fields = _split(raw)
    except Exception:  # belt and braces: a regular expression over text does not raise
        log.warning("unsplittable header block (%d bytes)", len(raw), exc_info=True)
        fields = {}
        errors.append("headers")
    get = fields.get

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

    if (v := get("message-id")) is not None:
        try:
            message_id = normalize_message_id(v[0]) or ""
        except Exception:
            errors.append("message-id")
    if (v := get("date")) is not None:
        try:
            date = parse_date(v[0])
        except Exception:
            errors.append("date")
    if (v := get("from")) is not None:
        try:
            from_ = parse_addresses(v)
        except Exception:
            errors.append("from")
    if (v := get("to")) is not None:
        try:
            to = parse_addresses(v)
        except Exception:
            errors.append("to")
    if (v := get("cc")) is not None:
        try:
            cc = parse_addresses(v)
        except Exception:
            errors.append("cc")
    if (v := get("bcc")) is not None:
        try:
            bcc = parse_addresses(v)
        except Exception:
            errors.append("bcc")
    if (v := get("in-reply-to")) is not None:
        try:
            in_reply_to = normalize_message_id(v[0])
        except Exception:
            errors.append("in-reply-to")
    if (v := get("references")) is not None:
        try:
            references = parse_references(v[0])
        except Exception:
            errors.append("references")
    if (v := get("subject")) is not None:
        try:
            subject = decode_words(v[0])[:MAX_SUBJECT]
        except Exception:
            errors.append("subject")
    if "list-id" in fields or "list-post" in fields or "list-unsubscribe" in fields:
        try:
            lid = fields["list-id"][0] if "list-id" in fields else None
            list_id = decode_words(lid)[:MAX_LIST_HEADER] if lid else None
            lpost = fields["list-post"][0] if "list-post" in fields else None
            list_post = lpost.strip()[:MAX_LIST_HEADER] if lpost else None
            list_unsubscribe = "list-unsubscribe" in fields
        except Exception:
            errors.append("list")
    if "precedence" in fields or "auto-submitted" in fields:
        try:
            p = fields["precedence"][0] if "precedence" in fields else None
            precedence = p.strip().lower()[:MAX_BULK_KEYWORD] if p else None
            a = fields["auto-submitted"][0] if "auto-submitted" in fields else None
            if a:
                auto_submitted = a.strip().lower().split(";")[0].strip()[:MAX_BULK_KEYWORD]
        except Exception:
            errors.append("precedence")
    if not message_id:
        message_id = _synthetic_message_id(fields, raw)
    return ParsedHeaders(
        message_id=message_id,
        date=date,
        from_=from_,
        to=to,
        cc=cc,
        bcc=bcc,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        list_id=list_id,
        list_post=list_post,
        list_unsubscribe=list_unsubscribe,
        precedence=precedence,
        auto_submitted=auto_submitted,
        errors=tuple(errors),
    )


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
        parse_errors=p.errors,
    )


# ------------------------------------------------------------ message files

_BLOCK_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def header_block(raw: bytes) -> bytes:
    """The header part of a raw message (up to the first empty line)."""
    for sep in _BLOCK_ENDS:
        idx = raw.find(sep)
        if idx != -1:
            return raw[: idx + len(sep)]
    return raw


def read_header_block(path: str) -> bytes:
    """The header block of a message file, reading a chunk past MAX_HEADER_BYTES at most.

    A block longer than MAX_HEADER_BYTES comes back longer than that, so the
    parser records that it was cut.
    """
    buf = b""
    with open(path, "rb") as fh:
        while len(buf) <= MAX_HEADER_BYTES:
            chunk = fh.read(65536)
            if not chunk:
                break
            buf += chunk
            for sep in _BLOCK_ENDS:
                idx = buf.find(sep)
                if idx != -1:
                    return buf[: idx + len(sep)]
    return buf
