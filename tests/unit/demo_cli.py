"""The analyzed demo as the CLI tests drive it: the clock and two helpers.

The fixtures ``template`` and ``demo`` (a private copy of the analyzed demo;
its config path) are in conftest.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from freezegun import freeze_time

from kithkeep.cli import cli

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


def kk(
    config: Path, *args: str, at: datetime = NOW, columns: int = 80, keys: str | None = None
) -> Result:
    """``kithkeep --config CONFIG ARGS`` at ``at``, ``columns`` wide, typing ``keys``."""
    with freeze_time(at):
        return CliRunner(env={"COLUMNS": str(columns)}).invoke(
            cli, ["--config", str(config), *args], input=keys, catch_exceptions=True
        )


def review(config: Path, *args: str, at: datetime = NOW) -> list[dict[str, Any]]:
    res = kk(config, "review", "--json", *args, at=at)
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads(res.output)
    assert isinstance(data, list)
    return data
