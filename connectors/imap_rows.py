"""The bulk path of an IMAP sync: header FETCH responses straight to store rows.

``scan_rows`` reads the usual shape of response straight out of the receive
buffer and writes each message's row in ``kithkeep.rowcodec``'s column order.
"""

from __future__ import annotations

import logging
import re

from kithkeep.connectors.imap_fetch import (
    FetchItem,
    parse_flags,
    parse_internaldate,
)
from kithkeep.headers import (
    _date_ascii,
    parse_addresses,
    record_from_headers_fast,
)
from kithkeep.rowcodec import (
    MessageRow,
    addresses_json,
    datetime_text,
    flags_text,
    message_values,
)

log = logging.getLogger(__name__)

# the usual shape of a message in kithkeep's header FETCH, up to the "{n}" of
# its header literal (Dovecot, Cyrus and most servers answer in the order asked)
_FAST_META_RE = re.compile(
    rb'\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) INTERNALDATE "([^"]*)" '
    rb"BODY\[HEADER\.FIELDS \([^)]*\)\] \{(\d+)\}\r?$"
)

# scan_rows' status: the next response has another shape (read it the
# general way), the buffer ends inside a response, or the limit was reached
OTHER, NEED_MORE, LIMIT = 0, 1, 2

ScanResult = tuple[list[MessageRow], int, int, int]


def python_row(
    uid: int,
    flags: bytes,
    internal_date: bytes | None,
    header: bytes,
    account: str,
    folder: str,
    sent: bool,
    gm_msgid: int | None = None,
    gm_thrid: int | None = None,
) -> MessageRow:
    """The row of one fetched message, the way every other source makes it."""
    record = record_from_headers_fast(
        header,
        account=account,
        folder=folder,
        uid=str(uid),
        flags=parse_flags(flags),
        internal_date=None if internal_date is None else parse_internaldate(internal_date),
        in_sent_folder=sent,
        gm_msgid=gm_msgid,
        gm_thrid=gm_thrid,
    )
    return message_values(record, datetime_text)


def item_row(it: FetchItem, account: str, folder: str, sent: bool) -> MessageRow:
    """The row of a FETCH response of another shape (read by the general parser)."""
    record = record_from_headers_fast(
        it.header or b"",
        account=account,
        folder=folder,
        uid=str(it.uid),
        flags=it.flags or frozenset(),
        internal_date=it.internal_date,
        in_sent_folder=sent,
        gm_msgid=it.gm_msgid,
        gm_thrid=it.gm_thrid,
    )
    return message_values(record, datetime_text)


def _addresses_fallback(values: list[str]) -> str:
    # what headers._parse_addresses_simple does with a part it cannot read
    return addresses_json(parse_addresses(values))


def _date_fallback(value: str) -> str | None:
    return datetime_text(_date_ascii(value))


def _flags_fallback(raw: bytes) -> str:
    return flags_text(parse_flags(raw))


def _internal_date_fallback(raw: bytes) -> str | None:
    return datetime_text(parse_internaldate(raw))


def python_scan_rows(
    buf: bytes, pos: int, min_uid: int, limit: int, account: str, folder: str, sent: bool
) -> ScanResult:
    """Rows of the usual-shape FETCH responses in ``buf[pos:]`` (see ``scan_rows``)."""
    rows: list[MessageRow] = []
    end = len(buf)
    max_uid = 0
    status = LIMIT
    while len(rows) < limit:
        eol = buf.find(b"\n", pos)
        if eol == -1:
            status = NEED_MORE
            break
        m = _FAST_META_RE.match(buf, pos, eol)
        if m is None:
            status = OTHER
            break
        lit = eol + 1
        lit_end = lit + int(m.group(4))
        if lit_end + 3 > end:
            status = NEED_MORE
            break
        if buf[lit_end : lit_end + 3] != b")\r\n":
            status = OTHER
            break
        pos = lit_end + 3
        uid = int(m.group(1))
        if uid < min_uid:
            continue  # "N:*" always includes the highest UID
        max_uid = max(max_uid, uid)
        rows.append(
            python_row(uid, m.group(2), m.group(3), buf[lit:lit_end], account, folder, sent)
        )
    return rows, pos, status, max_uid


scan_rows = python_scan_rows
