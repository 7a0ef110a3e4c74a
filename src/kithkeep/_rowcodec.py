"""The store's encoding of a message: its column values, in ``MESSAGE_COLUMNS`` order.

Private to :mod:`kithkeep.store`, which alone writes and reads these values:
sources hand the store MessageRecords, never encoded rows.

Dates are text as SQLAlchemy's SQLite DATETIME stores them (naive UTC with
microseconds) or datetimes (``date``); address lists and References are
JSON, flags plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kithkeep.headers import MAX_CACHE
from kithkeep.records import Address, MessageRecord

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
    "signals",
    "parse_errors",
)

# one encoder: json.dumps builds a new one for every call with options
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# characters json escapes (ensure_ascii=False): without them the text is spliced directly
_JSON_PLAIN_RE = re.compile(r'[^\x00-\x1f"\\]*')
# the range of the BigInteger columns (gm_msgid, gm_thrid)
_INT64 = range(-(2**63), 2**63)
# JSON of address tuples, by identity: the header parser hands out the same
# tuple for a repeated address header (as many as it caches). The tuple itself
# is kept in the entry, so its id cannot be reused while the entry lives.
_addr_json_cache: dict[int, tuple[tuple[Address, ...], str]] = {}
_flags_text_cache: dict[frozenset[str], str] = {}


def addresses_json(addrs: tuple[Address, ...]) -> str:
    """``[[name, email], ...]``."""
    if not addrs:
        return "[]"
    hit = _addr_json_cache.get(id(addrs))
    if hit is not None and hit[0] is addrs:
        return hit[1]
    if _JSON_PLAIN_RE.fullmatch("".join([a.name + a.email for a in addrs])):
        text = "[" + ",".join([f'["{a.name}","{a.email}"]' for a in addrs]) + "]"
    else:
        text = _encode([[a.name, a.email] for a in addrs])
    if len(_addr_json_cache) >= MAX_CACHE:
        _addr_json_cache.clear()
    _addr_json_cache[id(addrs)] = (addrs, text)
    return text


def references_json(refs: tuple[str, ...]) -> str:
    """``["id", ...]``."""
    if not refs:
        return "[]"
    if _JSON_PLAIN_RE.fullmatch("".join(refs)):
        return '["' + '","'.join(refs) + '"]'
    return _encode(list(refs))


def flags_text(flags: frozenset[str]) -> str:
    """Flags (or signal words) sorted, space-separated (few distinct sets: cached)."""
    text = _flags_text_cache.get(flags)
    if text is None:
        text = " ".join(sorted(flags))
        if len(_flags_text_cache) < 4096:
            _flags_text_cache[flags] = text
    return text


def datetime_text(value: datetime | None) -> str | None:
    """What UTCDateTime + SQLAlchemy's SQLite DATETIME store: naive UTC with microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _same(value: datetime) -> datetime:
    return value


def message_values(
    r: MessageRecord, date: Callable[[datetime], Any] = _same, extra: tuple[Any, ...] = ()
) -> tuple[Any, ...]:
    """A record as the values of ``MESSAGE_COLUMNS`` (then ``extra``); ``date`` converts dates.

    A Gmail id outside the BigInteger range is stored as NULL: one odd
    value must not fail the batch it came in.
    """
    d, idate, gm_msgid, gm_thrid = r.date, r.internal_date, r.gm_msgid, r.gm_thrid
    return (
        r.account,
        r.folder,
        r.uid,
        r.message_id,
        None if d is None else date(d),
        None if idate is None else date(idate),
        addresses_json(r.from_),
        addresses_json(r.to),
        addresses_json(r.cc),
        addresses_json(r.bcc),
        r.in_reply_to,
        references_json(r.references),
        r.subject,
        r.list_id,
        r.list_post,
        r.list_unsubscribe,
        r.precedence,
        r.auto_submitted,
        flags_text(r.flags),
        None if gm_msgid is None or gm_msgid not in _INT64 else gm_msgid,
        None if gm_thrid is None or gm_thrid not in _INT64 else gm_thrid,
        r.in_sent_folder,
        flags_text(r.signals),
        ",".join(r.parse_errors),
        *extra,
    )
