"""``kithkeep service install|uninstall``: the systemd user units, from the package.

The units ship inside the package (``kithkeep/systemd/``, the one copy).
Installing writes them to ``~/.config/systemd/user/`` with ExecStart set to
the program that is running now (its absolute path: a venv's or pipx's
``bin/kithkeep``), the ``--config`` it was given, and the folders the config
writes outside kithkeep's own (an .ics reminders file, a SQLite store kept
elsewhere) as extra ``ReadWritePaths``; then ``systemctl --user
daemon-reload`` and ``enable --now``. One mode at a time: the long-running
service, or ``--timer`` (a oneshot run every 15 minutes); installing one
takes the other out. ``--dry-run`` prints the units and the commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click

from kithkeep import __version__, paths
from kithkeep.cli.app import App
from kithkeep.config import Config
from kithkeep.errors import ConfigError, KithkeepError

SERVICE = ("kithkeep.service",)
TIMER = ("kithkeep.timer", "kithkeep-run.service")
# the program in the shipped units: what a hand copy of them runs
SHIPPED_PROGRAM = "%h/.local/bin/kithkeep"
RW_LINE = re.compile(r"^ReadWritePaths=.*$", re.MULTILINE)


def unit_dir() -> Path:
    """Where systemd looks for a user's own units."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def shipped(name: str) -> str:
    return resources.files("kithkeep").joinpath("systemd", name).read_text("utf-8")


def program() -> list[str]:
    """The command that runs this kithkeep, by absolute path.

    The console script beside the running interpreter (a venv's or pipx's
    bin/), else the script this process was started as, else the
    interpreter with ``-m kithkeep``. Symlinks are kept: a venv's python
    is one, and resolving it would leave the venv.
    """
    beside = Path(sys.executable).parent / "kithkeep"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "kithkeep" and started.is_file():
        return [str(started.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "kithkeep"]


def quote(arg: str) -> str:
    """One word of a unit file's command line or path list (systemd.syntax(7))."""
    escaped = arg.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"' if re.search(r"[\s'\"]", arg) or not arg else escaped


def writable_folders(config: Config) -> list[Path]:
    """Folders kithkeep writes to that the units' own ReadWritePaths do not cover:
    a SQLite store or an .ics reminders file elsewhere, data and state folders
    moved by $XDG_DATA_HOME or $XDG_STATE_HOME."""
    home = Path.home()
    covered = [(home / ".local" / d / "kithkeep").resolve() for d in ("share", "state")]
    found = [paths.data_dir(), paths.state_dir()]
    url = config.database_url
    if url.startswith("sqlite:///"):
        found.append(Path(url.removeprefix("sqlite:///")).expanduser().parent)
    for cc in config.sinks:
        if cc.type == "ics" and cc.name == config.reminders.sink and cc.options.get("path"):
            found.append(Path(str(cc.options["path"])).expanduser().parent)
    out: list[Path] = []
    for folder in (f.absolute() for f in found):
        inside = any(folder.resolve().is_relative_to(c) for c in covered)
        if not inside and folder not in out:
            out.append(folder)
    return out


def render(name: str, command: list[str], rw: list[Path]) -> str:
    """A shipped unit as installed: ExecStart with ``command``, extra writable folders."""
    text = shipped(name)
    exe = " ".join(quote(a) for a in command)
    text = text.replace(f"ExecStart={SHIPPED_PROGRAM} ", f"ExecStart={exe} ")
    if rw:
        extra = " ".join("-" + quote(str(p)) for p in rw)  # "-": a missing folder is no error
        text = RW_LINE.sub(
            lambda m: f"{m.group(0)}\n# from the config\nReadWritePaths={extra}", text, count=1
        )
    head = f"# Written by `kithkeep service install` (kithkeep {__version__}).\n"
    return head + text


@dataclass(frozen=True)
class Plan:
    write: dict[str, str]  # file name -> content
    remove: list[str]  # file names to delete (the other mode's, or all on uninstall)
    before: list[list[str]]  # systemctl commands before the files change (stop what goes)
    after: list[list[str]]  # and after (reload, start what came)


def _present(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if (unit_dir() / n).exists()]


def install_plan(timer: bool, command: list[str], rw: list[Path]) -> Plan:
    mine, other = (TIMER, SERVICE) if timer else (SERVICE, TIMER)
    remove = _present(other)
    before = [["systemctl", "--user", "disable", "--now", other[0]]] if remove else []
    after = [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", mine[0]],
    ]
    return Plan({n: render(n, command, rw) for n in mine}, remove, before, after)


def uninstall_plan() -> Plan:
    present = _present(SERVICE + TIMER)
    enabled = [n for n in (SERVICE[0], TIMER[0]) if n in present]
    before = [["systemctl", "--user", "disable", "--now", *enabled]] if enabled else []
    after = [["systemctl", "--user", "daemon-reload"]] if present else []
    return Plan({}, present, before, after)


def systemctl(args: list[str]) -> None:
    exe = shutil.which(args[0])
    if exe is None:
        raise KithkeepError(
            f"{args[0]} not found: is this a systemd system?",
            hint=f"the units are in {unit_dir()}",
        )
    res = subprocess.run([exe, *args[1:]], capture_output=True, text=True, check=False)  # noqa: S603
    if res.returncode != 0:
        why = (res.stderr or res.stdout).strip().splitlines()
        raise KithkeepError(
            f"`{' '.join(args)}` failed: {why[-1] if why else f'exit {res.returncode}'}",
            hint="is your user session's systemd running? (`loginctl enable-linger` "
            "keeps it when you are logged out)",
        )


def carry_out(app: App, plan: Plan, dry_run: bool) -> None:
    folder = unit_dir()
    if dry_run:
        for name, text in plan.write.items():
            click.echo(f"# {folder / name}")
            click.echo(text)
        for name in plan.remove:
            click.echo(f"would remove {folder / name}")
        for cmd in plan.before + plan.after:
            click.echo(f"would run: {' '.join(cmd)}")
        return
    for cmd in plan.before:  # systemd stops a unit while its file is still there
        systemctl(cmd)
        app.say(f"ran: {' '.join(cmd)}")
    for name in plan.remove:
        (folder / name).unlink(missing_ok=True)
        app.say(f"removed {folder / name}")
    if plan.write:
        folder.mkdir(parents=True, exist_ok=True)
    for name, text in plan.write.items():
        (folder / name).write_text(text, encoding="utf-8")
        app.say(f"wrote {folder / name}")
    for cmd in plan.after:
        systemctl(cmd)
        app.say(f"ran: {' '.join(cmd)}")


def register(cli: click.Group) -> None:
    @cli.group()
    def service() -> None:
        """Run kithkeep in the background with systemd (user units)."""

    @service.command()
    @click.option(
        "--timer",
        is_flag=True,
        help="A oneshot `kithkeep run` every 15 minutes instead of the long-running daemon.",
    )
    @click.option("--dry-run", is_flag=True, help="Print the units and commands; change nothing.")
    @click.pass_obj
    def install(app: App, timer: bool, dry_run: bool) -> None:
        """Write the user units for this kithkeep and enable them (daemon-reload, enable --now)."""
        command = program()
        config_path = app.config_path or os.environ.get("KITHKEEP_CONFIG")
        if config_path:
            command += ["--config", str(Path(config_path).expanduser().absolute())]
        try:
            rw = writable_folders(app.config())
        except ConfigError:
            if not dry_run:
                raise
            rw = []  # no config yet: show the units all the same
        carry_out(app, install_plan(timer, command, rw), dry_run)
        if not dry_run:
            unit = "kithkeep-run" if timer else "kithkeep"
            app.say(f"kithkeep runs in the background; its log: journalctl --user -u {unit}")

    @service.command()
    @click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")
    @click.pass_obj
    def uninstall(app: App, dry_run: bool) -> None:
        """Stop and disable the units, and remove them (the store and config stay)."""
        plan = uninstall_plan()
        if not plan.remove:
            app.say(f"no kithkeep units in {unit_dir()}")
            return
        carry_out(app, plan, dry_run)
