"""Shared CLI state: the config and the store, opened lazily."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from kithkeep.config import Config, load_config
from kithkeep.connectors import registry
from kithkeep.store import Store


@dataclass
class App:
    config_path: str | None = None
    verbose: bool = False
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            cfg = load_config(self.config_path)
            registry.validate(cfg)
            self._config = cfg
        return self._config

    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.config().database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def pass_app(f: Any) -> Any:
    return click.pass_obj(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
