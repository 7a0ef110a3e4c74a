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
(which imapclient's lexer takes for tokens or spaces), a quoted string where
an item wants a number, or a MODSEQ that is not one number make a response
malformed. The values of items it does not read it only skips, so a string
that runs into an atom there (``a"b"``) does not stop it.

What kithkeep reads: UID, FLAGS (without the session flag ``\\Recent``),
INTERNALDATE (through the one date parser, headers.parse_date, as
imapclient does through email.utils), MODSEQ, X-GM-MSGID, X-GM-THRID and
the value of a ``BODY[HEADER...]`` section. Other items are read and
skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
_QUOTED = rb'"((?:[^"\\\r\n]|\\[^\r\n])*)"'
_HEAD_RE = re.compile(rb"\* (\d+) FETCH \(")
# one item: the end of the list (1), or name (2), section (3) and a value:
# a list of atoms (4), a quoted string (5), a literal (6), an atom (7), or
# the start of any other list (8), read by _read_list
_ITEM_RE = re.compile(
    rb"[ \t]*(?:(\))|(" + _ATOM + rb"+)(\[[^\]\r\n]*\](?:<\d+>)?)?[ \t]+(?:"
    rb"\(((?:" + _ATOM + rb"|[ \t])*)\)"
    rb"|" + _QUOTED + rb"|\{(\d+)\}\r\n|(" + _ATOM + rb"+)|(\()))"
)
# one element of a list: open (1), close (2), quoted (3), literal (4), atom (5);
# an atom may hold bracketed parts, as imapclient's lexer reads them
_VALUE_RE = re.compile(
    rb"[ \t]*(?:(\()|(\))|" + _QUOTED + rb"|\{(\d+)\}\r\n|((?:" + _ATOM + rb"|\[[^\]\r\n]*\])+))"
)
_ESCAPED_RE = re.compile(rb'\\([\\"])')
_END = b"\r\n"
_flags_cache: dict[bytes, frozenset[str]] = {}

# upper-case item name -> what it fills (_HEADER: a BODY[HEADER...] section)
_UID, _FLAGS, _IDATE, _MODSEQ, _GM_MSGID, _GM_THRID, _HEADER = range(7)
_NAMES = {
    b"UID": _UID,
    b"FLAGS": _FLAGS,
    b"INTERNALDATE": _IDATE,
    b"MODSEQ": _MODSEQ,
    b"X-GM-MSGID": _GM_MSGID,
    b"X-GM-THRID": _GM_THRID,
}

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


def _flags(words: Sequence[bytes]) -> frozenset[str]:
    return frozenset(w.decode("utf-8", "replace") for w in words) - _SESSION_FLAGS


def _number(value: bytes | None, what: str) -> int:
    if value is None or not value.isdigit():
        raise ProtocolError(f"{what} is not a number")
    return int(value)


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
        close, name, section, flat, quoted, literal, atom, nested_open = m.groups()
        if close is not None:
            break
        # the value: an atom (NIL among them), a string, a list of atoms, another list
        string: bytes | None = None
        nested: List | None = None
        if literal is not None:
            size = int(literal)
            if pos + size > end:
                raise ProtocolError("literal beyond the response")
            string = buf[pos : pos + size]
            pos += size
        elif quoted is not None:
            string = _unquote(quoted)
        elif nested_open is not None:
            nested, pos = _read_list(buf, pos, end)
        if section is None:
            what = _NAMES.get(name.upper())
        elif name.upper() == b"BODY" and section[1:7].upper() == b"HEADER":
            what = _HEADER
        else:
            continue  # another section (BODY[TEXT]), or a section on another item

        if what is None:
            continue  # an item kithkeep does not read
        if what == _UID:
            item.uid = _number(atom, "UID")
        elif what == _FLAGS:
            if flat is not None:  # a list of atoms: few distinct ones
                flags = _flags_cache.get(flat)
                if flags is None:
                    flags = _flags(flat.split())
                    if len(_flags_cache) < 4096:
                        _flags_cache[flat] = flags
            elif nested is not None:
                words = [w for w in nested if isinstance(w, bytes)]
                if len(words) != len(nested):
                    raise ProtocolError("FLAGS holds a list")
                flags = _flags(words)
            else:
                raise ProtocolError("FLAGS is not a list")
            item.flags = flags
        elif what in (_IDATE, _HEADER):
            # a string or NIL (in capitals only, as imapclient reads it)
            if string is None and atom != b"NIL":
                raise ProtocolError("a string item that is no string")
            if what == _HEADER:
                item.header = string
            else:
                item.internal_date = None if string is None else parse_internaldate(string)
        elif what == _MODSEQ:
            words = flat.split() if flat is not None else []
            if len(words) != 1:
                raise ProtocolError("MODSEQ is not one number")
            item.modseq = _number(words[0], "MODSEQ")
        elif what == _GM_MSGID:
            item.gm_msgid = _number(atom, "X-GM-MSGID")
        else:
            item.gm_thrid = _number(atom, "X-GM-THRID")
    if buf[pos:end] != _END:
        raise ProtocolError("text after the FETCH response")
    return item


def parse_internaldate(value: bytes) -> datetime | None:
    """INTERNALDATE as aware UTC; None when unreadable (as imapclient gives it)."""
    try:
        return parse_date(value.decode("latin-1"))
    except Exception:  # ValueError, OverflowError: a date that does not exist
        return None
