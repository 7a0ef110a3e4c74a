"""Connector registry: config ``type`` -> implementation, imported lazily.

Every connector module exposes a class with a ``Config`` dataclass (its
options, validated strictly with :func:`kithkeep.config.build_dataclass`) and
a ``from_config(name, options, general)`` classmethod.
"""

from __future__ import annotations

import importlib
from typing import Any

from kithkeep.config import Config, ConnectorConfig, build_dataclass
from kithkeep.errors import ConfigError
from kithkeep.interfaces import ReminderSink, Source

# type -> "module:Class"
SOURCES: dict[str, str] = {
    "maildir": "kithkeep.connectors.maildir:MaildirSource",
    "mbox": "kithkeep.connectors.mbox:MboxSource",
    "imap": "kithkeep.connectors.imap:ImapSource",
    "ics": "kithkeep.connectors.ics:IcsSource",
    "google": "kithkeep.connectors.google_calendar:GoogleCalendarSource",
    "caldav": "kithkeep.connectors.caldav_dav:CalDavSource",
    "microsoft": "kithkeep.connectors.microsoft_mail:MicrosoftMailSource",
    "microsoft-calendar": "kithkeep.connectors.microsoft_calendar:MicrosoftCalendarSource",
}
SINKS: dict[str, str] = {
    "ics": "kithkeep.connectors.ics:IcsSink",
    "google": "kithkeep.connectors.google_calendar:GoogleCalendarSink",
    "caldav": "kithkeep.connectors.caldav_dav:CalDavSink",
    "microsoft": "kithkeep.connectors.microsoft_calendar:MicrosoftCalendarSink",
}


def _load(spec: str) -> Any:
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)


def _where(config: Config, cc: ConnectorConfig) -> str:
    return f"{config.path or '<config>'}: [{cc.section}]"


def _resolve(table: dict[str, str], kind: str, config: Config, cc: ConnectorConfig) -> Any:
    spec = table.get(cc.type)
    if spec is None:
        known = ", ".join(sorted(table))
        raise ConfigError(f"{_where(config, cc)}: unknown {kind} type {cc.type!r} (known: {known})")
    return _load(spec)


def source_options(config: Config, cc: ConnectorConfig) -> Any:
    cls = _resolve(SOURCES, "source", config, cc)
    return build_dataclass(cls.Config, cc.options, _where(config, cc))


def build_source(config: Config, cc: ConnectorConfig) -> Source:
    cls = _resolve(SOURCES, "source", config, cc)
    opts = build_dataclass(cls.Config, cc.options, _where(config, cc))
    source: Source = cls.from_config(cc.name, opts, config)
    return source


def build_sink(config: Config, cc: ConnectorConfig) -> ReminderSink:
    cls = _resolve(SINKS, "sink", config, cc)
    opts = build_dataclass(cls.Config, cc.options, _where(config, cc))
    sink: ReminderSink = cls.from_config(cc.name, opts, config)
    return sink


def validate(config: Config) -> None:
    """Validate every source and sink table without connecting anywhere.

    Each connector is built (constructors check their own options and never
    connect), so that every configuration error surfaces here, before the CLI
    opens the store or writes anything.
    """
    file = str(config.path or "<config>")
    for cc in config.sources:
        _build_checked(config, cc, build_source, file)
    for cc in config.sinks:
        _build_checked(config, cc, build_sink, file)


def _build_checked(config: Config, cc: ConnectorConfig, build: Any, file: str) -> None:
    try:
        connector = build(config, cc)
    except ConfigError as exc:
        if exc.message.startswith(file):
            raise
        raise ConfigError(f"{file}: {exc.message}", hint=exc.hint) from None
    connector.close()


def preflight(config: Config, only: set[str] | None = None) -> None:
    """Before a command that connects opens the store: what each source needs to run."""
    file = str(config.path or "<config>")
    for cc in config.sources:
        if only and cc.name not in only:
            continue
        source = build_source(config, cc)
        try:
            source.preflight()
        except ConfigError as exc:
            if exc.message.startswith(file):
                raise
            raise ConfigError(f"{file}: {exc.message}", hint=exc.hint) from None
        finally:
            source.close()
