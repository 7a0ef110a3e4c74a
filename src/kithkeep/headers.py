"""Parse a raw header block into the fields of a :class:`MessageRecord`.

One parser for every source (IMAP, Maildir, mbox): :func:`record_from_headers`
splits the block into its fields with one regular expression over the whole
header grammar, then reads each wanted field inside its own error boundary: a
malformed header costs that field (named in ``parse_errors``), never the
message.

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
from datetime import UTC, datetime, timedelta
from email.header import decode_header
from email.utils import getaddresses
from operator import itemgetter

from kithkeep.records import Address, MessageRecord

log = logging.getLogger(__name__)

# The fields that carry what machines write, read into signal words (see SIGNALS).
SIGNAL_FIELDS: tuple[str, ...] = (
    "Return-Path",
    "Content-Type",
    "Content-Class",
    "Feedback-ID",
    "List-Unsubscribe-Post",
    "X-Auto-Response-Suppress",
    "X-Autoreply",
    "X-Autorespond",
)
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
    *SIGNAL_FIELDS,
)

# The signal words the header parser reads from those fields, kept with each
# message (MessageRecord.signals). What they mean to the analysis is
# kithkeep.model: the first four mark a message that is not conversation (a
# report, an auto-reply, a calendar message); the others mark a sender that
# sends in bulk when most of its messages carry one.
SIGNALS: dict[str, str] = {
    "report": "a delivery or read report (Content-Type: multipart/report)",
    "autoreply": "an auto-reply header (X-Autoreply, X-Autorespond)",
    "null-sender": "an empty return path (Return-Path: <>), as bounces and auto-replies have",
    "calendar": "a calendar message (Content-Class: urn:content-classes:calendarmessage, "
    "Content-Type: text/calendar)",
    "unsubscribe-post": "a one-click unsubscribe header (List-Unsubscribe-Post)",
    "feedback-id": "a bulk sender's feedback-loop id (Feedback-ID)",
    "suppress-autoreply": "a request for no auto-replies (X-Auto-Response-Suppress)",
}

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


_MONTHS: dict[str, int] = {}
for _i, _name in enumerate(
    (
        *("january", "february", "march", "april", "may", "june", "july"),
        *("august", "september", "october", "november", "december"),
    ),
    1,
):
    _MONTHS[_name] = _MONTHS[_name[:3]] = _i
# RFC 5322's obsolete zone names (hours east of UTC)
_ZONE_NAMES = dict.fromkeys(("UT", "UTC", "GMT", "Z"), 0) | {
    "AST": -4,
    "ADT": -3,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}


def _time(n: int) -> str:
    """hh:mm[:ss] or hh.mm[.ss], its groups named h<n>, m<n>, s<n>, dm<n>, ds<n>."""
    colons = rf"(?::(?P<m{n}>\d+)(?::(?P<s{n}>\d+))?"
    dots = rf"\.(?P<dm{n}>\d+)(?:\.(?P<ds{n}>\d+))?)"
    return rf"(?P<h{n}>\d+)" + colons + "|" + dots


_DATE_RE = re.compile(
    # a day of the week: a first word ended by a comma, or a day's abbreviation
    r"\s*(?:[^\s,]*,\s*|(?i:mon|tue|wed|thu|fri|sat|sun)\s+)?(?:"
    # 1. RFC 850, and IMAP's INTERNALDATE: dd-Mon-yy time zone, and nothing after
    r"(?P<d1>\d+)-(?P<mon1>[A-Za-z]+)-(?P<y1>\d+)\s+" + _time(1) + r",?\s+(?P<z1>\S+)\s*\Z"
    # 2. RFC 5322: day month year time [zone] [anything]
    r"|(?P<d2>\d+),?\s+(?P<mon2>[A-Za-z]+)\s+(?P<y2>\d+),?\s+"
    + _time(2)
    + r",?(?:(?=[+-])|\s+|\Z)(?P<z2>\S*)"
    # 3, 4. month first: month day year time, or month day time year (asctime)
    r"|(?P<mon3>[A-Za-z]+)\s+(?P<d3>\d+),?\s+(?:(?P<y3>\d+),?\s+"
    + _time(3)
    + r"|"
    + _time(4)
    + r",?\s+(?P<y4>\d+)),?(?:(?=[+-])|\s+|\Z)(?P<z3>\S*))"
)
# each form's groups (day, month, year, hh, mm, ss, dotted mm, dotted ss, zone), by the
# zone group, which is the form's last: Match.lastindex tells which form matched
_FORMS = {
    _DATE_RE.groupindex[f"z{d}"]: itemgetter(
        *(
            _DATE_RE.groupindex[name] - 1
            for name in (
                *(f"d{d}", f"mon{d}", f"y{n}"),
                *(f"h{n}", f"m{n}", f"s{n}", f"dm{n}", f"ds{n}"),
                f"z{d}",
            )
        )
    )
    for n, d in ((1, 1), (2, 2), (3, 3))
}
# forms 3 and 4 share the zone group: the year tells them apart
_Y3, _Z3 = _DATE_RE.groupindex["y3"] - 1, _DATE_RE.groupindex["z3"]
_FORM4 = itemgetter(
    *(
        _DATE_RE.groupindex[name] - 1
        for name in ("d3", "mon3", "y4", "h4", "m4", "s4", "dm4", "ds4", "z3")
    )
)
_zone_shift: dict[str, timedelta | None] = {}


def _shift(zone: str) -> timedelta | None:
    """What to add to a date in ``zone`` to make it UTC; None: no zone (UTC).

    As email.utils reads zones: a number is [+-]hhmm; a name of RFC 5322's;
    anything else, and -0000 (RFC 5322: the zone is unknown), is no zone.
    """
    if zone in _zone_shift:
        return _zone_shift[zone]
    hours = _ZONE_NAMES.get(zone.upper())
    if hours is not None:
        minutes = hours * 60
    elif zone.lstrip("+-").isdigit() and int(zone) != 0:
        number = int(zone)
        minutes = abs(number) // 100 * 60 + abs(number) % 100
        minutes = -minutes if number < 0 else minutes
    else:
        minutes = 0
    if abs(minutes) >= 24 * 60:
        raise ValueError(f"no such zone: {zone}")
    shift = timedelta(minutes=-minutes) if minutes else None
    if len(_zone_shift) < 1000:
        _zone_shift[zone] = shift
    return shift


def parse_date(value: str | None) -> datetime | None:
    """A date as aware UTC; raises ValueError when there is none or it does not exist.

    The one date parser of kithkeep, for the Date header of every source
    and for IMAP's INTERNALDATE: one regular expression over the forms mail
    carries. RFC 5322's date-time with its obsolete syntax (day of the week
    optional, two-digit years, seconds optional, zone names, a comment or
    anything after the zone), RFC 850's ``17-Jul-1996 02:44:25 -0700``
    (INTERNALDATE's form), and the month-first forms of asctime and some
    mailers (``Mon Jan  1 10:00:00 2024``, ``April 09, 2003 9:00 AM``);
    times with dots (``16.03.09``). Zones are read as email.utils reads
    them (see ``_shift``); a date without one is taken as UTC. On the
    dates of the corpora it gives what email.utils gives, date for date,
    and so does imapclient's reading of INTERNALDATE
    (tests/unit/test_imap_response.py).
    """
    if not value:
        return None
    m = _DATE_RE.match(value)
    if m is None:
        raise ValueError("not a date")
    g = m.groups()
    form = _FORM4 if m.lastindex == _Z3 and g[_Y3] is None else _FORMS[m.lastindex or 0]
    day, month, year, hh, mm, ss, dot_mm, dot_ss, zone = form(g)
    number = _MONTHS.get(month.lower())
    if number is None:
        raise ValueError(f"no such month: {month}")
    y = int(year)
    if y < 100:  # RFC 5322's obsolete two-digit years
        y += 1900 if y > 68 else 2000
    if mm is None:
        mm, ss = dot_mm, dot_ss
    assert mm is not None  # one of the two time forms matched
    dt = datetime(y, number, int(day), int(hh), int(mm), int(ss or 0), tzinfo=UTC)
    shift = _shift(zone) if zone else None
    return dt + shift if shift is not None else dt


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
    r"([!-9;-~]+):[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)\r?\n"
    r"|(?:From |:|[ \t])[^\n]*\n"
    r"|([^\n]*\n)"
)
_LONE_CR = re.compile(rb"\r(?!\n)")
# field name as written -> its lower-case key when wanted, else ""
_name_key: dict[str, str] = {}


def _split(raw: bytes) -> dict[str, list[str]]:
    """The values of the wanted fields by lower-case name, in order, as compat32 gives them."""
    crs = raw.count(b"\r")
    if crs and crs != raw.count(b"\r\n"):
        # CR-only files (old Mac mail) get LF line ends; a lone CR inside a
        # value becomes a space
        raw = raw.replace(b"\r", b"\n") if b"\n" not in raw else _LONE_CR.sub(b" ", raw)
    text = raw.decode("utf-8", "replace")
    if not text.endswith("\n"):
        text += "\n"
    found: dict[str, list[str]] = {}
    for name, value, end in _LINE_RE.findall(text):
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
            if key in found:
                found[key].append(value)
            else:
                found[key] = [value]
    return found


_REPORT_TYPES = ("multipart/report", "message/delivery-status", "message/disposition-notification")


def signals_of(fields: dict[str, list[str]]) -> frozenset[str]:
    """The SIGNALS words of a header block's fields (lower-case names)."""
    found: list[str] = []
    get = fields.get
    if (v := get("content-type")) is not None:
        kind = v[0].strip().lower()
        if kind.startswith(_REPORT_TYPES):
            found.append("report")
        elif kind.startswith("text/calendar"):
            found.append("calendar")
    if (v := get("content-class")) is not None and "calendarmessage" in v[0].lower():
        found.append("calendar")
    if "x-autoreply" in fields or "x-autorespond" in fields:
        found.append("autoreply")
    if (v := get("return-path")) is not None and v[0].replace(" ", "") in ("<>", "<<>>"):
        found.append("null-sender")
    if "list-unsubscribe-post" in fields:
        found.append("unsubscribe-post")
    if "feedback-id" in fields:
        found.append("feedback-id")
    if (v := get("x-auto-response-suppress")) is not None and v[0].strip().lower() != "none":
        found.append("suppress-autoreply")
    return frozenset(found)


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
    """The record of one message from its raw header block. Never raises for malformed input.

    The header fields come from ``raw`` (the fields it could not read are
    named in ``parse_errors``); the rest is what the source knows.
    """
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
    try:
        signals = signals_of(fields)
    except Exception:  # belt and braces, as above
        signals = frozenset()
        errors.append("signals")
    if not message_id:
        message_id = _synthetic_message_id(fields, raw)
    return MessageRecord(
        account=account,
        folder=folder,
        uid=uid,
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
        flags=flags,
        internal_date=internal_date,
        gm_msgid=gm_msgid,
        gm_thrid=gm_thrid,
        in_sent_folder=in_sent_folder,
        signals=signals,
        parse_errors=tuple(errors),
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
