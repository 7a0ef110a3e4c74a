"""``kithkeep review -i``: the open findings one at a time, one key each.

Like ``git add -p``: each finding shows who, the why in numbers, the
suggestion and the last exchanges, then waits for a key. Decisions are the
same rows the commands store (:mod:`kithkeep.cli.decide`), and each is
printed with the command that undoes it. ``done`` and ``ignore`` are about
the person, so that person's other findings are skipped.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from rich.text import Text

from kithkeep.cli import decide
from kithkeep.cli.app import App
from kithkeep.cli.render import console, label, reminder_cell, why
from kithkeep.errors import UsageError
from kithkeep.model.stats import PersonStats
from kithkeep.pipeline import contact_setting, contacts_for, reminder_index
from kithkeep.reminders import exchange_of, gmail_account, message_links
from kithkeep.rules.base import Finding

LAST_EXCHANGES = 4
ARROWS = {"in": "\u2190 in ", "out": "\u2192 out", "meeting": "\u25c6 met"}
KEYS = (
    ("s", "snooze: hide this finding for a while (asks how long)"),
    ("d", "dismiss: until there is new evidence"),
    ("x", "done: you were in touch outside mail (today)"),
    ("i", "ignore: never flag this person again"),
    ("o", "open the message in your mail program"),
    ("n", "next: leave it as it is (also Enter or space)"),
    ("q", "quit"),
    ("?", "this help"),
)
PROMPT = "[s]nooze [d]ismiss [x] done [i]gnore [o]pen [n]ext [q]uit [?]"


def open_url(url: str) -> None:
    """Hand a URL to the desktop (xdg-open, open); a seam for the tests."""
    click.launch(url)


class Keys:
    """One key press at a time, for the whole session.

    On a terminal the line discipline is put in cbreak mode (no echo, no
    waiting for Enter) once, for the session, rather than around each key as
    ``click.getchar`` does: its switch to raw mode flushes what was typed
    ahead, so a quick "n n n" would lose keys. Ctrl-C still interrupts, and
    the terminal is restored on the way out. Elsewhere (click's test runner)
    ``click.getchar`` reads the keys.
    """

    def __init__(self) -> None:
        self.fd: int | None = None
        self.saved: list[Any] | None = None

    def __enter__(self) -> Keys:
        stdin = sys.stdin
        if stdin is not None and stdin.isatty():
            self.fd = stdin.fileno()
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)  # TCSANOW: keep what was typed ahead
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def read(self) -> str:
        """One key; "q" at the end of input; an escape sequence (an arrow) is "\x00"."""
        if self.fd is None:
            try:
                return click.getchar() or "q"
            except EOFError:
                return "q"
            except OSError as exc:  # no terminal to read keys from
                raise UsageError(f"review -i reads keys from a terminal ({exc})") from None
        first = os.read(self.fd, 1)
        if not first:
            return "q"
        if first == b"\x1b":
            if not select.select([self.fd], [], [], 0.05)[0]:
                return "\x1b"  # Escape alone
            os.read(self.fd, 16)  # the rest of an arrow's or a function key's sequence
            return "\x00"
        lead = first[0]
        more = 3 if lead >= 0xF0 else 2 if lead >= 0xE0 else 1 if lead >= 0xC0 else 0
        # the rest of a UTF-8 character: an "ä" is one unknown key, not two
        data = first + (os.read(self.fd, more) if more else b"")
        return data.decode("utf-8", "replace")

    def line(self, prompt: str, default: str) -> str:
        """A line typed with echo and Enter (the snooze's duration)."""
        if self.fd is not None and self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
        try:
            return str(click.prompt(prompt, default=default))
        finally:
            if self.fd is not None:
                tty.setcbreak(self.fd, termios.TCSANOW)


def _name(p: PersonStats) -> str:
    return p.name or p.addresses[0]


class Triage:
    def __init__(
        self, app: App, people: Sequence[PersonStats], findings: Sequence[Finding], now: datetime
    ) -> None:
        self.app = app
        self.config = app.config()
        self.store = app.store()
        self.people = {p.person_id: p for p in people}
        self.findings = list(findings)
        self.now = now
        self.decided = 0
        self.gmail = gmail_account(self.config)
        self.keys = Keys()
        # read once, not per finding: neither changes before the next run
        self.setting = contact_setting(self.config, self.store, now)
        reminders = reminder_index(self.store, self.config.reminders.sink)
        self.starts = {k: r.start for k, r in reminders.items()}

    def run(self, todo: Sequence[Finding]) -> None:
        if not todo:
            click.echo("Nobody needs attention right now.")
            return
        settled: set[str] = set()  # people done or ignored: their other findings are moot
        with Keys() as self.keys:
            for n, f in enumerate(todo, 1):
                if f.person_id in settled or f.person_id not in self.people:
                    continue
                self.show(f, n, len(todo))
                outcome = self.ask(f)
                if outcome == "quit":
                    break
                if outcome == "person":
                    settled.add(f.person_id)
        more = "; reminders follow on the next run" if self.decided else ""
        click.echo(f"{self.decided} decision(s) stored{more}.")

    # ------------------------------------------------------------- showing

    def show(self, f: Finding, n: int, total: int) -> None:
        p = self.people[f.person_id]
        click.echo()
        console.print(
            Text.assemble(
                (f"[{n}/{total}] ", "dim"),
                (f"{label(f.rule)} \u00b7 ", "bold"),
                (p.name or p.addresses[0], "bold"),
                (f"  {p.addresses[0]}  severity {f.severity}", "dim"),
            )
        )
        for line in (why(f, self.now), f.explanation, f"Suggested: {f.suggestion}"):
            console.print(Text(line))
        ex = exchange_of(f)
        if ex is not None:
            console.print(Text(ex.line()))
        contacts = contacts_for(self.config, self.store, p, self.now, self.setting)
        if contacts:
            console.print(Text("Last exchanges:", style="dim"))
            for c in contacts[-LAST_EXCHANGES:]:
                cc = "" if c.direct else " (Cc)"
                console.print(
                    Text(f"  {c.date:%Y-%m-%d} {ARROWS[c.direction]} {c.subject}{cc}"),
                    no_wrap=True,
                    overflow="ellipsis",
                )
        status = reminder_cell(f, self.starts, self.config.general.tz)
        console.print(Text(status[:1].upper() + status[1:], style="dim"))

    # ------------------------------------------------------------- deciding

    def ask(self, f: Finding) -> str:
        """Keys until one moves on: "next", "person" (done or ignored), or "quit"."""
        p = self.people[f.person_id]
        while True:
            click.echo(f"{PROMPT} ", nl=False)
            key = self.keys.read()
            click.echo(key if key.isprintable() else "")
            if key in ("n", " ", "\r", "\n"):
                return "next"
            if key in ("q", "\x1b", "\x04"):  # Escape and Ctrl-D quit too
                return "quit"
            if key == "?":
                for k, text in KEYS:
                    click.echo(f"  {k}  {text}")
                continue
            if key == "o":
                self.open(f)
                continue
            if key == "s":
                if self.snooze(f, p):
                    return "next"
                continue
            if key == "d":
                decide.dismiss(self.store, p, self.findings, f.rule, self.now)
                self.stored(f"dismissed ({label(f.rule)}) until new evidence", "dismiss", p, f.rule)
                return "next"
            if key == "x":
                decide.done(self.store, p, self.now, None, self.now)
                self.stored(f"recorded contact with {_name(p)} today", "done", p)
                return "person"
            if key == "i":
                decide.ignore(self.store, p, self.now)
                self.stored(f"ignoring {_name(p)} from the next run on", "ignore", p)
                return "person"
            click.echo("  unknown key; ? shows the keys")

    def snooze(self, f: Finding, p: PersonStats) -> bool:
        text = self.keys.line("  snooze for (3d, 2w, 1m) or until (2026-12-24)", default="2w")
        try:
            until = decide.until_from(text, self.config.general.tz, self.now)
            decide.snooze(self.store, p, until, f.rule, self.now)
        except UsageError as exc:
            click.echo(f"  {exc.format_message()}; not snoozed")
            return False
        self.stored(f"snoozed ({label(f.rule)}) until {until:%Y-%m-%d}", "snooze", p, f.rule)
        return True

    def stored(self, what: str, command: str, p: PersonStats, rule: str | None = None) -> None:
        """Count a decision and say how to take it back."""
        self.decided += 1
        only = f" --rule {rule}" if rule else ""
        click.echo(f"  {what} (undo: kithkeep {command} {p.addresses[0]}{only} --undo)")

    def open(self, f: Finding) -> None:
        ex = exchange_of(f)
        links = message_links(ex.message_id, self.gmail) if ex is not None else []
        if not links:
            click.echo("  no message to open for this finding")
            return
        for name, url in links:
            click.echo(f"  {name}: {url}")
        # in a browser when the mail is Gmail's, else the mail program that handles mid:
        open_url(links[-1][1])
