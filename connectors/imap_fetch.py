"""The fast path of the IMAP connector: raw commands and a streaming FETCH reader.

imapclient stays the session layer (connect, TLS, login, capabilities). Its
FETCH parser handles about 10k messages a second and it buffers a whole
response before returning, which is too slow and too big for a first sync of
100k messages. This module writes commands on the same connection (imaplib's
``send``) and reads the response from imaplib's buffered socket file as it
arrives, so memory stays flat and parsing overlaps the server's work. The
header FETCH of a sync goes through ``uid_fetch_rows``, which hands the
receive buffer to imap_rows.scan_rows (compiled) and reads only responses of
other shapes itself.

It only understands what kithkeep asks for: ``UID FETCH`` of UID, FLAGS,
INTERNALDATE, MODSEQ, X-GM-MSGID, X-GM-THRID and one ``BODY[HEADER.FIELDS
...]`` section, plus the untagged lines of LIST, STATUS, SELECT/EXAMINE and
ESEARCH/SEARCH. Anything else the server interleaves (EXISTS, EXPUNGE,
unsolicited FETCH of flags) is read and skipped, literals included.

Every command uses its own tag prefix (``kk``), so imaplib's bookkeeping is not
disturbed: a raw command is always read to its tagged completion before
imapclient is used again on the connection.
"""

from __future__ import annotations

import imaplib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO, cast

from imapclient import imap_utf7
from imapclient.response_parser import parse_response

log = logging.getLogger(__name__)


class ConnectionLost(Exception):
    """The server closed the connection (EOF or BYE) in the middle of a command."""


class CommandFailed(Exception):
    """The server answered a raw command with NO or BAD."""

    def __init__(self, command: str, status: str, text: str) -> None:
        super().__init__(f"{command}: {status} {text}")
        self.command = command
        self.status = status
        self.text = text


_LITERAL_RE = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_UID_RE = re.compile(rb"[( ]UID (\d+)")
_FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")
_IDATE_RE = re.compile(rb'INTERNALDATE "([^"]*)"')
_MODSEQ_RE = re.compile(rb"MODSEQ \((\d+)\)")
_GM_MSGID_RE = re.compile(rb"X-GM-MSGID (\d+)")
_GM_THRID_RE = re.compile(rb"X-GM-THRID (\d+)")
# a header section sent as a quoted string or NIL instead of a literal
_BODY_INLINE_RE = re.compile(rb'BODY\[[^\]]*\] (?:NIL|"((?:[^"\\]|\\.)*)")')
_FETCH_START_RE = re.compile(rb"\* \d+ FETCH \(")
# scan_rows' status when the buffer ends inside a response (imap_rows.NEED_MORE)
_SCAN_NEED_MORE = 1
# a message as the store's column values (kithkeep.rowcodec.MessageRow)
Row = tuple[Any, ...]
# bytes asked of the socket at a time (one recv)
_CHUNK = 1 << 18

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (
            *(b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun"),
            *(b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"),
        )
    )
}
# Server flags that describe this session, not the message.
_SESSION_FLAGS = frozenset({"\\Recent"})
_flag_cache: dict[bytes, frozenset[str]] = {}
_tz_cache: dict[bytes, timezone] = {}


def parse_internaldate(value: bytes) -> datetime | None:
    """``b"17-Jul-1996 02:44:25 -0700"`` -> aware UTC datetime; None when malformed."""
    if (
        len(value) == 26
        and value[20:] == b" +0000"
        and value[2:3] == value[6:7] == b"-"
        and value[11:12] == b" "
        and value[14:15] == value[17:18] == b":"
        and (value[7:11] + value[12:14] + value[15:17] + value[18:20]).isdigit()
    ):
        # the fixed-width UTC form most servers send: no splitting, no conversion
        try:
            return datetime(
                int(value[7:11]),
                _MONTHS[value[3:6]],
                int(value[0:2]),
                int(value[12:14]),
                int(value[15:17]),
                int(value[18:20]),
                tzinfo=UTC,
            )
        except (ValueError, KeyError):
            pass
    try:
        day, mon, rest = value.strip().split(b"-", 2)
        year, clock, zone = rest.split(b" ")
        hh, mm, ss = clock.split(b":")
        tz = _tz_cache.get(zone)
        if tz is None:
            sign = -1 if zone[:1] == b"-" else 1
            minutes = int(zone[1:3]) * 60 + int(zone[3:5])
            tz = _tz_cache[zone] = timezone(sign * timedelta(minutes=minutes))
        dt = datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=tz)
        return dt.astimezone(UTC)
    except (ValueError, KeyError, IndexError):
        return None


def parse_flags(raw: bytes) -> frozenset[str]:
    """The flags of a FLAGS list, without session flags; interned (few distinct sets)."""
    flags = _flag_cache.get(raw)
    if flags is None:
        words = raw.decode("utf-8", "replace").split()
        flags = frozenset(w for w in words if w not in _SESSION_FLAGS)
        if len(_flag_cache) < 4096:  # keyword-heavy accounts must not grow it without bound
            _flag_cache[raw] = flags
    return flags


@dataclass(slots=True)
class FetchItem:
    """One message of a FETCH response; ``header`` is None when not sent."""

    uid: int
    flags: frozenset[str] | None = None
    internal_date: datetime | None = None
    modseq: int | None = None
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    header: bytes | None = None


@dataclass(slots=True)
class Tagged:
    status: str
    text: str
    untagged: list[bytes] = field(default_factory=list)
    # the literals of each untagged response, in order
    literals: list[list[bytes]] = field(default_factory=list)


def quote(name: str) -> bytes:
    """A mailbox name as an IMAP quoted string, in modified UTF-7."""
    enc = bytes(imap_utf7.encode(name))
    return b'"' + enc.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def sequence_set(uids: list[int]) -> str:
    """Sorted UIDs -> a compact set ``1:5,7,9:12``."""
    parts: list[str] = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = u
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_sequence_set(text: str) -> list[tuple[int, int]]:
    """``1:5,7`` -> [(1, 5), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out.append((min(a, b), max(a, b)))
    return out


class RawSession:
    """Raw commands on an imaplib connection that imapclient logged in."""

    def __init__(self, imap: imaplib.IMAP4) -> None:
        self._imap = imap
        # imaplib's buffered reader of the socket (typeshed types it loosely)
        self._file = cast(BinaryIO, imap.file)
        self._n = 0
        # a raw command was sent and its response not read to the end: the
        # connection must not be reused (only dropped)
        self.dirty = False
        # bytes read from the socket in big chunks; _buf[_pos:] is not consumed yet
        self._buf = b""
        self._pos = 0

    # ------------------------------------------------------------ plumbing

    def _fill(self) -> None:
        """Append what the socket has (at least one byte) to the unread bytes."""
        data = self._file.read1(_CHUNK)  # type: ignore[attr-defined]
        if not data:
            raise ConnectionLost("server closed the connection")
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def _readline(self) -> bytes:
        while True:
            eol = self._buf.find(b"\n", self._pos)
            if eol != -1:
                line = self._buf[self._pos : eol + 1]
                self._pos = eol + 1
                return line
            self._fill()

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            self._fill()
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def send(self, command: bytes) -> bytes:
        """Send ``command`` with a fresh tag; return the tag."""
        self._n += 1
        tag = b"kk%d" % self._n
        log.debug("> %s %s", tag.decode(), command[:200].decode("ascii", "replace"))
        self.dirty = True
        self._imap.send(tag + b" " + command + b"\r\n")
        return tag

    def _response(self) -> tuple[bytes, list[bytes]]:
        """One complete response: its first line and its literals (text marks them ``{n}``)."""
        line = self._readline()
        literals: list[bytes] = []
        if line.endswith(b"}\r\n"):
            m = _LITERAL_RE.search(line)
            parts = [line]
            while m:
                literals.append(self._read_exact(int(m.group(1))))
                more = self._readline()
                parts.append(more)
                m = _LITERAL_RE.search(more) if more.endswith(b"}\r\n") else None
            line = b"".join(parts)
        return line, literals

    def _tagged(self, tag: bytes, line: bytes, command: str) -> Tagged | None:
        """The tagged completion if ``line`` is it; raises on NO/BAD."""
        if not line.startswith(tag + b" "):
            return None
        self.dirty = False
        rest = line[len(tag) + 1 :].decode("utf-8", "replace").strip()
        status, _, text = rest.partition(" ")
        if status.upper() != "OK":
            raise CommandFailed(command, status.upper(), text)
        return Tagged(status.upper(), text)

    def _check_bye(self, line: bytes) -> None:
        if line.startswith(b"* BYE"):
            raise ConnectionLost(line[5:].decode("utf-8", "replace").strip() or "BYE")

    def simple(self, command: bytes) -> Tagged:
        """Run a command and collect its untagged responses (literals inlined as parsed data)."""
        tag = self.send(command)
        name = command.split(b" ", 2)[0].decode("ascii", "replace")
        untagged: list[bytes] = []
        literals_of: list[list[bytes]] = []
        while True:
            line, literals = self._response()
            done = self._tagged(tag, line, name)
            if done is not None:
                done.untagged = untagged
                done.literals = literals_of
                return done
            self._check_bye(line)
            untagged.append(line)
            literals_of.append(literals)

    # ------------------------------------------------------------ commands

    def list_status(
        self, items: str, *, status: bool
    ) -> list[tuple[str, list[str], int, dict[str, int]]]:
        """LIST all folders (with SPECIAL-USE flags; with STATUS items when ``status``).

        Returns (name, flags, index, status) per folder; status is empty when
        the server sent none.
        """
        cmd = b'LIST "" "*"'
        if status:
            cmd += b" RETURN (SPECIAL-USE STATUS (" + items.encode() + b"))"
        done = self.simple(cmd)
        folders: dict[str, tuple[list[str], int]] = {}
        statuses: dict[str, dict[str, int]] = {}
        for i, (line, literals) in enumerate(zip(done.untagged, done.literals, strict=True)):
            upper = line[:10].upper()
            if upper.startswith((b"* LIST ", b"* XLIST ")):
                parsed = _parse_with_literals(line.split(b" ", 2)[2], literals)
                if len(parsed) < 3:
                    continue
                flags = [_text(f) for f in parsed[0]]
                name = _folder_name(parsed[2])
                folders[name] = (flags, i)
            elif upper.startswith(b"* STATUS "):
                name, values = _parse_status(line.split(b" ", 2)[2], literals)
                statuses[name] = values
        return [(n, f, i, statuses.get(n, {})) for n, (f, i) in folders.items()]

    def status(self, folder: str, items: str) -> dict[str, int]:
        done = self.simple(b"STATUS " + quote(folder) + b" (" + items.encode() + b")")
        for line, literals in zip(done.untagged, done.literals, strict=True):
            if line[:9].upper() == b"* STATUS ":
                return _parse_status(line.split(b" ", 2)[2], literals)[1]
        return {}

    def examine(self, folder: str, *, condstore: bool) -> dict[str, int]:
        """EXAMINE (read-only SELECT): EXISTS, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ."""
        cmd = b"EXAMINE " + quote(folder) + (b" (CONDSTORE)" if condstore else b"")
        done = self.simple(cmd)
        out: dict[str, int] = {}
        for line in done.untagged:
            m = re.match(rb"\* (\d+) EXISTS", line)
            if m:
                out["EXISTS"] = int(m.group(1))
                continue
            m = re.match(rb"\* OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", line, re.I)
            if m:
                out[m.group(1).decode().upper()] = int(m.group(2))
            elif re.match(rb"\* OK \[NOMODSEQ\]", line, re.I):
                out["NOMODSEQ"] = 1
        return out

    def uid_search(self, criteria: str, *, esearch: bool) -> list[int]:
        """UIDs matching ``criteria`` (ESEARCH's compact form where offered)."""
        if esearch:
            done = self.simple(b"UID SEARCH RETURN (ALL) " + criteria.encode())
            uids: list[int] = []
            for line in done.untagged:
                if line[:10].upper() == b"* ESEARCH ":
                    m = re.search(rb" ALL ([0-9:,]+)", line, re.I)
                    if m:
                        for lo, hi in parse_sequence_set(m.group(1).decode()):
                            uids.extend(range(lo, hi + 1))
            return sorted(uids)
        done = self.simple(b"UID SEARCH " + criteria.encode())
        uids = []
        for line in done.untagged:
            if line[:9].upper() == b"* SEARCH ":
                uids.extend(int(x) for x in line[9:].split() if x.isdigit())
        return sorted(uids)

    def uid_fetch(self, uid_set: str, items: str, modifiers: str = "") -> Iterator[FetchItem]:
        """Stream the FETCH responses of one ``UID FETCH``, message by message.

        For flag fetches and any shape; header FETCHes of a sync go through
        ``uid_fetch_rows``. Stops after the tagged completion. If the caller
        stops iterating early, the connection is left ``dirty`` and must be
        dropped.
        """
        cmd = b"UID FETCH " + uid_set.encode() + b" (" + items.encode() + b")"
        if modifiers:
            cmd += b" (" + modifiers.encode() + b")"
        tag = self.send(cmd)
        tag_line = tag + b" "
        while True:
            line, literals = self._response()
            if line.startswith(b"* ") and _FETCH_START_RE.match(line):
                yield _fetch_item_general(line, literals)
                continue
            if line.startswith(tag_line):
                self._tagged(tag, line, "UID FETCH")
                return
            self._check_bye(line)
            # another untagged response (EXISTS, EXPUNGE, OK ...): skipped

    def uid_fetch_rows(
        self,
        uid_set: str,
        items: str,
        *,
        scan: Callable[[bytes, int, int, int], tuple[list[Row], int, int, int]],
        other: Callable[[FetchItem], Row],
        min_uid: int,
        limit: int,
    ) -> Iterator[tuple[list[Row], int, bool]]:
        """Stream one ``UID FETCH`` as chunks of rows: (rows, highest UID, last).

        ``scan(buf, pos, min_uid, n)`` turns the responses of the usual shape
        at ``buf[pos:]`` into at most ``n`` rows and says where it stopped
        (connectors/imap_rows.py); a response of any other shape is read
        here and ``other`` makes its row. Messages with a UID below
        ``min_uid``, and FETCH responses without a header (unsolicited flag
        changes), give no row. Chunks hold ``limit`` rows; the last one, at
        the tagged completion, the rest (maybe none). If the caller stops
        early, the connection is left ``dirty`` and must be dropped.
        """
        tag = self.send(b"UID FETCH " + uid_set.encode() + b" (" + items.encode() + b")")
        tag_line = tag + b" "
        rows: list[Row] = []
        top = 0
        while True:
            got, self._pos, status, high = scan(self._buf, self._pos, min_uid, limit - len(rows))
            if got:
                rows.extend(got)
                top = max(top, high)
            if len(rows) >= limit:
                yield rows, top, False
                rows = []
                continue
            if status == _SCAN_NEED_MORE:
                self._fill()
                continue
            line, literals = self._response()
            if line.startswith(b"* ") and _FETCH_START_RE.match(line):
                it = _fetch_item_general(line, literals)
                if it.uid >= min_uid and it.header is not None:
                    rows.append(other(it))
                    top = max(top, it.uid)
                continue
            if line.startswith(tag_line):
                self._tagged(tag, line, "UID FETCH")
                yield rows, top, True
                return
            self._check_bye(line)
            # another untagged response (EXISTS, EXPUNGE, OK ...): skipped


def _fetch_item_general(line: bytes, literals: list[bytes]) -> FetchItem:
    """A FETCH response of any shape (``line`` with its literals taken out)."""
    header: bytes | None = None
    if literals:
        # the literal belongs to the section named just before its "{n}"
        rest = line
        for data in literals:
            idx = rest.find(b"}\r\n")
            if rest.rfind(b"BODY[", 0, idx) != -1 and header is None:
                header = data
            rest = rest[idx + 3 :]
    elif b"BODY[" in line:
        bm = _BODY_INLINE_RE.search(line)
        if bm is not None and bm.group(1) is not None:
            header = re.sub(rb"\\(.)", rb"\1", bm.group(1))
    return _fetch_item(line, header)


def _fetch_item(text: bytes, header: bytes | None) -> FetchItem:
    m = _UID_RE.search(text)
    item = FetchItem(uid=int(m.group(1)) if m else 0, header=header)
    m = _FLAGS_RE.search(text)
    if m:
        item.flags = parse_flags(m.group(1))
    m = _IDATE_RE.search(text)
    if m:
        item.internal_date = parse_internaldate(m.group(1))
    m = _MODSEQ_RE.search(text)
    if m:
        item.modseq = int(m.group(1))
    if b"X-GM-" in text:
        m = _GM_MSGID_RE.search(text)
        if m:
            item.gm_msgid = int(m.group(1))
        m = _GM_THRID_RE.search(text)
        if m:
            item.gm_thrid = int(m.group(1))
    return item


def _parse_with_literals(text: bytes, literals: list[bytes]) -> tuple[Any, ...]:
    """imapclient's generic parser on a response whose literals were read separately."""
    if not literals:
        return tuple(parse_response([text.rstrip(b"\r\n")]))
    # imaplib's shape: (line up to and including "{n}", literal), ..., tail
    chunks: list[Any] = []
    rest = text
    for lit in literals:
        idx = rest.find(b"}\r\n")
        chunks.append((rest[: idx + 1], lit))
        rest = rest[idx + 3 :]
    chunks.append(rest.rstrip(b"\r\n"))
    return tuple(parse_response(chunks))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _folder_name(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode()
    try:
        return str(imap_utf7.decode(raw))
    except Exception:  # a server that sends raw UTF-8 (UTF8=ACCEPT) or garbage
        return raw.decode("utf-8", "replace")


def _parse_status(text: bytes, literals: list[bytes]) -> tuple[str, dict[str, int]]:
    parsed = _parse_with_literals(text, literals)
    name = _folder_name(parsed[0])
    values: dict[str, int] = {}
    items = parsed[1] if len(parsed) > 1 else ()
    for i in range(0, len(items) - 1, 2):
        key, val = items[i], items[i + 1]
        try:
            values[_text(key).upper()] = int(val)
        except (TypeError, ValueError):
            continue
    return name, values
