"""Core commands: init, check, sync, run, demo."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import Any

import click

from kithkeep import clock, paths
from kithkeep.cli.app import App, print_json, stderr_is_terminal, stdout_is_terminal
from kithkeep.cli.render import (
    console,
    findings_view,
    print_lines,
    progress_bar,
    proposal_line,
)
from kithkeep.config import Config, load_config
from kithkeep.connectors import registry
from kithkeep.daemon import status as run_status
from kithkeep.daemon.lock import StoreLock
from kithkeep.errors import ConfigError, KithkeepError, SinkError, SourceError, UsageError
from kithkeep.pipeline import (
    RunReport,
    me_report,
    reminder_index,
    run_once,
    sync_all,
)
from kithkeep.store import Store

DEMO_MARK = "# kithkeep demo configuration"


def _report_json(report: RunReport) -> dict[str, object]:
    a = report.analysis
    return {
        "synced": [
            {"source": r.source, "records": r.records, "flag_updates": r.flag_updates}
            for r in report.synced
        ],
        "source_errors": report.source_errors,
        "people": a.people_total if a else 0,
        "ties": a.ties_total if a else 0,
        "findings": [
            {
                "rule": f.rule,
                "person": f.person_id,
                "name": f.person_name,
                "severity": f.severity,
                "due": f.due.isoformat(),
                "title": f.title,
                "remind": f.remind,
                "status": f.status,
            }
            for f in report.findings
        ],
        "reminders": report.reminders,
        "sink": report.sink,
    }


def _changes(report: RunReport) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(report.reminders.items())) or "no change"


def summary_line(report: RunReport) -> str:
    """The whole run in one line: what the timer's journal keeps."""
    synced = ", ".join(f"{r.source} +{r.records}" for r in report.synced) or "nothing synced"
    failed = f" ({len(report.source_errors)} failed)" if report.source_errors else ""
    a = report.analysis
    people = f"{a.people_total} people, {a.ties_total} ties" if a else ""
    open_ = [f for f in report.findings if f.status == "open"]
    findings = f"{len(open_)} need attention ({sum(f.remind for f in open_)} with a reminder)"
    sink = f"reminders in {report.sink}: {_changes(report)}" if report.sink else "no sink"
    return f"synced {synced}{failed}; {people}; {findings}; {sink}"


def _starts(store: Store, config: Config) -> dict[str, datetime]:
    """Where each finding's reminder sits in the calendar, by finding key."""
    return {k: r.start for k, r in reminder_index(store, config.reminders.sink).items()}


def _print_report(
    report: RunReport, now: datetime, tz: tzinfo, reminders: dict[str, datetime]
) -> None:
    for r in report.synced:
        console.print(f"synced [bold]{r.source}[/]: {r.records} new, {r.flag_updates} flag changes")
    for name, err in report.source_errors.items():
        console.print(f"[red]source {name} failed:[/] {err}", soft_wrap=True)
    a = report.analysis
    if a is not None:
        console.print(
            f"{a.people_total} people, {a.ties_total} ties "
            f"({a.skipped_bulk} bulk messages left out)"
        )
    open_ = [f for f in report.findings if f.status == "open"]
    if open_:
        console.print("[bold]Who needs attention[/]")
        print_lines(console, findings_view(open_, now, console, reminders=reminders, tz=tz))
    else:
        console.print("Nobody needs attention right now.")
    if report.sink:
        console.print(f"reminders in sink [bold]{report.sink}[/]: {_changes(report)}")


# ------------------------------------------------------------------ check

# Domains reserved for examples (RFC 2606): a value on one is a placeholder
# from the example config or the README, not the user's own.
_EXAMPLE_DOMAIN = re.compile(r"(^|\.)example(\.(org|com|net))?$", re.IGNORECASE)
_URL_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?([^/:?#]+)", re.IGNORECASE)


def _placeholder(key: str, value: str) -> bool:
    """``you@example.org``, ``imap.example.org``, ``https://dav.example.org/``."""
    if "@" in value and "://" not in value:
        local, _, domain = value.rpartition("@")
        return local.lower() == "you" and bool(_EXAMPLE_DOMAIN.search(domain))
    if key in ("host", "url"):
        m = _URL_HOST.match(value)
        host = m.group(1) if m else value
        return bool(_EXAMPLE_DOMAIN.search(host.strip().rstrip(".")))
    return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def placeholders(config: Config) -> list[str]:
    """Values still as the example config (``kithkeep init``) or the README give them."""
    found = [
        f"[general] me: {a!r} is the example's placeholder"
        for a in config.general.me
        if _placeholder("me", a)
    ]
    for cc in (*config.sources, *config.sinks):
        for key, value in cc.options.items():
            for text in _strings(value):
                if _placeholder(key, text):
                    found.append(f"[{cc.section}] {key}: {text!r} is the example's placeholder")
    return found


def _check_item(kind: str, name: str, ctype: str, run: Any) -> dict[str, Any]:
    try:
        scopes = run()
    except KithkeepError as exc:
        return {"kind": kind, kind: name, "type": ctype, "ok": False, "error": exc.format_message()}
    return {
        "kind": kind,
        kind: name,
        "type": ctype,
        "ok": True,
        "scopes": [{"name": s.name, "count": s.count, "note": s.note} for s in scopes],
    }


def _check_source(config: Config, cc: Any) -> dict[str, Any]:
    source = registry.build_source(config, cc)
    try:
        return _check_item("source", cc.name, cc.type, source.check)
    finally:
        source.close()


def _check_sink(config: Config, cc: Any) -> dict[str, Any]:
    sink = registry.build_sink(config, cc)
    try:
        item = _check_item("sink", cc.name, cc.type, sink.check)
    finally:
        sink.close()
    item["used"] = cc.name == config.reminders.sink
    return item


def _print_check(items: list[dict[str, Any]], problems: list[str]) -> None:
    for item in items:
        kind = item["kind"]
        used = " (reminders go here)" if item.get("used") else ""
        head = f"{kind} {item[kind]} ({item['type']}){used}"
        if not item["ok"]:
            click.echo(f"{head}: FAILED: {item['error']}")
            continue
        click.echo(f"{head}: ok")
        unit = "reminders" if kind == "sink" else "items"
        for s in item["scopes"]:
            count = "" if s["count"] is None else f": {s['count']} {unit}"
            note = f" [{s['note']}]" if s["note"] else ""
            click.echo(f"  {s['name']}{count}{note}")
    for p in problems:
        click.echo(f"config: FAILED: {p}")


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--force", is_flag=True, help="Overwrite an existing config file.")
    @click.pass_obj
    def init(app: App, force: bool) -> None:
        """Write a commented config file to edit (the example config)."""
        target = Path(app.config_path) if app.config_path else paths.config_file()
        if target.exists() and not force:
            raise UsageError(f"{target} exists", hint="use --force to overwrite it")
        example = resources.files("kithkeep").joinpath("config.example.toml").read_text("utf-8")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_text(example, encoding="utf-8")
        app.say(f"wrote {target}; edit it, then run `kithkeep check`")

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def check(app: App, as_json: bool) -> None:
        """Validate the config, connect to each source and sink, list what will be read.

        A sink is checked as the next run would use it: an .ics file's folder
        exists and is writable, a CalDAV or Google calendar exists or can be
        created, the credentials work. Placeholders left from `kithkeep init`
        (you@example.org) fail the check too.
        """
        config = app.config()
        items = [_check_source(config, cc) for cc in config.sources]
        items += [_check_sink(config, cc) for cc in config.sinks]
        problems = placeholders(config)
        proposed = me_report(config, app.store()).proposals
        if as_json:
            print_json(
                items
                + [{"kind": "config", "ok": False, "error": p} for p in problems]
                + [
                    {
                        "kind": "proposal",
                        "ok": True,
                        "address": p.address,
                        "reason": p.reason,
                        "command": f"kithkeep me add {p.address}",
                    }
                    for p in proposed
                ]
            )
        else:
            _print_check(items, problems)
            for p in proposed:
                click.echo(proposal_line(p))
            if not config.sources:
                click.echo("no sources configured")
            if not config.reminders.sink:
                click.echo("no reminders sink: [reminders] sink is empty, no reminders are written")
        failed = [i for i in items if not i["ok"]]
        if problems:
            raise ConfigError(problems[0], hint=f"edit {config.path}" if config.path else None)
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            error = SinkError if first["kind"] == "sink" else SourceError
            raise error(f"{first['error']}{more}")  # the message names the source or sink

    @cli.command()
    @click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def sync(app: App, sources: tuple[str, ...], as_json: bool) -> None:
        """Fetch new headers and calendar events into the store."""
        config = app.config()
        unknown = set(sources) - {s.name for s in config.sources}
        if unknown:
            raise UsageError(f"no source named {sorted(unknown)[0]!r} in the config")
        registry.preflight(config, set(sources) or None)
        # one process at a time per store: the daemon, run and sync exclude each other
        with (
            StoreLock(config.database_url),
            progress_bar_for(app, as_json) as progress,
        ):
            results, errors, _ = sync_all(
                config,
                app.store(),
                progress=progress,
                only=set(sources) or None,
                log_errors=False,  # the CLI reports them in its one final line
            )
            run_status.record_results(app.store(), [r.source for r in results], errors, clock.now())
        if as_json:
            print_json(
                {
                    "synced": [
                        {"source": r.source, "records": r.records, "flag_updates": r.flag_updates}
                        for r in results
                    ],
                    "source_errors": errors,
                }
            )
        else:
            for r in results:
                app.say(f"synced {r.source}: {r.records} new, {r.flag_updates} flag changes")
        if errors:
            raise SourceError(
                "; ".join(f"{k}: {v}" for k, v in errors.items()),
                hint="the other sources were synced" if results else None,
            )

    @cli.command()
    @click.option("--force", is_flag=True, help="Act even if the reminders sink looks emptied.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def run(app: App, force: bool, as_json: bool) -> None:
        """Sync, analyze, judge and write reminders: the whole job, once.

        On a terminal it shows who needs attention; elsewhere (the timer's
        journal, a pipe) one summary line; with -q nothing but errors.
        """
        now = clock.now()
        config = app.config()
        registry.preflight(config)
        with (
            StoreLock(config.database_url),
            progress_bar_for(app, as_json) as progress,
        ):
            report = run_once(
                config, app.store(), now=now, force=force, progress=progress, log_errors=False
            )
        if as_json:
            print_json(_report_json(report))
        elif app.quiet:
            pass
        elif stdout_is_terminal():
            _print_report(report, now, config.general.tz, _starts(app.store(), config))
        else:
            click.echo(summary_line(report))
        if report.source_errors:
            raise SourceError(
                "; ".join(f"{k}: {v}" for k, v in report.source_errors.items()),
                hint="the others were synced and analyzed" if report.synced else None,
            )

    @cli.command()
    @click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False),
        help="Build the demo here (default: the demo folder in kithkeep's data folder, "
        "rebuilt on each run).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def demo(app: App, directory: str | None, as_json: bool) -> None:
        """Run kithkeep on a built-in sample mailbox and calendar: no account needed.

        The result is kept (say where with --dir), so that you can look
        around: review, review -i, people, show.
        """
        from kithkeep.demo import build_demo

        root = Path(directory) if directory else paths.data_dir() / "demo"
        if directory is None:
            _fresh_demo_dir(root)
        config_path = build_demo(root)
        config = load_config(config_path)
        registry.validate(config)
        now = clock.now()
        with Store.open(config.database_url) as store:
            report = run_once(config, store, now=now)
            starts = _starts(store, config)
        reminders = root / "reminders.ics"
        if as_json:
            print_json({**_report_json(report), "dir": str(root), "reminders_file": str(reminders)})
            return
        if app.quiet:
            return
        console.print(f"Sample mailbox and calendar in {root}", soft_wrap=True, markup=False)
        _print_report(report, now, config.general.tz, starts)
        console.print(
            f"Reminders calendar (subscribe to it in any calendar app): {reminders}",
            soft_wrap=True,
            markup=False,
        )
        console.print(
            f"The demo stays in {root}. Look around:\n"
            f"  kithkeep --config {config_path} review -i\n"
            f"  (or people, show Ana, run: with the same --config)",
            soft_wrap=True,
            markup=False,
        )


def _fresh_demo_dir(root: Path) -> None:
    """Empty the default demo folder, so its dates are today's: only one the demo made."""
    if not root.exists():
        return
    config = root / "config.toml"
    ours = config.is_file() and config.read_text("utf-8", "replace").startswith(DEMO_MARK)
    if not ours:
        raise UsageError(f"{root} exists and is not a kithkeep demo", hint="use --dir DIR")
    # renamed first, so that a demo killed half-way never leaves a half-deleted folder
    trash = Path(tempfile.mkdtemp(prefix=".demo-old-", dir=root.parent))
    root.rename(trash / "demo")
    shutil.rmtree(trash, ignore_errors=True)


def progress_bar_for(app: App, as_json: bool) -> Any:
    return progress_bar(stderr_is_terminal() and not as_json and not app.quiet)
