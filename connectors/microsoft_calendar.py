"""Microsoft 365 and Outlook.com calendars through Microsoft Graph: a source and a reminders sink.

**Source** (``type = "microsoft-calendar"``): ``/me/calendarView/delta`` over
the analysis window (``past_days`` back, ``future_days`` ahead) of the primary
calendar. Graph expands recurring events into occurrences itself. Each page
is one batch; the checkpoint (scope ``calendar``) holds the link to go on
with, so an interrupted listing resumes at its page and later runs fetch only
what changed. A full listing replaces the source's stored events; one happens
on the first run, after an expired link (410, ``syncStateNotFound``), and
every ``resync_days`` so that the window follows the clock. A delta round
names removed events by Graph id only, which kithkeep does not keep, so a
deleted event leaves the store at the next full listing (a cancelled meeting
arrives at once, as ``isCancelled``).

An occurrence's identity is its iCalendar UID plus its start, as on every
connector: Graph's ``iCalUId`` is Exchange's global object id, which differs
per occurrence (it carries the instance date), so :func:`ical_uid` turns it
back into the UID the invitation carried (the id with the date zeroed, or
the third-party UID wrapped in it, MS-OXCICAL 2.1.3.1.1.20.26), and the
recurrence id is the occurrence's original start. One meeting seen through
Outlook and through Google or CalDAV then counts once. Resource attendees
(rooms, equipment: ``type = "resource"``) are marked RESOURCE and never
counted; the user's own answer comes from ``responseStatus``.

**Sink** (``type = "microsoft"``): reminders are events in the default
calendar or in a calendar of their own (``calendar``, created if missing).
Each is created with a ``transactionId`` derived from the calendar and the
reminder key, so a retried POST cannot make a second event, and carries a
single-value extended property holding the key: that property is how
kithkeep lists its own events (``$filter`` on it, ``$expand`` to read it),
whatever the events' ids. Updates send ``If-Match`` with the event's
``@odata.etag``: a reminder the user changed meanwhile is not overwritten
(412: the next run plans again). Free/busy comes from ``getSchedule``; Graph
does not offer it to personal accounts, whose busy time is read from
``calendarView`` instead. Reminders are ``showAs: free``.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import Any
from urllib.parse import quote

from kithkeep import clock
from kithkeep.config import Config as KithkeepConfig
from kithkeep.connectors.graph_client import (
    GraphAccountConfig,
    GraphBacked,
    GraphConnection,
    GraphHTTPError,
    Sleep,
    delta_pages,
    graph_time,
    parse_graph_time,
)
from kithkeep.errors import ConfigError, SinkError, SourceError
from kithkeep.interfaces import (
    CalendarSource,
    Reminder,
    ReminderSink,
    ScopeInfo,
    SinkEvent,
    SyncContext,
)
from kithkeep.microsoft_auth import CALENDAR_READ, CALENDAR_WRITE
from kithkeep.records import (
    MAX_EVENT_SUMMARY,
    Attendee,
    Checkpoint,
    EventBatch,
    EventRecord,
    occurrence_id,
)

log = logging.getLogger(__name__)

SCOPE = "calendar"
# the single-value extended property that carries a reminder's key (kithkeep's own GUID)
KEY_PROP = "String {6f1d8a5e-3c2b-4e7a-9d0f-5b8c7a6e4d21} Name kithkeepKey"
# transactionIds of kithkeep's reminders start with this (the source marks them own)
TRANSACTION_PREFIX = "kithkeep-"
# Exchange's global object id (MS-OXOCAL 2.2.1.27) as Graph writes it in iCalUId
_GOID_PREFIX = "040000008200E00074C5B7101A82E008"
_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"

_PARTSTAT = {
    "organizer": "ACCEPTED",
    "accepted": "ACCEPTED",
    "tentativelyaccepted": "TENTATIVE",
    "declined": "DECLINED",
    "notresponded": "NEEDS-ACTION",
    "none": "NEEDS-ACTION",
}
_BUSY = frozenset({"busy", "tentative", "oof", "workingelsewhere"})


def ical_uid(value: str) -> str:
    """The iCalendar UID of a Graph ``iCalUId``.

    Exchange's global object id holds the occurrence's date in bytes 16-19
    (zero for the series and for single events); the UID an invitation
    carries has them zeroed, or, for a meeting that came from another system,
    is that system's UID wrapped after ``vCal-Uid`` (the conversion of
    MS-ASEMAIL 4.3). Anything else is a UID already and is kept as it is.
    """
    text = value.strip()
    if len(text) < 82 or len(text) % 2 or not text.upper().startswith(_GOID_PREFIX):
        return text
    try:
        raw = bytearray(binascii.unhexlify(text))
    except (binascii.Error, ValueError):
        return text
    size = int.from_bytes(raw[36:40], "little")
    data = bytes(raw[40 : 40 + size])
    if data.startswith(_VCAL_UID):
        uid = data[len(_VCAL_UID) :].rstrip(b"\x00").decode("utf-8", "replace")
        return uid or text
    raw[16:20] = b"\x00\x00\x00\x00"
    return binascii.hexlify(bytes(raw)).decode("ascii").upper()


def _time(value: Any, all_day: bool, tz: tzinfo) -> datetime:
    dt = parse_graph_time(value)
    if dt is None:
        raise ValueError(f"no time in {value!r}")
    if all_day:
        # an all-day event is a date: midnight where the user lives, as on Google
        return datetime.combine(dt.date(), dtime(), tz).astimezone(UTC)
    return dt


def event_record(item: dict[str, Any], source: str, tz: tzinfo) -> EventRecord:
    """An EventRecord from a Graph event occurrence; ValueError/KeyError when unusable."""
    all_day = bool(item.get("isAllDay"))
    start = _time(item["start"], all_day, tz)
    end = _time(item["end"], all_day, tz) if item.get("end") else start
    kind = str(item.get("type") or "singleInstance")
    original = None
    if kind in ("occurrence", "exception"):
        raw = item.get("originalStart")
        original = _time(raw, all_day, tz) if raw else start
    uid, rid = occurrence_id(ical_uid(str(item.get("iCalUId") or item["id"])), original)
    attendees = []
    for a in item.get("attendees") or ():
        ea = a.get("emailAddress") or {}
        email = str(ea.get("address") or "").strip().lower()
        if "@" not in email:
            continue
        kind_a = str(a.get("type") or "required").lower()
        response = str((a.get("status") or {}).get("response") or "none").lower()
        attendees.append(
            Attendee(
                email=email,
                name=str(ea.get("name") or ""),
                partstat=_PARTSTAT.get(response, "NEEDS-ACTION"),
                cutype="RESOURCE" if kind_a == "resource" else "INDIVIDUAL",
                role={"optional": "OPT-PARTICIPANT", "resource": "NON-PARTICIPANT"}.get(
                    kind_a, "REQ-PARTICIPANT"
                ),
            )
        )
    mine = str((item.get("responseStatus") or {}).get("response") or "").lower()
    organizer = str(((item.get("organizer") or {}).get("emailAddress") or {}).get("address") or "")
    return EventRecord(
        source=source,
        uid=uid,
        recurrence_id=rid,
        start=start,
        end=max(end, start),
        all_day=all_day,
        status="CANCELLED" if item.get("isCancelled") else "CONFIRMED",
        summary=str(item.get("subject") or "")[:MAX_EVENT_SUMMARY],
        organizer=organizer.strip().lower() or None,
        attendees=tuple(attendees),
        my_status=_PARTSTAT.get(mine) if mine else None,
        own=str(item.get("transactionId") or "").startswith(TRANSACTION_PREFIX),
    )


# ------------------------------------------------------------------ source


@dataclass(frozen=True)
class MicrosoftCalendarSourceConfig(GraphAccountConfig):
    # keep occurrences this many days back and ahead
    past_days: int = 730
    future_days: int = 60
    # a full listing at least this often, so the window follows the clock
    resync_days: int = 7
    # events per delta page (Prefer: odata.maxpagesize)
    page_size: int = 100


class MicrosoftCalendarSource(GraphBacked, CalendarSource):
    Config = MicrosoftCalendarSourceConfig

    def __init__(
        self,
        name: str,
        cfg: MicrosoftCalendarSourceConfig,
        tz: tzinfo,
        *,
        sleep: Sleep = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(name)
        self.graph = GraphConnection(
            "source", name, cfg, (CALENDAR_READ,), SourceError, sleep=sleep, jitter=jitter
        )
        if cfg.past_days < 0 or cfg.future_days < 0 or cfg.resync_days <= 0:
            raise ConfigError(
                f"[sources.{name}]: past_days, future_days and resync_days must be positive"
            )
        self.cfg = cfg
        self.tz = tz

    @classmethod
    def from_config(
        cls, name: str, cfg: MicrosoftCalendarSourceConfig, config: KithkeepConfig
    ) -> MicrosoftCalendarSource:
        return cls(name, cfg, config.general.tz)

    def _window(self, now: datetime) -> tuple[str, str]:
        lo = now - timedelta(days=self.cfg.past_days)
        hi = now + timedelta(days=self.cfg.future_days)
        return (
            lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
            hi.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def check(self) -> list[ScopeInfo]:
        cal = self.client.get("me/calendar", "read the calendar") or {}
        lo, hi = self._window(clock.now())
        view = (
            self.client.get(
                "me/calendarView",
                "count the events",
                params={
                    "startDateTime": lo,
                    "endDateTime": hi,
                    "$count": "true",
                    "$top": "1",
                    "$select": "id",
                },
            )
            or {}
        )
        count = view.get("@odata.count")
        return [
            ScopeInfo(
                str(cal.get("name") or "Calendar"),
                int(count) if count is not None else None,
                f"{self.cfg.past_days} days back, {self.cfg.future_days} ahead",
            )
        ]

    def sync(self, ctx: SyncContext) -> Iterator[EventBatch]:
        saved = ctx.checkpoints().get(SCOPE) or {}
        now = clock.now()
        link: str | None = saved.get("link")
        full_at = str(saved.get("full_at") or "")
        if link and saved.get("complete") and full_at:
            age = now - datetime.fromisoformat(full_at)
            if age > timedelta(days=self.cfg.resync_days):
                log.info(
                    "%s: periodic full listing (the last one %d days ago)", self.name, age.days
                )
                link = None
        replace = link is None
        if replace:
            full_at = now.isoformat()
        lo, hi = self._window(now)
        first = ("me/calendarView/delta", {"startDateTime": lo, "endDateTime": hi})
        for page in delta_pages(
            self.client, link, first, "read calendar changes", page_size=self.cfg.page_size
        ):
            if page.restarted:
                replace, full_at = True, now.isoformat()
            records: list[EventRecord] = []
            for item in page.items:
                if not isinstance(item, dict) or "@removed" in item:
                    continue  # named by Graph id only: gone at the next full listing
                if item.get("type") == "seriesMaster":
                    continue  # the occurrences come on their own
                try:
                    records.append(event_record(item, self.name, self.tz))
                except (KeyError, ValueError, TypeError) as exc:
                    log.warning(
                        "%s: skipped event %s: %s", self.name, str(item.get("id", "?"))[:40], exc
                    )
            state = {"link": page.link, "complete": page.complete, "full_at": full_at}
            yield EventBatch(
                records=records, checkpoint=Checkpoint(self.name, SCOPE, state), replace=replace
            )
            replace = False
            if ctx.should_stop():
                return


# ------------------------------------------------------------------ sink


@dataclass(frozen=True)
class MicrosoftSinkConfig(GraphAccountConfig):
    # empty: the default calendar; else the name of a calendar of the account
    calendar: str = ""
    # create that calendar when it does not exist
    create_calendar: bool = True


def transaction_id(calendar_id: str, key: str) -> str:
    """The same reminder in the same calendar always has the same transactionId."""
    digest = hashlib.sha256(f"{calendar_id}\0{key}".encode()).hexdigest()[:32]
    return TRANSACTION_PREFIX + digest


def event_body(r: Reminder) -> dict[str, Any]:
    """What kithkeep writes for a reminder (create and update alike)."""
    return {
        "subject": r.title,
        "body": {"contentType": "text", "content": r.description},
        "start": graph_time(r.start),
        "end": graph_time(r.end),
        # a reminder is no meeting: it must not make the user look busy
        "showAs": "free",
        "isReminderOn": True,
        "reminderMinutesBeforeStart": r.alarm_minutes,
    }


def sink_event(item: dict[str, Any]) -> SinkEvent:
    key = next(
        str(p.get("value"))
        for p in item.get("singleValueExtendedProperties") or ()
        if str(p.get("id", "")).lower() == KEY_PROP.lower()
    )
    start = parse_graph_time(item["start"])
    end = parse_graph_time(item["end"])
    if start is None or end is None:
        raise ValueError("no start or end")
    body = item.get("body") or {}
    return SinkEvent(
        key=key,
        uid=str(item["id"]),
        start=start,
        end=end,
        title=str(item.get("subject") or ""),
        description=str(body.get("content") or ""),
        etag=item.get("@odata.etag"),
    )


# the body as text: kithkeep writes text and compares the text it reads back
_TEXT = {"Prefer": 'outlook.body-content-type="text"'}


class MicrosoftCalendarSink(GraphBacked, ReminderSink):
    Config = MicrosoftSinkConfig

    def __init__(
        self,
        name: str,
        cfg: MicrosoftSinkConfig,
        *,
        sleep: Sleep = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(name)
        self.graph = GraphConnection(
            "sink", name, cfg, (CALENDAR_WRITE,), SinkError, sleep=sleep, jitter=jitter
        )
        self.cfg = cfg
        self._calendar: str | None = None

    @classmethod
    def from_config(
        cls, name: str, cfg: MicrosoftSinkConfig, config: KithkeepConfig
    ) -> MicrosoftCalendarSink:
        return cls(name, cfg)

    @property
    def calendar_id(self) -> str:
        if self._calendar is None:
            self._calendar = self._find_calendar()
        return self._calendar

    def _find_calendar(self) -> str:
        if not self.cfg.calendar:
            cal = self.client.get("me/calendar", "read the default calendar") or {}
            return str(cal["id"])
        for page in self.client.pages("me/calendars", "list calendars", params={"$top": "100"}):
            for cal in page.get("value", []):
                if cal.get("name") == self.cfg.calendar:
                    return str(cal["id"])
        if not self.cfg.create_calendar:
            raise SinkError(
                f"sink {self.name}: no calendar named {self.cfg.calendar!r}",
                hint="create it, or set create_calendar = true",
            )
        log.info("%s: creating calendar %r", self.name, self.cfg.calendar)
        _s, _h, cal = self.client.call(
            "POST", "me/calendars", "create the calendar", json_body={"name": self.cfg.calendar}
        )
        return str(cal["id"])

    def _events_path(self) -> str:
        return f"me/calendars/{quote(self.calendar_id, safe='')}/events"

    def list_own(self) -> list[SinkEvent]:
        params = {
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROP}' "
            "and ep/value ne '')",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{KEY_PROP}')",
            "$select": "subject,body,start,end",
            "$top": "100",
        }
        out: list[SinkEvent] = []
        for page in self.client.pages(
            self._events_path(), "list reminders", params=params, headers=_TEXT
        ):
            for item in page.get("value", []):
                try:
                    out.append(sink_event(item))
                except (KeyError, ValueError, StopIteration) as exc:
                    log.warning(
                        "%s: unreadable own event %s: %s",
                        self.name,
                        str(item.get("id"))[:40],
                        type(exc).__name__,
                    )
        return out

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        out: list[tuple[datetime, datetime]] = []
        if self.cfg.account:
            try:
                _s, _h, result = self.client.call(
                    "POST",
                    "me/calendar/getSchedule",
                    "query free/busy",
                    json_body={
                        "schedules": [self.cfg.account],
                        "startTime": graph_time(start),
                        "endTime": graph_time(end),
                        "availabilityViewInterval": 15,
                    },
                    passthrough=frozenset({400, 403, 404, 501}),
                )
            except GraphHTTPError as exc:
                # personal accounts have no getSchedule: read the calendar itself
                log.info(
                    "%s: no getSchedule (HTTP %d %s); reading the calendar view",
                    self.name,
                    exc.status,
                    exc.code,
                )
            else:
                for info in (result or {}).get("value", []):
                    for item in info.get("scheduleItems", []):
                        if str(item.get("status", "")).lower() in _BUSY:
                            out.append(self._interval(item))
                return sorted(out)
        params = {
            "startDateTime": graph_time(start)["dateTime"] + "Z",
            "endDateTime": graph_time(end)["dateTime"] + "Z",
            "$select": "start,end,showAs,isCancelled",
            "$top": "250",
        }
        for page in self.client.pages("me/calendarView", "read busy times", params=params):
            for item in page.get("value", []):
                if not item.get("isCancelled") and str(item.get("showAs", "")).lower() in _BUSY:
                    out.append(self._interval(item))
        return sorted(out)

    @staticmethod
    def _interval(item: dict[str, Any]) -> tuple[datetime, datetime]:
        start, end = parse_graph_time(item["start"]), parse_graph_time(item["end"])
        assert start is not None and end is not None
        return start, end

    def create(self, reminder: Reminder) -> SinkEvent:
        body = {
            **event_body(reminder),
            "transactionId": transaction_id(self.calendar_id, reminder.key),
            "singleValueExtendedProperties": [{"id": KEY_PROP, "value": reminder.key}],
        }
        try:
            _s, _h, item = self.client.call(
                "POST",
                self._events_path(),
                "create a reminder",
                json_body=body,
                headers=_TEXT,
                passthrough=frozenset({409}),
            )
        except GraphHTTPError:
            # the transactionId was taken by an earlier POST whose answer was lost
            found = [e for e in self.list_own() if e.key == reminder.key]
            if not found:
                raise SinkError(
                    f"sink {self.name}: Graph refused to create {reminder.key} (409) "
                    "and no event carries its key"
                ) from None
            return found[0]
        if not item.get("singleValueExtendedProperties"):
            # Graph answers a create without the extended property: it is the one sent
            item = {**item, "singleValueExtendedProperties": body["singleValueExtendedProperties"]}
        return sink_event(item)

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        headers = dict(_TEXT)
        if current.etag:
            # only if the user has not changed it since we listed it
            headers["If-Match"] = current.etag
        try:
            _s, _h, item = self.client.call(
                "PATCH",
                f"me/events/{quote(current.uid, safe='')}",
                "update a reminder",
                json_body=event_body(reminder),
                headers=headers,
                passthrough=frozenset({404, 409, 412}),
            )
        except GraphHTTPError as exc:
            log.info(
                "%s: %s changed or went meanwhile (HTTP %d); the next run plans again",
                self.name,
                reminder.key,
                exc.status,
            )
            return current
        item = {**item, "singleValueExtendedProperties": [{"id": KEY_PROP, "value": current.key}]}
        return sink_event(item)

    def delete(self, current: SinkEvent) -> None:
        try:
            self.client.call(
                "DELETE",
                f"me/events/{quote(current.uid, safe='')}",
                "delete a reminder",
                passthrough=frozenset({404}),
            )
        except GraphHTTPError:
            log.debug("%s: %s was already gone", self.name, current.key)
