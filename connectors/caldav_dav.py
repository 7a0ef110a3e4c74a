"""CalDAV: a calendar source and a reminders sink (with the caldav library).

The module is not called ``caldav`` so that it can never be mistaken for the
library it imports.

Source: one or more calendars of the account. Where the server offers
sync-collection (RFC 6578) a saved sync token yields only what changed,
deletions included; an expired token, and every ``resync_days``, means a full
listing. Without sync-collection the listing is a PROPFIND of the ETags, and
only objects whose ETag changed are fetched. The checkpoint per calendar keeps
the token and, per object href, its ETag and UID: that is how a deleted
object's events are found, and how a full listing drops what disappeared
without touching the other calendars of the source. Recurring events are
expanded within the window by the same code as the .ics source; a broken
object is logged and skipped.

Sink: reminders in one calendar (by display name or URL; created as
"kithkeep" if missing and allowed). Each reminder is one object whose UID
comes from the reminder key, with the key in ``X-KITHKEEP-KEY`` and a VALARM.
Writes are conditional: ``If-None-Match: *`` on create, ``If-Match`` with the
ETag on update and delete, so a change the user made meanwhile is never
overwritten (the next run sees it and plans again).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import icalendar

from kithkeep.config import Config as KithkeepConfig
from kithkeep.config import zone
from kithkeep.connectors.ics import (
    KEY_PROP,
    _sink_event,
    expand_events,
    reminder_component,
    serialize,
)
from kithkeep.errors import AuthError, ConnectError, KithkeepError, SinkError, SourceError
from kithkeep.interfaces import (
    CalendarSource,
    Reminder,
    ReminderSink,
    ScopeInfo,
    SinkEvent,
    SyncContext,
)
from kithkeep.records import Checkpoint, EventBatch, EventRecord
from kithkeep.secrets import resolve_secret

log = logging.getLogger(__name__)

CHUNK = 200
ICAL_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}
_NS = {"d": "DAV:", "c": "urn:ietf:params:xml:ns:caldav"}

_ETAGS_BODY = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>"""

_MULTIGET_BODY = """<?xml version="1.0" encoding="utf-8"?>
<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs}
</c:calendar-multiget>"""

_QUERY_BODY = """<?xml version="1.0" encoding="utf-8"?>
<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:prop><d:getetag/><c:calendar-data/></d:prop>
  <c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">{range}</c:comp-filter>
  </c:comp-filter></c:filter>
</c:calendar-query>"""


@dataclass(frozen=True)
class _Connection:
    url: str
    username: str = ""
    password_command: str = ""
    password_keyring: str = ""
    password_env: str = ""
    verify_tls: bool = True


def _connect(cfg: Any, what: str, error: type[KithkeepError]) -> Any:
    from caldav.davclient import DAVClient

    password = None
    if cfg.password_command or cfg.password_keyring or cfg.password_env:
        try:
            password = resolve_secret(
                what=what,
                command=cfg.password_command,
                keyring_service=cfg.password_keyring,
                username=cfg.username,
                env=cfg.password_env,
            )
        except SourceError as exc:
            raise error(exc.message, hint=exc.hint) from None
    return DAVClient(
        url=cfg.url,
        username=cfg.username or None,
        password=password,
        ssl_verify_cert=cfg.verify_tls,
        timeout=60,
    )


def _unreachable(error: type[KithkeepError]) -> type[KithkeepError]:
    return ConnectError if error is SourceError else error


@contextmanager
def _translated(what: str, error: type[KithkeepError]) -> Iterator[None]:
    """Library and network errors -> kithkeep's errors, once, at the boundary."""
    from caldav.lib import error as dav_error

    try:
        yield
    except KithkeepError:
        raise
    except dav_error.AuthorizationError as exc:
        if error is SourceError:
            raise AuthError(
                f"{what}: the server refused the credentials or access",
                hint="check username and password source",
            ) from exc
        raise error(f"{what}: the server refused the credentials or access") from exc
    except dav_error.DAVError as exc:
        raise error(f"{what}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    except Exception as exc:
        # requests/niquests wrap socket errors in their own ConnectionError tree
        name = type(exc).__name__
        if isinstance(exc, OSError) or "Connection" in name or "Timeout" in name:
            raise _unreachable(error)(
                f"{what}: cannot reach the server: {_network_reason(exc)}"
            ) from exc
        raise


def _network_reason(exc: BaseException) -> str:
    """The innermost socket error's text ("Connection refused"), not urllib3's reprs."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return "timed out"
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return type(exc).__name__


def _find_calendars(client: Any, wanted: tuple[str, ...]) -> list[Any]:
    cals = list(client.principal().calendars())
    if not wanted:
        return cals
    out = []
    for w in wanted:
        match = [c for c in cals if _matches(c, w)]
        if not match:
            names = ", ".join(sorted(str(c.get_display_name() or c.url) for c in cals))
            raise SourceError(f"no calendar {w!r} on the server (found: {names or 'none'})")
        out.extend(match)
    return out


def _matches(cal: Any, wanted: str) -> bool:
    url = str(cal.url).rstrip("/")
    if wanted.rstrip("/") in (url, url.rsplit("/", 1)[-1]):
        return True
    return bool(cal.get_display_name() == wanted)


def _responses(response: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """(href, {prop local name: text}) per ``response`` of a multistatus."""
    tree = response.tree
    if tree is None:
        return
    for resp in tree.iter("{DAV:}response"):
        href = resp.findtext("d:href", namespaces=_NS) or ""
        props: dict[str, str] = {}
        for propstat in resp.findall("d:propstat", _NS):
            status = propstat.findtext("d:status", namespaces=_NS) or ""
            if " 200 " not in status:
                continue
            for prop in propstat.findall("d:prop/*", _NS):
                tag = prop.tag.split("}", 1)[-1]
                if tag == "resourcetype":
                    props[tag] = " ".join(child.tag for child in prop)
                else:
                    props[tag] = prop.text or ""
        yield href, props


def _expand(
    data: str, source: str, tz: tzinfo, lo: datetime, hi: datetime, where: str
) -> tuple[list[EventRecord], set[str]]:
    """Occurrences in [lo, hi] of one calendar object, and its UIDs."""
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises many types on broken input
        log.warning("%s: skipped unreadable object %s: %s", source, where, exc)
        return [], set()
    uids = {str(c.get("UID", "")) for c in cal.walk("VEVENT") if c.get("UID")}
    events, skipped = expand_events(cal, source, tz, lo, hi)
    if skipped:
        log.warning("%s: %s: %d events skipped", source, where, skipped)
    return events, uids


# ------------------------------------------------------------------ source


@dataclass(frozen=True)
class CalDavSourceConfig(_Connection):
    # display names or URLs of the calendars to read; empty reads every calendar
    calendars: tuple[str, ...] = ()
    past_days: int = 730
    future_days: int = 60
    # a full listing at least this often, so recurring occurrences follow the window
    resync_days: int = 7
    # false: ETag listing even where the server offers sync-collection
    sync_collection: bool = True


class CalDavSource(CalendarSource):
    Config = CalDavSourceConfig

    def __init__(self, name: str, cfg: CalDavSourceConfig, tz: tzinfo) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.tz = tz
        self.what = f"source {name}"
        self._client: Any = None

    @classmethod
    def from_config(
        cls, name: str, cfg: CalDavSourceConfig, config: KithkeepConfig
    ) -> CalDavSource:
        return cls(name, cfg, zone(config.general.timezone))

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _connect(self.cfg, self.what, SourceError)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def check(self) -> list[ScopeInfo]:
        with _translated(self.what, SourceError):
            cals = _find_calendars(self.client, self.cfg.calendars)
            return [ScopeInfo(str(c.get_display_name() or c.url), None) for c in cals]

    def sync(self, ctx: SyncContext) -> Iterator[EventBatch]:
        with _translated(self.what, SourceError):
            cals = _find_calendars(self.client, self.cfg.calendars)
        saved_all = ctx.checkpoints()
        for cal in cals:
            with _translated(f"{self.what}: {cal.url}", SourceError):
                yield from self._sync_calendar(cal, saved_all.get(str(cal.url)) or {})

    def _sync_calendar(self, cal: Any, saved: dict[str, Any]) -> Iterator[EventBatch]:
        from caldav.lib import error as dav_error

        scope = str(cal.url)
        now = datetime.now(UTC)
        lo = now - timedelta(days=self.cfg.past_days)
        hi = now + timedelta(days=self.cfg.future_days)
        known: dict[str, list[str]] = dict(saved.get("hrefs", {}))  # href -> [etag, uid...]
        token = saved.get("sync_token") if self.cfg.sync_collection else None
        full_at = str(saved.get("full_at") or "")
        due = not full_at or now - datetime.fromisoformat(full_at) > timedelta(
            days=self.cfg.resync_days
        )
        if due and full_at:
            log.info("%s: %s: periodic full listing", self.name, scope)
        if due:
            token = None

        changed: dict[str, str] = {}  # href -> etag
        removed: list[str] = []
        new_token: str | None = None
        if token:
            try:
                coll = cal.objects_by_sync_token(
                    sync_token=token, load_objects=False, disable_fallback=True
                )
                for obj in coll:
                    href = str(obj.url)
                    if obj.url.canonical() in coll.deleted_urls:
                        removed.append(href)
                    else:
                        changed[href] = str(obj.props.get("{DAV:}getetag", ""))
                new_token = coll.sync_token
            except dav_error.DAVError as exc:
                if isinstance(exc, dav_error.AuthorizationError) and not getattr(
                    exc, "preconditions", None
                ):
                    raise
                log.info(
                    "%s: %s: sync token not accepted (%s): full listing", self.name, scope, exc
                )
                token = None
        if not token:
            listing, new_token = self._listing(cal)
            removed = [h for h in known if h not in listing]
            if due or new_token is not None:
                # first run, expired token or periodic: re-expand everything, the window moved
                full_at = now.isoformat()
                changed = listing
            else:  # ETag listing: fetch only what changed
                changed = {h: e for h, e in listing.items() if known.get(h, [""])[0] != e}
        hrefs = dict(known)
        for h in removed:
            hrefs.pop(h, None)
        items = sorted(changed.items())
        batches = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)] or [[]]
        deleted_first = [(uid, "") for h in removed for uid in known.get(h, [])[1:]]
        for n, chunk in enumerate(batches):
            records: list[EventRecord] = []
            deleted: list[tuple[str, str]] = list(deleted_first) if n == 0 else []
            fetched = self._multiget(cal, [h for h, _ in chunk])
            for href, listed_etag in chunk:
                data: str | None
                if href in fetched:
                    data, etag = fetched[href]
                else:  # not in the multiget answer: fetch it alone (or learn it is gone)
                    data, etag = self._get(href, listed_etag)
                if data is None:  # gone between listing and fetching
                    deleted.extend((uid, "") for uid in known.get(href, [])[1:])
                    hrefs.pop(href, None)
                    continue
                events, uids = _expand(data, self.name, self.tz, lo, hi, href)
                # drop what the object held before (an occurrence may have gone)
                deleted.extend((uid, "") for uid in {*known.get(href, [])[1:], *uids})
                records.extend(events)
                hrefs[href] = [etag, *sorted(uids)]
            last = n == len(batches) - 1
            checkpoint = None
            if last:
                checkpoint = Checkpoint(
                    self.name,
                    scope,
                    {"sync_token": new_token, "full_at": full_at, "hrefs": hrefs},
                )
            yield EventBatch(records=records, deleted=deleted, checkpoint=checkpoint)

    def _listing(self, cal: Any) -> tuple[dict[str, str], str | None]:
        """Every object href with its ETag, and a sync token where offered."""
        from caldav.lib import error as dav_error

        if self.cfg.sync_collection:
            try:
                coll = cal.objects_by_sync_token(load_objects=False, disable_fallback=True)
                listing = {
                    str(o.url): str(o.props.get("{DAV:}getetag", ""))
                    for o in coll
                    if o.url.canonical() not in coll.deleted_urls
                }
                return listing, coll.sync_token
            except dav_error.DAVError as exc:
                if isinstance(exc, dav_error.AuthorizationError):
                    raise
                log.info("%s: no sync-collection (%s): ETag listing", self.name, exc)
        response = self.client.propfind(str(cal.url), _ETAGS_BODY, depth=1)
        base = str(cal.url)
        listing = {}
        for href, props in _responses(response):
            url = str(cal.url.join(href))
            if url.rstrip("/") == base.rstrip("/") or "collection" in props.get("resourcetype", ""):
                continue
            listing[url] = props.get("getetag", "")
        return listing, None

    def _multiget(self, cal: Any, hrefs: list[str]) -> dict[str, tuple[str, str]]:
        """{href: (data, etag)} of many objects in one calendar-multiget REPORT.

        One request instead of one GET per object; a server that refuses it
        gets the GETs.
        """
        if len(hrefs) < 2:
            return {}
        body = _MULTIGET_BODY.format(
            hrefs="".join(
                f"<d:href>{xml_escape(urllib.parse.urlsplit(h).path)}</d:href>" for h in hrefs
            )
        )
        r = self.client.report(str(cal.url), body, depth=1)
        if r.status >= 400:
            log.info("%s: calendar-multiget refused (HTTP %d): one GET each", self.name, r.status)
            return {}
        out = {}
        for href, props in _responses(r):
            if props.get("calendar-data"):
                url = str(cal.url.join(href))
                out[url] = (props["calendar-data"], props.get("getetag", ""))
        return out

    def _get(self, href: str, etag: str) -> tuple[str | None, str]:
        r = self.client.request(href, "GET")
        if r.status == 404:
            return None, etag
        if r.status >= 400:
            raise SourceError(f"{self.what}: GET {href}: HTTP {r.status}")
        body = r._raw_body if hasattr(r, "_raw_body") else r.raw
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return text, str(r.headers.get("ETag") or etag)


# ------------------------------------------------------------------ sink


@dataclass(frozen=True)
class CalDavSinkConfig(_Connection):
    # display name or URL of the reminders calendar
    calendar: str = "kithkeep"
    # create the calendar (with that display name) when it does not exist
    create_calendar: bool = True
    # display names or URLs of calendars whose events the reminders avoid
    busy_calendars: tuple[str, ...] = ()


class CalDavSink(ReminderSink):
    Config = CalDavSinkConfig

    def __init__(
        self,
        name: str,
        cfg: CalDavSinkConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.what = f"sink {name}"
        self._client: Any = None
        self._cal: Any = None
        self._hrefs: dict[str, str] = {}  # uid -> href as listed
        self._clock = clock

    @classmethod
    def from_config(cls, name: str, cfg: CalDavSinkConfig, config: KithkeepConfig) -> CalDavSink:
        return cls(name, cfg)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _connect(self.cfg, self.what, SinkError)
        return self._client

    @property
    def calendar(self) -> Any:
        if self._cal is None:
            with _translated(self.what, SinkError):
                principal = self.client.principal()
                cals = [c for c in principal.calendars() if _matches(c, self.cfg.calendar)]
                if cals:
                    self._cal = cals[0]
                elif self.cfg.create_calendar and "/" not in self.cfg.calendar:
                    log.info("%s: creating calendar %r", self.name, self.cfg.calendar)
                    self._cal = principal.make_calendar(name=self.cfg.calendar)
                else:
                    raise SinkError(f"{self.what}: no calendar {self.cfg.calendar!r} on the server")
        return self._cal

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def check(self) -> list[ScopeInfo]:
        """The credentials work and the calendar exists, or will be created (not here)."""
        with _translated(self.what, SinkError):
            found = any(_matches(c, self.cfg.calendar) for c in self.client.principal().calendars())
        if found:
            return [ScopeInfo(self.cfg.calendar, len(self.list_own()))]
        if self.cfg.create_calendar and "/" not in self.cfg.calendar:
            return [ScopeInfo(self.cfg.calendar, 0, "created on the first run")]
        raise SinkError(f"{self.what}: no calendar {self.cfg.calendar!r} on the server")

    def _query(self, url: str, time_range: str = "") -> Iterator[tuple[str, str, str]]:
        """(href, etag, data) of the VEVENT objects of a calendar."""
        response = self.client.report(url, _QUERY_BODY.format(range=time_range), depth=1)
        if response.status >= 400:
            raise SinkError(f"{self.what}: listing {url} failed: HTTP {response.status}")
        for href, props in _responses(response):
            if props.get("calendar-data"):
                yield href, props.get("getetag", ""), props["calendar-data"]

    def list_own(self) -> list[SinkEvent]:
        out: list[SinkEvent] = []
        self._hrefs = {}
        with _translated(self.what, SinkError):
            cal = self.calendar
            for href, etag, data in self._query(str(cal.url)):
                try:
                    parsed = icalendar.Calendar.from_ical(data)
                except Exception as exc:  # broken objects are someone else's
                    log.warning("%s: unreadable object %s: %s", self.name, href, exc)
                    continue
                for comp in parsed.walk("VEVENT"):
                    if comp.get(KEY_PROP) is None or comp.get("RECURRENCE-ID") is not None:
                        continue
                    ev = _sink_event(comp)
                    out.append(
                        SinkEvent(ev.key, ev.uid, ev.start, ev.end, ev.title, ev.description, etag)
                    )
                    self._hrefs[ev.uid] = str(cal.url.join(href))
        return sorted(out, key=lambda e: e.key)

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        rng = (
            f'<c:time-range start="{start.astimezone(UTC):%Y%m%dT%H%M%SZ}" '
            f'end="{end.astimezone(UTC):%Y%m%dT%H%M%SZ}"/>'
        )
        out: list[tuple[datetime, datetime]] = []
        with _translated(self.what, SinkError):
            urls = [str(self.calendar.url)]
            if self.cfg.busy_calendars:
                for c in self.client.principal().calendars():
                    if any(_matches(c, w) for w in self.cfg.busy_calendars):
                        urls.append(str(c.url))
            for url in dict.fromkeys(urls):
                for href, _etag, data in self._query(url, rng):
                    events, _ = _expand(data, self.name, UTC, start, end, href)
                    out.extend(
                        (e.start, e.end)
                        for e in events
                        if not e.all_day and e.status != "CANCELLED" and not e.own
                    )
        return sorted(out)

    def _href(self, uid: str) -> str:
        return self._hrefs.get(uid) or str(self.calendar.url.join(f"{uid}.ics"))

    def _body(self, reminder: Reminder) -> str:
        stamp = self._clock().astimezone(UTC).replace(microsecond=0)
        return serialize([reminder_component(reminder, stamp)]).decode("utf-8")

    def create(self, reminder: Reminder) -> SinkEvent:
        with _translated(self.what, SinkError):
            href = self._href(reminder.uid)
            r = self.client.put(href, self._body(reminder), {"If-None-Match": "*", **ICAL_HEADERS})
            if r.status == 412:
                # the object exists: an earlier create went through; take it as it is
                log.info("%s: %s already exists; adopting it", self.name, reminder.key)
                for ev in self.list_own():
                    if ev.uid == reminder.uid:
                        return ev
            if r.status >= 400:
                raise SinkError(f"{self.what}: creating {reminder.key} failed: HTTP {r.status}")
            self._hrefs[reminder.uid] = href
            return _as_event(reminder, r.headers.get("ETag"))

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        with _translated(self.what, SinkError):
            headers = dict(ICAL_HEADERS)
            if current.etag:
                headers["If-Match"] = current.etag
            r = self.client.put(self._href(current.uid), self._body(reminder), headers)
            if r.status == 412:
                log.info("%s: %s changed meanwhile; next run plans again", self.name, current.key)
                return current
            if r.status >= 400:
                raise SinkError(f"{self.what}: updating {current.key} failed: HTTP {r.status}")
            return _as_event(reminder, r.headers.get("ETag"))

    def delete(self, current: SinkEvent) -> None:
        with _translated(self.what, SinkError):
            headers = {"If-Match": current.etag} if current.etag else {}
            r = self.client.delete(self._href(current.uid), headers)
            if r.status == 412:
                log.info("%s: %s changed meanwhile; next run plans again", self.name, current.key)
                return
            if r.status >= 400 and r.status != 404:
                raise SinkError(f"{self.what}: deleting {current.key} failed: HTTP {r.status}")
            self._hrefs.pop(current.uid, None)


def _as_event(r: Reminder, etag: str | None) -> SinkEvent:
    return SinkEvent(r.key, r.uid, r.start, r.end, r.title, r.description, etag)
