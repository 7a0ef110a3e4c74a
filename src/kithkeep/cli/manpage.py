"""kithkeep(1), generated from the click commands.

The page in ``man/kithkeep.1`` is this module's output, committed so that
the wheel installs it (``share/man/man1``) without running anything at build
time; a test fails when it is out of date. Regenerate it with::

    python -m kithkeep.cli.manpage > man/kithkeep.1
"""

from __future__ import annotations

import inspect

import click

from kithkeep import __version__

COMMON = {"--config", "--verbose", "--quiet", "--help"}

FILES = (
    ("~/.config/kithkeep/config.toml", "the configuration (kithkeep init writes a commented one)"),
    ("~/.local/share/kithkeep/", "the store (SQLite) and the demo"),
    ("~/.local/state/kithkeep/", "OAuth tokens (mode 0600) and the store's lock"),
    ("~/.config/systemd/user/kithkeep*.{service,timer}", "units of kithkeep service install"),
)


def roff(text: str) -> str:
    """Text for a roff line: backslashes, dashes and a leading dot or quote escaped."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out.startswith((".", "'")) else out


def _paragraphs(help_text: str) -> list[str]:
    """roff lines of a click help text; a ``\\b`` block keeps its lines as they are."""
    out: list[str] = []
    for para in inspect.cleandoc(help_text).split("\n\n"):
        if para.startswith("\b\n"):
            out += [".nf", *(roff(line) for line in para.splitlines()[1:]), ".fi", ".PP"]
        elif para.strip():
            out += [roff(" ".join(para.split())), ".PP"]
    return out


def _options(cmd: click.Command, ctx: click.Context, *, common: bool) -> list[str]:
    lines: list[str] = []
    # --help last: click versions differ in where get_params() puts it
    params = sorted(cmd.get_params(ctx), key=lambda p: p.name == "help")
    for param in params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        if bool(COMMON.intersection(param.opts)) != common:
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        lines += [".TP", f"\\fB{roff(names)}\\fR", roff(help_text)]
    return lines


def _usage(cmd: click.Command, ctx: click.Context) -> str:
    pieces = cmd.collect_usage_pieces(ctx)
    return " ".join(pieces)


def _commands(group: click.Group, ctx: click.Context, prefix: str) -> list[str]:
    lines: list[str] = []
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx, **cmd.context_settings)
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            lines += _commands(cmd, sub, full)
            continue
        lines += [f'.SS "{roff(full)} {roff(_usage(cmd, sub))}"']
        lines += _paragraphs(cmd.help or "")
        lines += _options(cmd, sub, common=False)
    return lines


def manpage(cli: click.Group) -> str:
    ctx = click.Context(cli, info_name="kithkeep", **cli.context_settings)
    first, _, rest = inspect.cleandoc(cli.help or "").partition("\n\n")
    summary = " ".join(first.split()).removeprefix("kithkeep ").rstrip(".")
    lines = [
        f'.TH KITHKEEP 1 "" "kithkeep {__version__}" "User Commands"',
        ".SH NAME",
        f"kithkeep \\- {roff(summary)}",
        ".SH SYNOPSIS",
        ".B kithkeep",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        *_paragraphs(rest),
    ]
    lines += [
        roff(
            "PERSON is an id, an address, a name or a part of one; a whole word of a name "
            "wins over a part of one. Every listing takes --json; every decision takes "
            "--undo and --json."
        ),
        ".SH OPTIONS",
        roff("Accepted before the command and after it."),
    ]
    lines += _options(cli, ctx, common=True)
    lines += [".SH COMMANDS"]
    lines += _commands(cli, ctx, "kithkeep")
    lines += [".SH EXIT STATUS", ".TP", "0", "success", ".TP", "1",
              roff("a runtime failure: a source or the reminders sink failed"), ".TP", "2",
              roff("a usage or configuration error")]  # fmt: skip
    lines += [".SH ENVIRONMENT", ".TP", "\\fBKITHKEEP_CONFIG\\fR",
              roff("the config file, when --config is not given")]  # fmt: skip
    lines += [".SH FILES"]
    for path, what in FILES:
        lines += [".TP", f"\\fI{roff(path)}\\fR", roff(what)]
    lines += [".SH SEE ALSO", "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), "
              "\\fBsystemd.exec\\fR(5)"]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from kithkeep.cli import cli as _cli

    click.echo(manpage(_cli), nl=False)
