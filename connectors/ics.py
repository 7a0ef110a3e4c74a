"""iCalendar files: a calendar source and a reminders sink.

Source: an .ics file or an http(s) URL (``webcal://`` is read as https),
fetched with niquests, the HTTP library caldav brings; recurring events are
expanded within a window with recurring-ical-events. The checkpoint is the
content hash (and, for a URL, the server's ETag and Last-Modified for a
conditional GET): an unchanged calendar costs one read or one 304; a changed
one replaces the source's events in one transaction. A broken file is a
clear error; a broken event is skipped and logged, the others are kept.

Sink: reminder events written to one .ics file atomically (temp file +
rename), each with a UID derived from its key and the sink's name, the key
in ``X-KITHKEEP-KEY`` and a VALARM. Any calendar app can subscribe to the
file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import icalendar
import recurring_ical_events

from kithkeep import clock
from kithkeep.config import Config as KithkeepConfig
from kithkeep.errors import ConfigError, ConnectError, SinkError, SourceError
from kithkeep.interfaces import (
    CalendarSource,
    Reminder,
    ReminderSink,
    ScopeInfo,
    SinkEvent,
    SyncContext,
)
from kithkeep.paths import write_atomic
from kithkeep.records import (
    MAX_EVENT_SUMMARY,
    Attendee,
    Checkpoint,
    EventBatch,
    EventRecord,
    occurrence_id,
)

log = logging.getLogger(__name__)

KEY_PROP = "X-KITHKEEP-KEY"
PRODID = "-//kithkeep//reminders//EN"


def to_utc(value: Any, tz: tzinfo) -> tuple[datetime, bool]:
    """An iCalendar DATE or DATE-TIME as aware UTC, and whether it was a whole day."""
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating time: the user's zone
            value = value.replace(tzinfo=tz)
        return value.astimezone(UTC), False
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz).astimezone(UTC), True
    raise ValueError(f"not a date: {value!r}")


def network_reason(exc: BaseException) -> str:
    """The innermost socket error's text ("Connection refused"), not urllib3's reprs.

    A connection that was made and then dropped before the answer was complete
    says so ("the connection was closed mid-response"): that is a server or
    network problem, not an unreachable server.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        name = type(e).__name__
        if name in _DROPPED or isinstance(e, ConnectionResetError | BrokenPipeError):
            return DROPPED
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if isinstance(e, TimeoutError) or "Timeout" in name:
            return "timed out"
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return type(exc).__name__


DROPPED = "the connection was closed mid-response"
# urllib3's and http.client's names for an answer cut short
_DROPPED = frozenset(
    {"ProtocolError", "IncompleteRead", "RemoteDisconnected", "ChunkedEncodingError"}
)


def _email(value: Any) -> str:
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _attendees(comp: Any) -> tuple[Attendee, ...]:
    raw = comp.get("ATTENDEE")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for a in items:
        params = getattr(a, "params", {})
        email = _email(a)
        if "@" not in email:
            continue
        out.append(
            Attendee(
                email=email,
                name=str(params.get("CN", "")),
                partstat=str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(),
                cutype=str(params.get("CUTYPE", "INDIVIDUAL")).upper(),
                role=str(params.get("ROLE", "REQ-PARTICIPANT")).upper(),
            )
        )
    return tuple(out)


def event_from_component(comp: Any, source: str, tz: tzinfo, recurring: bool) -> EventRecord:
    """An EventRecord from one VEVENT occurrence; raises ValueError when unusable.

    The occurrence of a recurring event is identified by its RECURRENCE-ID (the
    start its rule gave it, kept when it was moved), as EventRecord says.
    """
    dtstart = comp.get("DTSTART")
    if dtstart is None:
        raise ValueError("VEVENT without DTSTART")
    start, all_day = to_utc(dtstart.dt, tz)
    dtend = comp.get("DTEND")
    if dtend is not None:
        end, _ = to_utc(dtend.dt, tz)
    elif comp.get("DURATION") is not None:
        end = start + comp.get("DURATION").dt
    else:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    end = max(end, start)
    uid = str(comp.get("UID", "")).strip()
    if not uid:  # RFC 5545 requires one; khal's corpus has events without
        uid = "kk-" + hashlib.sha256(comp.to_ical()).hexdigest()[:24]
    organizer = comp.get("ORGANIZER")
    original: datetime | None = None
    if recurring:
        rid = comp.get("RECURRENCE-ID")
        original = to_utc(rid.dt, tz)[0] if rid is not None else start
    uid, recurrence_id = occurrence_id(uid, original)
    return EventRecord(
        source=source,
        uid=uid,
        recurrence_id=recurrence_id,
        start=start,
        end=end,
        all_day=all_day,
        status=str(comp.get("STATUS", "CONFIRMED")).upper(),
        summary=str(comp.get("SUMMARY", ""))[:MAX_EVENT_SUMMARY],
        organizer=_email(organizer) if organizer is not None else None,
        attendees=_attendees(comp),
        own=comp.get(KEY_PROP) is not None,
    )


def parse_calendar(data: bytes, where: str) -> Any:
    try:
        return icalendar.Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError, ...
        raise SourceError(
            f"{where}: not a valid iCalendar file ({type(exc).__name__}: {exc})"
        ) from exc


def _event_named(comp: icalendar.cal.Component) -> str:
    """An event as a log line can name it: its UID, else its summary."""
    if comp.get("UID"):
        return f"event {str(comp['UID'])[:100]}"
    if comp.get("SUMMARY"):
        return f"event {str(comp['SUMMARY'])[:60]!r} (no UID)"
    return "an event with neither UID nor SUMMARY"


def _why(exc: Exception) -> str:
    """What was wrong, in words: icalendar reports a missing property as KeyError('DTSTART')."""
    if isinstance(exc, KeyError) and exc.args:
        return f"it has no {exc.args[0]}"
    return str(exc) or type(exc).__name__


def expand_events(
    cal: Any, source: str, tz: tzinfo, start: datetime, end: datetime
) -> tuple[list[EventRecord], int]:
    """Occurrences between start and end; a broken event is skipped, the rest kept."""
    recurring_uids = {
        str(c.get("UID", ""))
        for c in cal.walk("VEVENT")
        if c.get("RRULE") or c.get("RDATE") or c.get("RECURRENCE-ID")
    }
    skipped = 0
    try:
        comps = list(recurring_ical_events.of(cal, skip_bad_series=True).between(start, end))
    except Exception:
        # expand each event on its own so that one bad series costs only itself
        comps = []
        for vevent in cal.walk("VEVENT"):
            sub = icalendar.Calendar()
            for tzc in cal.walk("VTIMEZONE"):
                sub.add_component(tzc)
            sub.add_component(vevent)
            try:
                comps.extend(recurring_ical_events.of(sub).between(start, end))
            except Exception as exc:
                skipped += 1
                log.warning("%s: skipped %s: %s", source, _event_named(vevent), _why(exc))
    out: list[EventRecord] = []
    for comp in comps:
        try:
            uid = str(comp.get("UID", ""))
            out.append(event_from_component(comp, source, tz, uid in recurring_uids))
        except Exception as exc:
            skipped += 1
            log.warning("%s: skipped %s: %s", source, _event_named(comp), _why(exc))
    return out, skipped


@dataclass(frozen=True)
class IcsSourceConfig:
    # a local file; or set url instead
    path: str = ""
    # an http(s) or webcal URL (a published or shared calendar)
    url: str = ""
    # expansion window for recurring events, in days before and after today
    past_days: int = 730
    future_days: int = 60
    # seconds to wait for the server of a URL
    timeout: int = 60


def _http_url(url: str) -> str:
    if url.lower().startswith("webcal://"):
        return "https://" + url[len("webcal://") :]
    return url


def _safe_url(url: str) -> str:
    """The URL for messages: scheme, host and file name only.

    Credentials, the query and the folders are left out: secret subscription
    links carry their token there (Google's private address has it in the path).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    name = parts.path.rsplit("/", 1)[-1]
    path = f"/.../{name}" if parts.path.count("/") > 1 else parts.path
    return urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))


class IcsSource(CalendarSource):
    Config = IcsSourceConfig

    def __init__(self, name: str, cfg: IcsSourceConfig, tz: tzinfo) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.tz = tz
        self.url = _http_url(cfg.url) if cfg.url else ""
        self.path = Path(cfg.path).expanduser()
        self.where = _safe_url(self.url) if self.url else str(self.path)

    @classmethod
    def from_config(cls, name: str, cfg: IcsSourceConfig, config: KithkeepConfig) -> IcsSource:
        where = f"{config.path or '<config>'}: [sources.{name}]"
        if bool(cfg.path) == bool(cfg.url):
            raise ConfigError(f"{where}: set exactly one of path and url")
        if cfg.url:
            scheme = urllib.parse.urlsplit(_http_url(cfg.url)).scheme.lower()
            if scheme not in ("http", "https"):
                raise ConfigError(f"{where}: url must be http, https or webcal, not {scheme!r}")
        return cls(name, cfg, config.general.tz)

    def _read(self, saved: dict[str, Any] | None = None) -> tuple[bytes | None, dict[str, str]]:
        """The calendar's bytes (None: unchanged since ``saved``) and HTTP validators."""
        if self.url:
            return self._fetch(saved or {})
        try:
            return self.path.read_bytes(), {}
        except FileNotFoundError:
            raise SourceError(f"source {self.name}: {self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(
                f"source {self.name}: cannot read {self.path}: {exc.strerror}"
            ) from None

    def _fetch(self, saved: dict[str, Any]) -> tuple[bytes | None, dict[str, str]]:
        """A conditional GET through niquests (the HTTP library caldav brings)."""
        import niquests

        headers = {"User-Agent": "kithkeep", "Accept": "text/calendar, */*;q=0.5"}
        if saved.get("etag"):
            headers["If-None-Match"] = str(saved["etag"])
        if saved.get("last_modified"):
            headers["If-Modified-Since"] = str(saved["last_modified"])
        parts = urllib.parse.urlsplit(self.url)
        auth: tuple[str, str] | None = None
        if parts.username is not None:
            # user:password@ in a subscription URL is Basic auth, sent as such and
            # kept out of the URL the library logs and puts in its errors
            user = urllib.parse.unquote(parts.username)
            auth = (user, urllib.parse.unquote(parts.password or ""))
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        try:
            resp = niquests.get(url, headers=headers, auth=auth, timeout=self.cfg.timeout)
        except niquests.exceptions.RequestException as exc:
            raise ConnectError(
                f"source {self.name}: cannot fetch {self.where}: {network_reason(exc)}"
            ) from None
        if resp.status_code == 304:
            return None, {}
        if resp.status_code is None or resp.status_code >= 300:
            raise SourceError(f"source {self.name}: {self.where}: HTTP {resp.status_code}")
        validators = {
            k: v
            for k, v in (
                ("etag", resp.headers.get("ETag")),
                ("last_modified", resp.headers.get("Last-Modified")),
            )
            if v
        }
        return resp.content or b"", validators

    def check(self) -> list[ScopeInfo]:
        data, _ = self._read()
        assert data is not None  # no validators sent: never a 304
        cal = parse_calendar(data, f"source {self.name}: {self.where}")
        name = self.path.name if not self.url else self.where
        return [ScopeInfo(name, len(cal.walk("VEVENT")))]

    def sync(self, ctx: SyncContext) -> Iterator[EventBatch]:
        saved = ctx.checkpoints().get("file") or {}
        now = clock.now()
        today = now.date().isoformat()
        # the window moves with the clock: re-expand at most daily even when unchanged
        data, validators = self._read(saved if saved.get("day") == today else None)
        if data is None:  # 304 Not Modified, same day
            return
        digest = hashlib.sha256(data).hexdigest()
        state: dict[str, Any] = {"sha256": digest, "day": today, **validators}
        if saved == state:
            return
        if {k: saved.get(k) for k in ("sha256", "day")} == {"sha256": digest, "day": today}:
            # same content, new validators: only the checkpoint changes
            yield EventBatch(checkpoint=Checkpoint(self.name, "file", state))
            return
        cal = parse_calendar(data, f"source {self.name}: {self.where}")
        events, skipped = expand_events(
            cal,
            self.name,
            self.tz,
            now - timedelta(days=self.cfg.past_days),
            now + timedelta(days=self.cfg.future_days),
        )
        if skipped:
            log.warning("%s: %d events skipped, %d kept", self.name, skipped, len(events))
        yield EventBatch(
            records=events, replace=True, checkpoint=Checkpoint(self.name, "file", state)
        )


# ---------------------------------------------------------------- sink


@dataclass(frozen=True)
class IcsSinkConfig:
    path: str


def _sink_event(comp: Any) -> SinkEvent:
    start, _ = to_utc(comp.get("DTSTART").dt, UTC)
    dtend = comp.get("DTEND")
    end = to_utc(dtend.dt, UTC)[0] if dtend is not None else start
    return SinkEvent(
        key=str(comp.get(KEY_PROP)),
        uid=str(comp.get("UID")),
        start=start,
        end=end,
        title=str(comp.get("SUMMARY", "")),
        description=str(comp.get("DESCRIPTION", "")),
    )


def reminder_component(r: Reminder, stamp: datetime) -> Any:
    ev = icalendar.Event()
    ev.add("UID", r.uid)
    ev.add("DTSTAMP", stamp)
    ev.add("DTSTART", r.start.astimezone(UTC))
    ev.add("DTEND", r.end.astimezone(UTC))
    ev.add("SUMMARY", r.title)
    ev.add("DESCRIPTION", r.description)
    ev.add("CATEGORIES", ["kithkeep"])
    ev.add("TRANSP", "TRANSPARENT")
    ev.add(KEY_PROP, r.key)
    alarm = icalendar.Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("DESCRIPTION", r.title)
    alarm.add("TRIGGER", timedelta(minutes=-r.alarm_minutes))
    ev.add_component(alarm)
    return ev


class IcsSink(ReminderSink):
    """Reminders in one .ics file, rewritten atomically when something changed."""

    Config = IcsSinkConfig

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self._loaded = False
        self._own: dict[str, Any] = {}  # uid -> VEVENT written by kithkeep
        self._foreign: list[Any] = []  # anything else in the file, kept as it is
        self._dirty = False

    @classmethod
    def from_config(cls, name: str, cfg: IcsSinkConfig, config: KithkeepConfig) -> IcsSink:
        return cls(name, Path(cfg.path).expanduser())

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.path.exists():
            return
        try:
            cal = icalendar.Calendar.from_ical(self.path.read_bytes())
        except Exception as exc:
            # never overwrite a file we cannot read: it may hold the user's data
            raise SinkError(
                f"sink {self.name}: {self.path} is not a valid iCalendar file: {exc}"
            ) from exc
        for comp in cal.subcomponents:
            if comp.name == "VEVENT" and comp.get(KEY_PROP) is not None:
                self._own[str(comp.get("UID"))] = comp
            else:
                self._foreign.append(comp)

    def list_own(self) -> list[SinkEvent]:
        self._load()
        return [_sink_event(c) for _, c in sorted(self._own.items())]

    def create(self, reminder: Reminder) -> SinkEvent:
        self._load()
        comp = reminder_component(reminder, datetime.now(UTC).replace(microsecond=0))
        self._own[reminder.uid] = comp
        self._dirty = True
        return _sink_event(comp)

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        self._load()
        self._own.pop(current.uid, None)
        # the event keeps its UID: a subscribed app sees it change, not go and come
        return self.create(replace(reminder, uid=current.uid))

    def delete(self, current: SinkEvent) -> None:
        self._load()
        if self._own.pop(current.uid, None) is not None:
            self._dirty = True

    def check(self) -> list[ScopeInfo]:
        """The folder exists and is writable (a rename into it replaces the file), and
        an existing file is one kithkeep can read; nothing is written."""
        folder = self.path.parent
        if not folder.is_dir():
            raise SinkError(f"sink {self.name}: folder {folder} does not exist (for {self.path})")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SinkError(f"sink {self.name}: folder {folder} is not writable (for {self.path})")
        if self.path.exists() and not os.access(self.path, os.R_OK):
            raise SinkError(f"sink {self.name}: {self.path} is not readable")
        own = self.list_own()
        note = "writable" if self.path.exists() else "writable; created on the first run"
        return [ScopeInfo(str(self.path), len(own), note)]

    def flush(self) -> None:
        if not self._dirty:
            return
        if not self.path.parent.is_dir():
            # a missing folder is a typo or an unmounted disk more often than a wish
            raise SinkError(
                f"sink {self.name}: folder {self.path.parent} does not exist (for {self.path})"
            )
        try:
            write_atomic(self.path, serialize(self._own.values(), self._foreign), mode=0o644)
        except OSError as exc:
            raise SinkError(
                f"sink {self.name}: cannot write {self.path}: {exc.strerror or exc}"
            ) from exc
        self._dirty = False


def serialize(own: Iterable[Any], foreign: Iterable[Any] = ()) -> bytes:
    cal = icalendar.Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("X-WR-CALNAME", "kithkeep reminders")
    for comp in foreign:
        cal.add_component(comp)
    for comp in sorted(own, key=lambda c: str(c.get("UID"))):
        cal.add_component(comp)
    data: bytes = cal.to_ical()
    return data
