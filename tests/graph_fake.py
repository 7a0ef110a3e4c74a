"""An HTTP-level fake of the parts of Microsoft Graph kithkeep uses, on 127.0.0.1.

Microsoft's cloud is not reachable here, so this is the seam with a fake
(STYLE.md, 11). It is a real HTTP server: the connectors talk to it through
``graph_url = "http://127.0.0.1:PORT/v1.0"`` and ``token_command``, exactly as
they would to any Graph-compatible endpoint. Its answers are computed from an
in-memory mailbox and calendar, shaped like the documented ones (the recorded
samples under ``tests/data/graph/``, held to the same shape by
``tests/unit/test_graph_fake.py``):

- ``GET /me/mailFolders/{id|well-known name}``, ``/me/mailFolders``, ``.../childFolders``;
- ``GET /me/mailFolders/{id}/messages/delta``: pages of ``Prefer:
  odata.maxpagesize`` items, ``@odata.nextLink`` with a ``$skiptoken``, a
  final ``@odata.deltaLink`` with a ``$deltatoken``; the next round returns
  what changed and ``@removed`` entries; only the ``$select`` properties come
  back (all of them, body included, without one); ``$expand`` of
  ``singleValueExtendedProperties($filter=id eq '...')``;
- ``GET /me/calendarView/delta`` over a window, paged the same way;
- ``GET /me/calendar``, ``/me/calendars``, ``POST /me/calendars``;
- ``POST /me/calendars/{id}/events`` (``transactionId`` replays return the
  event created first), ``GET .../events`` with the extended-property
  ``$filter``/``$expand``, ``PATCH``/``DELETE /me/events/{id}`` (``If-Match``
  against ``@odata.etag``: 412 when stale);
- ``POST /me/calendar/getSchedule`` (400 for a personal account, which
  Graph does not serve) and ``GET /me/calendarView``.

Expired links answer 410 ``syncStateNotFound``; ``fail`` queues answers
(429 with ``Retry-After``, 503, ...) given before the next requests. Every
request is recorded (method, path, query, headers, JSON body).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "fake-graph-access-token-0123456789"
ACCOUNT = "me@contoso.com"
WELL_KNOWN = {"inbox": "Inbox", "sentitems": "Sent Items", "archive": "Archive"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "request-id": "b9a2fe4c-0000-4000-8000-000000000000",
                    "date": "2026-11-23T07:00:00",
                },
            }
        },
        headers or {},
    )


def graph_dt(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def parse_dt(value: dict[str, str] | str) -> datetime:
    raw = value["dateTime"] if isinstance(value, dict) else value
    raw = raw.replace("Z", "")
    head, _, _frac = raw.partition(".")
    return datetime.fromisoformat(head).replace(tzinfo=UTC)


def _token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _untoken(text: str) -> dict[str, Any]:
    pad = "=" * (-len(text) % 4)
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + pad))
    return data


class GraphFake:
    def __init__(self, *, personal: bool = False) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.fail: list[Answer] = []
        self.personal = personal
        self.generation = 0
        self._seq = itertools.count(1)
        self.seq = 0
        self._ids = itertools.count(1)
        # mail: folder id -> folder; folder id -> message id -> message
        self.folders: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, dict[str, Any]]] = {}
        self.changes: dict[str, list[tuple[int, str]]] = {}
        # calendars: calendar id -> calendar; event id -> event (with "calendar")
        self.calendars: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.event_changes: list[tuple[int, str]] = []
        self.transactions: dict[str, str] = {}
        for wk, name in WELL_KNOWN.items():
            self.add_folder(name, wk=wk)
        self.default_calendar = self.add_calendar("Calendar", default=True)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1.0"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _id(self, prefix: str) -> str:
        # Graph ids are base64 of Exchange entry ids; the shape matters, not the value
        n = next(self._ids)
        return base64.urlsafe_b64encode(f"AAMk{prefix}-{n:06d}-fake".encode()).decode()

    def _bump(self) -> int:
        self.seq = next(self._seq)
        return self.seq

    # ----------------------------------------------------------- mailbox

    def add_folder(self, name: str, *, wk: str = "", parent: str = "") -> str:
        with self.lock:
            fid = self._id("folder")
            self.folders[fid] = {
                "id": fid,
                "displayName": name,
                "parentFolderId": parent or "root",
                "childFolderCount": 0,
                "unreadItemCount": 0,
                "totalItemCount": 0,
                "sizeInBytes": 0,
                "isHidden": False,
                "wk": wk,
            }
            if parent:
                self.folders[parent]["childFolderCount"] += 1
            self.messages[fid] = {}
            self.changes[fid] = []
            return fid

    def folder_id(self, name_or_wk: str) -> str:
        for fid, f in self.folders.items():
            if name_or_wk in (f["wk"], f["displayName"], fid):
                return fid
        raise KeyError(name_or_wk)

    def remove_folder(self, name_or_wk: str) -> None:
        with self.lock:
            fid = self.folder_id(name_or_wk)
            del self.folders[fid]

    def add_message(self, folder: str, **fields: Any) -> str:
        """A message in a folder; ``fields`` are Graph message properties."""
        with self.lock:
            fid = self.folder_id(folder)
            mid = fields.pop("id", None) or self._id("message")
            sent = fields.get("sentDateTime", "2026-11-20T10:00:00Z")
            msg = {
                "@odata.etag": f'W/"CQAAABYAAAARn2vdzPFjSbaPPxzjlzOTAAA{next(self._ids)}"',
                "id": mid,
                "createdDateTime": sent,
                "lastModifiedDateTime": sent,
                "changeKey": "CQAAABYAAAARn2vdzPFjSbaPPxzjlzOTAAASsKZz",
                "categories": [],
                "receivedDateTime": sent,
                "sentDateTime": sent,
                "hasAttachments": False,
                "internetMessageId": f"<{mid[:12]}@contoso.com>",
                "subject": "",
                "bodyPreview": "the body, which kithkeep must never ask for",
                "importance": "normal",
                "parentFolderId": fid,
                "conversationId": "AAQkAGI2TG93AAA=",
                "isDeliveryReceiptRequested": False,
                "isReadReceiptRequested": False,
                "isRead": False,
                "isDraft": False,
                "webLink": "https://outlook.office365.com/owa/?ItemID=x",
                "inferenceClassification": "focused",
                "body": {"contentType": "html", "content": "<html><body>secret body</body></html>"},
                "sender": {"emailAddress": {"name": "Dana Swope", "address": "danas@contoso.com"}},
                "from": {"emailAddress": {"name": "Dana Swope", "address": "danas@contoso.com"}},
                "toRecipients": [{"emailAddress": {"name": "Me", "address": ACCOUNT}}],
                "ccRecipients": [],
                "bccRecipients": [],
                "replyTo": [],
                "flag": {"flagStatus": "notFlagged"},
                "internetMessageHeaders": [],
            }
            msg.update(fields)
            self.messages[fid][mid] = msg
            self.folders[fid]["totalItemCount"] = len(self.messages[fid])
            self.changes[fid].append((self._bump(), mid))
            return mid

    def update_message(self, mid: str, **fields: Any) -> None:
        with self.lock:
            for fid, msgs in self.messages.items():
                if mid in msgs:
                    msgs[mid].update(fields)
                    msgs[mid]["@odata.etag"] = f'W/"CQAAABYAAAA{next(self._ids)}"'
                    self.changes[fid].append((self._bump(), mid))
                    return
            raise KeyError(mid)

    def delete_message(self, mid: str) -> None:
        with self.lock:
            for fid, msgs in self.messages.items():
                if msgs.pop(mid, None) is not None:
                    self.folders[fid]["totalItemCount"] = len(msgs)
                    self.changes[fid].append((self._bump(), mid))
                    return
            raise KeyError(mid)

    def expire_links(self) -> None:
        """Every delta and skip token handed out so far answers 410 from now on."""
        with self.lock:
            self.generation += 1

    # ---------------------------------------------------------- calendars

    def add_calendar(self, name: str, *, default: bool = False) -> str:
        with self.lock:
            cid = self._id("calendar")
            self.calendars[cid] = {
                "id": cid,
                "name": name,
                "color": "auto",
                "hexColor": "",
                "isDefaultCalendar": default,
                "changeKey": "nfZyf7VcrEKLNoU37KWlkQAAA0x0+w==",
                "canShare": True,
                "canViewPrivateItems": True,
                "canEdit": True,
                "allowedOnlineMeetingProviders": ["teamsForBusiness"],
                "defaultOnlineMeetingProvider": "teamsForBusiness",
                "isTallyingResponses": True,
                "isRemovable": not default,
                "owner": {"name": "Me", "address": ACCOUNT},
            }
            return cid

    def _etag(self) -> str:
        return f'W/"ZlnW4RIAV06KYYwlrfNZvQAALfZe{next(self._ids):04d}=="'

    def add_event(self, calendar: str | None = None, **fields: Any) -> str:
        """An event (or an occurrence, with type/seriesMasterId) in a calendar."""
        with self.lock:
            eid = fields.pop("id", None) or self._id("event")
            ev = {
                "@odata.type": "#microsoft.graph.event",
                "@odata.etag": self._etag(),
                "id": eid,
                "createdDateTime": "2026-11-01T10:00:00.0000000Z",
                "lastModifiedDateTime": "2026-11-01T10:00:00.0000000Z",
                "changeKey": "ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ==",
                "categories": [],
                "transactionId": None,
                "originalStartTimeZone": "UTC",
                "originalEndTimeZone": "UTC",
                "iCalUId": "040000008200E00074C5B7101A82E00800000000DA2B357D94B5D2010000000000"
                f"0000001000000{next(self._ids):025d}",
                "reminderMinutesBeforeStart": 15,
                "isReminderOn": True,
                "hasAttachments": False,
                "subject": "",
                "bodyPreview": "",
                "importance": "normal",
                "sensitivity": "normal",
                "isAllDay": False,
                "isCancelled": False,
                "isOrganizer": True,
                "responseRequested": True,
                "seriesMasterId": None,
                "showAs": "busy",
                "type": "singleInstance",
                "webLink": "https://outlook.office365.com/owa/?itemid=x",
                "onlineMeetingUrl": None,
                "isOnlineMeeting": False,
                "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
                "body": {"contentType": "html", "content": "<html><body></body></html>"},
                "start": graph_dt(datetime(2026, 11, 10, 10, tzinfo=UTC)),
                "end": graph_dt(datetime(2026, 11, 10, 11, tzinfo=UTC)),
                "location": {
                    "displayName": "",
                    "locationType": "default",
                    "uniqueId": "",
                    "uniqueIdType": "unknown",
                },
                "locations": [],
                "recurrence": None,
                "attendees": [],
                "organizer": {"emailAddress": {"name": "Me", "address": ACCOUNT}},
                "calendar": calendar or self.default_calendar,
            }
            ev.update(fields)
            self.events[eid] = ev
            self.event_changes.append((self._bump(), eid))
            return eid

    def user_move(self, eid: str, start: datetime, end: datetime) -> None:
        with self.lock:
            ev = self.events[eid]
            ev["start"], ev["end"] = graph_dt(start), graph_dt(end)
            ev["@odata.etag"] = self._etag()
            self.event_changes.append((self._bump(), eid))

    def user_delete(self, eid: str) -> None:
        with self.lock:
            del self.events[eid]
            self.event_changes.append((self._bump(), eid))

    def cancel_event(self, eid: str) -> None:
        with self.lock:
            self.events[eid]["isCancelled"] = True
            self.event_changes.append((self._bump(), eid))

    # -------------------------------------------------------------- query

    def sent(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or path in r.path)
        ]

    # ----------------------------------------------------------- serving

    def answer(self, req: Request) -> Answer:
        with self.lock:
            self.requests.append(req)
            if req.headers.get("authorization") != f"Bearer {TOKEN}":
                return error(401, "InvalidAuthenticationToken", "Access token is empty.")
            if self.fail:
                return self.fail.pop(0)
            path = req.path.removeprefix("/v1.0/")
            for pattern, method, handler in _ROUTES:
                m = re.fullmatch(pattern, path, re.IGNORECASE)
                if m and method == req.method:
                    out: Answer = handler(self, req, *m.groups())
                    return out
            return error(400, "BadRequest", f"Unsupported request {req.method} {path}")

    def link(self, path: str, **params: str) -> str:
        return f"{self.url}/{path}?" + urllib.parse.urlencode(params, safe="$")

    # mail folders

    def _folder_json(self, fid: str) -> dict[str, Any]:
        f = {k: v for k, v in self.folders[fid].items() if k != "wk"}
        return {
            "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/mailFolders/$entity",
            **f,
        }

    def get_folder(self, req: Request, key: str) -> Answer:
        try:
            fid = self.folder_id(urllib.parse.unquote(key))
        except KeyError:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return Answer(200, self._folder_json(fid))

    def list_folders(self, req: Request, parent: str | None = None) -> Answer:
        parent_id = "root" if parent is None else urllib.parse.unquote(parent)
        value = [
            {k: v for k, v in f.items() if k != "wk"}
            for f in self.folders.values()
            if f["parentFolderId"] == parent_id
        ]
        return Answer(
            200,
            {
                "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/mailFolders",
                "value": value,
            },
        )

    # delta rounds, shared by messages and events

    def _delta(
        self,
        req: Request,
        *,
        kind: str,
        state: dict[str, Any] | None,
        current: dict[str, dict[str, Any]],
        changes: list[tuple[int, str]],
        render: Any,
        base: str,
    ) -> Answer:
        if state is None:  # the first request of an initial round
            state = {
                "mode": "init",
                "o": 0,
                "s": self.seq,
                "g": self.generation,
                **self._options(req),
            }
        elif state.get("g") != self.generation:
            return error(
                410,
                "syncStateNotFound",
                "The sync state generation is not found.",
                {"Location": f"{self.url}/{base}?$deltatoken="},
            )
        elif "$deltatoken" in req.query:
            # a new round: the changes up to now
            state = {**state, "o": 0, "s": self.seq}
        m = re.search(r"odata\.maxpagesize=(\d+)", req.headers.get("prefer", ""))
        size = int(m.group(1)) if m else 10
        if state["mode"] == "init":
            ids = sorted(current)
        else:  # what changed since the round's start
            seen: dict[str, int] = {}
            for seq, oid in changes:
                if state["since"] < seq <= state["s"]:
                    seen[oid] = seq
            ids = sorted(seen, key=lambda i: seen[i])
        chunk = ids[state["o"] : state["o"] + size]
        items = []
        for oid in chunk:
            if oid in current:
                items.append(render(current[oid], state))
            else:
                items.append(
                    {
                        "@odata.type": f"#microsoft.graph.{kind}",
                        "id": oid,
                        "@removed": {"reason": "deleted"},
                    }
                )
        body: dict[str, Any] = {
            "@odata.context": f"{self.url}/$metadata#Collection({kind})",
            "value": items,
        }
        if state["o"] + size < len(ids):
            nxt = {**state, "o": state["o"] + size}
            body["@odata.nextLink"] = self.link(base, **{"$skiptoken": _token(nxt)})
        else:
            # the next round starts where this one's snapshot was taken
            end = {**state, "mode": "delta", "o": 0, "since": state["s"]}
            body["@odata.deltaLink"] = self.link(base, **{"$deltatoken": _token(end)})
        return Answer(200, body)

    @staticmethod
    def _options(req: Request) -> dict[str, Any]:
        sel = req.query.get("$select")
        exp = req.query.get("$expand", "")
        m = re.search(r"id eq '([^']+)'", exp)
        return {
            "sel": sel.split(",") if sel else None,
            "exp": m.group(1) if m else None,
            "start": req.query.get("startDateTime") or req.query.get("startdatetime"),
            "end": req.query.get("endDateTime") or req.query.get("enddatetime"),
        }

    def _state(self, req: Request) -> dict[str, Any] | None:
        token = req.query.get("$skiptoken") or req.query.get("$deltatoken")
        if token is None:
            return None
        if token == "":
            return None
        return _untoken(token)

    def _render_message(self, msg: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.message",
            "@odata.etag": msg["@odata.etag"],
        }
        if state.get("sel"):
            out.update({k: msg[k] for k in state["sel"] if k in msg and k != "id"})
        else:
            out.update({k: v for k, v in msg.items() if not k.startswith(("@", "ext:"))})
        out["id"] = msg["id"]
        if state.get("exp"):
            props = [
                {"id": k[4:], "value": v}
                for k, v in msg.items()
                if k.startswith("ext:") and k[4:].lower() == state["exp"].lower()
            ]
            if props:
                out["singleValueExtendedProperties"] = props
        return out

    def message_delta(self, req: Request, key: str) -> Answer:
        key = urllib.parse.unquote(key).strip("()'")
        try:
            fid = self.folder_id(key)
        except KeyError:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return self._delta(
            req,
            kind="message",
            state=self._state(req),
            current=self.messages[fid],
            changes=self.changes[fid],
            render=self._render_message,
            base=f"me/mailfolders('{fid}')/messages/delta",
        )

    # calendars

    def _in_window(self, ev: dict[str, Any], state: dict[str, Any]) -> bool:
        start, end = parse_dt(state["start"]), parse_dt(state["end"])
        return parse_dt(ev["start"]) < end and parse_dt(ev["end"]) > start

    def _render_event(
        self,
        ev: dict[str, Any],
        state: dict[str, Any] | None = None,
        *,
        select: list[str] | None = None,
        text: bool = False,
        expand: str | None = None,
    ) -> dict[str, Any]:
        out = {k: v for k, v in ev.items() if not k.startswith("ext:") and k != "calendar"}
        if select:
            out = {k: v for k, v in out.items() if k in select or k in ("id", "@odata.etag")}
        if "body" in out and text:
            content = out["body"].get("content", "")
            out["body"] = {"contentType": "text", "content": re.sub(r"<[^>]+>", "", content)}
        if expand:
            props = [
                {"id": k[4:], "value": v}
                for k, v in ev.items()
                if k.startswith("ext:") and k[4:] == expand
            ]
            if props:
                out["singleValueExtendedProperties"] = props
        return out

    def _entity(self, ev: dict[str, Any], *, text: bool) -> dict[str, Any]:
        """An event as a single-entity answer (create, update)."""
        context = f"{self.url}/$metadata#users('{ACCOUNT}')/events/$entity"
        return {"@odata.context": context, **self._render_event(ev, text=text)}

    def calendar_view_delta(self, req: Request) -> Answer:
        state = self._state(req)
        if state is None and not (req.query.get("startDateTime") and req.query.get("endDateTime")):
            return error(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query "
                "string parameters StartDateTime and EndDateTime.",
            )
        if state is None and req.query.get("$select"):
            return error(400, "ErrorInvalidUrlQuery", "$select is not supported by delta.")
        window = state or self._options(req)
        current = {
            eid: ev
            for eid, ev in self.events.items()
            if ev["calendar"] == self.default_calendar and self._in_window(ev, window)
        }
        return self._delta(
            req,
            kind="event",
            state=state,
            current=current,
            changes=self.event_changes,
            render=lambda ev, _s: self._render_event(ev),
            base="me/calendarView/delta",
        )

    def get_default_calendar(self, req: Request) -> Answer:
        return Answer(
            200,
            {
                "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/calendars/$entity",
                **self.calendars[self.default_calendar],
            },
        )

    def list_calendars(self, req: Request) -> Answer:
        return Answer(
            200,
            {
                "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/calendars",
                "value": list(self.calendars.values()),
            },
        )

    def create_calendar(self, req: Request) -> Answer:
        cid = self.add_calendar(str(req.body["name"]))
        return Answer(
            201,
            {
                "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/calendars/$entity",
                **self.calendars[cid],
            },
        )

    def create_event(self, req: Request, cal: str | None = None) -> Answer:
        cid = self.default_calendar if cal is None else urllib.parse.unquote(cal)
        if cid not in self.calendars:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        data = dict(req.body)
        text = "text" in req.headers.get("prefer", "")
        tx = data.get("transactionId")
        if tx and tx in self.transactions and self.transactions[tx] in self.events:
            # a retried POST: the event created the first time
            return Answer(201, self._entity(self.events[self.transactions[tx]], text=text))
        props = data.pop("singleValueExtendedProperties", [])
        body = data.pop("body", {"contentType": "text", "content": ""})
        html = (
            body.get("content", "")
            if body.get("contentType", "").lower() == "html"
            else ("<html><body>" + body.get("content", "") + "</body></html>")
        )
        fields = {
            **data,
            "body": {"contentType": "html", "content": html},
            "start": graph_dt(parse_dt(data["start"])),
            "end": graph_dt(parse_dt(data["end"])),
        }
        for p in props:
            fields[f"ext:{p['id']}"] = p["value"]
        eid = self.add_event(cid, **fields)
        if tx:
            self.transactions[tx] = eid
        return Answer(201, self._entity(self.events[eid], text=text))

    def list_events(self, req: Request, cal: str | None = None) -> Answer:
        cid = self.default_calendar if cal is None else urllib.parse.unquote(cal)
        flt = req.query.get("$filter", "")
        m = re.fullmatch(
            r"singleValueExtendedProperties/Any\(ep: ep/id eq '([^']+)' and ep/value ne ''\)", flt
        )
        if flt and not m:
            return error(400, "BadRequest", f"Unsupported $filter {flt}")
        exp = re.search(r"id eq '([^']+)'", req.query.get("$expand", ""))
        sel = req.query.get("$select")
        text = "text" in req.headers.get("prefer", "")
        evs = [ev for ev in self.events.values() if ev["calendar"] == cid]
        if m:
            evs = [ev for ev in evs if ev.get(f"ext:{m.group(1)}")]
        evs.sort(key=lambda e: e["id"])
        top = int(req.query.get("$top", "10"))
        skip = int(req.query.get("$skip", "0"))
        page = evs[skip : skip + top]
        body: dict[str, Any] = {
            "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/calendars('{cid}')/events",
            "value": [
                self._render_event(
                    ev,
                    select=sel.split(",") if sel else None,
                    text=text,
                    expand=exp.group(1) if exp else None,
                )
                for ev in page
            ],
        }
        if skip + top < len(evs):
            q = {k: v for k, v in req.query.items() if k != "$skip"}
            body["@odata.nextLink"] = self.link(
                req.path.removeprefix("/v1.0/"), **q, **{"$skip": str(skip + top)}
            )
        return Answer(200, body)

    def patch_event(self, req: Request, eid: str) -> Answer:
        eid = urllib.parse.unquote(eid)
        ev = self.events.get(eid)
        if ev is None:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        match = req.headers.get("if-match")
        if match is not None and match != ev["@odata.etag"]:
            return error(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the "
                "change key passed in the request does not match the current change "
                "key for the item.",
            )
        data = dict(req.body)
        if "body" in data:
            content = data["body"].get("content", "")
            data["body"] = {
                "contentType": "html",
                "content": "<html><body>" + content + "</body></html>",
            }
        for k in ("start", "end"):
            if k in data:
                data[k] = graph_dt(parse_dt(data[k]))
        ev.update(data)
        ev["@odata.etag"] = self._etag()
        self.event_changes.append((self._bump(), eid))
        return Answer(200, self._entity(ev, text="text" in req.headers.get("prefer", "")))

    def delete_event(self, req: Request, eid: str) -> Answer:
        eid = urllib.parse.unquote(eid)
        if eid not in self.events:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        self.user_delete(eid)
        return Answer(204)

    def get_schedule(self, req: Request) -> Answer:
        if self.personal:
            return error(
                400, "ErrorInvalidRequest", "This operation is not supported for personal accounts."
            )
        start, end = parse_dt(req.body["startTime"]), parse_dt(req.body["endTime"])
        out = []
        for who in req.body["schedules"]:
            items = [
                {
                    "isPrivate": False,
                    "status": ev["showAs"],
                    "subject": ev["subject"],
                    "location": "",
                    "start": ev["start"],
                    "end": ev["end"],
                }
                for ev in self.events.values()
                if ev["calendar"] == self.default_calendar
                and ev["showAs"] != "free"
                and not ev["isCancelled"]
                and parse_dt(ev["start"]) < end
                and parse_dt(ev["end"]) > start
            ]
            out.append(
                {
                    "scheduleId": who,
                    "availabilityView": "0" * 8,
                    "scheduleItems": items,
                    "workingHours": {
                        "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                        "startTime": "08:00:00.0000000",
                        "endTime": "17:00:00.0000000",
                        "timeZone": {"name": "UTC"},
                    },
                }
            )
        return Answer(
            200,
            {
                "@odata.context": (
                    f"{self.url}/$metadata#Collection(microsoft.graph.scheduleInformation)"
                ),
                "value": out,
            },
        )

    def calendar_view(self, req: Request) -> Answer:
        window = {"start": req.query["startDateTime"], "end": req.query["endDateTime"]}
        sel = req.query.get("$select")
        evs = [
            ev
            for ev in self.events.values()
            if ev["calendar"] == self.default_calendar and self._in_window(ev, window)
        ]
        body: dict[str, Any] = {}
        if req.query.get("$count") == "true":
            body["@odata.count"] = len(evs)
        top = int(req.query.get("$top", "10"))
        evs = evs[:top]
        return Answer(
            200,
            {
                **body,
                "@odata.context": f"{self.url}/$metadata#users('{ACCOUNT}')/calendarView",
                "value": [
                    self._render_event(ev, select=sel.split(",") if sel else None) for ev in evs
                ],
            },
        )


_ROUTES: list[tuple[str, str, Any]] = [
    (r"me/mailFolders", "GET", GraphFake.list_folders),
    (r"me/mailFolders/([^/]+)/childFolders", "GET", GraphFake.list_folders),
    (r"me/mailFolders/([^/]+)/messages/delta", "GET", GraphFake.message_delta),
    # the links Graph hands out use the key-in-parentheses form
    (r"me/mailFolders\('([^']+)'\)/messages/delta", "GET", GraphFake.message_delta),
    (r"me/mailFolders/([^/]+)", "GET", GraphFake.get_folder),
    (r"me/calendarView/delta", "GET", GraphFake.calendar_view_delta),
    (r"me/calendarView", "GET", GraphFake.calendar_view),
    (r"me/calendar/getSchedule", "POST", GraphFake.get_schedule),
    (r"me/calendar", "GET", GraphFake.get_default_calendar),
    (r"me/calendar/events", "POST", GraphFake.create_event),
    (r"me/calendar/events", "GET", GraphFake.list_events),
    (r"me/calendars", "GET", GraphFake.list_calendars),
    (r"me/calendars", "POST", GraphFake.create_calendar),
    (r"me/calendars/([^/]+)/events", "POST", GraphFake.create_event),
    (r"me/calendars/([^/]+)/events", "GET", GraphFake.list_events),
    (r"me/events/([^/]+)", "PATCH", GraphFake.patch_event),
    (r"me/events/([^/]+)", "DELETE", GraphFake.delete_event),
]


def _handler(fake: GraphFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test output stays readable

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            req = Request(
                self.command,
                urllib.parse.unquote(parts.path),
                query,
                {k.lower(): v for k, v in self.headers.items()},
                json.loads(raw) if raw else None,
            )
            ans = fake.answer(req)
            data = b"" if ans.body is None else json.dumps(ans.body).encode()
            self.send_response(ans.status)
            if data:
                self.send_header("Content-Type", "application/json; odata.metadata=minimal")
            for k, v in ans.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler
