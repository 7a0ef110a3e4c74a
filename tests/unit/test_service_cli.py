"""`kithkeep service install|uninstall` in a temporary home, with a fake systemctl.

The fake records its arguments (and can be told to fail), so the tests see
which units were written and which systemctl commands ran, in which order.
systemd-analyze checks the units these commands write in
tests/system/test_systemd_units.py.
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kithkeep.cli import cli
from kithkeep.cli.commands_service import program, quote
from kithkeep.errors import ConfigError, KithkeepError

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "$SYSTEMCTL_LOG"
if [ -n "$SYSTEMCTL_FAIL" ]; then echo "Failed to connect to bus: No medium found" >&2; exit 1; fi
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL)
    fake.chmod(0o755)
    return home


def kk(home: Path, *args: str, fail: bool = False) -> Result:
    env = {
        "HOME": str(home),
        "PATH": f"{home.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "SYSTEMCTL_LOG": str(home.parent / "systemctl.log"),
        "SYSTEMCTL_FAIL": "1" if fail else "",
        "XDG_CONFIG_HOME": None,
        "XDG_DATA_HOME": None,
        "XDG_STATE_HOME": None,
        "KITHKEEP_CONFIG": None,
    }
    return CliRunner(env=env).invoke(cli, list(args))


def ran(home: Path) -> list[str]:
    log = home.parent / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def section(text: str, name: str) -> configparser.SectionProxy:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(text)
    return cp[name]


def config(home: Path, reminders: Path) -> Path:
    path = home / "elsewhere" / "kithkeep.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        '[general]\nme = ["sam@posteo.de"]\n'
        f'[sinks.r]\ntype = "ics"\npath = "{reminders}"\n[reminders]\nsink = "r"\n'
    )
    return path


def test_dry_run_prints_units_running_this_program(home: Path) -> None:
    res = kk(home, "service", "install", "--dry-run")
    assert res.exit_code == 0, res.output
    units = home / ".config" / "systemd" / "user"
    assert f"# {units / 'kithkeep.service'}" in res.output
    text = res.output.split(f"# {units / 'kithkeep.service'}\n", 1)[1].split("would run:")[0]
    svc = section(text, "Service")
    # the program running these tests: the venv's console script, by absolute path
    exe = Path(sys.executable).parent / "kithkeep"
    assert program() == [str(exe)]
    assert svc["ExecStart"] == f"{exe} daemon"
    assert Path(svc["ExecStart"].split()[0]).is_absolute()
    unit = section(text, "Unit")
    assert "network-online" not in unit.get("After", "") + unit.get("Wants", "")
    assert "would run: systemctl --user daemon-reload" in res.output
    assert "would run: systemctl --user enable --now kithkeep.service" in res.output
    assert not units.exists() and ran(home) == []  # nothing written, nothing run


def test_install_writes_enables_and_switches_modes(home: Path, tmp_path: Path) -> None:
    reminders = tmp_path / "Calendars" / "kithkeep.ics"
    cfg = config(home, reminders)
    res = kk(home, "service", "install", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    units = home / ".config" / "systemd" / "user"
    svc = section((units / "kithkeep.service").read_text(), "Service")
    assert svc["ExecStart"].endswith(f" --config {cfg} daemon")
    # the folders of the reminders file and of the store (default: the data folder) are
    # writable; the data folder is in the unit already
    assert f"-{reminders.parent}" in (units / "kithkeep.service").read_text()
    assert ran(home) == ["--user daemon-reload", "--user enable --now kithkeep.service"]
    # the timer instead: the service is stopped before its file goes, then the timer comes
    res = kk(home, "service", "install", "--timer", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in units.iterdir()) == ["kithkeep-run.service", "kithkeep.timer"]
    run = section((units / "kithkeep-run.service").read_text(), "Service")
    assert run["ExecStart"].endswith(f" --config {cfg} run")
    assert ran(home)[2:] == [
        "--user disable --now kithkeep.service",
        "--user daemon-reload",
        "--user enable --now kithkeep.timer",
    ]
    # uninstall reverses it
    res = kk(home, "service", "uninstall")
    assert res.exit_code == 0, res.output
    assert list(units.iterdir()) == []
    assert ran(home)[5:] == ["--user disable --now kithkeep.timer", "--user daemon-reload"]
    assert "no kithkeep units" in kk(home, "service", "uninstall").output


def test_install_needs_a_config_and_a_working_systemctl(home: Path, tmp_path: Path) -> None:
    res = kk(home, "service", "install")  # no config yet: only --dry-run works without
    assert isinstance(res.exception, ConfigError) and "kithkeep init" in str(res.exception.hint)
    cfg = config(home, tmp_path / "r.ics")
    res = kk(home, "service", "install", "--config", str(cfg), fail=True)
    assert isinstance(res.exception, KithkeepError) and res.exception.exit_code == 1
    message = res.exception.format_message()
    assert "`systemctl --user daemon-reload` failed: Failed to connect to bus" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("arg", "word"),
    [
        ("/home/sam/.venv/bin/kithkeep", "/home/sam/.venv/bin/kithkeep"),
        ("/home/sam/My Apps/kithkeep", '"/home/sam/My Apps/kithkeep"'),
        ("/home/50%/$HOME/k", "/home/50%%/$$HOME/k"),
    ],
)
def test_quoting_for_unit_files(arg: str, word: str) -> None:
    assert quote(arg) == word
