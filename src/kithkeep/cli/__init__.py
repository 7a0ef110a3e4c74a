"""The ``kithkeep`` command line.

One error handler: every :class:`KithkeepError` becomes one actionable line on
stderr and its exit code (0 ok, 1 runtime failure, 2 usage or configuration);
``--verbose`` adds the traceback. Commands live in one module per area and
register themselves on the group below.
"""

from __future__ import annotations

import sys
import traceback

import click

from kithkeep import __version__
from kithkeep.cli import (
    commands_calendar,
    commands_core,
    commands_daemon,
    commands_people,
    commands_review,
)
from kithkeep.cli.app import App
from kithkeep.errors import KithkeepError
from kithkeep.logsetup import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kithkeep")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $KITHKEEP_CONFIG, then the platform config folder).",
)
@click.option("-v", "--verbose", is_flag=True, help="More log output, and tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """kithkeep keeps your relationships from going cold.

    It reads the headers of your mail and your calendar, works out who you
    are drifting away from, and writes follow-up reminders into your calendar.
    Try `kithkeep demo` first.
    """
    setup_logging(verbose)
    ctx.obj = App(config_path=config_path, verbose=verbose)
    ctx.call_on_close(ctx.obj.close)


for module in (commands_core, commands_people, commands_review, commands_calendar, commands_daemon):
    module.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and translate errors into one line and an exit code."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="kithkeep", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("kithkeep: aborted", err=True)
        sys.exit(1)
    except KithkeepError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"kithkeep: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("kithkeep: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, traceback with --verbose
        if verbose:
            traceback.print_exc()
        click.echo(
            f"kithkeep: internal error: {type(exc).__name__}: {exc} (--verbose shows where)",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)
