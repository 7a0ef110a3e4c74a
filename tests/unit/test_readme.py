"""The README's set-up stays two commands: install and run the demo, then the tests
(CI runs `bash .ci/run`, the second of them)."""

from __future__ import annotations

import re

from tests.helpers import REPO


def _setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set-up", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the Set-up section has no sh block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_setup_is_install_and_demo_then_the_tests() -> None:
    install, tests = _setup_commands()
    assert "pip install" in install and install.endswith("kithkeep demo")
    assert tests == "bash .ci/run"


def test_ci_runs_the_linters_and_the_test_command_of_the_docs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in ("ruff check .", "ruff format --check .", "mypy", "python3 -m pytest -q"):
        assert command in ci, command
    assert "python3 -m pytest -q" in (REPO / "docs" / "development.md").read_text("utf-8")
