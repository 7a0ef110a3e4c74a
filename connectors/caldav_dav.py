"""CalDAV: a calendar source and a reminders sink (with the caldav library).

The module is not called ``caldav`` so that it can never be mistaken for the
library it imports. Every request goes through caldav (discovery, listings,
``Calendar.multiget``, ``Calendar.search``, conditional PUT and DELETE); this
module keeps only the translation of its errors into kithkeep's.

Connecting: the credentials go with the first request (``auth = "basic"``,
the default): a server that answers anonymous requests (Cyrus answers the
discovery PROPFIND with ``<d:unauthenticated/>``) would otherwise never be
asked with them, and discovery would find nothing. ``"digest"`` is for
servers that only take Digest; ``"auto"`` waits for the server's challenge.
Discovery that finds no calendar is an error, never an empty success.

Source: one or more calendars of the account. Where the server offers
sync-collection (RFC 6578) a saved sync token yields only what changed,
deletions included; an expired token, and every ``resync_days``, means a full
listing. Without sync-collection the listing is a PROPFIND of the ETags, and
only objects whose ETag changed are fetched. The checkpoint per calendar keeps
the token and, per object href, its ETag and UID: that is how a deleted
object's events are found, and how a full listing drops what disappeared
without touching the other calendars of the source. Recurring events are
expanded within the window by the same code as the .ics source, floating
times in the user's zone; a broken object is logged and skipped.

Sink: reminders in one calendar (by display name or URL; created as
"kithkeep" if missing and allowed). Each reminder is one object whose UID
comes from the reminder key and the calendar's path (servers that schedule
refuse a UID that exists in another calendar of the account), with the key
in ``X-KITHKEEP-KEY`` and a VALARM. Reminders are found by that key, so
those written under an earlier UID keep theirs. Writes are conditional:
``If-None-Match: *`` on create, ``If-Match`` with the ETag on update and
delete, so a change the user made meanwhile is never overwritten (the next
run sees it and plans again).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import icalendar

from kithkeep.config import Config as KithkeepConfig
from kithkeep.connectors.ics import (
    DROPPED,
    KEY_PROP,
    _sink_event,
    expand_events,
    network_reason,
    reminder_component,
    serialize,
)
from kithkeep.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    KithkeepError,
    SinkError,
    SourceError,
)
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
AUTH_TYPES = ("basic", "digest", "auto")
_GETETAG = "{DAV:}getetag"
_CALDAV = "{urn:ietf:params:xml:ns:caldav}"

# what a 403 that explains itself (RFC 4918 section 16, RFC 4791, RFC 6638) means
_PRECONDITIONS = {
    f"{_CALDAV}unique-scheduling-object-resource": (
        "the server refused the event because its UID is already used in another "
        "calendar of the account"
    ),
    f"{_CALDAV}no-uid-conflict": (
        "the server refused the event because its UID is already used in that calendar"
    ),
    "{DAV:}need-privileges": "the account lacks the privileges this needs on the calendar",
    f"{_CALDAV}valid-calendar-data": "the server refused the event as invalid iCalendar data",
    f"{_CALDAV}supported-calendar-component": "the calendar does not take events (VEVENT)",
    "{DAV:}valid-sync-token": "the server no longer knows the sync token",
}


@dataclass(frozen=True)
class _Connection:
    url: str
    username: str = ""
    password_command: str = ""
    password_keyring: str = ""
    password_env: str = ""
    verify_tls: bool = True
    # seconds to wait for the server on each request
    timeout: float = 60
    # "basic": credentials with every request; "digest"; "auto": wait for a challenge
    auth: str = "basic"


def _check_connection(cfg: _Connection, where: str) -> None:
    if cfg.auth not in AUTH_TYPES:
        raise ConfigError(f"{where}: auth must be one of {', '.join(AUTH_TYPES)}, not {cfg.auth!r}")
    if cfg.timeout <= 0:
        raise ConfigError(f"{where}: timeout must be a positive number of seconds")


def _connect(cfg: _Connection, what: str, error: type[KithkeepError]) -> Any:
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
    auth_type = cfg.auth if cfg.auth != "auto" and password is not None else None
    return DAVClient(
        url=cfg.url,
        username=cfg.username or None,
        password=password,
        auth_type=auth_type,
        ssl_verify_cert=cfg.verify_tls,
        # caldav annotates whole seconds; niquests, which gets it, takes a float
        timeout=cfg.timeout,  # type: ignore[arg-type]
    )


def _unreachable(error: type[KithkeepError]) -> type[KithkeepError]:
    return ConnectError if error is SourceError else error


def _refused(exc: Any) -> str:
    """What a 403 says, in words: its precondition, or a plain permission refusal."""
    for tag in getattr(exc, "preconditions", None) or ():
        if tag in _PRECONDITIONS:
            return _PRECONDITIONS[tag]
    tags = ", ".join(t.rsplit("}", 1)[-1] for t in getattr(exc, "preconditions", None) or ())
    if tags:
        return f"the server refused the request (HTTP 403, precondition {tags})"
    return "the server denied access (HTTP 403)"


@contextmanager
def _translated(what: str, error: type[KithkeepError]) -> Iterator[None]:
    """Library and network errors -> kithkeep's errors, once, at the boundary."""
    from caldav.lib import error as dav_error

    try:
        yield
    except KithkeepError:
        raise
    except dav_error.AuthorizationError as exc:
        if exc.status == 403:
            hint = None if exc.preconditions else "check the account's access to this calendar"
            raise error(f"{what}: {_refused(exc)}", hint=hint) from exc
        auth_error = AuthError if error is SourceError else error
        raise auth_error(
            f"{what}: the server refused the credentials",
            hint="check username and password source; a server that only takes Digest "
            'needs auth = "digest"',
        ) from exc
    except dav_error.DAVError as exc:
        status = f"HTTP {exc.status}: " if exc.status else ""
        raise error(f"{what}: {status}{type(exc).__name__}: {str(exc)[:200]}") from exc
    except Exception as exc:
        # niquests/requests wrap socket errors in their own ConnectionError tree
        name = type(exc).__name__
        if isinstance(exc, OSError) or "Connection" in name or "Timeout" in name:
            reason = network_reason(exc)
            if reason == DROPPED:
                raise _unreachable(error)(f"{what}: {reason}") from exc
            raise _unreachable(error)(f"{what}: cannot reach the server: {reason}") from exc
        raise


def _discover(client: Any, cfg: _Connection, what: str, error: type[KithkeepError]) -> list[Any]:
    """Every calendar of the account; none found is an error (a wrong URL, or a
    server that was asked without the credentials), never an empty success."""
    principal = client.principal()
    cals = list(principal.calendars())
    if not cals:
        raise error(
            f"{what}: found no calendars at {cfg.url} (principal {principal.url})",
            hint='check the url; with the credentials sent (auth = "basic") a server '
            "shows the account's calendars",
        )
    return cals


def _find_calendars(client: Any, cfg: _Connection, wanted: tuple[str, ...], what: str) -> list[Any]:
    cals = _discover(client, cfg, what, SourceError)
    if not wanted:
        return cals
    out = []
    for w in wanted:
        match = [c for c in cals if _matches(c, w)]
        if not match:
            names = ", ".join(sorted(str(c.get_display_name() or c.url) for c in cals))
            raise SourceError(f"{what}: no calendar {w!r} on the server (found: {names})")
        out.extend(match)
    return out


def _matches(cal: Any, wanted: str) -> bool:
    url = str(cal.url).rstrip("/")
    if wanted.rstrip("/") in (url, url.rsplit("/", 1)[-1]):
        return True
    return bool(cal.get_display_name() == wanted)


def _expand(
    data: str, source: str, tz: tzinfo, lo: datetime, hi: datetime, where: str
) -> tuple[list[EventRecord], set[str]]:
    """Occurrences in [lo, hi] of one calendar object, and its UIDs.

    ``tz`` is the user's zone: floating times (no zone) are read in it.
    """
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
        _check_connection(cfg, f"{config.path or '<config>'}: [sources.{name}]")
        return cls(name, cfg, config.general.tz)

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
            cals = _find_calendars(self.client, self.cfg, self.cfg.calendars, self.what)
            return [ScopeInfo(str(c.get_display_name() or c.url), None) for c in cals]

    def sync(self, ctx: SyncContext) -> Iterator[EventBatch]:
        with _translated(self.what, SourceError):
            cals = _find_calendars(self.client, self.cfg, self.cfg.calendars, self.what)
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
                        changed[href] = str(obj.props.get(_GETETAG, ""))
                new_token = coll.sync_token
            except dav_error.DAVError as exc:
                if isinstance(exc, dav_error.AuthorizationError) and not exc.preconditions:
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
                    data, etag = self._get(cal, href, listed_etag)
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
                    str(o.url): str(o.props.get(_GETETAG, ""))
                    for o in coll
                    if o.url.canonical() not in coll.deleted_urls
                }
                return listing, coll.sync_token
            except dav_error.DAVError as exc:
                if isinstance(exc, dav_error.AuthorizationError) and not exc.preconditions:
                    raise
                log.info("%s: no sync-collection (%s): ETag listing", self.name, exc)
        response = self.client.propfind(str(cal.url), props=["getetag", "resourcetype"], depth=1)
        base = str(cal.url).rstrip("/")
        listing = {}
        for result in response.results or ():
            url = str(cal.url.join(result.href))
            kind = str(result.properties.get("{DAV:}resourcetype") or "")
            if url.rstrip("/") == base or "collection" in kind:
                continue
            listing[url] = str(result.properties.get(_GETETAG) or "")
        return listing, None

    def _multiget(self, cal: Any, hrefs: list[str]) -> dict[str, tuple[str, str]]:
        """{href: (data, etag)} of many objects in one calendar-multiget REPORT.

        One request instead of one GET per object; a server that refuses it
        gets the GETs.
        """
        from caldav.lib import error as dav_error
        from caldav.lib.url import URL

        if len(hrefs) < 2:
            return {}
        try:
            objects = cal.multiget([URL.objectify(h) for h in hrefs])
        except dav_error.DAVError as exc:
            if isinstance(exc, dav_error.AuthorizationError) and not exc.preconditions:
                raise
            log.info("%s: calendar-multiget refused (%s): one GET each", self.name, exc)
            return {}
        return {str(o.url): (o.data, str(o.props.get(_GETETAG) or "")) for o in objects if o.data}

    def _get(self, cal: Any, href: str, etag: str) -> tuple[str | None, str]:
        from caldav.calendarobjectresource import CalendarObjectResource
        from caldav.lib import error as dav_error

        obj = CalendarObjectResource(client=self.client, url=href, parent=cal)
        try:
            obj.load(multiget_fallback=False)
        except dav_error.NotFoundError:
            return None, etag
        return str(obj.data), str(obj.props.get(_GETETAG) or etag)


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
        tz: tzinfo = UTC,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(name)
        self.cfg = cfg
        # the user's zone: floating times in the busy calendars are read in it
        self.tz = tz
        self.what = f"sink {name}"
        self._client: Any = None
        self._cal: Any = None
        self._hrefs: dict[str, str] = {}  # uid -> href as listed
        self._clock = clock

    @classmethod
    def from_config(cls, name: str, cfg: CalDavSinkConfig, config: KithkeepConfig) -> CalDavSink:
        _check_connection(cfg, f"{config.path or '<config>'}: [sinks.{name}]")
        return cls(name, cfg, tz=config.general.tz)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _connect(self.cfg, self.what, SinkError)
        return self._client

    @property
    def calendar(self) -> Any:
        if self._cal is None:
            with _translated(self.what, SinkError):
                self._cal = self._find_or_create()
        return self._cal

    def _find_or_create(self) -> Any:
        from caldav.lib import error as dav_error

        principal = self.client.principal()
        found = list(principal.calendars())
        cals = [c for c in found if _matches(c, self.cfg.calendar)]
        if cals:
            return cals[0]
        if not self.cfg.create_calendar or "/" in self.cfg.calendar:
            names = ", ".join(sorted(str(c.get_display_name() or c.url) for c in found))
            raise SinkError(
                f"{self.what}: no calendar {self.cfg.calendar!r} on the server "
                f"(found: {names or 'none'})"
            )
        log.info("%s: creating calendar %r", self.name, self.cfg.calendar)
        try:
            return principal.make_calendar(name=self.cfg.calendar)
        except dav_error.DAVError as exc:
            if isinstance(exc, dav_error.AuthorizationError) and exc.status == 401:
                raise
            raise SinkError(
                f"{self.what}: cannot create calendar {self.cfg.calendar!r} under "
                f"{principal.url}: {exc.reason or type(exc).__name__}",
                hint=None
                if found
                else "discovery found no calendars there either: check the url and the credentials",
            ) from exc

    def identity(self) -> str:
        # the calendar's path: it names the account and the calendar, and stays
        # the same when the server is reached under another host name or port
        return urllib.parse.urlsplit(str(self.calendar.url)).path

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

    def list_own(self) -> list[SinkEvent]:
        out: list[SinkEvent] = []
        self._hrefs = {}
        with _translated(self.what, SinkError):
            cal = self.calendar
            for obj in cal.search(event=True):
                try:
                    parsed = icalendar.Calendar.from_ical(obj.data)
                except Exception as exc:  # broken objects are someone else's
                    log.warning("%s: unreadable object %s: %s", self.name, obj.url, exc)
                    continue
                etag = obj.props.get(_GETETAG)
                for comp in parsed.walk("VEVENT"):
                    if comp.get(KEY_PROP) is None or comp.get("RECURRENCE-ID") is not None:
                        continue
                    ev = replace(_sink_event(comp), etag=str(etag) if etag else None)
                    out.append(ev)
                    self._hrefs[ev.uid] = str(obj.url)
        return sorted(out, key=lambda e: e.key)

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        out: list[tuple[datetime, datetime]] = []
        with _translated(self.what, SinkError):
            cals = [self.calendar]
            if self.cfg.busy_calendars:
                cals.extend(
                    c
                    for c in self.client.principal().calendars()
                    if any(_matches(c, w) for w in self.cfg.busy_calendars)
                )
            seen: set[str] = set()
            for cal in cals:
                if str(cal.url) in seen:
                    continue
                seen.add(str(cal.url))
                for obj in cal.search(event=True, start=start, end=end, expand=False):
                    events, _ = _expand(obj.data, self.name, self.tz, start, end, str(obj.url))
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
        # the object keeps its UID (one written under an earlier scheme too):
        # servers refuse a PUT that changes the UID of an existing object
        reminder = replace(reminder, uid=current.uid)
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
