"""People: who kithkeep knows, with their statistics."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from kithkeep.cli.app import App, print_json
from kithkeep.cli.render import console, people_table
from kithkeep.model.analyze import load_people


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--ties", is_flag=True, help="Only established two-way ties.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
    @click.pass_obj
    def people(app: App, ties: bool, as_json: bool) -> None:
        """List people with their statistics (from the last analysis)."""
        found = load_people(app.store())
        if ties:
            found = [p for p in found if p.is_tie]
        if as_json:
            print_json([p.to_json() for p in found])
        else:
            console.print(people_table(found, datetime.now(UTC)))
