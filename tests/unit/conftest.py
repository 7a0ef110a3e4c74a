"""Fixtures of the unit tests: the demo, synced and analyzed once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from freezegun import freeze_time

from kithkeep.config import load_config
from kithkeep.demo import build_demo
from kithkeep.pipeline import run_once
from kithkeep.store import Store
from tests.unit.demo_cli import NOW


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo built and run once at NOW (copy it with ``demo`` before changing it)."""
    root = tmp_path_factory.mktemp("demo-template")
    config = build_demo(root, now=NOW)
    with freeze_time(NOW), Store.open(load_config(config).database_url) as store:
        run_once(load_config(config), store, now=datetime.now(UTC))
    return root


@pytest.fixture
def demo(template: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the analyzed demo; returns its config path."""
    root = tmp_path / "demo"
    shutil.copytree(template, root)
    yield build_demo(root, now=NOW)  # rewrites the config with this copy's paths
