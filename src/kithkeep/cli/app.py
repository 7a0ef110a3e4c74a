"""Shared CLI state (the config and the store, opened lazily) and the options
every command takes.

``--config``, ``-v`` and ``-q`` are accepted before the command and after it
(``kithkeep review --config X``): :func:`add_common_options` gives each
command its own copy, which updates the one :class:`App` of the invocation.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from kithkeep.config import Config, load_config
from kithkeep.connectors import registry
from kithkeep.logsetup import setup_logging
from kithkeep.store import Store


@dataclass
class App:
    config_path: str | None = None
    verbose: bool = False
    quiet: bool = False
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

    def say(self, message: str) -> None:
        """A confirmation or summary line: printed unless ``-q``."""
        if not self.quiet:
            click.echo(message)

    def setup_logging(self) -> None:
        if self.quiet and not self.verbose:
            setup_logging(level=logging.ERROR)
        else:
            setup_logging(self.verbose)


def pass_app(f: Any) -> Any:
    return click.pass_obj(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


# ------------------------------------------------------------ common options


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        app = ctx.ensure_object(App)  # the group's, when a command gets the option
        app.close()
        app.config_path = value
        app._config = None


def _set_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        app = ctx.ensure_object(App)
        setattr(app, str(param.name), True)
        app.setup_logging()


def common_options() -> list[click.Option]:
    """Fresh option objects for one command (click keeps state on each)."""
    return [
        click.Option(
            ["--config", "config_path"],
            type=click.Path(dir_okay=False),
            metavar="FILE",
            expose_value=False,
            is_eager=True,
            callback=_set_config,
            help="Config file (default: $KITHKEEP_CONFIG, then ~/.config/kithkeep/config.toml).",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_flag,
            help="More log output, and tracebacks on errors.",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_set_flag,
            help="Only errors, and the data asked for: no summaries, confirmations or progress.",
        ),
    ]


def walk(group: click.Group) -> Iterator[click.Command]:
    for cmd in group.commands.values():
        yield cmd
        if isinstance(cmd, click.Group):
            yield from walk(cmd)


def add_common_options(group: click.Group, *, without_config: frozenset[str]) -> None:
    """Give every command under ``group`` the options of the group itself.

    Commands named in ``without_config`` read no config file: they get ``-v``
    and ``-q`` only, so that a ``--config`` given to them is refused rather
    than silently ignored.
    """
    for cmd in walk(group):
        names = {n for p in cmd.params for n in getattr(p, "opts", ())}
        for o in common_options():
            if names & set(o.opts) or (cmd.name in without_config and o.name == "config_path"):
                continue
            cmd.params.append(o)
