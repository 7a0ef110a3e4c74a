"""One person's contacts, message by message, for ``kithkeep show``.

The statistics keep only numbers; the list of exchanges is read again from
the messages and meetings filed under the person's addresses, through the
same time line as the statistics (:func:`kithkeep.model.analyze.timeline_of`),
so what ``show`` lists is what was counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kithkeep.model.analyze import Setting, timeline_of
from kithkeep.model.meetings import attendee_addresses, meetings_from_events
from kithkeep.model.messages import AddrParser
from kithkeep.model.person import IN, MEETING, OUT
from kithkeep.model.stats import PersonStats
from kithkeep.store import Store


@dataclass(frozen=True)
class Contact:
    date: datetime
    direction: str  # "in" | "out" | "meeting" | "uncounted" (a meeting of unknown size)
    subject: str
    direct: bool  # in To (not only Cc); always True for meetings


def contacts_of(store: Store, person: PersonStats, setting: Setting) -> list[Contact]:
    """Every counted message and meeting with ``person``, oldest first."""
    root = setting.root(person.addresses[0])
    members = setting.members(root) | set(person.addresses)
    parser = AddrParser()
    views = [parser.view(row) for _, row in store.messages_of(members)]
    events = [e for e in store.events_of(members) if not attendee_addresses(e).isdisjoint(members)]
    meetings = meetings_from_events(events, setting.me, setting.cfg, setting.now, setting.is_person)
    t = timeline_of(root, views, meetings, setting)
    out: list[Contact] = []
    for it in t.items:
        if it.kind == MEETING:
            mt = t.meetings[it.ref].meeting
            out.append(Contact(mt.date, "meeting", mt.summary, True))
        else:
            m = t.msgs[it.ref]
            direction = {IN: "in", OUT: "out"}[it.kind]
            out.append(Contact(m.date, direction, m.subject, it.direct))
    members_met = setting.members(root)
    for unknown in meetings_from_events(
        events, setting.me, setting.cfg, setting.now, setting.is_person, unknown_size=True
    ):
        if any(a in members_met for a, _ in unknown.met):
            why = "not counted: the calendar did not list every attendee, so its size is unknown"
            summary = f"{unknown.meeting.summary} ({why})"
            out.append(Contact(unknown.meeting.date, "uncounted", summary, True))
    out.sort(key=lambda c: (c.date, c.direction))
    return out
