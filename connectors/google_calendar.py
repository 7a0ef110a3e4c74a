"""Google Calendar: a calendar source and a reminders sink (Calendar API v3).

Source: ``events.list`` with ``singleEvents`` (Google expands recurring
events) and sync tokens. The first run, and every run after Google answers
410 Gone (the token expired), is a full sync that replaces the calendar's
stored events; the other runs fetch only what changed, deletions included.
Each page is one batch; the new sync token is saved with the last page, so an
interrupted sync starts again from the previous token and re-applies pages
idempotently. A full sync is also forced every ``resync_days`` so that
occurrences of recurring events move into the window as the clock does.

Sink: reminders in one calendar (``primary``, an id, or a calendar named
"kithkeep" that kithkeep creates). The event id is the base32hex of a hash of
the reminder key, so the same key always means the same event and a retried
insert cannot duplicate it; the key also sits in
``extendedProperties.private``, which is how kithkeep finds its own events and
how the source marks them ``own``. A user who deletes a reminder leaves a
cancelled event behind, and Google refuses to insert that id again (409):
that reminder counts as dismissed. Free slots come from ``freebusy.query``.

Every request goes through :class:`Api`: the client's own
``execute(num_retries=...)`` retries 403 rateLimitExceeded, 429, 5xx and
dropped connections with exponential backoff; then a SourceError or SinkError
says what failed (a used-up quota, a refused token, a missing calendar).

Events are identified as EventRecord says, by iCalUID (not Google's event
id) and original start, so that a meeting also seen through an .ics or
CalDAV source is one meeting; the ids of events whose iCalUID is not
Google's own are kept in the checkpoint, because a deleted event may come
back as its id only. ``attendeesOmitted`` marks a meeting of unknown size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from kithkeep import clock
from kithkeep.config import Config as KithkeepConfig
from kithkeep.errors import AuthError, KithkeepError, SinkError, SourceError, UserDeleted
from kithkeep.interfaces import (
    CalendarSource,
    Reminder,
    ReminderSink,
    ScopeInfo,
    SinkEvent,
    SyncContext,
)
from kithkeep.records import (
    MAX_EVENT_SUMMARY,
    Attendee,
    Checkpoint,
    EventBatch,
    EventRecord,
    occurrence_id,
)

log = logging.getLogger(__name__)

# extendedProperties.private keys on kithkeep's own events
MARK_PROP = "kithkeep"
KEY_PROP = "kithkeepKey"

_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})

_PARTSTAT = {
    "needsAction": "NEEDS-ACTION",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
    "accepted": "ACCEPTED",
}


def event_id_for_key(key: str) -> str:
    """A valid Google event id for a reminder key: base32hex (a-v, 0-9), 52 characters.

    Google allows 5-1024 characters of lower-case base32hex; a hash keeps any
    key (whatever its characters or length) within that.
    """
    digest = hashlib.sha256(key.encode()).digest()
    return base64.b32hexencode(digest).decode("ascii").rstrip("=").lower()


# ------------------------------------------------------------------ requests


def _status(exc: Exception) -> int | None:
    resp = getattr(exc, "resp", None)
    status = getattr(resp, "status", None)
    return int(status) if status is not None else None


def _reasons(exc: Exception) -> set[str]:
    """The ``error.errors[].reason`` values of a Google error response."""
    content = getattr(exc, "content", b"")
    try:
        data = json.loads(content.decode("utf-8") if isinstance(content, bytes) else content)
        errors = data.get("error", {}).get("errors", [])
        return {str(e.get("reason", "")) for e in errors if isinstance(e, dict)}
    except (ValueError, AttributeError):
        return set()


def _is_transient(exc: Exception) -> bool:
    """What the client retries itself (googleapiclient.http._should_retry_response
    and its network errors): left after the retries, it is Google's load, not a
    mistake of ours."""
    status = _status(exc)
    if status is None:
        # no HTTP status: a dropped connection or a timeout (httplib2, socket,
        # google-auth's transport while refreshing the token)
        return (
            isinstance(exc, OSError | TimeoutError)
            or type(exc).__module__.startswith("httplib2")
            or type(exc).__name__ == "TransportError"
        )
    if status == 429 or status >= 500:
        return True
    return status == 403 and bool(_reasons(exc) & _RATE_REASONS)


class Api:
    """Runs API requests with the client's own retries and translates what is left.

    ``execute(num_retries=...)`` retries 5xx, 429, 403 rateLimitExceeded and
    dropped connections with exponential backoff and jitter, logging each
    retry (logger ``googleapiclient.http``); what still fails becomes one
    SourceError or SinkError naming the cause.
    """

    def __init__(self, what: str, error: type[KithkeepError], *, max_retries: int = 5) -> None:
        self.what = what
        self.error = error
        self.max_retries = max_retries

    def execute(
        self, request: Any, action: str, *, passthrough: frozenset[int] = frozenset()
    ) -> Any:
        """Run ``request``; HTTP statuses in ``passthrough`` propagate for the caller."""
        try:
            return request.execute(num_retries=self.max_retries)
        except Exception as exc:
            status = _status(exc)
            if status is not None and status in passthrough:
                raise
            if _is_transient(exc):
                raise self.error(
                    f"{self.what}: {action} failed {self.max_retries + 1} times "
                    f"({_describe(exc)}); giving up for now",
                    hint="nothing was lost: the next run tries again",
                ) from exc
            if status is None and type(exc).__name__ != "RefreshError":
                raise  # not Google's answer: a bug, shown as one
            raise self._translate(exc, action) from exc

    def _translate(self, exc: Exception, action: str) -> KithkeepError:
        status = _status(exc)
        if status == 401 or status is None:  # None: google-auth's RefreshError
            auth_error = AuthError if self.error is SourceError else self.error
            return auth_error(
                f"{self.what}: Google refused the token while trying to {action}",
                hint="run `kithkeep auth google` again",
            )
        reasons = _reasons(exc)
        if status == 403 and reasons & _QUOTA_REASONS:
            return self.error(
                f"{self.what}: {action}: Google's usage limit for this project or calendar "
                f"is used up ({_describe(exc)})",
                hint="nothing was lost: the next run tries again once the limit resets; "
                "daily quotas reset at midnight Pacific time",
            )
        if status == 403:
            return self.error(
                f"{self.what}: {action}: access denied ({_describe(exc)})",
                hint="check the calendar id and that the token has the calendar scope "
                "(`kithkeep auth google`)",
            )
        if status == 404:
            return self.error(
                f"{self.what}: {action}: not found", hint="check the calendar id in the config"
            )
        return self.error(f"{self.what}: {action} failed: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    status = _status(exc)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    reasons = ", ".join(sorted(r for r in _reasons(exc) if r))
    return f"HTTP {status}" + (f" {reasons}" if reasons else "")


# ------------------------------------------------------------------ parsing


def _parse_time(value: dict[str, Any], tz: tzinfo) -> tuple[datetime, bool]:
    """A Google ``start``/``end``/``originalStartTime`` as aware UTC, and whether all-day."""
    if value.get("dateTime"):
        dt = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        return dt.astimezone(UTC), False
    if value.get("date"):
        d = date.fromisoformat(str(value["date"]))
        return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC), True
    raise ValueError(f"no dateTime or date in {value!r}")


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# an instance's id is its series' id, "_", and its original start in UTC
# (20261116T090000Z, or 20261116 for an all-day one)
_INSTANCE_ID = re.compile(r"^(?P<base>[^_]+)_(?P<start>\d{8}(?:T\d{6}Z)?)$")


class ICalUids:
    """Google event id -> iCalUID, for the events whose iCalUID is not Google's own.

    Records carry the iCalUID (EventRecord's rule), but incremental sync may
    report a deleted event with its id only (``base_20261116T090000Z`` for an
    instance); this map, kept in the checkpoint, turns the id back. An event
    Google created has the iCalUID ``<id>@google.com`` and needs no entry.
    """

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.known = dict(known or {})

    def learn(self, event_id: str, ical_uid: str) -> None:
        if ical_uid == f"{event_id}@google.com":
            self.known.pop(event_id, None)
        else:
            self.known[event_id] = ical_uid

    def of(self, event_id: str) -> str:
        return self.known.get(event_id) or f"{event_id}@google.com"


def occurrence_key(item: dict[str, Any], tz: tzinfo, uids: ICalUids) -> tuple[str, str]:
    """(uid, recurrence_id) of an event or an occurrence of a recurring one, as
    EventRecord defines them: the iCalUID and the original start."""
    base = str(item.get("recurringEventId") or "")
    original: datetime | None = None
    if base and item.get("originalStartTime"):
        original = _parse_time(item["originalStartTime"], tz)[0]
    elif not base and (m := _INSTANCE_ID.match(str(item.get("id", "")))):
        # a deleted instance reported with its id only
        base = m["base"]
        stamp = m["start"]
        if "T" in stamp:
            original = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        else:
            day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
            original = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    base = base or str(item["id"])
    uid = str(item.get("iCalUID") or uids.of(base))
    return occurrence_id(uid, original)


def event_record(item: dict[str, Any], source: str, tz: tzinfo, uids: ICalUids) -> EventRecord:
    """An EventRecord from an ``events`` resource; raises ValueError/KeyError when unusable."""
    uid, rid = occurrence_key(item, tz, uids)
    start, all_day = _parse_time(item["start"], tz)
    end, _ = _parse_time(item["end"], tz) if "end" in item else (start, False)
    attendees = []
    my_status = None
    for a in item.get("attendees", []):
        email = str(a.get("email", "")).strip().lower()
        if "@" not in email:
            continue
        partstat = _PARTSTAT.get(str(a.get("responseStatus", "")), "NEEDS-ACTION")
        if a.get("self"):
            my_status = partstat
        attendees.append(
            Attendee(
                email=email,
                name=str(a.get("displayName", "")),
                partstat=partstat,
                cutype="RESOURCE" if a.get("resource") else "INDIVIDUAL",
                role="OPT-PARTICIPANT" if a.get("optional") else "REQ-PARTICIPANT",
            )
        )
    organizer = item.get("organizer", {}).get("email")
    private = item.get("extendedProperties", {}).get("private", {})
    return EventRecord(
        source=source,
        uid=uid,
        recurrence_id=rid,
        start=start,
        end=max(end, start),
        all_day=all_day,
        status=str(item.get("status", "confirmed")).upper(),
        summary=str(item.get("summary", ""))[:MAX_EVENT_SUMMARY],
        organizer=str(organizer).lower() if organizer else None,
        attendees=tuple(attendees),
        my_status=my_status,
        own=KEY_PROP in private,
        # Google lists only the user when the list is too long to give: size unknown
        attendees_omitted=bool(item.get("attendeesOmitted")),
    )


def _build_service(what: str, error: type[KithkeepError]) -> Any:
    """The Calendar API client with the stored OAuth token (discovery document offline)."""
    from googleapiclient.discovery import build

    from kithkeep.google_auth import load_credentials

    try:
        creds = load_credentials()
    except AuthError as exc:
        raise error(f"{what}: {exc.message}", hint=exc.hint) from exc
    return build("calendar", "v3", credentials=creds, cache_discovery=False, static_discovery=True)


# ------------------------------------------------------------------ source


@dataclass(frozen=True)
class GoogleCalendarSourceConfig:
    # "primary" is the account's main calendar; other ids look like addresses
    calendar_id: str = "primary"
    # keep occurrences this many days back and ahead
    past_days: int = 730
    future_days: int = 60
    # a full sync at least this often, so recurring occurrences follow the window
    resync_days: int = 7
    max_retries: int = 5


class GoogleCalendarSource(CalendarSource):
    Config = GoogleCalendarSourceConfig

    def __init__(
        self,
        name: str,
        cfg: GoogleCalendarSourceConfig,
        service: Any,
        tz: tzinfo,
    ) -> None:
        super().__init__(name)
        self.cfg = cfg
        # None: built on first use, so a missing token fails this source's sync
        # (reported, the others go on), not the building of every connector
        self._service = service
        self.tz = tz
        self.api = Api(f"source {name}", SourceError, max_retries=cfg.max_retries)

    @classmethod
    def from_config(
        cls, name: str, cfg: GoogleCalendarSourceConfig, config: KithkeepConfig
    ) -> GoogleCalendarSource:

        return cls(name, cfg, None, config.general.tz)

    @property
    def service(self) -> Any:
        if self._service is None:
            self._service = _build_service(f"source {self.name}", SourceError)
        return self._service

    def me_addresses(self) -> set[str]:
        cid = self.cfg.calendar_id.lower()
        # a calendar id that is an address (not a group or resource calendar) is its owner
        if "@" in cid and not cid.endswith(".calendar.google.com"):
            return {cid}
        return set()

    def check(self) -> list[ScopeInfo]:
        cal = self.api.execute(
            self.service.calendars().get(calendarId=self.cfg.calendar_id), "read the calendar"
        )
        return [ScopeInfo(str(cal.get("summary", self.cfg.calendar_id)), None)]

    def sync(self, ctx: SyncContext) -> Iterator[EventBatch]:
        scope = self.cfg.calendar_id
        saved = ctx.checkpoints().get(scope) or {}
        now = clock.now()
        token = saved.get("sync_token")
        full_at = saved.get("full_at")
        if token and full_at:
            age = now - datetime.fromisoformat(str(full_at))
            if age > timedelta(days=self.cfg.resync_days):
                log.info("%s: periodic full sync (last one %d days ago)", self.name, age.days)
                token = None
        if token and "ical_uids" not in saved:
            # stored by Google's event id before: store them again by iCalUID
            log.info("%s: events are now kept by their iCalUID: full sync", self.name)
            token = None
        if token:
            try:
                uids = ICalUids(saved.get("ical_uids"))
                yield from self._list(scope, now, str(token), str(full_at), uids)
                return
            except _TokenExpired:
                log.info("%s: sync token expired (410 Gone): full sync", self.name)
        yield from self._list(scope, now, None, now.isoformat(), ICalUids())

    def _list(
        self, scope: str, now: datetime, token: str | None, full_at: str, uids: ICalUids
    ) -> Iterator[EventBatch]:
        lo = now - timedelta(days=self.cfg.past_days)
        hi = now + timedelta(days=self.cfg.future_days)
        page_token: str | None = None
        first = True
        while True:
            # timeMin/timeMax cannot be combined with sync tokens: the window is applied here
            params: dict[str, Any] = {
                "calendarId": self.cfg.calendar_id,
                "singleEvents": True,
                "maxResults": 250,
            }
            if token:
                params["syncToken"] = token
            if page_token:
                params["pageToken"] = page_token
            try:
                page = self.api.execute(
                    self.service.events().list(**params),
                    "list events",
                    passthrough=frozenset({410}),
                )
            except Exception as exc:
                if _status(exc) != 410:
                    raise
                if token:
                    raise _TokenExpired from exc
                # a full listing has no token to expire: its page token did
                raise SourceError(
                    f"source {self.name}: Google ended the full listing (410 Gone)",
                    hint="nothing was lost: the next run starts it again",
                ) from exc
            records: list[EventRecord] = []
            deleted: list[tuple[str, str]] = []
            for item in page.get("items", []):
                try:
                    if item.get("status") == "cancelled":
                        deleted.append(occurrence_key(item, self.tz, uids))
                        continue
                    if item.get("iCalUID"):
                        uids.learn(str(item.get("recurringEventId") or item["id"]), item["iCalUID"])
                    rec = event_record(item, self.name, self.tz, uids)
                except (KeyError, ValueError, TypeError) as exc:
                    log.warning("%s: skipped event %s: %s", self.name, item.get("id", "?"), exc)
                    continue
                if rec.end < lo or rec.start > hi:
                    deleted.append((rec.uid, rec.recurrence_id))  # it may have moved out
                    continue
                records.append(rec)
            page_token = page.get("nextPageToken")
            next_sync = page.get("nextSyncToken")
            checkpoint = None
            if not page_token and next_sync:
                state = {"sync_token": next_sync, "full_at": full_at, "ical_uids": uids.known}
                checkpoint = Checkpoint(self.name, scope, state)
            yield EventBatch(
                records=records,
                deleted=deleted,
                checkpoint=checkpoint,
                replace=first and token is None,
            )
            first = False
            if not page_token:
                return


class _TokenExpired(Exception):
    pass


# ------------------------------------------------------------------ sink


@dataclass(frozen=True)
class GoogleCalendarSinkConfig:
    # "primary", or the id of another calendar the account may write to
    calendar_id: str = "primary"
    # true: write into a calendar named calendar_name instead, created if missing
    create_calendar: bool = False
    calendar_name: str = "kithkeep"
    # calendars whose busy times the reminders avoid (the sink's own is added)
    busy_calendars: tuple[str, ...] = ("primary",)
    max_retries: int = 5


def _sink_event(item: dict[str, Any]) -> SinkEvent:
    start, _ = _parse_time(item["start"], UTC)
    end, _ = _parse_time(item["end"], UTC)
    return SinkEvent(
        key=str(item["extendedProperties"]["private"][KEY_PROP]),
        uid=str(item["id"]),
        start=start,
        end=end,
        title=str(item.get("summary", "")),
        description=str(item.get("description", "")),
        etag=item.get("etag"),
    )


def event_body(r: Reminder) -> dict[str, Any]:
    """The ``events`` resource written for a reminder (without its id)."""
    return {
        "summary": r.title,
        "description": r.description,
        "start": {"dateTime": _rfc3339(r.start)},
        "end": {"dateTime": _rfc3339(r.end)},
        # a reminder is no meeting: it must not make the user look busy
        "transparency": "transparent",
        "reminders": {
            "useDefault": False,
            "overrides": [{"method": "popup", "minutes": r.alarm_minutes}],
        },
        "extendedProperties": {"private": {MARK_PROP: "1", KEY_PROP: r.key}},
    }


class GoogleCalendarSink(ReminderSink):
    Config = GoogleCalendarSinkConfig

    def __init__(
        self,
        name: str,
        cfg: GoogleCalendarSinkConfig,
        service: Any,
    ) -> None:
        super().__init__(name)
        self.cfg = cfg
        self._service = service  # None: built on first use
        self.api = Api(f"sink {name}", SinkError, max_retries=cfg.max_retries)
        self._calendar: str | None = None if cfg.create_calendar else cfg.calendar_id

    @classmethod
    def from_config(
        cls, name: str, cfg: GoogleCalendarSinkConfig, config: KithkeepConfig
    ) -> GoogleCalendarSink:
        return cls(name, cfg, None)

    @property
    def service(self) -> Any:
        if self._service is None:
            self._service = _build_service(f"sink {self.name}", SinkError)
        return self._service

    @property
    def calendar_id(self) -> str:
        if self._calendar is None:
            self._calendar = self._find_or_create_calendar()
        return self._calendar

    def _find_or_create_calendar(self) -> str:
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {"minAccessRole": "owner"}
            if page_token:
                params["pageToken"] = page_token
            page = self.api.execute(self.service.calendarList().list(**params), "list calendars")
            for item in page.get("items", []):
                if item.get("summary") == self.cfg.calendar_name:
                    return str(item["id"])
            page_token = page.get("nextPageToken")
            if not page_token:
                break
        log.info("%s: creating calendar %r", self.name, self.cfg.calendar_name)
        created = self.api.execute(
            self.service.calendars().insert(body={"summary": self.cfg.calendar_name}),
            "create the calendar",
        )
        return str(created["id"])

    def check(self) -> list[ScopeInfo]:
        """The token works and the calendar is writable, or will be created (not here)."""
        if self.cfg.create_calendar:
            token: str | None = None
            while self._calendar is None:
                page = self.api.execute(
                    self.service.calendarList().list(minAccessRole="owner", pageToken=token),
                    "list calendars",
                )
                self._calendar = next(
                    (i["id"] for i in page.get("items", [])
                     if i.get("summary") == self.cfg.calendar_name), None,
                )  # fmt: skip
                token = page.get("nextPageToken")
                if not token:
                    break
            if self._calendar is None:
                return [ScopeInfo(self.cfg.calendar_name, 0, "created on the first run")]
        else:
            item = self.api.execute(
                self.service.calendarList().get(calendarId=self.cfg.calendar_id),
                "read the calendar",
            )
            if item.get("accessRole") not in ("writer", "owner"):
                raise SinkError(f"sink {self.name}: calendar {self.cfg.calendar_id!r} is read-only")
        return [ScopeInfo(self.calendar_id, len(self.list_own()))]

    def list_own(self) -> list[SinkEvent]:
        out: list[SinkEvent] = []
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {
                "calendarId": self.calendar_id,
                "privateExtendedProperty": f"{MARK_PROP}=1",
                "maxResults": 250,
            }
            if page_token:
                params["pageToken"] = page_token
            page = self.api.execute(self.service.events().list(**params), "list reminders")
            for item in page.get("items", []):
                if item.get("status") == "cancelled":
                    continue
                try:
                    out.append(_sink_event(item))
                except (KeyError, ValueError) as exc:
                    log.warning("%s: unreadable own event %s: %s", self.name, item.get("id"), exc)
            page_token = page.get("nextPageToken")
            if not page_token:
                return out

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        ids = list(dict.fromkeys([*self.cfg.busy_calendars, self.calendar_id]))
        body = {
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
            "items": [{"id": i} for i in ids],
        }
        result = self.api.execute(self.service.freebusy().query(body=body), "query free/busy")
        out: list[tuple[datetime, datetime]] = []
        for cid, cal in result.get("calendars", {}).items():
            if cal.get("errors"):
                log.warning("%s: no free/busy for %s: %s", self.name, cid, cal["errors"])
            for b in cal.get("busy", []):
                out.append(
                    (
                        _parse_time({"dateTime": b["start"]}, UTC)[0],
                        _parse_time({"dateTime": b["end"]}, UTC)[0],
                    )
                )
        return sorted(out)

    def create(self, reminder: Reminder) -> SinkEvent:
        event_id = event_id_for_key(reminder.key)
        body = {"id": event_id, **event_body(reminder)}
        try:
            item = self.api.execute(
                self.service.events().insert(calendarId=self.calendar_id, body=body),
                "create a reminder",
                passthrough=frozenset({409}),
            )
        except Exception as exc:
            if _status(exc) != 409:
                raise
            return self._existing(event_id, reminder)
        return _sink_event(item)

    def _existing(self, event_id: str, reminder: Reminder) -> SinkEvent:
        """After a 409: the id is taken by a cancelled event (the user deleted the
        reminder) or by a live one (an earlier insert that did go through)."""
        item = self.api.execute(
            self.service.events().get(calendarId=self.calendar_id, eventId=event_id),
            "read a reminder",
        )
        if item.get("status") == "cancelled":
            raise UserDeleted(f"sink {self.name}: {reminder.key} was deleted in the calendar")
        return _sink_event(item)

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        req = self.service.events().patch(
            calendarId=self.calendar_id, eventId=current.uid, body=event_body(reminder)
        )
        if current.etag:
            # only if the user has not changed it since we listed it
            req.headers["If-Match"] = current.etag
        try:
            item = self.api.execute(req, "update a reminder", passthrough=frozenset({412}))
        except Exception as exc:
            if _status(exc) != 412:
                raise
            log.info("%s: %s changed meanwhile; next run updates it", self.name, reminder.key)
            return current
        return _sink_event(item)

    def delete(self, current: SinkEvent) -> None:
        try:
            self.api.execute(
                self.service.events().delete(calendarId=self.calendar_id, eventId=current.uid),
                "delete a reminder",
                passthrough=frozenset({404, 410}),
            )
        except Exception as exc:
            if _status(exc) not in (404, 410):
                raise
            log.debug("%s: %s was already gone", self.name, current.key)
