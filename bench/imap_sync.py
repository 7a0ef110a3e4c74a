"""Benchmark of the IMAP connector against a private Dovecot (not a timed test).

    python bench/imap_sync.py [--messages 100000] [--small 10000]

Generates a mailbox of ``--messages`` messages over three folders (INBOX,
Sent, Archive) by writing Maildir files straight into Dovecot's mail folder
(APPENDing 100k messages would take minutes), lets Dovecot index and cache
them, then prints:

(a) the floor: a raw socket that logs in and reads the same header FETCH of
    every folder, parsing nothing;
(b) kithkeep's full sync into a fresh SQLite store (and the connector alone,
    without the store);
(c) a no-change incremental sync (on an open connection, and with connect
    plus login);
(d) peak RSS of a full sync at ``--small`` and at ``--messages`` messages,
    each in its own process;

then the ratios against the targets of issue #16: full <= 5x floor,
no-change <= 30 ms, RSS(100k) <= 1.3x RSS(10k). The timed parts take turns,
so every ratio compares runs made at the same time; the load average is
printed at the start and at the end (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kithkeep.connectors.imap import _HEADER_ITEM, ImapConfig, ImapSource  # noqa: E402
from kithkeep.interfaces import SyncContext  # noqa: E402
from kithkeep.store import Store  # noqa: E402
from kithkeep.sync import sync_source  # noqa: E402
from tests.fixtures.dovecot import DovecotServer, ImapUser  # noqa: E402

FOLDERS = (("INBOX", "", 0.6), ("Sent", ".Sent", 0.25), ("Archive", ".Archive", 0.15))
PW_ENV = "KK_BENCH_PASSWORD"

FIRST = ["Anna", "Ben", "Chloé", "David", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
LAST = ["Meyer", "Okafor", "Dubois", "Novak", "Rossi", "Tanaka", "Smith", "García", "Kowalski"]
DOMAINS = ["example.com", "mail.example.org", "gmail.com", "uni.example.edu", "corp.example.net"]


def _people(n: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
        out.append((f"{first} {last}", f"{local}{i}@{rng.choice(DOMAINS)}"))
    return out


def _fmt(name: str, addr: str) -> str:
    if name.isascii():
        return f"{name} <{addr}>"
    from email.header import Header

    return f"{Header(name, 'utf-8').encode()} <{addr}>"


def message(i: int, rng: random.Random, people: list[tuple[str, str]], sent: bool) -> bytes:
    me = ("Me Myself", "me@example.org")
    other = people[rng.randrange(len(people))]
    frm, to = (me, other) if sent else (other, me)
    day = 1 + i % 28
    lines = [
        "Return-Path: <bounce@example.com>",
        "Received: from mx.example.com (mx.example.com [192.0.2.1]) by imap.example.org",
        f"Date: Mon, {day} Jan 2024 {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d} +0100",
        f"From: {_fmt(*frm)}",
        f"To: {_fmt(*to)}",
        f"Message-ID: <{i}.{rng.getrandbits(40):x}@mail.example.com>",
        f"Subject: {'Re: ' if rng.random() < 0.4 else ''}Project update {i % 997}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if rng.random() < 0.3:
        cc = ", ".join(_fmt(*people[rng.randrange(len(people))]) for _ in range(rng.randint(1, 4)))
        lines.append(f"Cc: {cc}")
    if rng.random() < 0.4:
        refs = " ".join(f"<{i - k}.ref@mail.example.com>" for k in range(1, rng.randint(2, 8)))
        lines.append(f"In-Reply-To: <{i - 1}.ref@mail.example.com>")
        lines.append(f"References: {refs}")
    if rng.random() < 0.15:
        lines.append("List-Id: Team list <team.lists.example.com>")
        lines.append("List-Unsubscribe: <mailto:leave@lists.example.com>")
        lines.append("Precedence: list")
    body = "Hello,\n\n" + "some text of the body that is never fetched.\n" * rng.randint(2, 30)
    return ("\n".join(lines) + "\n\n" + body).encode()


def populate(server: DovecotServer, user: ImapUser, total: int, seed: int) -> None:
    """Write ``total`` Maildir files over three folders, then let Dovecot index them."""
    from imapclient import IMAPClient

    c = IMAPClient(user.host, user.port, ssl=False)
    c.login(user.username, user.password)  # creates the Maildir and the auto folders
    c.logout()
    rng = random.Random(seed)
    people = _people(2000, rng)
    i = 0
    base = int(time.time()) - total
    for _name, sub, share in FOLDERS:
        cur = user.maildir / sub / "cur" if sub else user.maildir / "cur"
        cur.mkdir(parents=True, exist_ok=True)
        for _ in range(int(total * share)):
            flags = "RS" if rng.random() < 0.2 else "S"
            path = cur / f"{base + i}.M{i}P1.bench:2,{flags}"
            path.write_bytes(message(i, rng, people, sent=sub == ".Sent"))
            os.utime(path, (base + i, base + i))
            i += 1
    server.chown_tree(user.maildir)
    # index, and fill Dovecot's header cache: later runs read from the cache
    floor(user)
    floor(user)


def _raw_login(user: ImapUser) -> tuple[socket.socket, bytes]:
    s = socket.create_connection((user.host, user.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = s.recv(4096)
    s.sendall(f'a1 LOGIN "{user.username}" "{user.password}"\r\n'.encode())
    buf = _until(s, b"a1 ", b"")
    return s, buf


def _until(s: socket.socket, tag: bytes, buf: bytes) -> bytes:
    """Read until a line starting with ``tag``; return what follows it."""
    while True:
        i = buf.find(b"\r\n" + tag)
        if i != -1 or buf.startswith(tag):
            j = buf.find(b"\r\n", max(i, 0) + 2)
            if j != -1:
                return buf[j + 2 :]
        data = s.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        # keep only a tail: the floor must not pay for growing a buffer
        buf = buf[-256:] + data


def floor(user: ImapUser) -> tuple[float, int]:
    """Seconds and bytes to log in and read every folder's header FETCH, parsing nothing."""
    t0 = time.perf_counter()
    s, buf = _raw_login(user)
    nbytes = 0
    for n, (name, _sub, _share) in enumerate(FOLDERS):
        tag = f"e{n}".encode()
        s.sendall(tag + f' EXAMINE "{name}"\r\n'.encode())
        buf = _until(s, tag + b" ", buf)
        tag = f"f{n}".encode()
        s.sendall(tag + f" UID FETCH 1:* (UID FLAGS INTERNALDATE {_HEADER_ITEM})\r\n".encode())
        # count bytes while looking for the tagged line
        while True:
            data = s.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            nbytes += len(data)
            tail = buf[-64:] + data
            if b"\r\n" + tag + b" " in tail:
                buf = b""
                break
            buf = tail
    s.sendall(b"z LOGOUT\r\n")
    s.close()
    return time.perf_counter() - t0, nbytes


def imap_source(user: ImapUser, chunk: int = 2000) -> ImapSource:
    os.environ[PW_ENV] = user.password
    return ImapSource(
        "bench",
        ImapConfig(
            host=user.host,
            port=user.port,
            tls="none",
            allow_plaintext=True,
            username=user.username,
            password_env=PW_ENV,
            chunk_size=chunk,
        ),
    )


class _NoStore(SyncContext):
    def checkpoints(self) -> dict[str, dict[str, object]]:
        return {}

    def known_uids(self, folder: str) -> dict[str, frozenset[str]]:
        return {}


def connector_only(user: ImapUser) -> tuple[float, int, float]:
    src = imap_source(user)
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(len(b.records) for b in src.sync(_NoStore()))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    src.close()
    return dt, n, cpu


def child(args: argparse.Namespace) -> None:
    """A full sync in this process; prints JSON with the time and peak RSS."""
    user = ImapUser(args.host, args.port, args.user, args.password, Path())
    store = Store.open(f"sqlite:///{args.db}")
    src = imap_source(user)
    t0, c0 = time.perf_counter(), time.process_time()
    result = sync_source(store, src)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    src.close()
    store.close()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"seconds": dt, "cpu": cpu, "records": result.records, "rss_mb": rss_kb / 1024}
    print(json.dumps(out))


def run_child(user: ImapUser, db: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--host",
            user.host,
            "--port",
            str(user.port),
            "--user",
            user.username,
            "--password",
            user.password,
            "--db",
            str(db),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the timed parts")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--host", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--user", help=argparse.SUPPRESS)
    ap.add_argument("--password", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with DovecotServer() as server, tempfile.TemporaryDirectory() as tmp:
        big, small = server.add_user(), server.add_user()
        t0 = time.perf_counter()
        populate(server, big, args.messages, seed=1)
        populate(server, small, args.small, seed=2)
        print(
            f"mailboxes: {args.messages} and {args.small} messages over 3 folders, "
            f"generated and indexed in {time.perf_counter() - t0:.1f} s"
        )

        # The timed parts take turns (a floor, the connector, a full sync; again) rather
        # than one part's runs after another's: on a shared machine whose speed drifts,
        # each ratio then compares runs made at the same time.
        floors, conn, fulls = [], [], []
        for k in range(args.repeat):
            floors.append(floor(big))
            conn.append(connector_only(big))
            fulls.append(run_child(big, Path(tmp) / f"full{k}.sqlite3"))
        floor_s = min(f for f, _ in floors)
        print(f"(a) floor, raw socket FETCH:     {floor_s:7.3f} s  ({floors[0][1] / 1e6:.1f} MB)")
        best = min(conn)
        conn_s = best[0]
        print(
            f"    connector alone (no store):  {conn_s:7.3f} s  ({best[1]} records; "
            f"{best[2]:.3f} s CPU)"
        )
        full = min(fulls, key=lambda x: x["seconds"])
        print(
            f"(b) full sync into SQLite:       {full['seconds']:7.3f} s  "
            f"({int(full['records'])} records; {full['cpu']:.3f} s CPU in the syncing process)"
        )

        store = Store.open(f"sqlite:///{Path(tmp) / 'full0.sqlite3'}")
        src = imap_source(big)
        sync_source(store, src)  # opens the connection; nothing to do
        warm = []
        for _ in range(max(5, args.repeat)):
            t = time.perf_counter()
            r = sync_source(store, src)
            warm.append(time.perf_counter() - t)
            assert r.records == 0 and r.flag_updates == 0, r
        src.close()
        cold = []
        for _ in range(max(5, args.repeat)):
            src = imap_source(big)
            t = time.perf_counter()
            sync_source(store, src)
            cold.append(time.perf_counter() - t)
            src.close()
        store.close()
        print(
            f"(c) no-change sync, open conn:   {min(warm) * 1000:7.1f} ms  "
            f"(passes: {', '.join(f'{w * 1000:.1f}' for w in warm)} ms; the first one"
            " opens the largest folder to keep)"
        )
        print(f"    no-change with connect+login:{min(cold) * 1000:7.1f} ms")

        rss_small = run_child(small, Path(tmp) / "small.sqlite3")["rss_mb"]
        rss_big = run_child(big, Path(tmp) / "big.sqlite3")["rss_mb"]
        print(
            f"(d) peak RSS, full sync:         {rss_small:7.1f} MB at {args.small}, "
            f"{rss_big:.1f} MB at {args.messages}"
        )

        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("ratios:")
        print(f"  full / floor            {full['seconds'] / floor_s:5.2f}  (target <= 5)")
        # each turn's own ratio (its floor and full sync ran one after the other)
        turns = sorted(f["seconds"] / fl for (fl, _), f in zip(floors, fulls, strict=True))
        print(
            f"    per turn: {', '.join(f'{t:.2f}' for t in turns)} "
            f"(median {statistics.median(turns):.2f})"
        )
        print(f"  connector / floor       {conn_s / floor_s:5.2f}")
        print(f"  no-change               {min(warm) * 1000:5.1f} ms (target <= 30 ms)")
        print(f"  RSS {args.messages} / {args.small}   {rss_big / rss_small:5.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
