"""One person's contacts, message by message, for ``kithkeep show``.

The statistics keep only numbers; the list of exchanges is read again from
the store when a person is shown, with the same filters as the analysis
(bulk, mass mail, lists, copies), so what ``show`` lists is what was counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from kithkeep.config import AnalysisConfig
from kithkeep.model.identity import is_noreply, is_role_address, normalize
from kithkeep.model.messages import RECIPIENTS, SENDER, SENT, SUBJECT, msg_date, read_msgs, unique
from kithkeep.model.person import meetings_from_events
from kithkeep.model.stats import PersonStats
from kithkeep.store import Store


@dataclass(frozen=True)
class Contact:
    date: datetime
    direction: str  # "in" | "out" | "meeting" | "uncounted" (a meeting of unknown size)
    subject: str
    direct: bool  # in To (not only Cc); always True for meetings


def contacts_of(
    store: Store,
    person: PersonStats,
    cfg: AnalysisConfig,
    configured_me: tuple[str, ...],
    now: datetime,
) -> list[Contact]:
    """Every counted message and meeting with ``person``, oldest first."""
    stored_me = store.get_meta("me")
    me = frozenset(
        {normalize(a) for a in configured_me} | set(json.loads(stored_me) if stored_me else ())
    )
    mine = frozenset(person.addresses)
    msgs, pre = read_msgs(store)
    me = me | frozenset(pre.sent_from)
    lists = frozenset(pre.lists) - me
    out: list[Contact] = []
    for m in unique(msgs)[0]:
        rc = m[RECIPIENTS]
        if len(rc.every) > cfg.max_recipients:
            continue
        sender = m[SENDER]
        if lists and (sender in lists or not lists.isdisjoint(rc.every)):
            continue
        if sender in me or (sender is None and m[SENT]):
            hit = mine.intersection(rc.every)
            if hit:
                out.append(Contact(msg_date(m), "out", m[SUBJECT], not hit.isdisjoint(rc.to)))
        elif sender in mine:
            out.append(Contact(msg_date(m), "in", m[SUBJECT], not me.isdisjoint(rc.to)))

    def is_person(addr: str) -> bool:
        return (
            addr not in me
            and not is_noreply(addr)
            and (addr in mine or not is_role_address(addr, cfg.role_local_parts))
        )

    for meeting, met in meetings_from_events(store.iter_events(), me, cfg, now, is_person):
        if any(addr in mine for addr, _ in met):
            out.append(Contact(meeting.date, "meeting", meeting.summary, True))
    for meeting, met in meetings_from_events(
        store.iter_events(), me, cfg, now, is_person, unknown_size=True
    ):
        if any(addr in mine for addr, _ in met):
            why = "not counted: the calendar did not list every attendee, so its size is unknown"
            out.append(Contact(meeting.date, "uncounted", f"{meeting.summary} ({why})", True))
    out.sort(key=lambda c: (c.date, c.direction))
    return out
