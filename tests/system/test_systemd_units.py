"""The systemd user units as `kithkeep service install` writes them: they verify, they
are sandboxed, and they say what the docs promise.

The units are written into a temporary home by the real command (a fake
``systemctl`` on PATH records what it is asked), so what is checked is what
a user gets: ExecStart is this environment's ``bin/kithkeep`` by absolute
path. ``systemd-analyze verify --user`` checks syntax, directives and that
every Exec binary exists; ``systemd-analyze security --offline=yes`` scores
the sandbox (it was 7.0 before the sandbox was tightened).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian package systemd; CI installs it)",
)
# the exposure `systemd-analyze security` gives both services today (systemd 252);
# the test fails if a change loosens the sandbox
EXPOSURE = 1.9
FAKE_SYSTEMCTL = '#!/bin/sh\necho "$@" >> "$HOME/systemctl.log"\n'


def kithkeep(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = home / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITHKEEP_"))},
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    script = Path(sys.executable).parent / "kithkeep"
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where both modes were installed (the service, then the timer as well)."""
    home = tmp_path_factory.mktemp("home")
    config = home / ".config" / "kithkeep" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        '[general]\nme = ["sam@posteo.de"]\n'
        f'[sinks.r]\ntype = "ics"\npath = "{home / "Calendars" / "r.ics"}"\n'
        '[reminders]\nsink = "r"\n'
    )
    units = home / ".config" / "systemd" / "user"
    for args in (("service", "install"), ("service", "install", "--timer")):
        res = kithkeep(home, *args)
        assert res.returncode == 0, res.stderr
        # keep a copy of each mode: installing one takes the other out
        keep = home / "units"
        keep.mkdir(exist_ok=True)
        for unit in units.iterdir():
            shutil.copy(unit, keep / unit.name)
    return home


def unit(home: Path, name: str) -> configparser.ConfigParser:
    # systemd allows repeated keys; strict=False keeps the last, enough for these checks
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(home / "units" / name)
    return cp


def analyze(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    runtime = home / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=home / "units",
    )


@needs_systemd
def test_written_units_verify_clean(installed: Path) -> None:
    names = ["kithkeep.service", "kithkeep-run.service", "kithkeep.timer"]
    res = analyze(installed, "verify", "--user", *(str(installed / "units" / n) for n in names))
    # verify exits 0 on some warnings (an unknown key is only "ignoring"): any output fails
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr
    assert res.stdout.strip() == "", res.stdout


@needs_systemd
def test_verify_catches_a_missing_program(installed: Path, tmp_path: Path) -> None:
    """The check above can fail: a unit whose program is gone does not verify."""
    text = (installed / "units" / "kithkeep.service").read_text()
    exe = unit(installed, "kithkeep.service")["Service"]["ExecStart"].split()[0]
    broken = tmp_path / "units"
    broken.mkdir()
    (broken / "kithkeep.service").write_text(text.replace(exe, str(tmp_path / "gone/kithkeep")))
    res = analyze(installed, "verify", "--user", str(broken / "kithkeep.service"))
    assert res.returncode != 0
    assert "gone/kithkeep" in res.stderr


@needs_systemd
@pytest.mark.parametrize("name", ["kithkeep.service", "kithkeep-run.service"])
def test_sandbox_exposure(installed: Path, name: str) -> None:
    res = analyze(installed, "security", "--offline=yes", "--user", f"./{name}")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout)
    assert m, res.stdout + res.stderr
    assert float(m.group(1)) <= EXPOSURE, res.stdout


def test_long_running_service_promises(installed: Path) -> None:
    svc = unit(installed, "kithkeep.service")["Service"]
    assert svc["Type"] == "notify"
    assert svc["ExecStart"] == f"{Path(sys.executable).parent / 'kithkeep'} daemon"
    assert svc["Restart"] == "on-failure"
    assert "WatchdogSec" in svc
    assert "HUP" in svc["ExecReload"]
    # in a user unit, the sandbox works only inside a user namespace (systemd.exec(5))
    assert svc["PrivateUsers"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["PrivateTmp"] == "yes"
    text = (installed / "units" / "kithkeep.service").read_text()
    rw = " ".join(re.findall(r"^ReadWritePaths=(.*)$", text, re.MULTILINE)).split()
    assert "%h/.local/share/kithkeep" in rw and "%h/.local/state/kithkeep" in rw
    assert f"-{installed / 'Calendars'}" in rw  # the .ics sink's folder, from the config
    assert "network-online" not in " ".join(unit(installed, "kithkeep.service")["Unit"].values())
    assert unit(installed, "kithkeep.service")["Install"]["WantedBy"] == "default.target"


def test_timer_runs_the_oneshot(installed: Path) -> None:
    run = unit(installed, "kithkeep-run.service")["Service"]
    assert run["Type"] == "oneshot"
    assert run["ExecStart"] == f"{Path(sys.executable).parent / 'kithkeep'} run"
    assert run["ProtectSystem"] == "strict" and run["PrivateUsers"] == "yes"
    timer = unit(installed, "kithkeep.timer")
    assert timer["Timer"]["Unit"] == "kithkeep-run.service"
    assert timer["Timer"]["OnUnitActiveSec"]
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert (installed / "systemctl.log").read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now kithkeep.service",
        "--user disable --now kithkeep.service",
        "--user daemon-reload",
        "--user enable --now kithkeep.timer",
    ]
