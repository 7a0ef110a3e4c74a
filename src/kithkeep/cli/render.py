"""Terminal output: findings in plain words at any width, tables, progress bars.

Only the CLI layer prints. Three habits hold everywhere:

- one day arithmetic (:func:`days_since`: whole days, rounded down), so a
  line never says "silent 300 days" beside "299 days ago";
- plain words for the rules ("reply owed", not ``reply_owed``), never cut;
- a table only when it fits the terminal; below that, one finding in two
  lines (who and what; why), the details a keystroke (``review -i``) or
  ``kithkeep show`` away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo

from rich.cells import cell_len, set_cell_size
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from kithkeep import clock
from kithkeep.model.me import Proposal
from kithkeep.rules.base import Finding

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# The rules in the words of the README's table: what a person calls them.
LABELS = {
    "neglected": "neglected",
    "reply_owed": "reply owed",
    "meeting_followup": "meeting follow-up",
    "unanswered": "unanswered",
    "one_way_ask": "one-way ask",
}
LABEL_WIDTH = max(len(v) for v in LABELS.values())
DAY = 86400


def label(rule: str) -> str:
    return LABELS.get(rule, rule.replace("_", " "))


def days_since(when: datetime, now: datetime) -> int:
    """Whole days from ``when`` to ``now``, rounded down; never negative."""
    return max(0, int((now - when).total_seconds() // DAY))


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "never"
    days = days_since(when, now or clock.now())
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _quoted(subject: object) -> str:
    return f"\u201c{subject}\u201d" if subject else "(no subject)"


def why(f: Finding, now: datetime) -> str:
    """One line, in plain words, from the finding's evidence, with :func:`days_since`.

    Kind to the person: a one-way pattern is described, never judged. A rule
    this does not know keeps its own summary.
    """
    ev = f.evidence
    if f.rule == "neglected" and _when(ev.get("last_contact")):
        cadence = ev.get("cadence_days")
        every = f"; due every {float(cadence):.0f} days" if cadence else ""
        return f"last contact {ago(_when(ev['last_contact']), now)}{every}"
    if f.rule == "reply_owed" and _when(ev.get("message_date")):
        return (
            f"wrote {ago(_when(ev['message_date']), now)}: {_quoted(ev.get('subject'))}, "
            "no reply yet"
        )
    if f.rule == "meeting_followup" and _when(ev.get("meeting_end")):
        title = f" ({_quoted(ev['meeting_title'])})" if ev.get("meeting_title") else ""
        return f"met {ago(_when(ev['meeting_end']), now)}{title}, nothing sent since"
    if f.rule == "unanswered" and ev.get("unanswered_streak"):
        return f"your last {ev['unanswered_streak']} messages are unanswered: give them room"
    if f.rule == "one_way_ask":
        if ev.get("side") == "me":
            return "you mostly get in touch when you need something: give first"
        return "mostly gets in touch to ask for something: propose a real conversation"
    return f.summary or f.explanation


def action(f: Finding) -> str:
    """The suggestion's first clause: "Reconnect by offering something useful"."""
    return f.suggestion.split(":", 1)[0]


def reminder_cell(f: Finding, reminders: Mapping[str, datetime] | None, tz: tzinfo = UTC) -> str:
    """Where the finding stands with the calendar, in a few words."""
    if f.status != "open":
        return f"{f.status} {f.status_note}".strip()
    if reminders is not None and f.key in reminders:
        return f"reminder {reminders[f.key].astimezone(tz):%d %b %H:%M}"
    if f.remind:
        return "reminder" if reminders is None else "reminder next run"
    if f.over_budget:
        return "over weekly budget"
    return "review only"


def proposal_line(p: Proposal) -> str:
    """A sent folder's majority sender, asked about (``check``, ``status``)."""
    return f"yours? {p.address} {p.reason}: kithkeep me add {p.address}"


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, with an ellipsis when cut."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return set_cell_size(text, max(width, 0))
    return set_cell_size(text, width - 1) + "\u2026"


def findings_table(
    findings: Sequence[Finding],
    now: datetime,
    *,
    reminders: Mapping[str, datetime] | None = None,
    tz: tzinfo = UTC,
) -> Table:
    """One row per finding, nothing wrapped (see :func:`findings_view`)."""
    t = Table(title_justify="left", expand=False)
    t.add_column("sev", justify="right", no_wrap=True)
    t.add_column("person", no_wrap=True)
    t.add_column("finding", no_wrap=True)
    t.add_column("why", no_wrap=True)
    t.add_column("suggested", no_wrap=True)
    t.add_column("reminder", no_wrap=True)
    for f in findings:
        t.add_row(
            str(f.severity),
            f.person_name,
            label(f.rule),
            why(f, now),
            action(f),
            reminder_cell(f, reminders, tz),
            style="dim" if f.status != "open" else None,
        )
    return t


def findings_lines(
    findings: Sequence[Finding],
    now: datetime,
    width: int,
    *,
    reminders: Mapping[str, datetime] | None = None,
    tz: tzinfo = UTC,
) -> list[Text]:
    """Two lines per finding, each at most ``width`` cells::

         72  neglected          Ana Silva                      reminder 08 Dec 09:00
             last contact 39 days ago; due every 21 days

    The rule's label is never cut; the name, and then the why, give way.
    """
    indent = 5
    out: list[Text] = []
    for f in findings:
        style = "dim" if f.status != "open" else ""
        head = f"{f.severity:>3}  {label(f.rule):<{LABEL_WIDTH}}  "
        right = reminder_cell(f, reminders, tz)
        room = width - cell_len(head) - cell_len(right) - 2
        second = why(f, now)
        if room >= min(12, cell_len(f.person_name)):
            name = fit(f.person_name, room)
            gap = " " * (width - cell_len(head) - cell_len(name) - cell_len(right))
            first = Text.assemble(head, (name, "bold"), gap, right, style=style)
        else:  # narrow: the reminder moves under the why
            name = fit(f.person_name, max(width - cell_len(head), 1))
            first = Text.assemble(head, (name, "bold"), style=style)
            second = f"{second} \u00b7 {right}"
        out.append(first)
        out.append(Text(" " * indent + fit(second, width - indent), style=style or "none"))
    return out


def findings_view(
    findings: Sequence[Finding],
    now: datetime,
    out: Console,
    *,
    reminders: Mapping[str, datetime] | None = None,
    tz: tzinfo = UTC,
) -> list[RenderableType]:
    """The table when it fits ``out``'s width unwrapped, else the two-line list."""
    table = findings_table(findings, now, reminders=reminders, tz=tz)
    if table_width(table) <= out.width:
        return [table]
    return list(findings_lines(findings, now, out.width, reminders=reminders, tz=tz))


def table_width(table: Table) -> int:
    """The width a table of plain text cells needs with nothing wrapped: its widest cell
    of each column, padding and rules (what rich's measure gives, without rendering
    every cell: seconds for thousands of findings)."""
    widths = [
        max([cell_len(str(col.header)), *(cell_len(str(c)) for c in col.cells)])
        for col in table.columns
    ]
    left, right = table.padding[3], table.padding[1]
    edges = 2 if table.box is not None and table.show_edge else 0
    rules = len(widths) - 1 if table.box is not None else 0
    padding = len(widths) * (left + right) - (0 if table.pad_edge else left + right)
    return sum(widths) + padding + edges + rules


def print_lines(out: Console, items: Sequence[RenderableType | str]) -> None:
    """Print without rich's wrapping or markup: the lines are already fitted."""
    for item in items:
        out.print(item, markup=False, no_wrap=True, overflow="ellipsis", crop=True)


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
