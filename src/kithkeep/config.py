"""Configuration: TOML read with tomllib into frozen dataclasses.

Lookup order: ``--config``, ``$KITHKEEP_CONFIG``, the platform config folder.
Unknown keys, wrong types and missing required values raise
:class:`ConfigError` with one line naming the file, the section and the key.

Sources and sinks are tables ``[sources.NAME]`` / ``[sinks.NAME]`` with a
``type``; their options are validated by the connector registry
(``kithkeep.connectors.registry``) with :func:`build_dataclass`, so the core
knows no protocol.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import url as sa_url

from kithkeep import paths
from kithkeep.errors import ConfigError

T = TypeVar("T")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class GeneralConfig:
    # The user's own addresses; sent mail and account logins add to them.
    me: tuple[str, ...] = ()
    # SQLAlchemy URL or the path of a SQLite file; empty means SQLite in the platform
    # data folder. Read once: ``database_url`` is the URL.
    database: str = ""
    # IANA zone for working hours and reminder times; empty means the system zone.
    timezone: str = ""
    # ``timezone`` resolved once, when the config is loaded
    tz: tzinfo = field(init=False, repr=False, compare=False)
    database_url: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            resolved = zone(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"[general]: timezone {self.timezone!r} is not an IANA zone"
            ) from None
        object.__setattr__(self, "tz", resolved)
        object.__setattr__(self, "database_url", _database_url(self.database))


def _database_url(value: str) -> str:
    """``database`` as a SQLAlchemy URL: a path (``~/kk.sqlite3``) is a SQLite file."""
    if not value:
        return paths.default_database_url()
    if "://" not in value:
        path = Path(value).expanduser()
        if not path.is_absolute():  # relative to what: the daemon's folder is /
            raise ConfigError(
                f"[general]: database {value!r} is a relative path: "
                "give it from / or from ~/ (or a SQLAlchemy URL)"
            )
        return f"sqlite:///{path}"
    try:
        sa_url.make_url(value)
    except Exception:  # ArgumentError, ValueError: what make_url raises varies
        # the value itself is not repeated: a URL may hold a password
        raise ConfigError(
            "[general]: database is neither a file path nor a SQLAlchemy URL "
            "(sqlite:///PATH, postgresql+psycopg://USER@HOST/DB)"
        ) from None
    return value


@dataclass(frozen=True)
class AnalysisConfig:
    silence_days: int = 14
    max_recipients: int = 10
    max_meeting_size: int = 8
    min_messages_each_way: int = 3
    half_life_days: int = 180
    # extra local parts treated as role addresses (beyond the built-in list)
    role_local_parts: tuple[str, ...] = ()
    # a vCard file whose contacts group addresses into people
    contacts_file: str = ""
    # a tie's tier comes from the peak of its decayed strength (see README, People)
    inner_strength: float = 40.0
    close_strength: float = 12.0


def _rule_error(rule: str, key: str, problem: str) -> ConfigError:
    # the rule tables check their own values when built; build_dataclass adds the file name
    return ConfigError(f"[rules.{rule}]: {key} {problem}")


def _positive(rule: str, key: str, value: float) -> None:
    if value <= 0:
        raise _rule_error(rule, key, f"must be positive, not {value!r}")


def _not_negative(rule: str, key: str, value: float) -> None:
    if value < 0:
        raise _rule_error(rule, key, f"must not be negative, not {value!r}")


@dataclass(frozen=True)
class NeglectedConfig:
    enabled: bool = True
    inner_days: int = 21
    close_days: int = 60
    wider_days: int = 180
    # a tie is neglected after k times its own usual gap, if that is longer
    rhythm_multiple: float = 3.0

    def __post_init__(self) -> None:
        for key in ("inner_days", "close_days", "wider_days", "rhythm_multiple"):
            _positive("neglected", key, getattr(self, key))


@dataclass(frozen=True)
class ReplyOwedConfig:
    enabled: bool = True
    # a direct message from a tie still unanswered after this many days
    after_days: float = 3.0
    # only personal messages: at most this many recipients, the user among them in To
    max_recipients: int = 3
    # after this many days it is no longer a reply owed but a (neglected) tie; 0: never
    expire_days: int = 30
    # a message that replies to one of yours ("sounds good, see you then") usually
    # closes the exchange; true flags those too
    include_replies: bool = False

    def __post_init__(self) -> None:
        _positive("reply_owed", "max_recipients", self.max_recipients)
        _not_negative("reply_owed", "after_days", self.after_days)
        _not_negative("reply_owed", "expire_days", self.expire_days)


@dataclass(frozen=True)
class MeetingFollowupConfig:
    enabled: bool = True
    # a small meeting (at most this many attendees, you included) ...
    max_attendees: int = 4
    # ... that ended at least this many days ago, with no message to them since
    after_days: float = 1.0
    # the moment has passed after this many days
    expire_days: float = 7.0
    # an occurrence of a recurring calendar event (a weekly 1:1) is part of a series:
    # the next occurrence is the follow-up
    skip_recurring: bool = True
    # meetings with the person at most this many days apart (the recent median, three
    # meetings at least, and the last one within it too) are a regular series even when
    # each is a separate event; 0 turns this off
    regular_days: float = 35.0

    def __post_init__(self) -> None:
        if self.max_attendees < 2:
            raise _rule_error("meeting_followup", "max_attendees", "must be at least 2")
        _not_negative("meeting_followup", "after_days", self.after_days)
        _not_negative("meeting_followup", "regular_days", self.regular_days)
        if self.expire_days < self.after_days:
            raise _rule_error("meeting_followup", "expire_days", "must not be below after_days")


@dataclass(frozen=True)
class UnansweredConfig:
    enabled: bool = True
    # the user's last N messages went unanswered: give them room
    min_streak: int = 3

    def __post_init__(self) -> None:
        _positive("unanswered", "min_streak", self.min_streak)


# Subjects that ask for something, in several languages (Python regular
# expressions, matched case-insensitively anywhere in the subject).
DEFAULT_ASK_PATTERNS: tuple[str, ...] = (
    r"\?",
    r"\bfavou?r",
    r"\bhelp",
    r"\bintro(duc|\b)",
    r"\breferr?al",
    r"\brefer\b",
    r"\bask(ing)?\b",
    r"\bquestion",
    r"\bfrage\b",
    r"\bpregunta",
    r"\bcould you\b",
    r"\bwould you\b",
    r"\bgefallen\b",
    r"\bhilfe\b",
    r"\bbitte\b",
    r"\bayuda",
    r"\bfavore\b",
    r"\baiuto\b",
    r"\bajuda\b",
    r"\baide\b",
    r"\bservice\b",
    r"\bcoup de main\b",
    r"\bpomoc",
    r"\bprzysług",
    r"помощ|помоги|просьб|одолж",
    r"お願い|頼み",
    r"帮忙|请教|拜托",
)


@dataclass(frozen=True)
class OneWayAskConfig:
    enabled: bool = True
    # judge a side only once it has opened at least this many exchanges
    min_initiations: int = 3
    # an opening after at least this many days of silence is "out of the blue"
    long_silence_days: int = 60
    # the side opens mostly after long silences ...
    min_silence_share: float = 0.6
    # ... mostly to ask (subject matches one of ask_patterns) ...
    min_ask_share: float = 0.6
    # ... and answers at most this share of the other side's openings
    max_answer_rate: float = 0.34
    # with fewer openings from the other side, there was nothing to answer:
    # the first two conditions decide alone
    min_other_initiations: int = 2
    ask_patterns: tuple[str, ...] = DEFAULT_ASK_PATTERNS

    def __post_init__(self) -> None:
        for key in ("min_initiations", "long_silence_days"):
            _positive("one_way_ask", key, getattr(self, key))
        for key in ("min_silence_share", "min_ask_share", "max_answer_rate"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise _rule_error("one_way_ask", key, "must be a share between 0 and 1")
        _not_negative("one_way_ask", "min_other_initiations", self.min_other_initiations)
        for pat in self.ask_patterns:
            try:
                re.compile(pat)
            except re.error as exc:
                problem = f"has an invalid regular expression {pat!r}: {exc}"
                raise _rule_error("one_way_ask", "ask_patterns", problem) from None


@dataclass(frozen=True)
class RulesConfig:
    neglected: NeglectedConfig = field(default_factory=NeglectedConfig)
    reply_owed: ReplyOwedConfig = field(default_factory=ReplyOwedConfig)
    meeting_followup: MeetingFollowupConfig = field(default_factory=MeetingFollowupConfig)
    unanswered: UnansweredConfig = field(default_factory=UnansweredConfig)
    one_way_ask: OneWayAskConfig = field(default_factory=OneWayAskConfig)


@dataclass(frozen=True)
class RemindersConfig:
    # the name of a [sinks.NAME] table; empty writes no reminders
    sink: str = ""
    max_per_week: int = 5
    max_per_day: int = 2
    working_hours: str = "09:00-17:00"
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    duration_minutes: int = 15
    alarm_minutes: int = 10
    # the two above parsed once, when the config is loaded: minutes after midnight
    # (start, end) and weekday numbers (Monday 0)
    working_minutes: tuple[int, int] = field(init=False, repr=False, compare=False)
    weekdays: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bad_days = [d for d in self.working_days if d not in WEEKDAYS]
        if bad_days:
            raise ConfigError(
                f"[reminders]: working_days has {bad_days[0]!r} (use {', '.join(WEEKDAYS)})"
            )
        try:
            minutes = parse_hours(self.working_hours)
        except ValueError as exc:
            raise ConfigError(f"[reminders]: working_hours {exc}") from None
        object.__setattr__(self, "working_minutes", minutes)
        weekdays = frozenset(WEEKDAYS.index(d) for d in self.working_days)
        object.__setattr__(self, "weekdays", weekdays)


@dataclass(frozen=True)
class DaemonConfig:
    # minutes between syncs of each source (fractions allowed, for tests and impatient users)
    interval_minutes: float = 15.0
    # a failing source is retried after interval, 2x, 4x, ... up to this many minutes
    max_backoff_minutes: float = 240.0


@dataclass(frozen=True)
class ConnectorConfig:
    """A source or sink table before its options are validated by its connector."""

    name: str
    type: str
    options: Mapping[str, Any]
    section: str


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    general: GeneralConfig = field(default_factory=GeneralConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    reminders: RemindersConfig = field(default_factory=RemindersConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    sources: tuple[ConnectorConfig, ...] = ()
    sinks: tuple[ConnectorConfig, ...] = ()

    @property
    def database_url(self) -> str:
        return self.general.database_url

    def sink(self, name: str) -> ConnectorConfig:
        for s in self.sinks:
            if s.name == name:
                return s
        raise ConfigError(
            f"{self._where('reminders')}: sink {name!r} is not a [sinks.{name}] table"
        )

    def _where(self, section: str) -> str:
        return f"{self.path or '<config>'}: [{section}]"


# --------------------------------------------------------------------------
# generic dataclass building


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for a in args:
            try:
                return _convert(a, value, where, key)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, not {value!r}")
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, not {value!r}")
        return tuple(_convert(item_tp, v, where, key) for v in value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a table")
        sub = where[:-1] + f".{key}]" if where.endswith("]") else f"{where} {key}"
        return build_dataclass(tp, value, sub)  # type: ignore[arg-type]
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a path string, not {value!r}")
        return Path(os.path.expanduser(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Any:
        return value
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, not {value!r}")
    return value


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build a frozen dataclass from a TOML table, strictly.

    ``where`` is ``"FILE: [section]"``; errors append the key to it.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], where, name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # value checks in __post_init__ know their section and key, not the file
        file = where.split(": [", 1)[0]
        if exc.message.startswith(file):
            raise
        raise ConfigError(f"{file}: {exc.message}", hint=exc.hint) from None


# --------------------------------------------------------------------------
# loading


def find_config_file(explicit: str | Path | None) -> Path | None:
    """The config file to read, or None when none is given and the default is absent."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("KITHKEEP_CONFIG")
    if env:
        return Path(env).expanduser()
    default = paths.config_file()
    return default if default.exists() else None


def _connectors(kind: str, table: Any, file: str) -> tuple[ConnectorConfig, ...]:
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{kind}] must be a table of [{kind}.NAME] tables")
    out = []
    for name, opts in table.items():
        section = f"{kind}.{name}"
        if not isinstance(opts, dict):
            raise ConfigError(f"{file}: [{section}] must be a table")
        ctype = opts.get("type")
        if not isinstance(ctype, str) or not ctype:
            raise ConfigError(f"{file}: [{section}]: missing required key 'type'")
        options = {k: v for k, v in opts.items() if k != "type"}
        out.append(ConnectorConfig(name=name, type=ctype, options=options, section=section))
    return tuple(out)


_SECTIONS: dict[str, type[Any]] = {
    "general": GeneralConfig,
    "analysis": AnalysisConfig,
    "rules": RulesConfig,
    "reminders": RemindersConfig,
    "daemon": DaemonConfig,
}


def parse_config(data: Mapping[str, Any], path: Path | None) -> Config:
    file = str(path) if path else "<config>"
    unknown = sorted(set(data) - set(_SECTIONS) - {"sources", "sinks"})
    if unknown:
        known = ", ".join(sorted([*_SECTIONS, "sources", "sinks"]))
        raise ConfigError(f"{file}: unknown section [{unknown[0]}] (known sections: {known})")
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: [{name}] must be a table")
        kwargs[name] = build_dataclass(cls, table, f"{file}: [{name}]")
    config = Config(
        path=path,
        sources=_connectors("sources", data.get("sources", {}), file),
        sinks=_connectors("sinks", data.get("sinks", {}), file),
        **kwargs,
    )
    _check_values(config, file)
    return config


def _check_values(config: Config, file: str) -> None:
    """Checks that types alone cannot express."""
    rem = config.reminders
    if rem.sink and not any(s.name == rem.sink for s in config.sinks):
        raise ConfigError(f"{file}: [reminders]: sink {rem.sink!r} has no [sinks.{rem.sink}] table")
    for key in ("silence_days", "max_recipients", "max_meeting_size", "half_life_days"):
        if getattr(config.analysis, key) <= 0:
            raise ConfigError(f"{file}: [analysis]: {key} must be positive")
    for key in ("interval_minutes", "max_backoff_minutes"):
        if getattr(config.daemon, key) <= 0:
            raise ConfigError(f"{file}: [daemon]: {key} must be positive")
    names = [s.name for s in config.sources]
    if len(set(names)) != len(names):  # TOML already forbids this; kept for dict input
        raise ConfigError(f"{file}: [sources]: duplicate source name")


def zone(name: str) -> tzinfo:
    """The IANA zone ``name``; without a name the system's zone ($TZ, else
    /etc/localtime, with its daylight saving rules), else UTC."""
    if name:
        return ZoneInfo(name)
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def parse_hours(text: str) -> tuple[int, int]:
    """``"09:00-17:00"`` -> minutes after midnight (540, 1020)."""
    try:
        a, b = text.split("-")
        ah, am = (int(x) for x in a.strip().split(":"))
        bh, bm = (int(x) for x in b.strip().split(":"))
    except ValueError:
        raise ValueError(f"must look like '09:00-17:00', not {text!r}") from None
    start, end = ah * 60 + am, bh * 60 + bm
    if not (0 <= start < end <= 24 * 60):
        raise ValueError(f"must be a range within one day, not {text!r}")
    return start, end


def load_config(explicit: str | Path | None = None, *, required: bool = True) -> Config:
    """Find, read and validate the config. Without a file, defaults (or an error if required)."""
    path = find_config_file(explicit)
    if path is None:
        if required:
            raise ConfigError(
                f"no config file: looked for --config, $KITHKEEP_CONFIG and {paths.config_file()}",
                hint="run `kithkeep init` to create one, or `kithkeep demo` to try kithkeep",
            )
        return Config()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, path)
