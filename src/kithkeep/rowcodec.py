"""The encoded form of a message in the store: its column values, in order.

One definition shared by the store (which writes these values) and the IMAP
connector's compiled bulk path (connectors/_imapfast.c, which produces them
straight from the FETCH stream without building a MessageRecord): both must
give the same values for the same message, byte for byte, and
tests/test_imap_rows.py checks that they do.

Dates are text as SQLAlchemy's SQLite DATETIME stores them (naive UTC with
microseconds); address lists, References and flags are JSON or plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kithkeep.records import Address, MessageRecord

# A message row: the values of MESSAGE_COLUMNS, in that order.
MessageRow = tuple[Any, ...]

# one encoder for the hot path: json.dumps builds a new one for every call with options
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _addr_json(addrs: Sequence[Address]) -> str:
    if not addrs:
        return "[]"
    return _encode([[a.name, a.email] for a in addrs])


MESSAGE_COLUMNS = (
    "account",
    "folder",
    "uid",
    "message_id",
    "date",
    "internal_date",
    "from_json",
    "to_json",
    "cc_json",
    "bcc_json",
    "in_reply_to",
    "references_json",
    "subject",
    "list_id",
    "list_post",
    "list_unsubscribe",
    "precedence",
    "auto_submitted",
    "flags",
    "gm_msgid",
    "gm_thrid",
    "in_sent_folder",
    "parse_errors",
)
# JSON of address tuples, by identity: the fast header parser hands out the
# same tuple for a repeated From/To value. The tuple itself is kept in the
# entry, so its id cannot be reused while the entry lives.
_addr_json_cache: dict[int, tuple[tuple[Address, ...], str]] = {}
_flags_text_cache: dict[frozenset[str], str] = {}
# characters json escapes (ensure_ascii=False): the fast encoding is used only without them
_JSON_PLAIN_RE = re.compile(r'[^\x00-\x1f"\\]*')


def addresses_json(addrs: tuple[Address, ...]) -> str:
    if not addrs:
        return "[]"
    hit = _addr_json_cache.get(id(addrs))
    if hit is not None and hit[0] is addrs:
        return hit[1]
    if _JSON_PLAIN_RE.fullmatch("".join([a.name + a.email for a in addrs])):
        text = "[" + ",".join([f'["{a.name}","{a.email}"]' for a in addrs]) + "]"
    else:
        text = _addr_json(addrs)  # something to escape: the encoder does it
    if len(_addr_json_cache) >= 20000:
        _addr_json_cache.clear()
    _addr_json_cache[id(addrs)] = (addrs, text)
    return text


def references_json(refs: tuple[str, ...]) -> str:
    if not refs:
        return "[]"
    if _JSON_PLAIN_RE.fullmatch("".join(refs)):
        return '["' + '","'.join(refs) + '"]'
    return _encode(list(refs))


def flags_text(flags: frozenset[str]) -> str:
    text = _flags_text_cache.get(flags)
    if text is None:
        text = " ".join(sorted(flags))
        if len(_flags_text_cache) < 4096:
            _flags_text_cache[flags] = text
    return text


def _same(value: datetime | None) -> datetime | None:
    return value


def message_values(
    r: MessageRecord, date: Callable[[datetime | None], Any] = _same
) -> tuple[Any, ...]:
    """A record as the values of ``MESSAGE_COLUMNS``; ``date`` converts the two dates."""
    irt, cc, bcc, refs = r.in_reply_to, r.cc, r.bcc, r.references
    d, idate = r.date, r.internal_date
    return (
        r.account,
        r.folder,
        r.uid,
        r.message_id[:500],
        None if d is None else date(d),
        None if idate is None else date(idate),
        addresses_json(r.from_),
        addresses_json(r.to),
        addresses_json(cc) if cc else "[]",
        addresses_json(bcc) if bcc else "[]",
        irt[:500] if irt else None,
        references_json(refs) if refs else "[]",
        r.subject,
        r.list_id,
        r.list_post,
        r.list_unsubscribe,
        r.precedence,
        r.auto_submitted,
        flags_text(r.flags),
        r.gm_msgid,
        r.gm_thrid,
        r.in_sent_folder,
        ",".join(r.parse_errors),
    )


def datetime_text(value: datetime | None) -> str | None:
    """What UTCDateTime + SQLAlchemy's SQLite DATETIME store: naive UTC with microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def text_datetime(text: str | None) -> datetime | None:
    """``datetime_text``'s inverse: an aware UTC datetime."""
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def row_with_datetimes(row: MessageRow) -> dict[str, Any]:
    """A row as column values with datetimes, as SQLAlchemy binds them on any backend."""
    values = dict(zip(MESSAGE_COLUMNS, row, strict=True))
    values["date"] = text_datetime(row[4])
    values["internal_date"] = text_datetime(row[5])
    return values
