"""The ``kithkeep`` command line.

One error handler: every :class:`KithkeepError` becomes one actionable line on
stderr and its exit code (0 ok, 1 runtime failure, 2 usage or configuration);
``--verbose`` adds the traceback. Commands live in one module per area and
register themselves on the group below; ``--config``, ``-v`` and ``-q`` are
then given to every command too, so they work before or after its name.
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
    commands_service,
    commands_shell,
)
from kithkeep.cli.app import App, add_common_options, common_options
from kithkeep.errors import KithkeepError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kithkeep")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """kithkeep keeps your relationships from going cold.

    It reads the headers of your mail and your calendar, works out who you
    are drifting away from, and writes follow-up reminders into your calendar.
    Try `kithkeep demo` first.
    """
    app = ctx.ensure_object(App)
    app.setup_logging()
    ctx.call_on_close(app.close)


cli.params.extend(common_options())

for module in (
    commands_core,
    commands_people,
    commands_review,
    commands_calendar,
    commands_daemon,
    commands_service,
    commands_shell,
):
    module.register(cli)

# after every command is registered: the commands that read no config file
add_common_options(cli, without_config=frozenset({"demo", "completion"}))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and translate errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
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
