"""Config: strict loading, one-line errors naming file, section and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kithkeep.config import load_config, parse_config
from kithkeep.connectors import registry
from kithkeep.errors import ConfigError
from tests.helpers import REPO


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_config_loads_and_documents_every_option() -> None:
    config = load_config(REPO / "config.example.toml")
    registry.validate(config)
    assert config.analysis.max_recipients == 10
    assert config.reminders.max_per_week == 5
    text = (REPO / "config.example.toml").read_text()
    # every option of every section appears in the example
    import dataclasses

    for section in (config.general, config.analysis, config.reminders, config.rules.neglected):
        for f in dataclasses.fields(section):
            if not f.init:  # derived when the config is loaded, not an option
                continue
            assert f"{f.name} =" in text, f"{f.name} is not documented in config.example.toml"


def test_commented_connector_examples_are_valid(tmp_path: Path) -> None:
    """The commented [sources.*]/[sinks.*] examples, uncommented, must load."""
    text = (REPO / "config.example.toml").read_text()
    uncommented = "\n".join(
        line[2:] if line.startswith("# [") or (line.startswith("# ") and " = " in line) else line
        for line in text.splitlines()
    )
    config = load_config(write(tmp_path, uncommented))
    registry.validate(config)
    assert {s.type for s in config.sources} >= {"maildir", "mbox", "ics"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[general]\nmee = []\n", "[general]: unknown key 'mee'"),
        ("[analysis]\nsilence_days = 'x'\n", "[analysis]: silence_days must be integer"),
        ("[analysis]\nsilence_days = true\n", "silence_days must be integer"),
        ("[reminder]\n", "unknown section [reminder]"),
        ("[rules.neglected]\ninner_dayz = 3\n", "[rules.neglected]: unknown key 'inner_dayz'"),
        ("[sources.x]\npath = '/tmp'\n", "[sources.x]: missing required key 'type'"),
        ("[sources.x]\ntype = 'pop3'\n", "[sources.x]: unknown source type 'pop3'"),
        ("[sources.x]\ntype = 'maildir'\n", "[sources.x]: missing required key 'path'"),
        ("[sources.x]\ntype = 'maildir'\npath = 1\n", "[sources.x]: path must be string"),
        ("[reminders]\nsink = 'nope'\n", "[reminders]: sink 'nope' has no [sinks.nope] table"),
        ("[reminders]\nworking_days = ['monday']\n", "working_days has 'monday'"),
        ("[reminders]\nworking_hours = '9-5'\n", "working_hours must look like"),
        ("[general]\ntimezone = 'Mars/Olympus'\n", "timezone 'Mars/Olympus' is not an IANA zone"),
        ("[general]\ndatabase = 'kk.sqlite3'\n", "database 'kk.sqlite3' is a relative path"),
        ("[general]\ndatabase = 'postgresql://u:pw@h:port/db'\n", "neither a file path nor a"),
        ("[general\n", "invalid TOML"),
    ],
)
def test_bad_config_gives_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config = load_config(path)
        registry.validate(config)
    msg = info.value.format_message()
    assert expected in msg
    assert str(path) in msg
    assert "\n" not in msg
    assert info.value.exit_code == 2


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path, "[analysis]\nsilence_days = 3\n")
    env = tmp_path / "env.toml"
    env.write_text("[analysis]\nsilence_days = 4\n")
    monkeypatch.setenv("KITHKEEP_CONFIG", str(env))
    assert load_config(explicit).analysis.silence_days == 3
    assert load_config(None).analysis.silence_days == 4
    monkeypatch.delenv("KITHKEEP_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with pytest.raises(ConfigError, match="no config file"):
        load_config(None)
    (tmp_path / "xdg" / "kithkeep").mkdir(parents=True)
    (tmp_path / "xdg" / "kithkeep" / "config.toml").write_text("[analysis]\nsilence_days = 5\n")
    assert load_config(None).analysis.silence_days == 5


def test_database_is_a_url_or_a_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))

    def url(value: str) -> str:
        return load_config(write(tmp_path, f"[general]\ndatabase = '{value}'\n")).database_url

    assert url("~/kk/store.sqlite3") == f"sqlite:///{tmp_path}/kk/store.sqlite3"
    assert url("/srv/kk.sqlite3") == "sqlite:////srv/kk.sqlite3"
    assert url("postgresql+psycopg://me@localhost/kk") == "postgresql+psycopg://me@localhost/kk"
    assert url("") == f"sqlite:///{tmp_path}/data/kithkeep/kithkeep.sqlite3"
    # a bad URL's message does not repeat it: it may hold a password
    with pytest.raises(ConfigError) as info:
        url("postgresql://u:s3cret@h:port/db")
    assert "s3cret" not in info.value.format_message()


def test_config_is_frozen() -> None:
    import dataclasses

    config = parse_config({}, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.analysis.silence_days = 1  # type: ignore[misc]


def test_zones_are_resolved_once_at_load_with_daylight_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    cfg = tmp_path / "c.toml"
    cfg.write_text('[general]\ntimezone = "Europe/Berlin"\n[reminders]\nworking_days = ["sat"]\n')
    config = load_config(cfg)
    assert config.general.tz.utcoffset(datetime(2026, 7, 1, tzinfo=UTC)) != (
        config.general.tz.utcoffset(datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert config.reminders.weekdays == frozenset({5})
    assert config.reminders.working_minutes == (9 * 60, 17 * 60)
    # without a configured zone, the system's: $TZ first, with its rules too
    monkeypatch.setenv("TZ", "America/New_York")
    tz = parse_config({}, None).general.tz
    assert tz.utcoffset(datetime(2026, 7, 1)) != tz.utcoffset(datetime(2026, 1, 1))
