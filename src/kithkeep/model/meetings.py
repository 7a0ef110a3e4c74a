"""Meetings that count as contact, from calendar events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from kithkeep.config import AnalysisConfig
from kithkeep.model.identity import is_resource, normalize
from kithkeep.records import EventRecord


@dataclass(frozen=True, slots=True)
class Meeting:
    key: str
    date: datetime  # when it ended
    summary: str
    # None: unknown (the server cut the attendee list); such meetings do not count
    size: int | None
    # an occurrence of a recurring calendar series (the event has a recurrence id)
    recurring: bool = False


@dataclass(frozen=True, slots=True)
class MetMeeting:
    """A meeting that counts, with the people met: (normalized address, name) each."""

    meeting: Meeting
    met: tuple[tuple[str, str], ...]


def meetings_from_events(
    events: Iterable[EventRecord],
    me: frozenset[str],
    cfg: AnalysisConfig,
    now: datetime,
    is_person: Callable[[str], bool],
    *,
    unknown_size: bool = False,
) -> list[MetMeeting]:
    """Meetings that count, with the people met, by the time they ended.

    Both attended (an attendee who declined did not meet), not cancelled, not
    declined by the user, at most ``max_meeting_size`` people, already ended,
    and not one of kithkeep's own reminder events. Rooms and resources are not
    people and do not count towards the size. The same occurrence in two
    calendars counts once. A meeting whose attendee list the server cut
    (``attendees_omitted``) has an unknown size, so it is not known to be small
    and does not count; with ``unknown_size`` only those are returned (their
    size None), for ``show`` to say why they did not count.
    """
    out: list[MetMeeting] = []
    seen: set[tuple[str, str]] = set()
    for e in events:
        if e.own or e.status.upper() == "CANCELLED" or e.end > now:
            continue
        key = (e.uid, e.recurrence_id)
        if key in seen:  # the same occurrence in two calendars
            continue
        attendees: dict[str, tuple[str, str]] = {}
        for a in e.attendees:
            addr = normalize(a.email)
            if a.cutype.upper() in ("ROOM", "RESOURCE") or is_resource(addr) or "@" not in addr:
                continue
            attendees[addr] = (a.name, a.partstat.upper())
        if e.organizer:
            org = normalize(e.organizer)
            if "@" in org and not is_resource(org):
                attendees.setdefault(org, ("", "ACCEPTED"))
        mine = [st for addr, (_, st) in attendees.items() if addr in me]
        my_status = (e.my_status or "").upper()
        if not mine and not my_status:
            continue  # a calendar the user reads but is not part of
        if my_status == "DECLINED" or any(st == "DECLINED" for st in mine):
            continue
        if e.attendees_omitted != unknown_size:
            continue
        if not e.attendees_omitted and len(attendees) > cfg.max_meeting_size:
            continue
        met = tuple(
            (addr, name)
            for addr, (name, st) in attendees.items()
            if addr not in me and st != "DECLINED" and is_person(addr)
        )
        if not met:
            continue
        seen.add(key)
        meeting = Meeting(
            f"event:{e.uid}:{e.recurrence_id}",
            e.end,
            e.summary,
            None if e.attendees_omitted else len(attendees),
            recurring=bool(e.recurrence_id),
        )
        out.append(MetMeeting(meeting, met))
    out.sort(key=lambda mt: (mt.meeting.date, mt.meeting.key))
    return out


def attendee_addresses(e: EventRecord) -> set[str]:
    """Every normalized address an event names (attendees and organizer)."""
    out = {normalize(a.email) for a in e.attendees if a.email}
    if e.organizer:
        out.add(normalize(e.organizer))
    return {a for a in out if "@" in a}
