"""Terminal output: tables and progress bars (rich), only in the CLI layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from kithkeep.model.stats import PersonStats
from kithkeep.rules.base import Finding

console = Console()
err_console = Console(stderr=True)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "never"
    days = int(((now or datetime.now(UTC)) - when).total_seconds() // 86400)
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def reminder_cell(f: Finding, reminders: Mapping[str, datetime] | None) -> str:
    """Where the finding stands with the calendar, in a few words."""
    if f.status != "open":
        return f"{f.status} {f.status_note}".strip()
    if reminders is not None and f.key in reminders:
        return f"{reminders[f.key]:%Y-%m-%d %H:%M}"
    if f.remind:
        return "in calendar" if reminders is None else "next run"
    if f.over_budget:
        return "over weekly budget"
    return "review only"


def findings_table(
    findings: Sequence[Finding],
    now: datetime,
    title: str,
    *,
    reminders: Mapping[str, datetime] | None = None,
    show_all: bool = False,
) -> Table:
    """Findings by severity: who, which rule, a one-line why, what to do, and the reminder.

    Snoozed and dismissed findings only with ``show_all``. ``reminders`` maps
    finding keys to reminder starts; without it the column says whether the
    finding has one.
    """
    shown = [f for f in findings if show_all or f.status == "open"]
    t = Table(title=title, title_justify="left", expand=False)
    t.add_column("sev", justify="right")
    t.add_column("person")
    t.add_column("rule")
    t.add_column("why")
    t.add_column("last contact")
    t.add_column("suggested")
    t.add_column("reminder")
    for f in shown:
        t.add_row(
            str(f.severity),
            f.person_name,
            f.rule,
            f.summary or f.explanation,
            ago(f.last_contact, now),
            f.suggestion.split(":", 1)[0],  # the action; the details are in the reminder
            reminder_cell(f, reminders),
            style="dim" if f.status != "open" else None,
        )
    return t


def people_table(people: Sequence[PersonStats], now: datetime) -> Table:
    t = Table(title=f"{len(people)} people", title_justify="left")
    t.add_column("id")
    t.add_column("name")
    t.add_column("address")
    t.add_column("tie")
    t.add_column("out", justify="right")
    t.add_column("in", justify="right")
    t.add_column("last contact")
    t.add_column("cadence", justify="right")
    for p in people:
        t.add_row(
            p.person_id,
            p.name,
            p.addresses[0] if p.addresses else "",
            p.tier or "-" if p.is_tie else "contact",
            str(p.messages_out),
            str(p.messages_in),
            ago(p.last_contact, now),
            f"{p.cadence_days:g}d" if p.cadence_days else "-",
        )
    return t


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, str, int, int | None], None] | None]:
    """A progress callback that draws on a terminal, or None (silent) elsewhere."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        tasks: dict[tuple[str, str], TaskID] = {}

        def update(source: str, scope: str, done: int, total: int | None) -> None:
            key = (source, scope)
            if key not in tasks:
                tasks[key] = progress.add_task(f"{source}: {scope}", total=total)
            progress.update(tasks[key], completed=done, total=total)

        yield update
