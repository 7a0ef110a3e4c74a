"""Core commands: init, check, sync, run, demo."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import click

from kithkeep import paths
from kithkeep.cli.app import App, print_json, stderr_is_terminal
from kithkeep.cli.render import console, findings_table, progress_bar
from kithkeep.config import load_config
from kithkeep.connectors import registry
from kithkeep.daemon import status as run_status
from kithkeep.daemon.lock import StoreLock
from kithkeep.errors import KithkeepError, SourceError, UsageError
from kithkeep.pipeline import RunReport, judge_stored, run_once, sync_all
from kithkeep.store import Store


def _report_json(report: RunReport) -> dict[str, object]:
    a = report.analysis
    return {
        "synced": [
            {"source": r.source, "records": r.records, "flag_updates": r.flag_updates}
            for r in report.synced
        ],
        "source_errors": report.source_errors,
        "people": len(a.people) if a else 0,
        "ties": sum(p.is_tie for p in a.people) if a else 0,
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


def _print_report(report: RunReport, now: datetime) -> None:
    for r in report.synced:
        console.print(f"synced [bold]{r.source}[/]: {r.records} new, {r.flag_updates} flag changes")
    for name, err in report.source_errors.items():
        console.print(f"[red]source {name} failed:[/] {err}")
    a = report.analysis
    if a is not None:
        console.print(
            f"{a.people_total} people, {a.ties_total} ties "
            f"({a.skipped_bulk} bulk messages left out)"
        )
    if report.findings:
        console.print(findings_table(report.findings, now, "Who needs attention"))
    else:
        console.print("Nobody needs attention right now.")
    if report.sink:
        changes = ", ".join(f"{v} {k}" for k, v in sorted(report.reminders.items())) or "no change"
        console.print(f"reminders in sink [bold]{report.sink}[/]: {changes}")


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
        click.echo(f"wrote {target}; edit it, then run `kithkeep check`")

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def check(app: App, as_json: bool) -> None:
        """Validate the config, connect to each source and list what it will read."""
        config = app.config()
        out: list[dict[str, object]] = []
        failed = 0
        for cc in config.sources:
            source = registry.build_source(config, cc)
            try:
                scopes = source.check()
                out.append(
                    {
                        "source": cc.name,
                        "type": cc.type,
                        "ok": True,
                        "scopes": [
                            {"name": s.name, "count": s.count, "note": s.note} for s in scopes
                        ],
                    }
                )
            except KithkeepError as exc:
                failed += 1
                out.append(
                    {"source": cc.name, "type": cc.type, "ok": False, "error": exc.format_message()}
                )
            finally:
                source.close()
        if as_json:
            print_json(out)
        else:
            for item in out:
                if item["ok"]:
                    click.echo(f"{item['source']} ({item['type']}): ok")
                    for s in item["scopes"]:  # type: ignore[attr-defined]
                        count = "?" if s["count"] is None else s["count"]
                        note = f" [{s['note']}]" if s["note"] else ""
                        click.echo(f"  {s['name']}: {count} items{note}")
                else:
                    click.echo(f"{item['source']} ({item['type']}): FAILED: {item['error']}")
            if not config.sources:
                click.echo("no sources configured")
        if failed:
            raise SourceError(f"{failed} of {len(config.sources)} sources failed the check")

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
            progress_bar(stderr_is_terminal() and not as_json) as progress,
        ):
            results, errors, _ = sync_all(
                config,
                app.store(),
                progress=progress,
                only=set(sources) or None,
                log_errors=False,  # the CLI reports them in its one final line
            )
            run_status.record_results(
                app.store(), [r.source for r in results], errors, datetime.now(UTC)
            )
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
                click.echo(f"synced {r.source}: {r.records} new, {r.flag_updates} flag changes")
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
        """Sync, analyze, judge and write reminders: the whole job, once."""
        now = datetime.now(UTC)
        config = app.config()
        registry.preflight(config)
        with (
            StoreLock(config.database_url),
            progress_bar(stderr_is_terminal() and not as_json) as progress,
        ):
            report = run_once(
                config, app.store(), now=now, force=force, progress=progress, log_errors=False
            )
            run_status.record_results(
                app.store(), [r.source for r in report.synced], report.source_errors, now
            )
            # the stored findings' one-line whys ("silent 80 days") are as of when each
            # person was last judged: the table shows them as of now
            report.findings = judge_stored(config, app.store(), now)[1]
        if as_json:
            print_json(_report_json(report))
        else:
            _print_report(report, now)
        if report.source_errors:
            raise SourceError(
                f"{len(report.source_errors)} source(s) failed",
                hint="the others were synced and analyzed" if report.synced else None,
            )

    @cli.command()
    @click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False),
        help="Keep the demo here (default: a temporary folder, removed afterwards).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def demo(directory: str | None, as_json: bool) -> None:
        """Run kithkeep on a built-in sample mailbox and calendar: no account needed."""
        from kithkeep.demo import build_demo

        keep = directory is not None
        root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="kithkeep-demo-"))
        config_path = build_demo(root)
        config = load_config(config_path)
        registry.validate(config)
        now = datetime.now(UTC)
        with Store.open(config.database_url) as store:
            report = run_once(config, store, now=now)
            report.findings = judge_stored(config, store, now)[1]
        reminders = root / "reminders.ics"
        if as_json:
            print_json({**_report_json(report), "dir": str(root), "reminders_file": str(reminders)})
        else:
            console.print(f"Sample mailbox and calendar in [bold]{root}[/]")
            _print_report(report, now)
            console.print(
                f"Reminders calendar: [bold]{reminders}[/] (subscribe to it in any calendar app)"
            )
            if keep:
                console.print(
                    f"Run it again: kithkeep --config {config_path} run   "
                    f"(people: kithkeep --config {config_path} people)"
                )
            else:
                console.print("This demo folder is temporary; use --dir to keep it.")
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
