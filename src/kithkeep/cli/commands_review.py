"""Review and decisions: review (and ``review -i``), snooze, dismiss, done, ignore,
cadence, tier.

``review`` judges the last analysis again with the current clock and the
current decisions, so a decision shows at once; the calendar follows on the
next ``run`` (or daemon cycle). Decisions name a person by their primary
address, so they survive rebuilding the derived tables.

Every decision command takes ``--undo`` (one undo style) and ``--json`` (the
decision as stored, or the list of decisions undone).

``review --json`` is a public interface, documented in docs/json.md::

    [{"person": {"id", "name", "addresses"}, "rule", "severity", "due", "title",
      "explanation", "evidence", "status", "reminder": null | {"sink", "start", "uid"}}]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from kithkeep import clock
from kithkeep.cli import decide
from kithkeep.cli.app import App, print_json
from kithkeep.cli.complete import complete_person
from kithkeep.cli.render import console, findings_view, print_lines
from kithkeep.errors import UsageError
from kithkeep.model.merges import suggest_merges
from kithkeep.model.stats import TIERS, PersonStats
from kithkeep.pipeline import ReminderInfo, find_person, judge_stored, reminder_index
from kithkeep.records import DecisionRecord
from kithkeep.rules.base import Finding
from kithkeep.rules.engine import RULE_NAMES

RULE_CHOICE = click.Choice(RULE_NAMES)
# words that meant "undo" before --undo was everywhere; still understood
AUTO = ("auto", "off", "none")


def finding_json(
    f: Finding, person: PersonStats | None, reminder: ReminderInfo | None
) -> dict[str, Any]:
    """One element of ``review --json``; keep in step with docs/json.md."""
    return {
        "person": {
            "id": f.person_id,
            "name": f.person_name if person is None else (person.name or f.person_name),
            "addresses": list(person.addresses) if person else [],
        },
        "rule": f.rule,
        "severity": f.severity,
        "due": f.due.isoformat(),
        "title": f.title,
        "explanation": f.explanation,
        "evidence": f.evidence,
        "status": f.status,
        "reminder": (
            None
            if reminder is None
            else {"sink": reminder.sink, "start": reminder.start.isoformat(), "uid": reminder.uid}
        ),
    }


def _person(app: App, query: str) -> PersonStats:
    return find_person(app.config(), app.store(), clock.now(), query)


def _report(app: App, as_json: bool, decision: DecisionRecord, message: str) -> None:
    if as_json:
        print_json(decide.decision_json(decision))
    else:
        app.say(message)


def _report_undo(app: App, as_json: bool, undone: list[DecisionRecord], message: str) -> None:
    if as_json:
        print_json(decide.inactive(undone))
    else:
        app.say(message)


def person_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("person", shell_complete=complete_person)(f)


undo_option = click.option("--undo", is_flag=True, help="Take the decision back.")
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the decision as stored (see docs/json.md)."
)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--rule", type=RULE_CHOICE, help="Only this rule's findings.")
    @click.option("--all", "show_all", is_flag=True, help="Include snoozed and dismissed findings.")
    @click.option(
        "-i",
        "--interactive",
        is_flag=True,
        help="Step through the open findings, one key each: snooze, dismiss, done, ...",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable (see docs/json.md).")
    @click.pass_obj
    def review(
        app: App, rule: str | None, show_all: bool, interactive: bool, as_json: bool
    ) -> None:
        """Who needs attention, highest severity first, each with its reason.

        At any width: a table when it fits the terminal, else two lines per
        finding. `kithkeep show PERSON` has the details; `review -i` takes
        them one at a time.
        """
        config = app.config()
        store = app.store()
        now = clock.now()
        people, findings = judge_stored(config, store, now)
        decisions = store.active_decisions()
        by_id = {p.person_id: p for p in people}
        selected = [f for f in findings if rule is None or f.rule == rule]
        hidden = sum(1 for f in selected if f.status != "open")
        if not show_all or interactive:
            selected = [f for f in selected if f.status == "open"]
        reminders = reminder_index(store, config.reminders.sink)
        if as_json:
            print_json(
                [finding_json(f, by_id.get(f.person_id), reminders.get(f.key)) for f in selected]
            )
            return
        if not people:
            console.print("No analysis yet: run `kithkeep run` first.")
            return
        if interactive:
            from kithkeep.cli.triage import Triage

            Triage(app, people, findings, now).run(selected)
            return
        if not selected:
            app.say("Nobody needs attention right now.")
        else:
            starts = {k: r.start for k, r in reminders.items()}
            print_lines(
                console,
                findings_view(selected, now, console, reminders=starts, tz=config.general.tz),
            )
        if not app.quiet:
            if hidden and not show_all:
                console.print(f"{hidden} snoozed or dismissed (--all shows them).")
            if selected:
                console.print("More: kithkeep show PERSON; kithkeep review -i")
            merges = len(suggest_merges([p for p in people if not p.automated], decisions))
            if merges:
                # short: it reads whole at 60 columns
                console.print(
                    f"{merges} possible merge{'s' if merges > 1 else ''}: "
                    "kithkeep people --suggest-merges",
                    soft_wrap=True,
                )

    @cli.command()
    @person_argument
    @click.option("--for", "span", metavar="SPAN", help="Hide for a span: 3d, 2w, 1m.")
    @click.option("--until", "until_text", metavar="DATE", help="Hide until this date.")
    @click.option("--rule", type=RULE_CHOICE, help="Only this rule (default: every rule).")
    @undo_option
    @click.option("--clear", is_flag=True, hidden=True, help="The same as --undo.")
    @json_option
    @click.pass_obj
    def snooze(
        app: App,
        person: str,
        until_text: str | None,
        span: str | None,
        rule: str | None,
        undo: bool,
        clear: bool,
        as_json: bool,
    ) -> None:
        """Hide a person's findings and reminders until a date."""
        p = _person(app, person)
        if undo or clear:
            n = decide.undo(app.store(), "snooze", p.addresses, rule)
            _report_undo(app, as_json, n, f"removed {len(n)} snooze(s) for {decide.who(p)}")
            return
        if (until_text is None) == (span is None):
            raise UsageError("give either --for SPAN (like 2w) or --until DATE")
        now = clock.now()
        until = (
            decide.parse_when(until_text, app.config().general.tz)
            if until_text is not None
            else now + timedelta(days=decide.span_days(span or ""))
        )
        d = decide.snooze(app.store(), p, until, rule, now)
        what = f"{rule} findings" if rule else "all findings"
        _report(
            app,
            as_json,
            d,
            f"snoozed {what} for {decide.who(p)} until {until:%Y-%m-%d %H:%M} UTC; "
            "reminders go on the next run",
        )

    @cli.command()
    @person_argument
    @click.option("--rule", type=RULE_CHOICE, help="Only this rule (default: every rule).")
    @undo_option
    @json_option
    @click.pass_obj
    def dismiss(app: App, person: str, rule: str | None, undo: bool, as_json: bool) -> None:
        """Dismiss a person's current findings until there is new evidence."""
        config = app.config()
        store = app.store()
        now = clock.now()
        p = find_person(config, store, now, person)
        # their own findings: the rules and episodes of one person do not depend on others
        findings = judge_stored(config, store, now, [p])[1]
        if undo:
            n = decide.undo(store, "dismiss", p.addresses, rule)
            _report_undo(app, as_json, n, f"removed {len(n)} dismissal(s) for {decide.who(p)}")
            return
        d = decide.dismiss(store, p, findings, rule, now)
        rules = sorted({f.rule for f in findings if f.person_id == p.person_id})
        what = ", ".join(r for r in rules if rule is None or r == rule) or "no current findings"
        _report(app, as_json, d, f"dismissed for {decide.who(p)} ({what}) until new evidence")

    @cli.command()
    @person_argument
    @click.option("--note", help="What happened (a call, a coffee).")
    @click.option("--on", "on_text", metavar="DATE", help="When it happened (default: now).")
    @undo_option
    @json_option
    @click.pass_obj
    def done(
        app: App, person: str, note: str | None, on_text: str | None, undo: bool, as_json: bool
    ) -> None:
        """Record contact that happened outside mail: it resets the person's findings."""
        p = _person(app, person)
        if undo:
            n = decide.undo(app.store(), "done", p.addresses)
            _report_undo(
                app, as_json, n, f"removed {len(n)} recorded contact(s) with {decide.who(p)}"
            )
            return
        now = clock.now()
        at = decide.parse_when(on_text, app.config().general.tz) if on_text else now
        d = decide.done(app.store(), p, at, note, now)
        _report(app, as_json, d, f"recorded contact with {decide.who(p)} on {at:%Y-%m-%d}")

    @cli.command()
    @person_argument
    @undo_option
    @json_option
    @click.pass_obj
    def ignore(app: App, person: str, undo: bool, as_json: bool) -> None:
        """Never treat a person as a tie, never flag them."""
        p = _person(app, person)
        if undo:
            n = decide.undo(app.store(), "ignore", p.addresses)
            _report_undo(
                app, as_json, n, f"no longer ignoring {decide.who(p)} from the next run on"
            )
            return
        d = decide.ignore(app.store(), p, clock.now())
        _report(
            app,
            as_json,
            d,
            f"ignoring {decide.who(p)} from the next run on; no findings about them",
        )

    @cli.command()
    @person_argument
    @click.argument("span", metavar="[SPAN]", required=False)
    @undo_option
    @json_option
    @click.pass_obj
    def cadence(app: App, person: str, span: str | None, undo: bool, as_json: bool) -> None:
        """Set how often you want to be in touch: 30d, 6w, 3m (--undo: inferred again)."""
        p = _person(app, person)
        if undo or (span is not None and span.strip().lower() in AUTO):
            n = decide.undo(app.store(), "cadence", p.addresses)
            _report_undo(app, as_json, n, f"cadence for {decide.who(p)} is inferred again")
            return
        if not span:
            raise UsageError("give a SPAN like 30d, 6w or 3m, or --undo")
        days = decide.span_days(span)
        d = decide.cadence(app.store(), p, days, clock.now())
        _report(app, as_json, d, f"cadence for {decide.who(p)}: every {days:g} days")

    @cli.command()
    @person_argument
    @click.argument("tier_name", metavar="[inner|close|wider]", required=False)
    @undo_option
    @json_option
    @click.pass_obj
    def tier(app: App, person: str, tier_name: str | None, undo: bool, as_json: bool) -> None:
        """Set a person's tier, which makes them a tie (--undo: inferred again)."""
        name = (tier_name or "").strip().lower()
        if name and name not in (*TIERS, *AUTO):
            raise UsageError(f"tier must be one of {', '.join(TIERS)}, not {tier_name!r}")
        if not name and not undo:
            raise UsageError(f"give a tier ({', '.join(TIERS)}), or --undo")
        p = _person(app, person)
        if undo or name in AUTO:
            n = decide.undo(app.store(), "tier", p.addresses)
            _report_undo(app, as_json, n, f"tier of {decide.who(p)} is inferred again")
            return
        d = decide.tier(app.store(), p, name, clock.now())
        _report(app, as_json, d, f"{decide.who(p)} is now in your {name} tier")
