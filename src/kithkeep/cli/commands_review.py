"""Review and decisions: review, snooze, dismiss, done, ignore, cadence, tier.

``review`` judges the last analysis again with the current clock and the
current decisions, so a decision shows at once; the calendar follows on the
next ``run`` (or daemon cycle). Decisions name a person by their primary
address, so they survive rebuilding the derived tables.

``review --json`` is a public interface, documented in the README::

    [{"person": {"id", "name", "addresses"}, "rule", "severity", "due", "title",
      "explanation", "evidence", "status", "reminder": null | {"sink", "start", "uid"}}]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from kithkeep.cli.app import App, print_json
from kithkeep.cli.render import console, findings_table
from kithkeep.decisions import dismissal_value, parse_span_days
from kithkeep.errors import UsageError
from kithkeep.model.lookup import resolve_person
from kithkeep.model.stats import TIERS, PersonStats
from kithkeep.pipeline import ReminderInfo, judge_stored, load_people, reminder_index
from kithkeep.rules.base import Finding
from kithkeep.rules.engine import RULE_NAMES

RULE_CHOICE = click.Choice(RULE_NAMES)


def finding_json(
    f: Finding, person: PersonStats | None, reminder: ReminderInfo | None
) -> dict[str, Any]:
    """One element of ``review --json``; keep in step with the README."""
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


def _people(app: App) -> list[PersonStats]:
    people = load_people(app.config(), app.store(), datetime.now(UTC))
    if not people:
        raise UsageError(
            "no people known yet", hint="run `kithkeep run` (or `kithkeep sync`) first"
        )
    return people


def _person(app: App, query: str) -> PersonStats:
    return resolve_person(_people(app), query)


def _who(p: PersonStats) -> str:
    return f"{p.name or p.addresses[0]} ({p.person_id})"


def _primary(p: PersonStats) -> str:
    if not p.addresses:
        raise UsageError(f"{p.person_id} has no address to attach a decision to")
    return p.addresses[0]


def _parse_when(app: App, text: str) -> datetime:
    """A date (start of that day) or date and time, in the user's time zone."""
    tz = app.config().general.tz
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=tz).astimezone(UTC)
        except ValueError:
            continue
    raise UsageError(f"{text!r} is not a date like 2026-12-24 or 2026-12-24T09:00")


def _span(text: str) -> float:
    try:
        return parse_span_days(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--rule", type=RULE_CHOICE, help="Only this rule's findings.")
    @click.option("--all", "show_all", is_flag=True, help="Include snoozed and dismissed findings.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
    @click.pass_obj
    def review(app: App, rule: str | None, show_all: bool, as_json: bool) -> None:
        """Who needs attention, highest severity first, each with its reason in numbers."""
        config = app.config()
        store = app.store()
        now = datetime.now(UTC)
        people, findings = judge_stored(config, store, now)
        by_id = {p.person_id: p for p in people}
        selected = [f for f in findings if rule is None or f.rule == rule]
        hidden = sum(1 for f in selected if f.status != "open")
        if not show_all:
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
        if selected:
            starts = {k: r.start for k, r in reminders.items()}
            console.print(
                findings_table(selected, now, "Review", reminders=starts, show_all=show_all)
            )
        else:
            console.print("Nobody needs attention right now.")
        if hidden and not show_all:
            console.print(f"{hidden} snoozed or dismissed (--all shows them).")

    @cli.command()
    @click.argument("person")
    @click.option("--until", "until_text", metavar="DATE", help="Hide until this date.")
    @click.option("--for", "span", metavar="SPAN", help="Hide for a span: 3d, 2w, 1m.")
    @click.option("--rule", type=RULE_CHOICE, help="Only this rule (default: every rule).")
    @click.option("--clear", is_flag=True, help="Remove the snooze.")
    @click.pass_obj
    def snooze(
        app: App,
        person: str,
        until_text: str | None,
        span: str | None,
        rule: str | None,
        clear: bool,
    ) -> None:
        """Hide a person's findings and reminders until a date."""
        p = _person(app, person)
        if clear:
            n = app.store().deactivate_decisions_for("snooze", p.addresses, rule)
            click.echo(f"removed {n} snooze(s) for {_who(p)}")
            return
        if (until_text is None) == (span is None):
            raise UsageError("give either --until DATE or --for SPAN (like 2w)")
        now = datetime.now(UTC)
        until = (
            _parse_when(app, until_text)
            if until_text is not None
            else now + timedelta(days=_span(span or ""))
        )
        if until <= now:
            raise UsageError(f"{until:%Y-%m-%d %H:%M} is in the past")
        app.store().add_decision(
            "snooze", _primary(p), rule=rule, until=until, now=now, supersede=True
        )
        what = f"{rule} findings" if rule else "all findings"
        click.echo(
            f"snoozed {what} for {_who(p)} until {until:%Y-%m-%d %H:%M} UTC; "
            "reminders go on the next run"
        )

    @cli.command()
    @click.argument("person")
    @click.option("--rule", type=RULE_CHOICE, help="Only this rule (default: every rule).")
    @click.option("--undo", is_flag=True, help="Remove the dismissal.")
    @click.pass_obj
    def dismiss(app: App, person: str, rule: str | None, undo: bool) -> None:
        """Dismiss a person's current findings until there is new evidence."""
        config = app.config()
        store = app.store()
        now = datetime.now(UTC)
        people, findings = judge_stored(config, store, now)
        if not people:
            raise UsageError("no people known yet", hint="run `kithkeep run` first")
        p = resolve_person(people, person)
        if undo:
            n = store.deactivate_decisions_for("dismiss", p.addresses, rule)
            click.echo(f"removed {n} dismissal(s) for {_who(p)}")
            return
        # the evidence dismissed: the episodes of the findings the user saw
        episodes: dict[str, list[str]] = {}
        for f in findings:
            if f.person_id == p.person_id and (rule is None or f.rule == rule):
                episodes.setdefault(f.rule, []).append(f.episode)
        store.add_decision(
            "dismiss",
            _primary(p),
            rule=rule,
            value=dismissal_value(episodes, p.last_contact),
            now=now,
            supersede=True,
        )
        what = ", ".join(sorted(episodes)) or "no current findings"
        click.echo(f"dismissed for {_who(p)} ({what}) until new evidence")

    @cli.command()
    @click.argument("person")
    @click.option("--note", help="What happened (a call, a coffee).")
    @click.option("--on", "on_text", metavar="DATE", help="When it happened (default: now).")
    @click.pass_obj
    def done(app: App, person: str, note: str | None, on_text: str | None) -> None:
        """Record contact that happened outside mail: it resets the person's findings."""
        p = _person(app, person)
        now = datetime.now(UTC)
        at = _parse_when(app, on_text) if on_text else now
        if at > now:
            raise UsageError("--on cannot be in the future")
        app.store().add_decision("done", _primary(p), value=at.isoformat(), note=note, now=now)
        click.echo(f"recorded contact with {_who(p)} on {at:%Y-%m-%d}")

    @cli.command()
    @click.argument("person")
    @click.option("--undo", is_flag=True, help="Stop ignoring them.")
    @click.pass_obj
    def ignore(app: App, person: str, undo: bool) -> None:
        """Never treat a person as a tie, never flag them."""
        p = _person(app, person)
        if undo:
            n = app.store().deactivate_decisions_for("ignore", p.addresses)
            click.echo(f"no longer ignoring {_who(p)} from the next run on ({n} undone)")
            return
        app.store().add_decision("ignore", _primary(p), supersede=True)
        click.echo(f"ignoring {_who(p)} from the next run on; no findings about them")

    @cli.command()
    @click.argument("person")
    @click.argument("span", metavar="SPAN|auto")
    @click.pass_obj
    def cadence(app: App, person: str, span: str) -> None:
        """Set how often you want to be in touch (30d, 6w, 3m); `auto` goes back to inferred."""
        p = _person(app, person)
        if span.strip().lower() in ("auto", "off", "none"):
            n = app.store().deactivate_decisions_for("cadence", p.addresses)
            click.echo(f"cadence for {_who(p)} is inferred again ({n} decision(s) undone)")
            return
        days = _span(span)
        app.store().add_decision("cadence", _primary(p), value=f"{days:g}", supersede=True)
        click.echo(f"cadence for {_who(p)}: every {days:g} days")

    @cli.command()
    @click.argument("person")
    @click.argument("tier_name", metavar="{inner|close|wider|auto}")
    @click.pass_obj
    def tier(app: App, person: str, tier_name: str) -> None:
        """Set a person's tier (makes them a tie); `auto` goes back to inferred."""
        name = tier_name.strip().lower()
        if name not in (*TIERS, "auto"):
            raise UsageError(f"tier must be one of {', '.join(TIERS)} or auto, not {tier_name!r}")
        p = _person(app, person)
        if name == "auto":
            n = app.store().deactivate_decisions_for("tier", p.addresses)
            click.echo(f"tier of {_who(p)} is inferred again ({n} decision(s) undone)")
            return
        app.store().add_decision("tier", _primary(p), value=name, supersede=True)
        click.echo(f"{_who(p)} is now in your {name} tier")
