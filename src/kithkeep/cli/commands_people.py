"""People: who kithkeep knows, with their statistics; show one; merge and unmerge.

``people --json`` prints :meth:`PersonStats.to_json` for each person; the field
names are a public interface documented in the README (People and statistics).
``merge`` and ``unmerge`` store user decisions and re-analyze at once, so the
listing shows the result; findings and reminders follow on the next ``run``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from rich.cells import cell_len
from rich.table import Table

from kithkeep import clock
from kithkeep.cli import decide
from kithkeep.cli.app import App, print_json
from kithkeep.cli.complete import complete_person
from kithkeep.cli.render import console, days_since, fit, print_lines
from kithkeep.errors import UsageError
from kithkeep.model.identity import normalize
from kithkeep.model.lookup import resolve_person
from kithkeep.model.merges import suggest_merges
from kithkeep.model.refresh import refresh
from kithkeep.model.stats import PersonStats
from kithkeep.model.vcard import load_contacts
from kithkeep.pipeline import (
    PersonEntry,
    contacts_for,
    find_person,
    load_people,
    person_directory,
)

SPARK = " ▁▂▃▄▅▆▇█"
LAST_EXCHANGES = 12


def sparkline(counts: tuple[int, ...] | list[int]) -> str:
    """One character per month, scaled to the busiest month (a blank is no contact)."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(SPARK[0] if c == 0 else SPARK[max(1, round(c / top * 8))] for c in counts)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _num(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:g}{unit}"


def _tie_label(p: PersonStats) -> str:
    if p.automated:
        return p.automated
    if p.ignored:
        return "ignored"
    if not p.is_tie:
        return "contact"
    return f"{p.tier} (you)" if p.tier_source == "user" else (p.tier or "tie")


def _who(p: PersonStats) -> str:
    """``Name <address>``, or the address alone."""
    return f"{p.name} <{p.addresses[0]}>" if p.name else p.addresses[0]


def _days_ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    days = days_since(when, now)
    return "today" if days == 0 else f"{days}d"


_PEOPLE_HEADERS = ("id", "person", "tie", "out/in", "last", "every", "reply", "unans")
_PEOPLE_LEFT = frozenset({0, 1, 2})  # the other columns are figures, right-aligned
_PEOPLE_CAPTION = (
    "out/in: messages; last: days since contact; every: usual gap between exchanges; "
    "reply: share of your openings they answered; unans: your messages since they last wrote"
)


def people_lines(people: list[PersonStats], now: datetime, width: int = 80) -> list[str]:
    """One line per person in ``width`` columns (``show`` has the rest): the names give
    way, never the figures.

    Plain lines, not a rich table: rich measured and rendered every cell of
    every row, 20 s for 20,000 people.
    """
    rows = [
        (
            p.person_id,
            (p.name or (p.addresses[0] if p.addresses else ""))
            + (f" +{len(p.addresses) - 1}" if len(p.addresses) > 1 else ""),
            _tie_label(p),
            f"{p.messages_out}/{p.messages_in}",
            _days_ago(p.last_contact, now),
            _num(p.cadence_days, "d"),
            _pct(p.reply_rate_them),
            str(p.unanswered_streak or ""),
        )
        for p in people
    ]
    widths = [
        max(cell_len(h), *(cell_len(r[i]) for r in rows)) if rows else cell_len(h)
        for i, h in enumerate(_PEOPLE_HEADERS)
    ]
    gap = 2
    over = sum(widths) + gap * (len(widths) - 1) - width
    if over > 0:
        widths[1] = max(widths[1] - over, cell_len(_PEOPLE_HEADERS[1]))

    def line(cells: tuple[str, ...]) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            text = fit(cell, w)
            pad = " " * (w - cell_len(text))
            out.append(text + pad if i in _PEOPLE_LEFT else pad + text)
        return (" " * gap).join(out).rstrip()

    rule = "\u2501" * min(sum(widths) + gap * (len(widths) - 1), width)
    return [
        f"{len(people)} people",
        line(_PEOPLE_HEADERS),
        rule,
        *(line(r) for r in rows),
        "",
        *textwrap.wrap(_PEOPLE_CAPTION, width),
    ]


def _reanalyze(app: App) -> None:
    """Recompute the people a merge or unmerge touched (an incremental cycle)."""
    cfg = app.config()
    store = app.store()
    # the user's addresses the sources reported at the last run stay (None)
    refresh(
        store, cfg.analysis, cfg.general.me, clock.now(), None,
        decisions=store.active_decisions(), cards=load_contacts(cfg.analysis.contacts_file),
    )  # fmt: skip


def _month_labels(now: datetime, months: int) -> tuple[str, str]:
    first = now.year * 12 + now.month - 1 - (months - 1)
    return f"{first // 12}-{first % 12 + 1:02d}", f"{now:%Y-%m}"


def _stats_rows(p: PersonStats) -> list[tuple[str, str]]:
    def date(d: datetime | None) -> str:
        return f"{d:%Y-%m-%d}" if d else "-"

    pending = p.pending_inbound
    waiting = f"{pending.date:%Y-%m-%d} {pending.subject!r}" if pending else "-"
    last = f"{date(p.last_in)} / {date(p.last_out)} / {date(p.last_meeting)}"
    out = f"{p.messages_out} ({p.messages_out_direct} direct, {p.messages_out_cc} Cc)"
    inc = f"{p.messages_in} ({p.messages_in_direct} to you, {p.messages_in_cc} Cc)"
    they = f"{_pct(p.reply_rate_them)} ({p.initiations_me_answered} of {p.initiations_me})"
    you = f"{_pct(p.reply_rate_me)} ({p.initiations_them_answered} of {p.initiations_them})"
    latency = f"{_num(p.median_reply_hours_me, ' h')} / {_num(p.median_reply_hours_them, ' h')}"
    return [
        ("tie", _tie_label(p) + (f"  (source: {p.tier_source})" if p.tier_source else "")),
        ("first / last contact", f"{date(p.first_contact)} / {date(p.last_contact)}"),
        ("last in / out / meeting", last),
        ("messages out", out),
        ("messages in", inc),
        ("meetings", str(p.meetings)),
        ("exchanges / cadence", f"{p.exchanges} / every {_num(p.cadence_days, ' days')}"),
        ("you started / they started", f"{p.initiations_me} / {p.initiations_them}"),
        ("they answered your openings", they),
        ("you answered theirs", you),
        ("median reply: you / they", latency),
        ("your unanswered messages", str(p.unanswered_streak)),
        ("waiting for your reply", waiting),
        ("strength now / peak", f"{p.strength:g} / {p.peak_strength:g}"),
    ]


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--ties", is_flag=True, help="Only established two-way ties.")
    @click.option(
        "--all",
        "show_all",
        is_flag=True,
        help="Automated senders too (machines without List headers), with their kind.",
    )
    @click.option(
        "--suggest-merges",
        "suggest",
        is_flag=True,
        help="List people who may be one person, with the reason.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
    @click.pass_obj
    def people(app: App, ties: bool, show_all: bool, suggest: bool, as_json: bool) -> None:
        """List people with their statistics (from the last analysis).

        Automated senders (kithkeep explain ADDRESS says why) are left out
        unless --all.
        """
        store = app.store()
        found = load_people(app.config(), store, clock.now())
        if not show_all:
            found = [p for p in found if not p.automated]
        if suggest:
            suggestions = suggest_merges(found, store.active_decisions())
            if as_json:
                print_json([s.to_json() for s in suggestions])
                return
            if not suggestions:
                console.print("No merge suggestions.")
                return
            # lines, not a table: the addresses and the command stay whole to copy
            n = len(suggestions)
            click.echo(f"{n} merge suggestion{'s' if n > 1 else ''}")
            for s in suggestions:
                click.echo(f"\n{_who(s.a)}\n  may be {_who(s.b)}\n  why: {s.reason}")
                click.echo(f"  to merge: kithkeep merge {s.a.addresses[0]} {s.b.addresses[0]}")
            return
        if ties:
            found = [p for p in found if p.is_tie]
        if as_json:
            print_json([p.to_json() for p in found])
        else:
            print_lines(console, people_lines(found, clock.now(), console.width))

    @cli.command()
    @click.argument("person", shell_complete=complete_person)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
    @click.pass_obj
    def show(app: App, person: str, as_json: bool) -> None:
        """One person (by name, address or id): addresses, statistics, last exchanges."""
        store = app.store()
        now = clock.now()
        cfg = app.config()
        p = find_person(cfg, store, now, person)
        contacts = contacts_for(cfg, store, p, now)
        if as_json:
            data: dict[str, Any] = p.to_json()
            data["exchanges_list"] = [
                {
                    "date": c.date.isoformat(),
                    "direction": c.direction,
                    "subject": c.subject,
                    "direct": c.direct,
                    "inferred": c.inferred,
                }
                for c in contacts
            ]
            print_json(data)
            return
        console.print(f"[bold]{p.name or p.addresses[0]}[/bold]  ({p.person_id})")
        for a in p.addresses:
            console.print(f"  {a}")
        t = Table(show_header=False, box=None, pad_edge=False)
        t.add_column(style="dim")
        t.add_column()
        for k, v in _stats_rows(p):
            t.add_row(k, v)
        console.print(t)
        if p.monthly:
            first, last = _month_labels(now, len(p.monthly))
            console.print(
                f"contact by month  {first} [{sparkline(p.monthly)}] {last}"
                f"  (busiest: {max(p.monthly)})"
            )
        if contacts:
            t = Table(title="last exchanges", title_justify="left")
            t.add_column("date")
            t.add_column("", no_wrap=True)
            t.add_column("subject")
            arrows = {"in": "← in", "out": "→ out", "meeting": "◆ met", "uncounted": "◇ met?"}
            for c in contacts[-LAST_EXCHANGES:]:
                cc = "" if c.direct else " (Cc)"
                t.add_row(f"{c.date:%Y-%m-%d %H:%M}", arrows[c.direction] + cc, c.subject)
            console.print(t)
        if p.initiations:
            opened = ", ".join(
                f"{i.date:%Y-%m-%d} {'you' if i.side == 'me' else 'they'}"
                f"{'' if i.answered else ' (unanswered)'}"
                for i in p.initiations[-5:]
            )
            console.print(f"latest openings: {opened}")

    @cli.command()
    @click.argument("a", shell_complete=complete_person)
    @click.argument("b", shell_complete=complete_person)
    @click.option("--json", "as_json", is_flag=True, help="Print the decision as stored.")
    @click.pass_obj
    def merge(app: App, a: str, b: str, as_json: bool) -> None:
        """Treat two people (names, addresses or ids) as one from now on."""
        store = app.store()
        people = person_directory(store)
        first, p1 = _address_of(people, a)
        second, p2 = _address_of(people, b)
        if first == second or (p1 is not None and p2 is not None and p1 == p2):
            raise UsageError(f"{a!r} and {b!r} are already one person")
        decision = decide.stored(store, store.add_decision("merge", first, value=second))
        _reanalyze(app)
        merged = find_person(app.config(), store, clock.now(), first)
        if as_json:
            print_json(decide.decision_json(decision))
            return
        app.say(
            f"Merged: {merged.name or merged.addresses[0]} ({merged.person_id}) "
            f"now has {', '.join(merged.addresses)}. "
            "Findings and reminders follow on the next `kithkeep run`."
        )

    @cli.command()
    @click.argument("address")
    @click.option("--json", "as_json", is_flag=True, help="Print the decision as stored.")
    @click.pass_obj
    def unmerge(app: App, address: str, as_json: bool) -> None:
        """Split an address off the person it was merged into (by you or the contacts file)."""
        if "@" not in address:
            raise UsageError("unmerge takes an address", hint="see `kithkeep show PERSON`")
        addr = normalize(address)
        store = app.store()
        person = find_person(app.config(), store, clock.now(), addr)
        others = [x for x in person.addresses if x != addr]
        if not others:
            raise UsageError(f"{addr} is not merged with another address")
        undo = [
            d.id
            for d in store.active_decisions()
            if d.kind == "merge" and addr in (normalize(d.person), normalize(d.value or ""))
        ]
        if undo:
            store.deactivate_decisions(undo)
        decision = decide.stored(store, store.add_decision("unmerge", addr, value=others[0]))
        _reanalyze(app)
        if as_json:
            print_json(decide.decision_json(decision))
            return
        app.say(
            f"{addr} is now a person of its own; it will not be suggested with {others[0]} again."
        )


def _address_of(people: Sequence[PersonEntry], query: str) -> tuple[str, str | None]:
    """The address to record for ``query`` and the id of the person it names, if known.

    An address is taken as typed (normalized), even one without mail yet;
    a name or id gives the person's primary address.
    """
    try:
        p = resolve_person(people, query)
    except UsageError:
        if "@" in query:
            return normalize(query), None
        raise
    return (normalize(query) if "@" in query else p.addresses[0]), p.person_id
