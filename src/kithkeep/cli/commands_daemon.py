"""CLI commands: daemon (the background service) and status."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.table import Table

from kithkeep.cli.app import App, print_json
from kithkeep.cli.render import console, proposal_line
from kithkeep.config import load_config
from kithkeep.connectors import registry
from kithkeep.logsetup import setup_logging
from kithkeep.model.refresh import State
from kithkeep.pipeline import LAST_CYCLE, me_report

if TYPE_CHECKING:
    from kithkeep.records import RunStatus


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def register(cli: click.Group) -> None:
    @cli.command()
    @click.pass_obj
    def daemon(app: App) -> None:
        """Run in the foreground as a service: sync, analyze and remind every interval.

        Meant for systemd (`kithkeep service install` sets it up): readiness
        and watchdog through sd_notify, SIGTERM stops after the current chunk,
        SIGHUP reloads the config. One daemon per store.
        """
        from kithkeep.daemon.service import Daemon

        # a service's log says what it did: INFO by default, DEBUG with --verbose
        setup_logging(level=logging.DEBUG if app.verbose else logging.INFO)

        def load() -> Any:
            config = load_config(app.config_path)
            registry.validate(config)
            return config

        Daemon(load).run()

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def status(app: App, as_json: bool) -> None:
        """Per source: last success, last error and next run of the daemon."""
        from kithkeep.daemon import status as run_status
        from kithkeep.daemon.lock import StoreLock

        config = app.config()
        pid = StoreLock(config.database_url).held_by()
        saved = run_status.load(app.store())
        rows: list[tuple[str, str, str, RunStatus | None]] = [
            ("source", cc.name, cc.type, saved.get((run_status.SOURCE, cc.name)))
            for cc in config.sources
        ]
        if config.reminders.sink:
            sink = config.sink(config.reminders.sink)
            rows.append(("sink", sink.name, sink.type, saved.get((run_status.SINK, sink.name))))
        store = app.store()
        last = store.get_meta(LAST_CYCLE)
        state = State.load(store)
        counts = state.counts if state else {}
        proposed = me_report(config, store).proposals
        if as_json:
            print_json(
                {
                    "daemon": {"running": pid is not None, "pid": pid if pid and pid > 0 else None},
                    "sources": [_json(kind, name, ctype, st) for kind, name, ctype, st in rows],
                    "analysis": {
                        "last_cycle": json.loads(last) if last else None,
                        "implausible_dates": counts.get("implausible_dates", 0),
                    },
                    "me_proposals": [{"address": p.address, "reason": p.reason} for p in proposed],
                }
            )
            return
        if pid is None:
            console.print("daemon: [yellow]not running[/] (times from its last run, in UTC)")
        else:
            console.print(
                f"daemon: [green]running[/]{f' (pid {pid})' if pid > 0 else ''}; times in UTC"
            )
        # no vertical rules, whole dates, errors under the table: it reads at 80 columns
        t = Table(title_justify="left", box=box.SIMPLE_HEAVY, pad_edge=False)
        for col in ("name", "kind", "type", "last success", "failures", "next run"):
            t.add_column(col, no_wrap=True)
        errors: list[str] = []
        for kind, name, ctype, st in rows:
            if st is None:
                t.add_row(name, kind, ctype, "never", "0", "-")
                continue
            t.add_row(
                name,
                kind,
                ctype,
                _when(st.last_success) if st.last_success else "never",
                str(st.failures),
                _when(st.next_run),
            )
            if st.last_error:
                errors.append(f"{name}: last error {_when(st.last_error_at)}: {st.last_error}")
        console.print(t)
        for line in errors:
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        if last:
            cycle = json.loads(last)
            kind = {"none": "no change", "full": "full rebuild"}.get(cycle["kind"], cycle["kind"])
            console.print(
                f"last analysis: {kind} at {cycle['at'][:16]}, {cycle['seconds']:.2f} s, "
                f"{cycle['people']} people recomputed",
                soft_wrap=True,
            )
        if counts.get("implausible_dates"):
            console.print(
                f"{counts['implausible_dates']} messages with a placeholder or future Date "
                "(dated when they arrived instead)",
                soft_wrap=True,
            )
        for p in proposed:
            console.print(proposal_line(p), soft_wrap=True)


def _json(kind: str, name: str, ctype: str, st: RunStatus | None) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "type": ctype,
        "last_success": _iso(st.last_success) if st else None,
        "last_error": st.last_error if st else None,
        "last_error_at": _iso(st.last_error_at) if st else None,
        "failures": st.failures if st else 0,
        "next_run": _iso(st.next_run) if st else None,
    }
