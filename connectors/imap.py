"""IMAP mail source: headers only, incremental, resumable.

Per folder the checkpoint (scope = folder name) holds::

    {"uidvalidity": int, "uid": highest UID stored, "uidnext": UIDNEXT seen,
     "modseq": HIGHESTMODSEQ at the last pass (CONDSTORE servers), "messages": int}

A run asks every folder's STATUS first (one LIST-STATUS round trip for all of
them where offered, else one STATUS per folder) and opens only the folders
whose UIDVALIDITY, UIDNEXT or HIGHESTMODSEQ moved. In an opened folder:

- a new UIDVALIDITY means the UIDs we hold are meaningless: the folder is
  rescanned and its first batch carries ``replace_folder``;
- flag changes since the saved MODSEQ come from ``UID FETCH 1:U (FLAGS)
  (CHANGEDSINCE m)`` as FlagUpdates (``\\Answered`` tells that the user
  replied); servers without CONDSTORE get a plain FLAGS fetch compared with
  the store;
- new messages come from one streamed ``UID FETCH U+1:* (UID FLAGS
  INTERNALDATE BODY.PEEK[HEADER.FIELDS (...)])``, yielded in batches of
  ``chunk_size`` with a checkpoint each.

Saving the MODSEQ read when the folder was opened, with the highest UID
fetched since, is conservative: every change after it is asked for again next
time, and applying a flag update twice changes nothing.

A dropped connection reconnects with bounded exponential backoff and resumes
from the last committed checkpoint (re-read from the store), so nothing is
lost or counted twice. Messages deleted on the server stay in the history.
"""

from __future__ import annotations

import contextlib
import fnmatch
import imaplib
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from kithkeep.config import Config as KithkeepConfig
from kithkeep.connectors.imap_fetch import (
    CommandFailed,
    ConnectionLost,
    ListedFolder,
    raw_session,
)
from kithkeep.connectors.imap_response import ProtocolError
from kithkeep.errors import AuthError, ConfigError, ConnectError, SourceError
from kithkeep.headers import HEADER_FIELDS, record_from_headers
from kithkeep.interfaces import MailSource, ScopeInfo, SyncContext
from kithkeep.records import Checkpoint, FlagUpdate, MailBatch, MessageRecord
from kithkeep.secrets import redact, remember, resolve_secret, run_secret_command

log = logging.getLogger(__name__)

TLS_MODES = ("implicit", "starttls", "none")
SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "INBOX/Sent",
    "INBOX.Sent",
    "Gesendet",
    "Gesendete Objekte",
    "Envoyés",
    "Éléments envoyés",
    "Enviados",
    "Elementos enviados",
    "Posta inviata",
    "Verzonden items",
)
_HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in HEADER_FIELDS) + ")]"
# errors that mean "the link is gone": reconnect and resume
_LINK_ERRORS = (OSError, ConnectionLost, imaplib.IMAP4.abort, EOFError)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    username: str
    # None: 993 for implicit TLS, 143 for STARTTLS and plaintext
    port: int | None = None
    # implicit (TLS from the first byte) | starttls | none
    tls: str = "implicit"
    # "none" sends the password in clear text: only when this is set (e.g. 127.0.0.1)
    allow_plaintext: bool = False
    password_command: str = ""
    # keyring service name; the username is the key
    password_keyring: str = ""
    password_env: str = ""
    # XOAUTH2: a command printing an access token, or kithkeep's stored Google token
    oauth2_token_command: str = ""
    oauth2_google: bool = False
    # glob patterns of folder names; empty include means inbox, sent and archive
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    chunk_size: int = 1000
    timeout: float = 60.0
    ca_file: str = ""
    # keep a connection open and wait for new mail with IDLE (daemon)
    idle: bool = False
    # reconnect attempts in a row, without progress, before giving up
    max_retries: int = 5


def load_google_access_token() -> str:
    """A valid access token of kithkeep's stored Google authorization.

    ``kithkeep auth google`` owns the token file; loading refreshes (and
    saves) an expired token, so XOAUTH2 keeps working unattended.
    """
    from kithkeep.google_auth import load_credentials

    token = load_credentials().token
    if not isinstance(token, str) or not token:
        raise SourceError(
            "the stored Google authorization holds no access token",
            hint="run `kithkeep auth google` again",
        )
    return remember(token)


@dataclass
class _Folder:
    name: str
    role: str  # inbox, sent, archive, all, or "" for an included folder
    status: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> bool:
        return self.role == "sent"


class _Conn:
    """One logged-in connection: imapclient for the session, RawSession for bulk reads."""

    def __init__(self, client: IMAPClient) -> None:
        self.client = client
        self.raw = raw_session(client)
        caps = {c.decode().upper() for c in client.capabilities()}
        self.caps = caps
        self.condstore = "CONDSTORE" in caps
        self.list_status = "LIST-STATUS" in caps
        self.esearch = "ESEARCH" in caps
        self.gmail = "X-GM-EXT-1" in caps
        # the folder this session has open (EXAMINE), and sync passes run on it
        self.selected: str | None = None
        self.passes = 0

    def close(self) -> None:
        if self.raw.dirty:
            # a response is still arriving: a LOGOUT would be read as part of it
            with contextlib.suppress(Exception):
                self.client.shutdown()
            return
        try:
            self.client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                self.client.shutdown()


class ImapSource(MailSource):
    Config = ImapConfig

    def __init__(self, name: str, cfg: ImapConfig) -> None:
        super().__init__(name)
        if cfg.tls not in TLS_MODES:
            raise ConfigError(
                f"[sources.{name}]: tls must be one of {', '.join(TLS_MODES)}, not {cfg.tls!r}"
            )
        if cfg.tls == "none" and not cfg.allow_plaintext:
            raise ConfigError(
                f'[sources.{name}]: tls = "none" sends the password in clear text; '
                "set allow_plaintext = true to allow it (e.g. for 127.0.0.1)"
            )
        if cfg.chunk_size <= 0:
            raise ConfigError(f"[sources.{name}]: chunk_size must be positive")
        if cfg.ca_file and not Path(cfg.ca_file).expanduser().is_file():
            raise ConfigError(f"[sources.{name}]: ca_file {cfg.ca_file!r} is not a readable file")
        # a missing secret is a configuration error, found before anything is written
        if not (
            cfg.password_command
            or cfg.password_keyring
            or cfg.password_env
            or cfg.oauth2_token_command
            or cfg.oauth2_google
        ):
            raise ConfigError(
                f"[sources.{name}]: no password source: set password_command, "
                "password_keyring, password_env, oauth2_token_command or oauth2_google"
            )
        self.cfg = cfg
        self.port = cfg.port or (993 if cfg.tls == "implicit" else 143)
        self._conn: _Conn | None = None
        self._sleep = time.sleep  # tests replace it to keep backoff fast
        self.reconnects = 0

    @classmethod
    def from_config(cls, name: str, cfg: ImapConfig, config: KithkeepConfig) -> ImapSource:
        return cls(name, cfg)

    def preflight(self) -> None:
        # checked only by commands that connect: `people` needs no password
        if self.cfg.password_env and not os.environ.get(self.cfg.password_env):
            raise ConfigError(
                f"[sources.{self.name}]: password_env names {self.cfg.password_env}, "
                "which is not set in the environment"
            )

    # --------------------------------------------------------- connection

    def _where(self) -> str:
        return f"source {self.name} ({self.cfg.host}:{self.port})"

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(
                cafile=str(Path(self.cfg.ca_file).expanduser()) if self.cfg.ca_file else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"[sources.{self.name}]: ca_file {self.cfg.ca_file!r} is unusable: "
                f"{getattr(exc, 'strerror', None) or type(exc).__name__}"
            ) from None

    def _connect_error(self, exc: BaseException) -> SourceError:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectError(
                f"{self._where()}: TLS certificate not trusted: {exc.verify_message}",
                hint="check the host name, or set ca_file to the server's CA",
            )
        if isinstance(exc, ssl.SSLError):
            return ConnectError(f"{self._where()}: TLS failed: {exc.reason or type(exc).__name__}")
        if isinstance(exc, socket.gaierror):
            return ConnectError(f"{self._where()}: unknown host ({exc.strerror})")
        if isinstance(exc, TimeoutError | socket.timeout):
            return ConnectError(f"{self._where()}: no answer within {self.cfg.timeout:g} s")
        if isinstance(exc, OSError):
            return ConnectError(f"{self._where()}: cannot connect: {exc.strerror or exc}")
        return ConnectError(f"{self._where()}: connection failed: {redact(str(exc))[:200]}")

    def _credentials(self) -> tuple[str, str]:
        """("password" | "oauth2", secret)."""
        what = f"source {self.name}"
        if self.cfg.oauth2_token_command:
            return "oauth2", run_secret_command(
                self.cfg.oauth2_token_command, what=f"{what}: oauth2_token_command"
            )
        if self.cfg.oauth2_google:
            return "oauth2", load_google_access_token()
        return "password", resolve_secret(
            what=what,
            command=self.cfg.password_command,
            keyring_service=self.cfg.password_keyring,
            username=self.cfg.username,
            env=self.cfg.password_env,
        )

    def connect(self) -> _Conn:
        kind, secret = self._credentials()
        try:
            client = IMAPClient(
                self.cfg.host,
                port=self.port,
                ssl=self.cfg.tls == "implicit",
                ssl_context=self._ssl_context() if self.cfg.tls == "implicit" else None,
                timeout=self.cfg.timeout,
            )
        except (OSError, imaplib.IMAP4.error, IMAPClientError) as exc:
            raise self._connect_error(exc) from None
        try:
            if self.cfg.tls == "starttls":
                client.starttls(self._ssl_context())
            if kind == "oauth2":
                client.oauth2_login(self.cfg.username, secret)
            else:
                client.login(self.cfg.username, secret)
        except LoginError as exc:
            with contextlib.suppress(Exception):
                client.shutdown()
            reason = redact(str(exc)).replace(secret, "********")
            if "socket error" in reason:
                # imapclient reports a link lost during LOGIN as a LoginError
                # ("LOGIN => socket error: EOF"): the server refused nothing
                raise ConnectError(
                    f"{self._where()}: connection lost during login ({reason.strip()[:160]})"
                ) from None
            raise AuthError(
                f"{self._where()}: the server refused the login for {self.cfg.username}"
                f" ({reason.strip()[:160]})",
                hint="check the password source" if kind == "password" else "refresh the token",
            ) from None
        except (OSError, imaplib.IMAP4.abort) as exc:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise self._connect_error(exc) from None
        except (imaplib.IMAP4.error, IMAPClientError) as exc:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise ConnectError(f"{self._where()}: {redact(str(exc))[:200]}") from None
        log.debug("%s: logged in as %s", self.name, self.cfg.username)
        return _Conn(client)

    def _connection(self) -> _Conn:
        if self._conn is not None and self._conn.raw.dirty:
            # a sync stopped inside a streamed FETCH (the caller stopped
            # iterating): the rest of that response is still on the way
            self._drop()
        if self._conn is None:
            self._conn = self.connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def close(self) -> None:
        self._drop()
        self._idle_drop(polite=True)

    def me_addresses(self) -> set[str]:
        user = self.cfg.username.strip().lower()
        return {user} if "@" in user and " " not in user else set()

    # ------------------------------------------------------------ folders

    def _status_items(self, conn: _Conn) -> str:
        return "MESSAGES UIDNEXT UIDVALIDITY" + (" HIGHESTMODSEQ" if conn.condstore else "")

    def folders(self, conn: _Conn, *, with_status: bool = True) -> list[_Folder]:
        """The folders to read, with their STATUS (one round trip with LIST-STATUS)."""
        items = self._status_items(conn)
        if with_status and conn.selected is not None:
            # let the server take in new mail of the open folder first: some
            # answer its STATUS from the session's view of it
            conn.raw.simple(b"NOOP")
        listed = conn.raw.list_status(items, status=with_status and conn.list_status)
        chosen = self._select(listed, gmail=conn.gmail)
        if with_status:
            for f in chosen:
                if not f.status:  # no LIST-STATUS, or the server left this folder out
                    f.status = conn.raw.status(f.name, items)
        return chosen

    def _select(self, listed: list[ListedFolder], *, gmail: bool) -> list[_Folder]:
        usable = [
            (f.name, {fl.lower() for fl in f.flags}, f.status)
            for f in listed
            if not {"\\noselect", "\\nonexistent"} & {fl.lower() for fl in f.flags}
        ]
        chosen: dict[str, _Folder] = {}

        def add(name: str, role: str, status: dict[str, int]) -> None:
            if name not in chosen:
                chosen[name] = _Folder(name, role, dict(status))

        sent_flagged = [(n, s) for n, fl, s in usable if "\\sent" in fl]
        sent_named = [
            (n, s) for n, fl, s in usable if any(n.lower() == x.lower() for x in SENT_NAMES)
        ]
        sent = sent_flagged or sent_named[:1]
        if self.cfg.include:
            for name, _flags, status in usable:
                if any(fnmatch.fnmatchcase(name, p) for p in self.cfg.include):
                    role = "inbox" if name.upper() == "INBOX" else ""
                    if any(name == n for n, _ in sent):
                        role = "sent"
                    add(name, role, status)
        elif gmail:
            # every Gmail message is in All Mail; Sent adds the role
            for name, flags, status in usable:
                if "\\all" in flags:
                    add(name, "all", status)
            for name, status in sent:
                add(name, "sent", status)
            if not chosen:  # a Gmail-like server without SPECIAL-USE flags
                for name, _flags, status in usable:
                    if name.upper() == "INBOX":
                        add(name, "inbox", status)
        else:
            for name, _flags, status in usable:
                if name.upper() == "INBOX":
                    add(name, "inbox", status)
            for name, status in sent:
                add(name, "sent", status)
            for name, flags, status in usable:
                if "\\archive" in flags:
                    add(name, "archive", status)
                elif "\\all" in flags:
                    add(name, "all", status)
        return [
            f
            for f in chosen.values()
            if not any(fnmatch.fnmatchcase(f.name, p) for p in self.cfg.exclude)
        ]

    def check(self) -> list[ScopeInfo]:
        conn = self._connection()
        try:
            return [
                ScopeInfo(f.name, f.status.get("MESSAGES"), f.role)
                for f in self.folders(conn, with_status=True)
            ]
        except _LINK_ERRORS as exc:
            self._drop()
            raise self._connect_error(exc) from None
        except CommandFailed as exc:
            raise SourceError(f"{self._where()}: {redact(str(exc))[:200]}") from None
        except ProtocolError as exc:
            self._drop()
            raise self._protocol_error(exc) from None

    def _protocol_error(self, exc: ProtocolError) -> SourceError:
        # the stream can no longer be cut into responses: nothing after it is trusted
        return SourceError(f"{self._where()}: the server broke the IMAP protocol: {exc}")

    # --------------------------------------------------------------- sync

    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        failures = 0
        connected_once = False
        while True:
            progressed = False
            try:
                try:
                    conn = self._connection()
                except ConnectError:
                    if not connected_once:
                        raise  # the first attempt: unreachable is one clear line, now
                    # a reconnect that fails (even after progress) is retried
                    raise ConnectionLost("reconnect failed") from None
                connected_once = True
                checkpoints = ctx.checkpoints()  # re-read: the last committed positions
                conn.passes += 1
                folders = self.folders(conn, with_status=True)
                for folder in folders:
                    if ctx.should_stop():
                        return
                    for batch in self._sync_folder(ctx, conn, folder, checkpoints.get(folder.name)):
                        yield batch
                        progressed = True
                        failures = 0
                        if ctx.should_stop():
                            # the rest of a streamed FETCH is still arriving
                            self._drop()
                            return
                if conn.passes >= 2:
                    self._keep_largest_open(conn, folders)
                return
            except _LINK_ERRORS as exc:
                self._drop()
                failures = 0 if progressed else failures + 1
                if failures > self.cfg.max_retries:
                    raise self._connect_error(exc) from None
                delay = min(30.0, 0.5 * 2 ** max(0, failures - 1))
                log.warning(
                    "%s: connection lost (%s); reconnecting in %.1f s and resuming from the"
                    " last checkpoint",
                    self.name,
                    redact(str(exc) or type(exc).__name__)[:200],
                    delay,
                )
                self.reconnects += 1
                self._sleep(delay)
            except CommandFailed as exc:
                self._drop()
                raise SourceError(f"{self._where()}: {redact(str(exc))[:200]}") from None
            except ProtocolError as exc:
                self._drop()
                raise self._protocol_error(exc) from None

    def _keep_largest_open(self, conn: _Conn, folders: list[_Folder]) -> None:
        """On a connection that is reused, keep the largest folder open (EXAMINE).

        Servers answer STATUS of the open folder from the session; Dovecot
        on a big Maildir INBOX otherwise rescans it for every STATUS (about
        25 ms for 60k messages), which dominated a run with no change. Done
        from the second pass of a connection on, so a one-shot run pays
        nothing; a no-change pass then costs NOOP plus LIST-STATUS.
        """
        if not folders:
            return
        largest = max(folders, key=lambda f: f.status.get("MESSAGES", 0))
        if conn.selected == largest.name:
            return
        try:
            conn.raw.examine(largest.name, condstore=conn.condstore)
        except CommandFailed as exc:
            conn.selected = None  # a failed EXAMINE leaves no folder open
            log.debug("%s: cannot keep %s open: %s", self.name, largest.name, exc.text)
            return
        conn.selected = largest.name

    def _sync_folder(
        self, ctx: SyncContext, conn: _Conn, folder: _Folder, saved: dict[str, Any] | None
    ) -> Iterator[MailBatch]:
        st = folder.status
        saved = saved or {}
        same_validity = saved.get("uidvalidity") == st.get("UIDVALIDITY")
        if (
            saved
            and same_validity
            and st.get("UIDNEXT") is not None
            and (st["UIDNEXT"] == saved.get("uidnext") or st["UIDNEXT"] <= saved.get("uid", 0) + 1)
            and (not conn.condstore or st.get("HIGHESTMODSEQ") == saved.get("modseq"))
        ):
            log.debug("%s: %s unchanged", self.name, folder.name)
            if saved.get("uidnext") != st["UIDNEXT"]:
                # complete but for the bookkeeping: killed after the last full chunk,
                # before the folder's closing batch recorded UIDNEXT
                complete = dict(saved, uidnext=st["UIDNEXT"])
                yield MailBatch(checkpoint=Checkpoint(self.name, folder.name, complete))
            return

        try:
            conn.selected = None
            sel = conn.raw.examine(folder.name, condstore=conn.condstore)
            conn.selected = folder.name
        except CommandFailed as exc:  # vanished since LIST, or not selectable after all
            log.warning("%s: cannot open folder %s: %s", self.name, folder.name, exc.text)
            return
        validity = sel.get("UIDVALIDITY", 0)
        modseq = sel.get("HIGHESTMODSEQ") if conn.condstore and "NOMODSEQ" not in sel else None
        replace: str | None = None
        if saved and saved.get("uidvalidity") != validity:
            log.info(
                "%s: %s has a new UIDVALIDITY (%s -> %s): rescanning the folder",
                self.name,
                folder.name,
                saved.get("uidvalidity"),
                validity,
            )
            replace = folder.name
            saved = {}
        last_uid = int(saved.get("uid", 0))
        state: dict[str, Any] = {
            "uidvalidity": validity,
            "uid": last_uid,
            "uidnext": sel.get("UIDNEXT"),
            "modseq": modseq,
            "messages": sel.get("EXISTS"),
        }

        # 1. flag changes of messages already stored
        flag_updates: list[FlagUpdate] = []
        if last_uid and sel.get("EXISTS"):
            old_modseq = saved.get("modseq")
            if modseq is not None and old_modseq is not None:
                if modseq != old_modseq:
                    for it in conn.raw.uid_fetch(
                        f"1:{last_uid}", "UID FLAGS", f"CHANGEDSINCE {old_modseq}"
                    ):
                        if it.flags is not None and it.uid is not None and 0 < it.uid <= last_uid:
                            flag_updates.append(FlagUpdate(folder.name, str(it.uid), it.flags))
            else:  # no CONDSTORE: compare every message's flags with the store
                known = ctx.known_uids(folder.name)
                for it in conn.raw.uid_fetch(f"1:{last_uid}", "UID FLAGS"):
                    if it.uid is None or it.flags is None:
                        continue  # an unsolicited FETCH without UID
                    key = str(it.uid)
                    if key in known and known[key] != it.flags:
                        flag_updates.append(FlagUpdate(folder.name, key, it.flags))

        # 2. new messages, streamed and cut into batches
        items = "UID FLAGS INTERNALDATE " + ("X-GM-MSGID X-GM-THRID " if conn.gmail else "")
        items += _HEADER_ITEM
        total = sel.get("EXISTS") if not last_uid else None
        done = 0
        records: list[MessageRecord] = []
        account, name, sent, chunk = self.name, folder.name, folder.sent, self.cfg.chunk_size
        if sel.get("EXISTS") and (sel.get("UIDNEXT") is None or sel["UIDNEXT"] > last_uid + 1):
            low = last_uid + 1
            for it in conn.raw.uid_fetch(f"{low}:*", items):
                # "N:*" always includes the highest UID; an unsolicited FETCH
                # (a flag change elsewhere) has no header
                if it.uid is None or it.uid < low or it.header is None:
                    continue
                records.append(
                    record_from_headers(
                        it.header,
                        account=account,
                        folder=name,
                        uid=str(it.uid),
                        flags=it.flags or frozenset(),
                        internal_date=it.internal_date,
                        in_sent_folder=sent,
                        gm_msgid=it.gm_msgid,
                        gm_thrid=it.gm_thrid,
                    )
                )
                state["uid"] = max(state["uid"], it.uid)
                if len(records) < chunk:
                    continue
                # a full chunk, while the rest of the FETCH is still arriving
                done += len(records)
                yield MailBatch(
                    records=records,
                    flag_updates=flag_updates,
                    checkpoint=Checkpoint(self.name, name, dict(state, uidnext=None)),
                    replace_folder=replace,
                )
                ctx.progress(name, done, total)
                records, flag_updates, replace = [], [], None
                if ctx.should_stop():
                    return
        done += len(records)
        # the last batch saves UIDNEXT too: from now on STATUS alone tells "unchanged"
        yield MailBatch(
            records=records,
            flag_updates=flag_updates,
            checkpoint=Checkpoint(self.name, name, state),
            replace_folder=replace,
        )
        ctx.progress(name, done, total if total is not None else done)

    # --------------------------------------------------------------- IDLE
    # wait_for_mail keeps a connection of its own: the sync connection stays
    # free for fetching (and may be dropped mid-FETCH), and IDLE blocks the
    # session it runs on. Not thread-safe: wait and close from one thread.
    _idle_conn: _Conn | None = None
    # monotonic time the running IDLE command was sent
    _idle_since: float = 0.0
    # INBOX UIDNEXT at the last (re)connect: mail that came while no IDLE ran
    _idle_uidnext: int | None = None
    # None until the first login tells whether the server offers IDLE
    _idle_supported: bool | None = None
    # drops in a row without a good poll in between (reconnect backoff)
    _idle_drops: int = 0
    # RFC 2177: re-issue IDLE at least every 29 minutes, or the server may
    # take the connection for dead and log it out
    idle_renew: float = 25 * 60.0
    # one idle_check blocks at most this long, so a stop is seen within it
    idle_poll: float = 1.0

    def wait_for_mail(self, timeout: float, should_stop: Callable[[], bool] | None = None) -> bool:
        """Wait with IMAP IDLE on INBOX (read-only) until new mail or ``timeout`` seconds.

        True as soon as the server reports EXISTS, RECENT or FETCH (new mail
        or a flag change), or when INBOX's UIDNEXT grew while the connection
        was down. False on timeout, once ``should_stop()`` is true, and at
        once when the server does not offer IDLE. The connection stays in
        IDLE between calls, so mail arriving in between is reported by the
        next call. A dropped connection is reopened quietly with backoff; a
        failed login or an unreachable server raises :class:`SourceError`.
        """
        stop = should_stop or (lambda: False)
        deadline = time.monotonic() + timeout
        while not stop():
            left = deadline - time.monotonic()
            if left <= 0 or self._idle_supported is False:
                return False
            try:
                if self._idle_conn is None:
                    if self._idle_open():
                        return True
                    # look at the clock again (logging in takes a while); a
                    # server without IDLE ends the wait at the loop's top
                    continue
                news = self._idle_poll_once(min(left, self.idle_poll))
                self._idle_drops = 0
                if news:
                    return True
            except (*_LINK_ERRORS, IMAPClientError) as exc:
                self._idle_drop(polite=False)
                self._idle_drops += 1
                delay = min(60.0, 0.5 * 2 ** (self._idle_drops - 1))
                log.info(
                    "%s: IDLE connection lost (%s); reconnecting in %.1f s",
                    self.name,
                    redact(str(exc) or type(exc).__name__)[:200],
                    delay,
                )
                pause_until = min(deadline, time.monotonic() + delay)
                while not stop() and time.monotonic() < pause_until:
                    self._sleep(min(0.25, max(0.0, pause_until - time.monotonic())))
        return False

    def _idle_open(self) -> bool:
        """Log in, EXAMINE INBOX and start IDLE; True if INBOX grew since the last connection."""
        conn = self.connect()
        if "IDLE" not in conn.caps:
            self._idle_supported = False
            log.info(
                "%s: the server does not offer IDLE; new mail is seen at the next interval",
                self.name,
            )
            conn.close()
            return False
        self._idle_supported = True
        self._idle_conn = conn  # before SELECT: a failure below drops it
        selected = conn.client.select_folder("INBOX", readonly=True)
        uidnext = selected.get(b"UIDNEXT")
        grew = False
        if isinstance(uidnext, int):
            grew = self._idle_uidnext is not None and uidnext > self._idle_uidnext
            self._idle_uidnext = uidnext
        conn.client.idle()
        self._idle_since = time.monotonic()
        log.debug("%s: IDLE on INBOX (UIDNEXT %s)", self.name, uidnext)
        return grew

    def _idle_poll_once(self, wait: float) -> bool:
        """One idle_check of at most ``wait`` seconds (renewing IDLE when due)."""
        assert self._idle_conn is not None
        client = self._idle_conn.client
        if time.monotonic() - self._idle_since >= self.idle_renew:
            _text, pending = client.idle_done()
            client.idle()
            self._idle_since = time.monotonic()
            if self._idle_news(pending):
                return True
        began = time.monotonic()
        responses = client.idle_check(timeout=wait)
        if not responses and wait >= 0.2 and time.monotonic() - began < wait / 2:
            # idle_check swallows an EOF and returns nothing: a socket that is
            # readable at once yet yields no line has been closed by the server
            raise ConnectionLost("server closed the connection")
        return self._idle_news(responses)

    @staticmethod
    def _idle_news(responses: list[Any]) -> bool:
        """True if untagged IDLE responses tell of new mail or changed flags; BYE raises."""
        news = bye = False
        for resp in responses:
            if not isinstance(resp, tuple) or len(resp) < 2:
                continue
            if resp[0] == b"BYE":
                bye = True
            elif isinstance(resp[0], int) and (
                resp[1] in (b"EXISTS", b"FETCH") or (resp[1] == b"RECENT" and resp[0] > 0)
            ):
                news = True
        if news:
            return True  # a BYE with it is noticed at the next poll
        if bye:
            raise ConnectionLost("server said BYE")
        return False

    def _idle_drop(self, *, polite: bool) -> None:
        """Close the IDLE connection; politely (DONE, LOGOUT) only when it still works."""
        conn, self._idle_conn = self._idle_conn, None
        if conn is None:
            return
        client = conn.client
        if polite:
            try:
                # a server that stopped answering must not hold up a shutdown
                client.socket().settimeout(min(2.0, self.cfg.timeout))
                client.idle_done()
                client.logout()
                return
            except Exception as exc:
                log.debug("%s: IDLE logout failed: %s", self.name, type(exc).__name__)
        with contextlib.suppress(Exception):
            client.shutdown()
