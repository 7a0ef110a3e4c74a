"""A realistic, deterministic sample: a Maildir, a calendar and a config.

Twelve people with different rhythms (weekly friends, monthly colleagues,
yearly acquaintances, someone who only writes to ask, someone who never
answers, a tie with two addresses), plus newsletters, no-reply notifications,
a mailing list and a mass mailing. Dates are relative to the day it is built,
so the demo always shows the same story.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from kithkeep import clock

ME = ("Sam Rivera", "sam.rivera@example.org")
SEED = 20261122


@dataclass(frozen=True)
class DemoPerson:
    name: str
    email: str
    # usual days between exchanges; days since the last exchange
    rhythm: int
    last_ago: int
    span_days: int
    # chance that the user (not they) starts an exchange; chance the other side replies
    me_starts: float = 0.5
    they_reply: float = 0.9
    i_reply: float = 0.9
    subjects: tuple[str, ...] = ("Catching up", "Quick note", "Saw this and thought of you")


PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("Ana Silva", "ana.silva@gmail.com", 7, 40, 500,
               subjects=("Dinner Friday?", "Photos from the hike", "Book recommendation")),
    DemoPerson("Ben Okafor", "ben@okafor.dev", 14, 3, 600,
               subjects=("Code review", "Conference talk draft", "Lunch next week")),
    DemoPerson("Chloé Martin", "chloe.martin@gmx.de", 30, 100, 700,
               subjects=("Berlin trip", "Your new role", "Podcast episode")),
    DemoPerson("Dmitri Ivanov", "dmitri@ivanov.ru", 330, 70, 1400,
               subjects=("Happy new year", "Long time!", "Visiting Moscow")),
    DemoPerson("Elena Rossi", "elena.rossi@studio-rossi.it", 20, 6, 300, me_starts=0.9,
               they_reply=0.6, subjects=("Following up", "Portfolio feedback", "Coffee?")),
    DemoPerson("Farid Haddad", "farid@haddad.co", 90, 12, 900, me_starts=0.05, i_reply=1.0,
               subjects=("Quick favor?", "Could you intro me to your CTO?", "Referral help?")),
    DemoPerson("Grace Lee", "grace.lee@outlook.com", 12, 5, 400,
               subjects=("Workshop slides", "Question about the grant", "Weekend plans")),
    DemoPerson("Hiro Tanaka", "hiro@tanaka.jp", 25, 6, 500,
               subjects=("Partnership idea", "Notes from Tokyo", "Design review")),
    DemoPerson("Isabel Gomez", "isabel.gomez@acme-corp.com", 21, 15, 500,
               subjects=("Q3 planning", "Offsite agenda", "Team dinner")),
    DemoPerson("Jonas Berg", "jonas.berg@posteo.de", 400, 150, 200,
               subjects=("Meetup follow-up",)),
    DemoPerson("Kemi Adeyemi", "kemi@adeyemi.ng", 10, 4, 400,
               subjects=("Running club", "Recipe", "Job lead for you")),
    DemoPerson("Liam O'Brien", "liam.obrien@protonmail.com", 90, 300, 1100,
               subjects=("Pub quiz reunion", "New house!", "Fantasy league")),
)  # fmt: skip

# Isabel also writes from her personal Gmail (dots and a +tag: the same mailbox).
ISABEL_ALT = ("Isabel Gomez", "Isabel.Gomez+personal@gmail.com")


class _Maildir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0
        for folder in (root, root / ".Sent"):
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)

    def add(self, headers: list[tuple[str, str]], sent: bool, flags: str) -> None:
        self.n += 1
        folder = self.root / ".Sent" if sent else self.root
        text = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n(body omitted in the demo)\r\n"
        name = f"{1700000000 + self.n}.M{self.n}P1.demo:2,{flags}"
        (folder / "cur" / name).write_bytes(text.encode("utf-8"))


def _addr(name: str, email: str) -> str:
    if any(c in name for c in "'\",.") or not name.isascii():
        from email.header import Header

        if not name.isascii():
            return f"{Header(name, 'utf-8').encode()} <{email}>"
        return f'"{name}" <{email}>'
    return f"{name} <{email}>"


def build_mailbox(root: Path, now: datetime) -> int:
    """Write the sample Maildir; returns the number of messages."""
    rng = random.Random(SEED)  # noqa: S311 - deterministic sample data, not security
    box = _Maildir(root)
    me = _addr(*ME)
    counter = 0

    def msgid() -> str:
        nonlocal counter
        counter += 1
        return f"<demo.{counter}.{rng.randrange(10**8)}@mail.example.org>"

    def send(frm: str, to: list[str], when: datetime, subject: str, sent: bool, flags: str,
             irt: str | None = None, refs: str = "", extra: list[tuple[str, str]] | None = None,
             cc: list[str] | None = None) -> str:  # fmt: skip
        mid = msgid()
        h = [
            ("From", frm),
            ("To", ", ".join(to)),
            ("Date", format_datetime(when)),
            ("Subject", subject),
            ("Message-ID", mid),
        ]
        if cc:
            h.append(("Cc", ", ".join(cc)))
        if irt:
            h += [("In-Reply-To", irt), ("References", (refs + " " + irt).strip())]
        h += extra or []
        box.add(h, sent, flags)
        return mid

    for p in PEOPLE:
        them = _addr(p.name, p.email)
        t = now - timedelta(days=p.last_ago)
        exchanges: list[datetime] = []
        while t > now - timedelta(days=p.span_days):
            exchanges.append(t)
            t -= timedelta(days=max(1.0, rng.gauss(p.rhythm, p.rhythm * 0.2)))
        for i, start in enumerate(reversed(exchanges)):
            last = i == len(exchanges) - 1
            subject = rng.choice(p.subjects)
            me_first = rng.random() < p.me_starts
            if last and p.name == "Grace Lee":
                me_first = False  # her last message waits for your answer
            alt = p.name == "Isabel Gomez" and rng.random() < 0.4
            them_addr = _addr(*ISABEL_ALT) if alt else them
            if me_first:
                mid = send(me, [them_addr], start, subject, True, "S")
                replied = rng.random() < p.they_reply and not (last and p.name == "Elena Rossi")
                if p.name == "Elena Rossi" and start > now - timedelta(days=70):
                    replied = False  # she stopped answering: three or more unanswered
                if replied:
                    when = start + timedelta(hours=rng.uniform(1, 48))
                    if when < now:
                        send(them_addr, [me], when, "Re: " + subject, False, "RS", irt=mid)
            else:
                pending = last and p.name == "Grace Lee"
                answer = rng.random() < p.i_reply and not pending
                mid = send(them_addr, [me], start, subject, False, "RS" if answer else "S")
                if answer:
                    when = start + timedelta(hours=rng.uniform(1, 30))
                    if when < now:
                        send(me, [them_addr], when, "Re: " + subject, True, "S", irt=mid)

    # noise: newsletters, notifications, a mailing list, a mass mailing
    for week in range(60):
        when = now - timedelta(days=7 * week + 1, hours=3)
        send("The Weekly Digest <newsletter@weeklydigest.example>", [me], when,
             f"Issue #{300 - week}: what we read this week", False, "S",
             extra=[("List-Unsubscribe", "<https://weeklydigest.example/u>"),
                    ("Precedence", "bulk")])  # fmt: skip
        send("GitHub <noreply@github.com>", [me], when + timedelta(hours=5),
             "[kithkeep] New issue opened", False, "S",
             extra=[("Auto-Submitted", "auto-generated")])  # fmt: skip
    for k in range(40):
        when = now - timedelta(days=9 * k + 2)
        poster = rng.choice(["Priya <priya@lists.example.org>", "Tom <tom.h@example.net>"])
        send(poster, ["dev-discuss <dev@lists.example.org>"], when, f"[dev] Thread {k}", False, "S",
             extra=[("List-Id", "Dev discussion <dev.lists.example.org>"),
                    ("List-Post", "<mailto:dev@lists.example.org>")])  # fmt: skip
        if k % 4 == 0:
            send(me, ["dev-discuss <dev@lists.example.org>"], when + timedelta(hours=2),
                 f"Re: [dev] Thread {k}", True, "S",
                 extra=[("List-Id", "Dev discussion <dev.lists.example.org>")])  # fmt: skip
    for k in range(12):
        when = now - timedelta(days=30 * k + 5)
        send("Receipts <no-reply@shop.example>", [me], when, f"Your order #{9000 + k}", False, "S")
    crowd = [f"Guest {i} <guest{i}@party.example>" for i in range(25)]
    for k in range(6):
        send(me, crowd, now - timedelta(days=60 * k + 20), "Save the date!", True, "S")
    return box.n


def build_calendar(path: Path, now: datetime) -> None:
    """A calendar with small meetings, a big recurring one, a room and a declined invite."""
    day = now.replace(hour=15, minute=0, second=0, microsecond=0)

    def fmt(d: datetime) -> str:
        return d.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    def att(name: str, email: str, partstat: str = "ACCEPTED", cutype: str = "INDIVIDUAL") -> str:
        return f"ATTENDEE;CN={name};PARTSTAT={partstat};CUTYPE={cutype}:mailto:{email}"

    def event(uid: str, start: datetime, minutes: int, summary: str, attendees: list[str],
              extra: list[str] | None = None) -> list[str]:  # fmt: skip
        return [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{fmt(now)}",
            f"DTSTART:{fmt(start)}",
            f"DTEND:{fmt(start + timedelta(minutes=minutes))}",
            f"SUMMARY:{summary}",
            f"ORGANIZER:mailto:{ME[1]}",
            *attendees,
            *(extra or []),
            "END:VEVENT",
        ]

    me = att(*ME)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//kithkeep//demo//EN"]
    lines += event("demo-hiro-1", day - timedelta(days=2), 45, "Partnership chat with Hiro",
                   [me, att("Hiro Tanaka", "hiro@tanaka.jp")])  # fmt: skip
    lines += event("demo-ben-1", day - timedelta(days=10), 30, "Ben / Sam 1:1",
                   [me, att("Ben Okafor", "ben@okafor.dev")])  # fmt: skip
    lines += event("demo-allhands", day - timedelta(days=90), 60, "All hands",
                   [me, *(att(f"Colleague {i}", f"c{i}@acme-corp.com") for i in range(15)),
                    att("Room Atlas", "atlas@resource.calendar.google.com", cutype="ROOM")],
                   ["RRULE:FREQ=WEEKLY;COUNT=20"])  # fmt: skip
    lines += event("demo-declined", day - timedelta(days=5), 30, "Vendor pitch",
                   [att(*ME, partstat="DECLINED"),
                    att("Vendor", "sales.rep@vendor.example")])  # fmt: skip
    lines.append("END:VCALENDAR")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


CONFIG_TEMPLATE = """\
# kithkeep demo configuration (written by `kithkeep demo`)
[general]
me = ["{me}"]
database = "sqlite:///{db}"
timezone = "UTC"

[sources.mail]
type = "maildir"
path = "{maildir}"

[sources.calendar]
type = "ics"
path = "{calendar}"

[sinks.reminders]
type = "ics"
path = "{reminders}"

[reminders]
sink = "reminders"
"""


def build_demo(root: Path, now: datetime | None = None) -> Path:
    """Write the demo mailbox, calendar and config under ``root``; returns the config path."""
    now = (now or clock.now()).replace(hour=12, minute=0, second=0, microsecond=0)
    root.mkdir(parents=True, exist_ok=True)
    maildir = root / "Mail"
    if not maildir.exists():
        build_mailbox(maildir, now)
    calendar = root / "calendar.ics"
    if not calendar.exists():
        build_calendar(calendar, now)
    config = root / "config.toml"
    config.write_text(
        CONFIG_TEMPLATE.format(
            me=ME[1],
            db=(root / "kithkeep.sqlite3").resolve(),
            maildir=maildir.resolve(),
            calendar=calendar.resolve(),
            reminders=(root / "reminders.ics").resolve(),
        ),
        encoding="utf-8",
    )
    return config
