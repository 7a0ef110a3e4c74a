"""The IMAP bulk reader: raw commands and a streaming FETCH reader beside imapclient.

imapclient stays the session layer (connect, TLS, login, capabilities, IDLE).
Its FETCH handles about 10k messages a second and buffers a whole response
before returning, which is too slow and too big for a first sync of 100k
messages. :class:`RawSession` writes commands on the same connection and
reads the responses as they arrive, so memory stays flat and parsing
overlaps the server's work: it cuts the stream into complete responses
(lines ended by CRLF, a line ending in ``{n}`` followed by an n-byte
literal, as imaplib cuts them) and hands each FETCH to
imap_response.parse_fetch.

:func:`raw_session` is the one place that reaches into imapclient: it takes
imapclient's imaplib connection (``IMAPClient._imap``) and from it imaplib's
``send`` and its buffered socket file. Nothing else in kithkeep touches
imapclient's or imaplib's internals.

It only understands what kithkeep asks for: ``UID FETCH`` (imap_response),
and the untagged lines of LIST, STATUS, SELECT/EXAMINE and ESEARCH/SEARCH,
read with imapclient's own generic parser. Anything else the server
interleaves (EXISTS, EXPUNGE, unsolicited FETCH of flags) is read and
skipped, literals included. Every command uses its own tag prefix (``kk``),
so imaplib's bookkeeping is not disturbed: a raw command is always read to
its tagged completion before imapclient is used again on the connection.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from imapclient import imap_utf7
from imapclient.response_parser import parse_response

from kithkeep.connectors.imap_response import FetchItem, ProtocolError, parse_fetch

if TYPE_CHECKING:
    from imapclient import IMAPClient

log = logging.getLogger(__name__)

# bytes asked of the socket at a time (one recv)
_CHUNK = 1 << 18
# the largest literal accepted: a header section is at most a few hundred KB;
# a server announcing more is broken or hostile, and would fill the memory
MAX_LITERAL_BYTES = 64 << 20


class ConnectionLost(Exception):
    """The server closed the connection (EOF or BYE) in the middle of a command."""


class CommandFailed(Exception):
    """The server answered a raw command with NO or BAD."""

    def __init__(self, command: str, status: str, text: str) -> None:
        super().__init__(f"{command}: {status} {text}")
        self.command = command
        self.status = status
        self.text = text


@dataclass(slots=True)
class Tagged:
    status: str
    text: str
    untagged: list[bytes] = field(default_factory=list)
    # the literals of each untagged response, in order
    literals: list[list[bytes]] = field(default_factory=list)


class ListedFolder(NamedTuple):
    """One folder of a LIST (with its STATUS when LIST-STATUS sent one)."""

    name: str
    flags: list[str]
    status: dict[str, int]


def raw_session(client: IMAPClient) -> RawSession:
    """A RawSession on the connection of a logged-in IMAPClient. THE seam.

    imapclient keeps its imaplib.IMAP4 in the private ``_imap`` (so since
    imapclient 1.0); imaplib reads the socket through the buffered file
    ``file`` (replaced by STARTTLS, so taken after login) and writes with
    ``send``. Both are used only while imapclient waits for no response.
    """
    imap = client._imap
    return RawSession(send=imap.send, read=imap.file.read1)


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
    """Raw commands on a connection that imapclient logged in (see :func:`raw_session`)."""

    def __init__(self, *, send: Callable[[bytes], object], read: Callable[[int], bytes]) -> None:
        self._send = send
        self._read = read
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
        data = self._read(_CHUNK)
        if not data:
            raise ConnectionLost("server closed the connection")
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def _next(self) -> tuple[int, int]:
        """The next complete response, ``_buf[start:end]``, consumed; reads as needed.

        A response is a line ended by CRLF; a line that ends in ``{n}``
        goes on after an n-byte literal. A line ended by a bare LF is a
        protocol error (imaplib refuses it too).
        """
        while True:
            buf, start = self._buf, self._pos
            pos = start
            while True:
                eol = buf.find(b"\n", pos)
                if eol == -1:
                    break
                if eol == pos or buf[eol - 1] != 13:  # 13: CR
                    raise ProtocolError("a line not ended by CRLF")
                # 125: "}", the end of a literal's announcement
                size = _literal_size(buf, pos, eol) if buf[eol - 2] == 125 else None
                if size is not None:
                    pos = eol + 1 + size
                    if pos > len(buf):
                        break
                    continue
                self._pos = eol + 1
                return start, eol + 1
            self._fill()

    def _parts(self, start: int, end: int) -> tuple[bytes, list[bytes]]:
        """A response as its text (literals taken out, ``{n}`` kept) and its literals."""
        buf = self._buf
        literals: list[bytes] = []
        text: list[bytes] = []
        pos = start
        while pos < end:
            eol = buf.find(b"\n", pos, end)
            line_end = eol + 1
            size = _literal_size(buf, pos, eol)
            text.append(buf[pos:line_end])
            if size is not None:
                literals.append(buf[line_end : line_end + size])
                pos = line_end + size
            else:
                pos = line_end
        return b"".join(text), literals

    def send(self, command: bytes) -> bytes:
        """Send ``command`` with a fresh tag; return the tag."""
        self._n += 1
        tag = b"kk%d" % self._n
        log.debug("> %s %s", tag.decode(), command[:200].decode("ascii", "replace"))
        self.dirty = True
        self._send(tag + b" " + command + b"\r\n")
        return tag

    def _tagged(self, tag: bytes, start: int, end: int, command: str) -> Tagged | None:
        """The tagged completion if the response at ``start`` is it; raises on NO/BAD."""
        buf = self._buf
        if not buf.startswith(tag, start) or buf[start + len(tag) : start + len(tag) + 1] != b" ":
            return None
        self.dirty = False
        rest = buf[start + len(tag) + 1 : end].decode("utf-8", "replace").strip()
        status, _, text = rest.partition(" ")
        if status.upper() != "OK":
            raise CommandFailed(command, status.upper(), text)
        return Tagged(status.upper(), text)

    def _untagged(self, start: int) -> None:
        """Check that the response at ``start`` is an untagged one and not BYE."""
        buf = self._buf
        if buf.startswith(b"* BYE", start):
            line = buf[start + 5 : buf.find(b"\n", start)]
            raise ConnectionLost(line.decode("utf-8", "replace").strip() or "BYE")
        if not buf.startswith(b"* ", start):
            raise ProtocolError("a response that is neither tagged nor untagged")

    def simple(self, command: bytes) -> Tagged:
        """Run a command and collect its untagged responses (and their literals)."""
        tag = self.send(command)
        name = command.split(b" ", 2)[0].decode("ascii", "replace")
        untagged: list[bytes] = []
        literals_of: list[list[bytes]] = []
        while True:
            start, end = self._next()
            done = self._tagged(tag, start, end, name)
            if done is not None:
                done.untagged = untagged
                done.literals = literals_of
                return done
            self._untagged(start)
            text, literals = self._parts(start, end)
            untagged.append(text)
            literals_of.append(literals)

    # ------------------------------------------------------------ commands

    def list_status(self, items: str, *, status: bool) -> list[ListedFolder]:
        """LIST all folders (with SPECIAL-USE flags; with STATUS items when ``status``).

        A folder's status is empty when the server sent none.
        """
        cmd = b'LIST "" "*"'
        if status:
            cmd += b" RETURN (SPECIAL-USE STATUS (" + items.encode() + b"))"
        done = self.simple(cmd)
        folders: dict[str, list[str]] = {}
        statuses: dict[str, dict[str, int]] = {}
        for line, literals in zip(done.untagged, done.literals, strict=True):
            upper = line[:10].upper()
            if upper.startswith((b"* LIST ", b"* XLIST ")):
                parsed = _parse_with_literals(line.split(b" ", 2)[2], literals)
                if len(parsed) < 3:
                    continue
                folders[_folder_name(parsed[2])] = [_text(f) for f in parsed[0]]
            elif upper.startswith(b"* STATUS "):
                name, values = _parse_status(line.split(b" ", 2)[2], literals)
                statuses[name] = values
        return [ListedFolder(n, f, statuses.get(n, {})) for n, f in folders.items()]

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

        Stops after the tagged completion. A malformed FETCH response is
        logged and skipped (it costs that message). If the caller stops
        iterating early, the connection is left ``dirty`` and must be
        dropped.
        """
        cmd = b"UID FETCH " + uid_set.encode() + b" (" + items.encode() + b")"
        if modifiers:
            cmd += b" (" + modifiers.encode() + b")"
        tag = self.send(cmd)
        while True:
            start, end = self._next()
            buf = self._buf
            if buf[start] == 42:  # 42: "*", untagged: a FETCH, or another one to skip
                try:
                    item = parse_fetch(buf, start, end)
                except ProtocolError as exc:
                    log.warning(
                        "skipped a malformed FETCH response (%s): %r",
                        exc,
                        buf[start : min(end, start + 120)],
                    )
                    continue
                if item is not None:
                    yield item
                    continue
            if self._tagged(tag, start, end, "UID FETCH") is not None:
                return
            self._untagged(start)


def _literal_size(buf: bytes, start: int, eol: int) -> int | None:
    """The size of the literal announced at the end of the line ``buf[start:eol + 1]``.

    As imaplib reads it: the line (CRLF left out) ends in ``{digits}``.
    """
    if eol - start < 4 or buf[eol - 2] != 125:  # 125: "}"
        return None
    brace = buf.rfind(b"{", start, eol - 2)
    if brace == -1:
        return None
    digits = buf[brace + 1 : eol - 2]
    if not digits.isdigit():
        return None
    size = int(digits)
    if size > MAX_LITERAL_BYTES:
        raise ProtocolError(f"a literal of {size} bytes")
    return size


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
