"""Microsoft 365 and Outlook.com mail through Microsoft Graph: message metadata, never bodies.

Per folder, one delta query (``/me/mailFolders/{id}/messages/delta``) with a
``$select`` of metadata properties only and ``Prefer: odata.maxpagesize``.
Each page is one batch, committed with its checkpoint (scope = the folder's
display path)::

    {"folder_id": Graph's id, "link": the @odata.nextLink to go on with, or
     the @odata.deltaLink of a finished round, "complete": true once a round ended}

so an interrupted first sync resumes at the page it stopped on, and a later
run asks only for what changed. ``@removed`` entries are ignored: the contact
happened, the message stays in kithkeep's history (as with IMAP). An expired
link (410 Gone, ``syncStateNotFound``) or a folder that was replaced under the
same name starts a full resync of that folder whose first batch carries
``replace_folder``.

By default the inbox, Sent Items and the archive (well-known folder names
``inbox``, ``sentitems``, ``archive``) are read; ``include``/``exclude`` globs
on the folder paths ("Inbox/Projects") change that, as for IMAP.

What the records hold (README: Microsoft 365 and Outlook.com):

- from ``Mail.ReadBasic``: the message's ``internetMessageId`` (normalized like
  a Message-ID header), ``from``/``sender``, To, Cc, Bcc, subject,
  ``sentDateTime`` (the Date) and ``receivedDateTime``, ``isRead``
  (``\\Seen``) and ``conversationId``, whose 63-bit hash is the thread key
  (``gm_thrid``; it is only compared for equality);
- with ``full_headers = true`` (``Mail.Read``): the internet headers
  In-Reply-To, References, List-Id, List-Post, List-Unsubscribe, Precedence
  and Auto-Submitted, and the replied state: PidTagLastVerbExecuted
  (0x1081) 102 or 103 (replied to the sender, or to all) is ``\\Answered``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kithkeep.config import Config as KithkeepConfig
from kithkeep.connectors.graph_client import (
    GraphAccountConfig,
    GraphBacked,
    GraphConnection,
    GraphHTTPError,
    Sleep,
    delta_pages,
    parse_graph_time,
)
from kithkeep.errors import ConfigError, SourceError
from kithkeep.headers import (
    MAX_SUBJECT,
    SIGNAL_FIELDS,
    normalize_message_id,
    record_from_headers,
)
from kithkeep.interfaces import MailSource, ScopeInfo, SyncContext
from kithkeep.microsoft_auth import MAIL_BASIC, MAIL_FULL
from kithkeep.records import Address, Checkpoint, FlagUpdate, MailBatch, MessageRecord

log = logging.getLogger(__name__)

# (well-known name, role): the folders read when include is empty
DEFAULT_FOLDERS = (("inbox", "inbox"), ("sentitems", "sent"), ("archive", "archive"))
# metadata only: no body, bodyPreview, uniqueBody or attachments
SELECT_BASIC = (
    "internetMessageId",
    "conversationId",
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "sentDateTime",
    "receivedDateTime",
    "isRead",
    "isDraft",
)
SELECT_FULL = (*SELECT_BASIC, "internetMessageHeaders")
# PidTagLastVerbExecuted: the last thing the user did with the message
LAST_VERB_PROP = "Integer 0x1081"
REPLIED_VERBS = frozenset({102, 103})  # EXCHIVERB_REPLYTOSENDER, EXCHIVERB_REPLYTOALL
# the internet headers read from internetMessageHeaders (the rest come from
# properties): threading, lists, and what machines write (kithkeep.headers.SIGNALS)
INTERNET_HEADERS = (
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "Precedence",
    "Auto-Submitted",
    *SIGNAL_FIELDS,
)
# the store's uid column holds 200 characters; Graph ids are about 150
MAX_UID = 200
SEEN, ANSWERED = "\\Seen", "\\Answered"


def thread_key(conversation_id: str | None) -> int | None:
    """A positive 63-bit integer for a conversationId (the store's thread key column)."""
    if not conversation_id:
        return None
    digest = hashlib.sha256(conversation_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1) or 1


def uid_for(message_id: str) -> str:
    """The stored uid of a Graph message id (a hash for an id too long for the column)."""
    if len(message_id) <= MAX_UID:
        return message_id
    return "h-" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()


def _addresses(values: Iterable[Any]) -> tuple[Address, ...]:
    out: list[Address] = []
    for v in values:
        ea = v.get("emailAddress") if isinstance(v, dict) else None
        if not isinstance(ea, dict):
            continue
        email = str(ea.get("address") or "").strip().lower()
        if "@" not in email or " " in email:
            continue  # Exchange's internal X.500 addresses of deleted users
        out.append(Address(name=str(ea.get("name") or "").strip(), email=email))
    return tuple(out)


def _synthetic_id(item: dict[str, Any]) -> str:
    """A stable id for a message without internetMessageId (fields every copy shares)."""
    h = hashlib.sha256()
    for key in ("from", "toRecipients", "ccRecipients", "sentDateTime", "subject"):
        h.update(repr(item.get(key)).encode("utf-8", "replace"))
        h.update(b"\0")
    return "kk-" + h.hexdigest()[:32]


def flags_of(item: dict[str, Any], before: frozenset[str] = frozenset()) -> frozenset[str]:
    """Flags from the properties the item carries; others keep their ``before`` value."""
    flags = set(before)
    if "isRead" in item:
        flags.discard(SEEN)
        if item["isRead"] is True or str(item["isRead"]).lower() == "true":
            flags.add(SEEN)
    props = item.get("singleValueExtendedProperties")
    if isinstance(props, list):
        flags.discard(ANSWERED)
        for p in props:
            if isinstance(p, dict) and str(p.get("id", "")).lower() == LAST_VERB_PROP.lower():
                try:
                    if int(str(p.get("value"))) in REPLIED_VERBS:
                        flags.add(ANSWERED)
                except ValueError:
                    pass
    return frozenset(flags)


def message_record(item: dict[str, Any], *, account: str, folder: str, sent: bool) -> MessageRecord:
    """A MessageRecord from a Graph message (the $select of this module)."""
    from_ = _addresses([item.get("from")]) or _addresses([item.get("sender")])
    headers = item.get("internetMessageHeaders")
    parsed = None
    if isinstance(headers, list):
        wanted = {h.lower() for h in INTERNET_HEADERS}
        block = "".join(
            f"{h.get('name')}: {h.get('value')}\r\n"
            for h in headers
            if isinstance(h, dict) and str(h.get("name", "")).lower() in wanted
        )
        # the header parser's record: its header fields are taken below
        parsed = record_from_headers(
            block.encode("utf-8", "surrogateescape") + b"\r\n",
            account=account,
            folder=folder,
            uid=str(item["id"]),
        )
    errors: list[str] = list(parsed.parse_errors) if parsed else []
    try:
        date = parse_graph_time(item.get("sentDateTime"))
    except ValueError:
        date, errors = None, [*errors, "date"]
    try:
        internal = parse_graph_time(item.get("receivedDateTime"))
    except ValueError:
        internal = None
    return MessageRecord(
        account=account,
        folder=folder,
        uid=uid_for(str(item["id"])),
        message_id=normalize_message_id(item.get("internetMessageId")) or _synthetic_id(item),
        date=date,
        from_=from_,
        to=_addresses(item.get("toRecipients") or ()),
        cc=_addresses(item.get("ccRecipients") or ()),
        bcc=_addresses(item.get("bccRecipients") or ()),
        in_reply_to=parsed.in_reply_to if parsed else None,
        references=parsed.references if parsed else (),
        subject=str(item.get("subject") or "")[:MAX_SUBJECT],
        list_id=parsed.list_id if parsed else None,
        list_post=parsed.list_post if parsed else None,
        list_unsubscribe=parsed.list_unsubscribe if parsed else False,
        precedence=parsed.precedence if parsed else None,
        auto_submitted=parsed.auto_submitted if parsed else None,
        flags=flags_of(item),
        internal_date=internal,
        gm_msgid=None,
        gm_thrid=thread_key(item.get("conversationId")),
        in_sent_folder=sent,
        signals=parsed.signals if parsed else frozenset(),
        parse_errors=tuple(errors),
    )


@dataclass(frozen=True)
class MicrosoftMailConfig(GraphAccountConfig):
    # glob patterns of folder paths ("Inbox/Projects"); empty: inbox, Sent Items, archive
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # true: also In-Reply-To, References, list headers and the replied state (Mail.Read)
    full_headers: bool = False
    # messages per delta page (Prefer: odata.maxpagesize); each page commits with its position
    page_size: int = 200


@dataclass
class GraphFolder:
    id: str
    name: str  # the display path, the folder's name in kithkeep
    role: str  # inbox, sent, archive, or "" for an included folder
    total: int | None = None


class MicrosoftMailSource(GraphBacked, MailSource):
    Config = MicrosoftMailConfig

    def __init__(
        self,
        name: str,
        cfg: MicrosoftMailConfig,
        *,
        sleep: Sleep = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(name)
        scopes = (MAIL_FULL,) if cfg.full_headers else (MAIL_BASIC,)
        self.graph = GraphConnection(
            "source", name, cfg, scopes, SourceError, sleep=sleep, jitter=jitter
        )
        if not 1 <= cfg.page_size <= 1000:
            raise ConfigError(f"[sources.{name}]: page_size must be between 1 and 1000")
        self.cfg = cfg
        self.scopes = scopes

    @classmethod
    def from_config(
        cls, name: str, cfg: MicrosoftMailConfig, config: KithkeepConfig
    ) -> MicrosoftMailSource:
        return cls(name, cfg)

    # ------------------------------------------------------------ folders

    def _well_known(self, wk: str) -> dict[str, Any] | None:
        try:
            folder = self.client.call(
                "GET",
                f"me/mailFolders/{wk}",
                f"read the {wk} folder",
                passthrough=frozenset({404}),
            )[2]
        except GraphHTTPError:
            return None  # no archive folder in this mailbox: nothing to read there
        return folder if isinstance(folder, dict) and "id" in folder else None

    def _all_folders(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(path, folder) for every folder, parents first."""
        stack: list[tuple[str, str]] = [("", "me/mailFolders")]
        while stack:
            prefix, url = stack.pop(0)
            for page in self.client.pages(
                url, "list mail folders", params={"includeHiddenFolders": "false", "$top": "250"}
            ):
                for f in page.get("value", []):
                    path = f"{prefix}{f.get('displayName', '')}"
                    yield path, f
                    if f.get("childFolderCount"):
                        fid = quote(str(f["id"]), safe="")
                        stack.append((f"{path}/", f"me/mailFolders/{fid}/childFolders"))

    def folders(self) -> list[GraphFolder]:
        known = {wk: self._well_known(wk) for wk, _role in DEFAULT_FOLDERS}
        roles = {str(f["id"]): role for (wk, role) in DEFAULT_FOLDERS if (f := known[wk])}
        chosen: list[GraphFolder] = []
        if self.cfg.include:
            for path, f in self._all_folders():
                if any(fnmatch.fnmatchcase(path, p) for p in self.cfg.include):
                    fid = str(f["id"])
                    chosen.append(
                        GraphFolder(fid, path, roles.get(fid, ""), f.get("totalItemCount"))
                    )
        else:
            for wk, role in DEFAULT_FOLDERS:
                f = known[wk]
                if f:
                    chosen.append(
                        GraphFolder(
                            str(f["id"]),
                            str(f.get("displayName") or wk),
                            role,
                            f.get("totalItemCount"),
                        )
                    )
        return [
            f for f in chosen if not any(fnmatch.fnmatchcase(f.name, p) for p in self.cfg.exclude)
        ]

    def check(self) -> list[ScopeInfo]:
        return [ScopeInfo(f.name, f.total, f.role) for f in self.folders()]

    # --------------------------------------------------------------- sync

    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        for folder in self.folders():
            yield from self._sync_folder(ctx, folder)
            if ctx.should_stop():
                return

    def _first_request(self, folder: GraphFolder) -> tuple[str, dict[str, str]]:
        select = SELECT_FULL if self.cfg.full_headers else SELECT_BASIC
        params = {"$select": ",".join(select)}
        if self.cfg.full_headers:
            params["$expand"] = f"singleValueExtendedProperties($filter=id eq '{LAST_VERB_PROP}')"
        return f"me/mailFolders/{quote(folder.id, safe='')}/messages/delta", params

    def _sync_folder(self, ctx: SyncContext, folder: GraphFolder) -> Iterator[MailBatch]:
        saved = ctx.checkpoints().get(folder.name) or {}
        link: str | None = saved.get("link")
        replace = False
        if saved and saved.get("folder_id") != folder.id:
            log.info(
                "%s: folder %s is a new folder under that name: full resync",
                self.name,
                folder.name,
            )
            link, replace = None, True
        # stored flags, for updates that carry only what changed (not needed on a first listing)
        known = ctx.known_uids(folder.name) if link else {}
        done = 0
        for page in delta_pages(
            self.client,
            link,
            self._first_request(folder),
            f"read changes in {folder.name}",
            page_size=self.cfg.page_size,
        ):
            if page.restarted:
                replace, known = True, {}
            records, updates = self._items(page.items, folder, known)
            done += len(records)
            state = {"folder_id": folder.id, "link": page.link, "complete": page.complete}
            yield MailBatch(
                records=records,
                flag_updates=updates,
                checkpoint=Checkpoint(self.name, folder.name, state),
                replace_folder=folder.name if replace else None,
            )
            replace = False
            ctx.progress(folder.name, done, None if link else folder.total)
            if ctx.should_stop():
                return

    def _items(
        self, items: list[Any], folder: GraphFolder, known: dict[str, frozenset[str]]
    ) -> tuple[list[MessageRecord], list[FlagUpdate]]:
        records: list[MessageRecord] = []
        updates: list[FlagUpdate] = []
        for item in items:
            if not isinstance(item, dict) or "id" not in item:
                continue
            if "@removed" in item:
                continue  # deleted or moved away: the contact happened, the record stays
            if item.get("isDraft") is True:
                continue  # never sent
            uid = uid_for(str(item["id"]))
            if uid in known and "internetMessageId" not in item:
                # an update that carries only what changed (read state, replied)
                flags = flags_of(item, known[uid])
                if flags != known[uid]:
                    updates.append(FlagUpdate(folder.name, uid, flags))
                continue
            try:
                records.append(
                    message_record(
                        item, account=self.name, folder=folder.name, sent=folder.role == "sent"
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "%s: skipped message %s in %s: %s",
                    self.name,
                    str(item.get("id"))[:40],
                    folder.name,
                    type(exc).__name__,
                )
        return records, updates
