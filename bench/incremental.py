"""Benchmark: cost proportional to change (not a timed test).

    python bench/incremental.py [--messages 1000000] [--people 20000] [--latency-messages 100000]

Builds (once, then reuses) a SQLite store of ``--messages`` messages with the
generator of bench/analyze.py, and prints, side by side in one run:

(a) a full rebuild (``kithkeep rebuild``) and its peak RSS, in a child process;
(b) an analysis cycle with nothing new (what the daemon does every 15 minutes);
(c) a cycle after 100 new messages touching about 50 people;
(d) a cycle after one merge of two people;
(e) end to end, on a private Dovecot and Radicale and a store of
    ``--latency-messages`` messages: a new message APPENDed that resolves a
    neglected tie, until its reminder is gone from the CalDAV calendar, with
    IMAP IDLE on and ``kithkeep daemon`` running.

A cycle is what the daemon runs after a sync: refresh the statistics, judge
the people whose verdicts may have changed, budget the findings (no sink, so
that (b) to (d) time kithkeep's own work). Each of (b) to (d) is timed in a
child process too, with its peak RSS. It ends with one machine-readable line:
``RESULT {"full_s": ..., "full_rss_mb": ..., "nochange_s": ..., "new100_s": ...,
"merge_s": ..., "latency_s": ...}``. Targets: (b) <= 1% of (a); (c) and (d)
<= 5% of (a); (a)'s RSS <= 400 MB at 1M messages; (e) <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from analyze import ME, NOW, build  # noqa: E402

from kithkeep.config import Config, GeneralConfig  # noqa: E402
from kithkeep.model.refresh import refresh  # noqa: E402
from kithkeep.pipeline import judge_changes  # noqa: E402
from kithkeep.records import Address, MailBatch, MessageRecord  # noqa: E402
from kithkeep.store import Store  # noqa: E402

CONFIG = Config(general=GeneralConfig(me=(ME.email,), timezone="UTC"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cycle(store: Store, now: datetime, *, full: bool = False) -> dict[str, Any]:
    """One analysis cycle as the daemon runs it after a sync (no sink)."""
    t0 = time.perf_counter()
    decisions = store.active_decisions()
    c = refresh(store, CONFIG.analysis, CONFIG.general.me, now, (), decisions=decisions, full=full)
    findings = judge_changes(CONFIG, store, now, decisions)
    return {
        "seconds": time.perf_counter() - t0,
        "kind": c.kind,
        "people": c.people,
        "findings": len(findings),
    }


def child(args: argparse.Namespace) -> int:
    """Runs one step in a process of its own and prints its time and peak RSS."""
    store = Store.open(f"sqlite:///{args.db}")
    now = NOW + timedelta(days=args.day)
    if args.child == "new100":
        add_new_mail(store, now)
    elif args.child == "merge":
        add_merge(store, now)
    out = cycle(store, now, full=args.child == "full")
    out["rss_mb"] = _rss_mb()
    store.close()
    print(json.dumps(out))
    return 0


def run_child(db: Path, step: str, day: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--db", str(db), "--child", step, "--day", str(day)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _people_of(store: Store, n: int, rng: random.Random) -> list[str]:
    roots = sorted(r for r, _ in store.people_json())
    return rng.sample(roots, min(n, len(roots)))


def add_new_mail(store: Store, now: datetime) -> None:
    """100 new messages: one each way with 50 people."""
    rng = random.Random(int(now.timestamp()))
    records = []
    for k, addr in enumerate(_people_of(store, 50, rng)):
        other = Address("", addr)
        for j, outbound in enumerate((False, True)):
            uid = f"new-{int(now.timestamp())}-{k}-{j}"
            records.append(
                MessageRecord(
                    "bench", "Sent" if outbound else "INBOX", uid, f"{uid}@bench.example",
                    now - timedelta(hours=1),
                    from_=(ME,) if outbound else (other,), to=(other,) if outbound else (ME,),
                    subject="Catching up", in_sent_folder=outbound,
                )
            )  # fmt: skip
    store.apply_mail_batch(MailBatch(records=records), "bench")


def add_merge(store: Store, now: datetime) -> None:
    rng = random.Random(int(now.timestamp()) + 1)
    a, b = _people_of(store, 2, rng)
    store.add_decision("merge", a, value=b, now=now)


# ------------------------------------------------------------------ latency


def latency(n_messages: int, work: Path) -> float:
    """Seconds from the APPEND of a resolving message to its reminder's deletion."""
    import caldav
    from imap_sync import populate
    from imapclient import IMAPClient

    from tests.fixtures.dovecot import DovecotServer
    from tests.fixtures.radicale import RadicaleServer

    dove = DovecotServer()
    dav = RadicaleServer(work / "radicale")
    (work / "radicale").mkdir(exist_ok=True)
    dav.start()
    daemon = None
    try:
        user = dove.add_user()
        populate(dove, user, n_messages, seed=7)
        # a close tie gone quiet: three exchanges a fortnight apart, the last 100 days ago
        now = datetime.now(UTC)
        c = IMAPClient(user.host, user.port, ssl=False)
        c.login(user.username, user.password)
        for k in range(8):
            when = now - timedelta(days=100 + 14 * k)
            for frm, to, folder in (
                ("nora@example.net", "me@example.org", "INBOX"),
                ("me@example.org", "nora@example.net", "Sent"),
            ):
                c.append(folder, _mail(frm, to, when, f"nora-{k}-{folder}"), msg_time=when)
        c.logout()
        dav_user = dav.new_user()
        config = work / "config.toml"
        config.write_text(
            f"""[general]
me = ["me@example.org"]
database = "sqlite:///{work / "kk.sqlite3"}"
timezone = "UTC"

[daemon]
interval_minutes = 60

[sources.mail]
type = "imap"
host = "{user.host}"
port = {user.port}
tls = "none"
allow_plaintext = true
username = "{user.username}"
password_env = "KK_BENCH_IMAP"
idle = true
chunk_size = 2000

[sinks.calendar]
type = "caldav"
url = "{dav_user.url}"
username = "{dav_user.username}"
password_env = "KK_BENCH_DAV"
calendar = "kithkeep"

[reminders]
sink = "calendar"
working_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
working_hours = "00:00-23:59"
max_per_week = 50
max_per_day = 50
"""
        )
        env = {
            **os.environ,
            "KK_BENCH_IMAP": user.password,
            "KK_BENCH_DAV": dav_user.password,
            "KITHKEEP_CONFIG": str(config),
        }
        kk = [sys.executable, "-m", "kithkeep"]
        subprocess.run([*kk, "run"], env=env, check=True, capture_output=True)

        client = caldav.DAVClient(
            dav_user.url, username=dav_user.username, password=dav_user.password
        )
        calendar = next(
            cal for cal in client.principal().calendars() if cal.get_display_name() == "kithkeep"
        )

        def nora_reminded() -> bool:
            return any("Nora" in (ev.data or "") for ev in calendar.events())

        assert nora_reminded(), "the planted neglected tie has no reminder"
        log = (work / "daemon.log").open("wb")
        daemon = subprocess.Popen([*kk, "daemon"], env=env, stdout=log, stderr=log)
        _wait_for(work / "daemon.log", "analyzed", 600)
        _wait_for(work / "daemon.log", "waiting for new inbox mail with IMAP IDLE", 60)
        time.sleep(2)
        c = IMAPClient(user.host, user.port, ssl=False)
        c.login(user.username, user.password)
        t0 = time.perf_counter()
        c.append("INBOX", _mail("nora@example.net", "me@example.org", now, "nora-back"))
        c.logout()
        while nora_reminded():
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("the reminder was still there after 120 s")
            time.sleep(0.1)
        return time.perf_counter() - t0
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        dav.stop()
        dove.stop()


def _mail(frm: str, to: str, when: datetime, tag: str) -> bytes:
    from email.utils import format_datetime

    name = {"nora@example.net": "Nora Lind", "me@example.org": "Me Myself"}[frm]
    return (
        f"From: {name} <{frm}>\r\nTo: {to}\r\nSubject: Hello again\r\n"
        f"Date: {format_datetime(when)}\r\nMessage-ID: <{tag}@bench.example>\r\n\r\nHi\r\n"
    ).encode()


def _wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{text!r} not in {path} after {timeout} s:\n{path.read_text()[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--latency-messages", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--rebuild-store", action="store_true", help="Build the store anew.")
    ap.add_argument("--no-latency", action="store_true", help="Skip (e).")
    ap.add_argument(
        "--child", choices=["full", "nochange", "new100", "merge"], help=argparse.SUPPRESS
    )
    ap.add_argument("--day", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.db is None:
        args.db = (
            Path(tempfile.gettempdir()) / f"kithkeep-bench-incremental-{args.messages}.sqlite3"
        )
    if args.child:
        return child(args)

    if args.rebuild_store and args.db.exists():
        args.db.unlink()
    if not args.db.exists():
        t0 = time.perf_counter()
        build(args.db, args.messages, args.people)
        print(f"built {args.db} ({args.messages} messages) in {time.perf_counter() - t0:.0f} s")

    full = run_child(args.db, "full", 0)
    print(f"(a) full rebuild:        {full['seconds']:8.2f} s   peak RSS {full['rss_mb']:6.0f} MB"
          f"   ({full['people']} people)")  # fmt: skip
    steps = {}
    for n, step in enumerate(("nochange", "new100", "merge"), start=1):
        steps[step] = run_child(args.db, step, n)
    labels = {
        "nochange": "(b) nothing new:         ",
        "new100": "(c) 100 new messages:    ",
        "merge": "(d) one merge:           ",
    }
    for step, got in steps.items():
        share = 100 * got["seconds"] / full["seconds"]
        print(
            f"{labels[step]}{got['seconds']:8.3f} s   {share:5.2f}% of (a)   peak RSS "
            f"{got['rss_mb']:6.0f} MB   ({got['kind']}, {got['people']} people recomputed)"
        )
    lat = None
    if not args.no_latency:
        work = Path(tempfile.mkdtemp(prefix="kk-bench-latency-"))
        try:
            lat = latency(args.latency_messages, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        n = args.latency_messages
        print(f"(e) new mail to calendar: {lat:7.2f} s   (IMAP IDLE, {n} messages)")
    result = {
        "full_s": round(full["seconds"], 2),
        "full_rss_mb": round(full["rss_mb"]),
        "nochange_s": round(steps["nochange"]["seconds"], 3),
        "new100_s": round(steps["new100"]["seconds"], 3),
        "merge_s": round(steps["merge"]["seconds"], 3),
        "latency_s": round(lat, 2) if lat is not None else None,
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
