"""The IMAP connector against a real Dovecot (tests/fixtures/dovecot.py).

Faults are injected by a small TCP proxy between the connector and Dovecot:
it counts the commands the client sends and can cut a connection after a
number of bytes from the server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from kithkeep.config import parse_config
from kithkeep.connectors import registry
from kithkeep.connectors.imap import ImapConfig, ImapSource
from kithkeep.connectors.imap_fetch import sequence_set
from kithkeep.connectors.imap_response import parse_internaldate
from kithkeep.errors import AuthError, ConfigError, ConnectError
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.fixtures.dovecot import ImapUser, free_port

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"
PW_ENV = "KK_TEST_IMAP_PASSWORD"


# ---------------------------------------------------------------- helpers


def message(i: int, *, frm: str = "alice@example.com", to: str = "me@example.org") -> bytes:
    return (
        f"From: Alice Example <{frm}>\r\n"
        f"To: {to}\r\n"
        f"Subject: message {i}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <m{i}@example.com>\r\n"
        f"\r\n"
        f"body {i} that must never be fetched\r\n"
    ).encode()


def admin(user: ImapUser) -> IMAPClient:
    c = IMAPClient(user.host, user.port, ssl=False, timeout=10)
    c.login(user.username, user.password)
    return c


def append(user: ImapUser, folder: str, msgs: list[bytes], flags: tuple[bytes, ...] = ()) -> None:
    c = admin(user)
    try:
        for m in msgs:
            c.append(folder, m, flags=flags)
    finally:
        c.logout()


def source(
    user: ImapUser, monkeypatch: pytest.MonkeyPatch, *, port: int | None = None, **opts: Any
) -> ImapSource:
    monkeypatch.setenv(PW_ENV, user.password)
    cfg = ImapConfig(
        host=user.host,
        port=port or user.port,
        tls="none",
        allow_plaintext=True,
        username=user.username,
        password_env=PW_ENV,
        timeout=10,
    )
    src = ImapSource("mail", replace(cfg, **opts))
    src._sleep = lambda _s: None  # backoff is tested by counting, not by waiting
    return src


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    yield s
    s.close()


def rows(store: Store) -> list[tuple[str, str, str, frozenset[str], bool]]:
    return sorted(
        (m.folder, m.uid, m.message_id, m.flags, m.in_sent_folder) for m in store.iter_messages()
    )


class Proxy:
    """A TCP proxy to Dovecot that counts commands and can cut connections.

    ``cut_after``: for the first ``cuts`` connections, close both sides once
    that many bytes went from the server to the client.
    """

    def __init__(self, upstream: tuple[str, int], *, cut_after: int = 0, cuts: int = 0) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.cuts = cuts
        self.connections = 0
        self.commands: list[bytes] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cut = self.cut_after if self.connections <= self.cuts else 0
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, cut), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                upstream.sendall(data)
                buf += data
                *lines, buf = buf.split(b"\r\n")
                with self._lock:
                    self.commands.extend(lines)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _down(self, upstream: socket.socket, client: socket.socket, cut: int) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if cut and sent + len(data) >= cut:
                    client.sendall(data[: cut - sent])
                    break
                client.sendall(data)
                sent += len(data)
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def verbs(self) -> list[str]:
        """The command names sent (tag stripped; literal data and DONE lines skipped)."""
        out = []
        for line in self.commands:
            parts = line.split(b" ", 2)
            if len(parts) >= 2 and parts[0][:1].isalnum() and parts[1].isalpha():
                verb = parts[1].decode().upper()
                if verb == "UID" and len(parts) > 2:
                    verb += " " + parts[2].split(b" ", 1)[0].decode().upper()
                out.append(verb)
        return out

    def close(self) -> None:
        self._stop = True
        self._server.close()


# ------------------------------------------------------------ sync basics


def test_first_sync_reads_inbox_sent_archive_headers_only(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(5)], flags=(b"\\Seen",))
    append(imap_user, "Sent", [message(i, frm="me@example.org") for i in range(10, 13)])
    append(imap_user, "Archive", [message(i) for i in range(20, 22)])
    append(imap_user, "Trash", [message(99)])  # not read by default
    src = source(imap_user, monkeypatch)

    result = sync_source(store, src)
    src.close()

    assert result.records == 10
    got = rows(store)
    assert [(f, u) for f, u, *_ in got] == sorted(
        [("INBOX", str(u)) for u in range(1, 6)]
        + [("Sent", str(u)) for u in range(1, 4)]
        + [("Archive", str(u)) for u in range(1, 3)]
    )
    assert {mid for _f, _u, mid, _fl, _s in got} == {
        f"m{i}@example.com" for i in [*range(5), 10, 11, 12, 20, 21]
    }
    assert all(sent == (folder == "Sent") for folder, _u, _m, _f, sent in got)
    assert all("\\Seen" in fl for folder, _u, _m, fl, _s in got if folder == "INBOX")
    assert all("\\Recent" not in fl for *_x, fl, _s in got)
    msgs = {m.message_id: m for m in store.iter_messages()}
    m0 = msgs["m0@example.com"]
    assert m0.subject == "message 0"
    assert m0.from_[0].email == "alice@example.com"
    assert m0.from_[0].name == "Alice Example"
    assert m0.internal_date is not None
    assert m0.date is not None
    assert m0.date.isoformat() == "2024-01-01T10:00:00+00:00"
    cps = store.checkpoints("mail")
    assert set(cps) == {"INBOX", "Sent", "Archive"}
    assert cps["INBOX"]["uid"] == 5
    assert cps["INBOX"]["uidvalidity"] > 0
    assert cps["INBOX"]["modseq"] > 0  # Dovecot offers CONDSTORE


def test_check_lists_the_folders_it_will_read(
    imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(4)])
    append(imap_user, "Sent", [message(9)])
    src = source(imap_user, monkeypatch)
    infos = {i.name: i for i in src.check()}
    src.close()
    assert set(infos) == {"INBOX", "Sent", "Archive"}
    assert infos["INBOX"].count == 4
    assert infos["Sent"].count == 1
    assert infos["Sent"].note == "sent"
    assert src.me_addresses() == {imap_user.username}


def test_new_mail_is_fetched_incrementally(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(3)])
    src = source(imap_user, monkeypatch)
    assert sync_source(store, src).records == 3
    append(imap_user, "INBOX", [message(i) for i in range(3, 5)])
    append(imap_user, "Sent", [message(7, frm="me@example.org")])

    result = sync_source(store, src)
    src.close()

    assert result.records == 3
    assert len(rows(store)) == 6
    assert store.checkpoints("mail")["INBOX"]["uid"] == 5


def test_flag_change_arrives_through_condstore(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(4)])
    src = source(imap_user, monkeypatch)
    sync_source(store, src)
    c = admin(imap_user)
    c.select_folder("INBOX")
    c.add_flags([2], [b"\\Answered"])
    c.logout()

    result = sync_source(store, src)

    assert result.records == 0
    assert result.flag_updates == 1
    flags = {m.uid: m.flags for m in store.iter_messages()}
    assert "\\Answered" in flags["2"]
    assert all("\\Answered" not in f for u, f in flags.items() if u != "2")
    # once applied, the next run has nothing to do
    again = sync_source(store, src)
    src.close()
    assert (again.records, again.flag_updates) == (0, 0)


def test_new_uidvalidity_replaces_the_folder(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = admin(imap_user)
    c.create_folder("Projects")
    c.logout()
    append(imap_user, "Projects", [message(i) for i in range(3)])
    src = source(imap_user, monkeypatch, include=("INBOX", "Projects"))
    sync_source(store, src)
    old_validity = store.checkpoints("mail")["Projects"]["uidvalidity"]
    c = admin(imap_user)
    c.delete_folder("Projects")
    c.create_folder("Projects")
    c.logout()
    append(imap_user, "Projects", [message(i) for i in (50, 51)])

    result = sync_source(store, src)
    src.close()

    assert result.records == 2
    projects = sorted(
        (m.uid, m.message_id) for m in store.iter_messages() if m.folder == "Projects"
    )
    assert projects == [("1", "m50@example.com"), ("2", "m51@example.com")]
    assert store.checkpoints("mail")["Projects"]["uidvalidity"] != old_validity


def test_include_exclude_and_modified_utf7_names(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = admin(imap_user)
    for name in ("Entwürfe", "Клиенты/Важное", "Ünused"):
        c.create_folder(name)
    c.logout()
    append(imap_user, "Клиенты/Важное", [message(1)])
    append(imap_user, "Entwürfe", [message(2)])
    src = source(imap_user, monkeypatch, include=("*",), exclude=("Trash", "Drafts", "Ü*"))

    names = {i.name for i in src.check()}
    sync_source(store, src)
    src.close()

    # the parent "Клиенты" exists only as a path (\\NonExistent): not a folder to read
    assert names == {"INBOX", "Sent", "Archive", "Entwürfe", "Клиенты/Важное"}
    assert {m.folder for m in store.iter_messages()} == {"Entwürfe", "Клиенты/Важное"}
    assert set(store.checkpoints("mail")) == names


def test_should_stop_between_chunks_then_resume(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(30)])
    src = source(imap_user, monkeypatch, chunk_size=10)
    # the stop request arrives once the first chunk was handed to the store
    handed: list[object] = []
    first = sync_source(
        store, src, progress=lambda *a: handed.append(a), should_stop=lambda: bool(handed)
    )
    assert first.stopped
    assert first.records == 10
    assert len(rows(store)) == 10  # committed before sync_source returned
    rest = sync_source(store, src)
    src.close()
    assert rest.records == 20
    assert len(rows(store)) == 30


# ------------------------------------------------------------------ faults


def test_connection_cut_mid_fetch_resumes_without_loss_or_double_count(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 300
    append(imap_user, "INBOX", [message(i) for i in range(n)])
    # about 300 bytes of FETCH response per message: the cuts land mid-response
    proxy = Proxy((imap_user.host, imap_user.port), cut_after=30_000, cuts=2)
    try:
        src = source(imap_user, monkeypatch, port=proxy.port, chunk_size=40)
        result = sync_source(store, src)
        src.close()
    finally:
        proxy.close()

    assert src.reconnects == 2
    assert proxy.connections == 3
    assert result.records == n  # resumed from the checkpoint: nothing yielded twice
    got = rows(store)
    assert len(got) == n
    assert {mid for _f, _u, mid, _fl, _s in got} == {f"m{i}@example.com" for i in range(n)}


def test_connection_that_keeps_dropping_gives_up_with_connect_error(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(200)])
    proxy = Proxy((imap_user.host, imap_user.port), cut_after=2_000, cuts=100)
    try:
        src = source(imap_user, monkeypatch, port=proxy.port, chunk_size=1000, max_retries=2)
        with pytest.raises(ConnectError) as info:
            sync_source(store, src)
        src.close()
    finally:
        proxy.close()
    assert proxy.connections == 3  # the first try and two retries
    assert "\n" not in info.value.format_message()


def test_wrong_password_is_an_auth_error_without_the_password(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-Pa55word-xyz"
    monkeypatch.setenv("KK_WRONG_PW", wrong)
    src = source(imap_user, monkeypatch, password_env="KK_WRONG_PW")
    with pytest.raises(AuthError) as info:
        sync_source(store, src)
    text = info.value.format_message()
    assert wrong not in text
    assert imap_user.username in text
    assert "\n" not in text
    assert info.value.exit_code == 1


def test_unreachable_host_is_a_connect_error(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = source(imap_user, monkeypatch, port=free_port(), max_retries=0)
    with pytest.raises(ConnectError) as info:
        src.check()
    assert "cannot connect" in info.value.format_message()
    assert info.value.exit_code == 1


def test_implicit_tls_against_a_plaintext_port_is_a_connect_error(
    imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = source(imap_user, monkeypatch, tls="implicit")
    with pytest.raises(ConnectError) as info:
        src.check()
    assert "TLS" in info.value.format_message()


def test_plaintext_needs_explicit_permission(imap_user: ImapUser) -> None:
    data = {
        "sources": {
            "work": {
                "type": "imap",
                "host": "127.0.0.1",
                "username": "u",
                "tls": "none",
                "password_env": "X",
            }
        }
    }
    config = parse_config(data, None)
    with pytest.raises(ConfigError, match="allow_plaintext"):
        registry.build_source(config, config.sources[0])
    data["sources"]["work"]["allow_plaintext"] = True
    config = parse_config(data, None)
    src = registry.build_source(config, config.sources[0])
    assert isinstance(src, ImapSource)
    assert src.port == 143


# ---------------------------------------------------------- round trips


def test_no_change_sync_costs_one_round_trip_per_folder(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(imap_user, "INBOX", [message(i) for i in range(5)])
    append(imap_user, "Sent", [message(9)])
    src = source(imap_user, monkeypatch)
    sync_source(store, src)
    src.close()

    proxy = Proxy((imap_user.host, imap_user.port))
    try:
        src = source(imap_user, monkeypatch, port=proxy.port)
        result = sync_source(store, src)
        src.close()
    finally:
        proxy.close()

    assert (result.records, result.flag_updates) == (0, 0)
    session = {"CAPABILITY", "LOGIN", "AUTHENTICATE", "LOGOUT", "ID", "ENABLE"}
    work = [v for v in proxy.verbs() if v not in session]
    assert len(work) <= 3, work  # 3 folders; Dovecot's LIST-STATUS makes it 1
    assert not any(v in ("SELECT", "EXAMINE") or "FETCH" in v for v in work), work


# ------------------------------------------------------------- corpora


def _corpus_files() -> list[Path]:
    return sorted(
        p
        for p in CORPORA.rglob("*")
        if p.is_file() and (p.suffix in (".eml", ".txt") or "sisimai" in p.parts)
        if p.suffix != ".md"
    )


@pytest.mark.slow
def test_every_corpus_message_syncs_without_an_exception(
    imap_user: ImapUser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _corpus_files()
    if not files:
        pytest.skip(f"no corpora at {CORPORA}")
    c = admin(imap_user)
    appended = 0
    refused: list[str] = []
    try:
        for p in files:
            data = p.read_bytes()
            try:
                c.append("INBOX", data)
                appended += 1
            except IMAPClient.Error:
                refused.append(p.name)  # e.g. a NUL byte Dovecot will not store
    finally:
        c.logout()
    assert appended >= 0.95 * len(files), refused[:10]

    src = source(imap_user, monkeypatch, chunk_size=200)
    result = sync_source(store, src)
    src.close()

    assert result.records == appended
    msgs = list(store.iter_messages())
    assert len(msgs) == appended
    assert all(m.message_id for m in msgs)
    # most messages have a parseable sender; the point is that none raised
    assert sum(1 for m in msgs if m.from_) > 0.8 * appended


# ------------------------------------------------------------ unit bits


def test_internaldate_and_sequence_sets() -> None:
    d = parse_internaldate(b"17-Jul-1996 02:44:25 -0700")
    assert d is not None
    assert d.isoformat() == "1996-07-17T09:44:25+00:00"
    assert parse_internaldate(b" 1-Jan-2024 00:00:00 +0000") is not None
    assert parse_internaldate(b"garbage") is None
    assert sequence_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
