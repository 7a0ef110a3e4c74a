"""Contacts from a vCard file: each card groups its addresses into one person.

Only FN and EMAIL are read. The parser is deliberately small and forgiving
(vCard 2.1, 3.0 and 4.0 as exported by phones, Thunderbird, macOS and Google):
folded lines, ``item1.EMAIL`` groups, ``TYPE`` parameters, quoted-printable
names and backslash escapes. A card that cannot be read is skipped, never fatal.
"""

from __future__ import annotations

import logging
import quopri
import re
from dataclasses import dataclass
from pathlib import Path

from kithkeep.model.identity import normalize

log = logging.getLogger(__name__)

_ESCAPES = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Card:
    name: str
    emails: tuple[str, ...]  # normalized, in file order, without duplicates


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif lines and lines[-1].endswith("=") and "QUOTED-PRINTABLE" in lines[-1].upper():
            lines[-1] = lines[-1][:-1] + raw  # vCard 2.1 soft line break
        else:
            lines.append(raw)
    return lines


def _value(params: str, value: str) -> str:
    if "QUOTED-PRINTABLE" in params.upper():
        charset = "utf-8"
        m = re.search(r"CHARSET=([\w-]+)", params, re.IGNORECASE)
        if m:
            charset = m.group(1)
        try:
            value = quopri.decodestring(value.encode("latin-1", "replace")).decode(
                charset, "replace"
            )
        except LookupError:
            value = quopri.decodestring(value.encode("latin-1", "replace")).decode(
                "utf-8", "replace"
            )
    return _ESCAPES.sub(lambda m: {"n": " ", "N": " "}.get(m.group(1), m.group(1)), value).strip()


def parse_vcards(text: str) -> list[Card]:
    """Cards with at least one address."""
    cards: list[Card] = []
    name = ""
    emails: list[str] = []
    inside = False
    for line in _unfold(text):
        head, sep, value = line.partition(":")
        if not sep:
            continue
        prop, _, params = head.partition(";")
        prop = prop.rsplit(".", 1)[-1].strip().upper()  # drop "item1." groups
        if prop == "BEGIN" and value.strip().upper() == "VCARD":
            inside, name, emails = True, "", []
        elif prop == "END" and value.strip().upper() == "VCARD":
            if inside and emails:
                cards.append(Card(name, tuple(dict.fromkeys(emails))))
            inside = False
        elif inside and prop == "FN":
            name = _value(params, value)
        elif inside and prop == "EMAIL":
            addr = _value(params, value).removeprefix("mailto:")
            if "@" in addr:
                emails.append(normalize(addr))
    return cards


def load_contacts(path: str) -> list[Card]:
    """Cards of the configured ``contacts_file``; a missing file is logged, not fatal.

    The daemon keeps running when the file sits on an unmounted disk; analysis
    then groups addresses without it.
    """
    if not path:
        return []
    file = Path(path).expanduser()
    try:
        text = file.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        log.warning("contacts file %s not read (%s): addresses are not grouped by it", file, exc)
        return []
    cards = parse_vcards(text)
    log.debug("contacts file %s: %d cards with addresses", file, len(cards))
    return cards
