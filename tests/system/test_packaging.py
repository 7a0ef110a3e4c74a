"""The wheel holds every subpackage of the mapped folders (setuptools package-dir)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

MAPPED = {
    "src/kithkeep": "kithkeep",
    "connectors": "kithkeep/connectors",
    "rules": "kithkeep/rules",
    "daemon": "kithkeep/daemon",
}


def _expected_packages() -> set[str]:
    out: set[str] = set()
    for folder, prefix in MAPPED.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            out.add(prefix if str(rel) == "." else f"{prefix}/{rel.as_posix()}")
    return out


@pytest.mark.slow
def test_wheel_contains_every_subpackage(tmp_path: Path) -> None:
    # CC=/bin/false: the build must not need a C compiler
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        env={**os.environ, "CC": "/bin/false", "CXX": "/bin/false"},
    )
    (wheel,) = tmp_path.glob("kithkeep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    missing = _expected_packages() - packages
    assert not missing, (
        f"subpackages missing from the wheel (add them to pyproject packages): {missing}"
    )
    # nothing installs a top-level daemon/rules/connectors package
    assert not {n.split("/", 1)[0] for n in names} & {"daemon", "rules", "connectors"}
    assert "kithkeep/py.typed" in names
    assert "kithkeep/config.example.toml" in names
    assert any(n.startswith("kithkeep/migrations/versions/0001") for n in names)
    # pure Python: one wheel for every platform, no compiled module, no C source
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c", ".h", ".pyx", ".pyi"))]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    # the systemd units ship inside the package (`kithkeep service install`), and the
    # man page goes to the environment's share/man
    units = {"kithkeep.service", "kithkeep-run.service", "kithkeep.timer"}
    assert {f"kithkeep/systemd/{u}" for u in units} <= set(names)
    assert any(n.endswith(".data/data/share/man/man1/kithkeep.1") for n in names)


@pytest.mark.slow
def test_sdist_holds_the_license_the_units_and_the_man_page(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("kithkeep-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "man/kithkeep.1"} <= names
    assert "src/kithkeep/systemd/kithkeep.service" in names
    # one copy of the units: the package's
    assert not (REPO / "systemd").exists()
