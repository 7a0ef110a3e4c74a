"""The wheel holds every subpackage of the mapped folders (setuptools package-dir)."""

from __future__ import annotations

import subprocess
import sys
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
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
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
    # the compiled IMAP bulk path, with its type stub
    assert any(n.startswith("kithkeep/connectors/_imapfast.") and n.endswith(".so") for n in names)
    assert "kithkeep/connectors/_imapfast.pyi" in names
    # the compiled time line walk of the analysis, with its type stub
    assert any(n.startswith("kithkeep/model/_loops.") and n.endswith(".so") for n in names)
    assert "kithkeep/model/_loops.pyi" in names
    # the bulk SQLite writer of the store, with its type stub
    assert any(n.startswith("kithkeep/_sqlitebulk.") and n.endswith(".so") for n in names)
    assert "kithkeep/_sqlitebulk.pyi" in names


def test_the_installed_package_has_the_compiled_imap_path() -> None:
    # pip install builds it (gcc and the Python headers are on every machine
    # kithkeep installs on); without it a first IMAP sync is many times slower
    from kithkeep.connectors import imap_rows

    assert imap_rows.COMPILED


def test_the_installed_package_has_the_compiled_time_line_walk() -> None:
    # likewise for the analysis: without it a full rebuild of the statistics is slower
    from kithkeep.model import person

    assert person.COMPILED


def test_the_installed_package_has_the_bulk_sqlite_writer() -> None:
    # and for the store: without it a first IMAP sync into SQLite is slower
    from kithkeep import sqlite_bulk

    assert sqlite_bulk.COMPILED
