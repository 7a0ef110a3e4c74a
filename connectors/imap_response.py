"""The parser of the IMAP bulk reader: one FETCH response to a :class:`FetchItem`.

The bulk reader (imap_fetch.RawSession) cuts the stream into complete
responses; this module reads one, by the grammar of RFC 3501 (``"*" SP
number SP "FETCH" SP "(" att *(SP att) ")" CRLF``, an att being a name, an
optional ``[section]<origin>``, and a value: an atom, a quoted string, a
literal or a parenthesized list of values). Items are read one after the
other, so an item name inside FLAGS or inside a section name is never taken
for an item. Names are case-insensitive; a repeated item counts once, the
last.

Where imapclient's parser (``imapclient.response_parser``, on what imaplib
reads) accepts a response too, both give the same values:
tests/unit/test_imap_response.py fuzzes the two against each other. This one
is stricter where RFC 3501 is: ``%``, control characters and a bare CR
(which imapclient's lexer takes for tokens or spaces), a UID or MODSEQ that
is not a number, a flag that is not an atom, an INTERNALDATE that is not a
quoted string or NIL make a response malformed. The values of items it does
not read it only skips, so a string that runs into an atom there (``a"b"``)
does not stop it. The one difference in values: an INTERNALDATE that is no
date by the grammar of headers.parse_date is none to kithkeep, where the
email.utils function imapclient uses sometimes guesses one.

What kithkeep reads: UID, FLAGS (without the session flag ``\\Recent``),
INTERNALDATE (through the one date parser, headers.parse_date, as
imapclient does through email.utils), MODSEQ, X-GM-MSGID, X-GM-THRID and
the value of a ``BODY[HEADER...]`` section. Other items are read and
skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from kithkeep.headers import parse_date


class ProtocolError(Exception):
    """A response that breaks the IMAP grammar."""


@dataclass(slots=True)
class FetchItem:
    """One message of a FETCH response; a field is None when its item was not sent."""

    seq: int
    uid: int | None = None
    flags: frozenset[str] | None = None
    internal_date: datetime | None = None
    modseq: int | None = None
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    header: bytes | None = None


# Flags that describe this session, not the message.
_SESSION_FLAGS = frozenset({"\\Recent"})
# the characters of an atom: anything but SP, CTL and the specials of RFC 3501
# (imapclient's lexer makes single tokens of % and of control characters)
_ATOM = rb'[^\x00-\x20()%"\[\]{}\x7f]'
_QUOTED_TEXT = rb'(?:[^"\\\r\n]|\\[^\r\n])*'
_SECTION = rb"\[[^\]\r\n]*\](?:<\d+>)?"
_HEAD_RE = re.compile(rb"\* (\d+) FETCH \(")
# One item per match, each item kithkeep reads an alternative of its own, so
# that Match.lastindex (the last group that took part) tells which it was:
# its value is in that group. A value of another form than the item's makes
# no alternative match: the response is malformed. Any other item is read
# by the grammar of values (atom, quoted string, literal, list) and skipped.
_ITEM_RE = re.compile(
    rb"[ \t]*(?:"
    rb"(?i:UID)[ \t]+(?P<uid>\d+)"
    rb"|(?i:FLAGS)[ \t]+\((?P<flags>(?:" + _ATOM + rb"|[ \t])*)\)"
    rb'|(?i:INTERNALDATE)[ \t]+(?:"(?P<idate>' + _QUOTED_TEXT + rb')"|(?P<idate_nil>NIL))'
    rb"|(?i:BODY\[HEADER)[^\]\r\n]*\](?:<\d+>)?[ \t]+(?:\{(?P<header_literal>\d+)\}\r\n"
    rb'|"(?P<header_quoted>' + _QUOTED_TEXT + rb')"|(?P<header_nil>NIL))'
    rb"|(?i:MODSEQ)[ \t]+\((?P<modseq>\d+)\)"
    rb"|(?i:X-GM-MSGID)[ \t]+(?P<gm_msgid>\d+)"
    rb"|(?i:X-GM-THRID)[ \t]+(?P<gm_thrid>\d+)"
    # any other item (not one of the names above, nor a header section)
    rb"|(?P<other>(?!(?i:UID|FLAGS|INTERNALDATE|MODSEQ|X-GM-MSGID|X-GM-THRID)[ \t]"
    rb"|(?i:BODY\[HEADER))"
    + _ATOM
    + rb"+(?:"
    + _SECTION
    + rb')?)[ \t]+(?:"'
    + _QUOTED_TEXT
    + rb'"|'
    + _ATOM
    + rb"+|\{(?P<other_literal>\d+)\}\r\n|(?P<other_list>\())"
    rb"|(?P<end>\))"
    rb")"
)
_G = _ITEM_RE.groupindex
_UID, _FLAGS, _IDATE, _IDATE_NIL = _G["uid"], _G["flags"], _G["idate"], _G["idate_nil"]
_HEADER_LITERAL, _HEADER_QUOTED, _HEADER_NIL = (
    _G["header_literal"],
    _G["header_quoted"],
    _G["header_nil"],
)
_MODSEQ, _GM_MSGID, _GM_THRID = _G["modseq"], _G["gm_msgid"], _G["gm_thrid"]
_OTHER_LITERAL, _OTHER_LIST, _END = _G["other_literal"], _G["other_list"], _G["end"]
# one element of a list: open (1), close (2), quoted (3), literal (4), atom (5);
# an atom may hold bracketed parts, as imapclient's lexer reads them
_VALUE_RE = re.compile(
    rb'[ \t]*(?:(\()|(\))|"('
    + _QUOTED_TEXT
    + rb')"|\{(\d+)\}\r\n|((?:'
    + _ATOM
    + rb"|\[[^\]\r\n]*\])+))"
)
_ESCAPED_RE = re.compile(rb'\\([\\"])')
_CRLF = b"\r\n"
_flags_cache: dict[bytes, frozenset[str]] = {}

List = list["bytes | List"]


def _unquote(raw: bytes) -> bytes:
    # like imapclient: \\ and \" are escapes; a backslash before anything else stays
    return _ESCAPED_RE.sub(rb"\1", raw) if b"\\" in raw else raw


def _read_list(buf: bytes, pos: int, end: int) -> tuple[List, int]:
    """The elements of the list whose "(" ends at ``pos``, and where it ends."""
    out: List = []
    stack: list[List] = []
    while True:
        m = _VALUE_RE.match(buf, pos, end)
        if m is None:
            raise ProtocolError("malformed list")
        pos = m.end()
        if m.group(1) is not None:
            stack.append(out)
            out = []
        elif m.group(2) is not None:
            if not stack:
                return out, pos
            inner, out = out, stack.pop()
            out.append(inner)
        elif m.group(4) is not None:
            size = int(m.group(4))
            if pos + size > end:
                raise ProtocolError("literal beyond the response")
            out.append(buf[pos : pos + size])
            pos += size
        elif m.group(3) is not None:
            out.append(_unquote(m.group(3)))
        else:
            out.append(m.group(5))


def parse_fetch(buf: bytes, pos: int, end: int) -> FetchItem | None:
    """The FETCH response in ``buf[pos:end]`` (one complete response, CRLF included).

    None when the response there is not a FETCH; raises ProtocolError when
    it is a malformed one.
    """
    m = _HEAD_RE.match(buf, pos, end)
    if m is None:
        return None
    item = FetchItem(seq=int(m.group(1)))
    pos = m.end()
    match = _ITEM_RE.match
    while True:
        m = match(buf, pos, end)
        if m is None:
            raise ProtocolError("malformed FETCH item")
        pos = m.end()
        which = m.lastindex
        if which == _UID:
            item.uid = int(m.group(which))
        elif which == _FLAGS:
            raw = m.group(which)
            flags = _flags_cache.get(raw)
            if flags is None:
                flags = frozenset(w.decode("utf-8", "replace") for w in raw.split())
                flags -= _SESSION_FLAGS
                if len(_flags_cache) < 4096:  # keyword-heavy accounts: no unbounded growth
                    _flags_cache[raw] = flags
            item.flags = flags
        elif which == _IDATE:
            item.internal_date = parse_internaldate(_unquote(m.group(which)))
        elif which == _HEADER_LITERAL:
            size = int(m.group(which))
            if pos + size > end:
                raise ProtocolError("literal beyond the response")
            item.header = buf[pos : pos + size]
            pos += size
        elif which == _END:
            break
        elif which == _HEADER_QUOTED:
            item.header = _unquote(m.group(which))
        elif which == _HEADER_NIL:
            item.header = None
        elif which == _IDATE_NIL:
            item.internal_date = None
        elif which == _MODSEQ:
            item.modseq = int(m.group(which))
        elif which == _GM_MSGID:
            item.gm_msgid = int(m.group(which))
        elif which == _GM_THRID:
            item.gm_thrid = int(m.group(which))
        elif which == _OTHER_LITERAL:  # skipped
            pos += int(m.group(which))
            if pos > end:
                raise ProtocolError("literal beyond the response")
        elif which == _OTHER_LIST:  # skipped
            _, pos = _read_list(buf, pos, end)
    if buf[pos:end] != _CRLF:
        raise ProtocolError("text after the FETCH response")
    return item


def parse_internaldate(value: bytes) -> datetime | None:
    """INTERNALDATE as aware UTC; None when unreadable (as imapclient gives it)."""
    try:
        return parse_date(value.decode("latin-1"))
    except Exception:  # ValueError, OverflowError: a date that does not exist
        return None
