"""Benchmark: full analysis of a large store against a plain SELECT of the same rows.

    python bench/analyze.py [--messages 100000] [--people 5000] [--db PATH] [--repeat 3]

Builds (once, then reuses) a SQLite store with ``--messages`` messages between
the user and about ``--people`` correspondents over five years: threads with
In-Reply-To and References, Cc, a sent folder, copies of messages in two
folders, newsletters, lists, no-reply mail and mass mail. Then, in the same
run, it times

* ``select``: a plain SQLAlchemy Core ``SELECT`` of every row of ``messages``
  (all columns, rows fetched into Python), the floor any analysis pays;
* ``full rebuild``: the analysis from scratch (``kithkeep rebuild``): every
  message and event filed under its addresses, then every person's
  statistics computed and stored, one person at a time.

Each is the best of ``--repeat`` runs (taking turns), in wall-clock and in CPU time of this
process; the ratios to ``select`` are printed. The target is at most 2.5x.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from kithkeep.config import AnalysisConfig
from kithkeep.model.refresh import refresh
from kithkeep.records import Address, MailBatch, MessageRecord
from kithkeep.schema import Base, Message
from kithkeep.store import Store

ME = Address("Me Myself", "me@example.org")
NOW = datetime(2026, 11, 1, tzinfo=UTC)
FIRST = ["ana", "ben", "chloe", "dmitri", "elena", "farid", "grace", "hiro", "isabel", "jonas"]
LAST = ["silva", "okafor", "martin", "ivanov", "rossi", "haddad", "lee", "tanaka", "gomez", "berg"]
DOMAINS = ["gmail.com", "gmx.de", "outlook.com", "acme.example", "uni.example", "posteo.de"]


def _people(n: int, rng: random.Random) -> list[Address]:
    out = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        out.append(
            Address(
                f"{first.title()} {last.title()} {i}", f"{first}.{last}{i}@{rng.choice(DOMAINS)}"
            )
        )
    return out


def build(path: Path, n_messages: int, n_people: int) -> None:
    rng = random.Random(42)
    people = _people(n_people, rng)
    # a few people get most of the mail, as in real mailboxes
    weights = [1.0 / (i + 1) ** 0.8 for i in range(n_people)]
    store = Store.open(f"sqlite:///{path}")
    records: list[MessageRecord] = []
    counter = 0
    recent: dict[int, tuple[str, tuple[str, ...]]] = {}

    def flush() -> None:
        if records:
            by_folder: dict[str, list[MessageRecord]] = {}
            for r in records:
                by_folder.setdefault(r.folder, []).append(r)
            store.apply_mail_batch(MailBatch(records=list(records)), "bench")
            records.clear()

    span = 5 * 365 * 86400
    while counter < n_messages:
        counter += 1
        when = NOW - timedelta(seconds=rng.randrange(span))
        mid = f"m{counter}@bench.example"
        kind = rng.random()
        if kind < 0.08:  # newsletters and notifications
            records.append(
                MessageRecord(
                    "bench", "INBOX", str(counter), mid, when,
                    from_=(Address("News", f"news@shop{counter % 50}.example"),), to=(ME,),
                    subject="Weekly deals", list_unsubscribe=True, precedence="bulk",
                )
            )  # fmt: skip
            continue
        if kind < 0.10:  # mailing list traffic
            records.append(
                MessageRecord(
                    "bench", "INBOX", str(counter), mid, when,
                    from_=(rng.choice(people),), to=(Address("dev", "dev@lists.example.org"),),
                    subject="[dev] thread", list_id="<dev.lists.example.org>",
                    list_post="<mailto:dev@lists.example.org>",
                )
            )  # fmt: skip
            continue
        if kind < 0.11:  # mass mail
            crowd = tuple(rng.sample(people, 15))
            records.append(
                MessageRecord(
                    "bench", "Sent", str(counter), mid, when,
                    from_=(ME,), to=crowd, subject="Party!", in_sent_folder=True,
                )
            )  # fmt: skip
            continue
        (p_idx,) = rng.choices(range(n_people), weights)
        person = people[p_idx]
        cc = (rng.choice(people),) if rng.random() < 0.15 else ()
        irt = None
        refs: tuple[str, ...] = ()
        prev = recent.get(p_idx)
        if prev is not None and rng.random() < 0.6:
            irt = prev[0]
            refs = (*prev[1], prev[0])[-20:]
        outbound = rng.random() < 0.45
        rec = MessageRecord(
            "bench",
            "Sent" if outbound else "INBOX",
            str(counter),
            mid,
            when,
            from_=(ME,) if outbound else (person,),
            to=(person,) if outbound else (ME,),
            cc=cc,
            in_reply_to=irt,
            references=refs,
            subject=("Re: " if irt else "") + "Hello",
            flags=frozenset({"\\Seen", "\\Answered"} if rng.random() < 0.3 else {"\\Seen"}),
            in_sent_folder=outbound,
        )
        records.append(rec)
        recent[p_idx] = (mid, refs)
        if rng.random() < 0.05:  # the same message under a second folder (labels, archives)
            counter += 1
            records.append(
                MessageRecord(**{
                    **{s: getattr(rec, s) for s in MessageRecord.__slots__},
                    "folder": "Archive", "uid": str(counter), "in_sent_folder": False,
                })
            )  # fmt: skip
        if len(records) >= 5000:
            flush()
    flush()
    store.close()


def best_of(repeat: int, fns: list[Callable[[], object]]) -> list[tuple[float, float]]:
    """Best wall-clock and best CPU time of ``repeat`` runs of each function (CPU time
    is steadier on a shared machine; both are reported).

    The functions take turns (one run of each, ``repeat`` times) rather than one
    function's runs after another's: on a shared machine whose speed drifts over a
    minute, each ratio then compares runs made at the same time.
    """
    walls: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls[k].append(time.perf_counter() - w0)
            cpus[k].append(time.process_time() - c0)
    return [(min(w), min(c)) for w, c in zip(walls, cpus, strict=True)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--people", type=int, default=5_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/kithkeep-bench-analyze.sqlite3"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true", help="Rebuild the store even if it exists.")
    args = ap.parse_args(argv)

    if args.rebuild and args.db.exists():
        args.db.unlink()
    if not args.db.exists():
        t0 = time.perf_counter()
        build(args.db, args.messages, args.people)
        print(f"built {args.db} in {time.perf_counter() - t0:.1f}s")
    store = Store.open(f"sqlite:///{args.db}")
    rows = store.count(Message)
    messages: sa.Table = Base.metadata.tables["messages"]

    def plain_select() -> None:
        with store.engine.connect() as c:
            c.execute(sa.select(messages)).fetchall()

    cfg = AnalysisConfig()

    def rebuild() -> None:
        refresh(store, cfg, [ME.email], NOW, (), full=True)

    t_select, t_rebuild = best_of(args.repeat, [plain_select, rebuild])
    people, ties = store.people_counts()
    print(f"python {sys.version.split()[0]}, sqlalchemy {sa.__version__}")
    print(f"store: {rows} message rows, {people} people, {ties} ties")
    print(f"{'':14} {'wall':>8} {'ratio':>6} {'cpu':>8} {'ratio':>6}")
    for label, (wall, cpu) in (("select", t_select), ("full rebuild", t_rebuild)):
        print(
            f"{label:14} {wall:7.3f}s {wall / t_select[0]:5.2f}x "
            f"{cpu:7.3f}s {cpu / t_select[1]:5.2f}x"
        )
    print(
        "RESULT "
        + json.dumps(
            {
                "select_s": round(t_select[0], 3),
                "rebuild_s": round(t_rebuild[0], 3),
                "ratio": round(t_rebuild[0] / t_select[0], 2),
            }
        )
    )
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
