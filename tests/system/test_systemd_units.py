"""The systemd units in systemd/: they verify, and say what the docs promise.

``systemd-analyze verify --user`` checks syntax, directives and that every
Exec binary exists. ExecStart points at ``%h/.local/bin/kithkeep`` (where
``pip install --user`` and pipx put it), so the test gives systemd a fake
home whose ``.local/bin/kithkeep`` is the installed script.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

UNITS = REPO / "systemd"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian package systemd; CI installs it)",
)


def unit(name: str) -> configparser.ConfigParser:
    # systemd allows repeated keys; strict=False keeps the last, enough for these checks
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp


def kithkeep_script() -> Path:
    found = shutil.which("kithkeep")
    if found is None:
        pytest.fail("the kithkeep console script is not installed (pip install -e .)")
    return Path(found)


def verify(home: Path, *names: str) -> subprocess.CompletedProcess[str]:
    runtime = home / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--user", *(str(UNITS / n) for n in names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "kithkeep").symlink_to(kithkeep_script())
    return home


@needs_systemd
def test_units_verify_clean(fake_home: Path) -> None:
    res = verify(fake_home, "kithkeep.service", "kithkeep-run.service", "kithkeep.timer")
    # verify exits 0 on some warnings (an unknown key is only "ignoring"): any output fails
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr
    assert res.stdout.strip() == "", res.stdout


@needs_systemd
def test_verify_catches_a_missing_binary(tmp_path: Path) -> None:
    """The check above can fail: without the script in the home, verify refuses."""
    home = tmp_path / "empty-home"
    home.mkdir()
    res = verify(home, "kithkeep.service")
    assert res.returncode != 0
    assert ".local/bin/kithkeep" in res.stderr


def test_long_running_service_promises() -> None:
    svc = unit("kithkeep.service")["Service"]
    assert svc["Type"] == "notify"
    assert svc["ExecStart"] == "%h/.local/bin/kithkeep daemon"
    assert svc["Restart"] == "on-failure"
    assert "WatchdogSec" in svc
    assert "HUP" in svc["ExecReload"]
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["PrivateTmp"] == "yes"
    rw = svc["ReadWritePaths"].split()
    assert "%h/.local/share/kithkeep" in rw
    assert "%h/.local/state/kithkeep" in rw
    assert unit("kithkeep.service")["Install"]["WantedBy"] == "default.target"


def test_timer_runs_the_oneshot() -> None:
    run = unit("kithkeep-run.service")["Service"]
    assert run["Type"] == "oneshot"
    assert run["ExecStart"] == "%h/.local/bin/kithkeep run"
    assert run["ProtectSystem"] == "strict"
    timer = unit("kithkeep.timer")
    assert timer["Timer"]["Unit"] == "kithkeep-run.service"
    assert timer["Timer"]["OnUnitActiveSec"]
    assert timer["Install"]["WantedBy"] == "timers.target"
