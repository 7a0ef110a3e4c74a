"""A table of broken configurations, each run through the real CLI.

``python -m kithkeep --config X sync`` in a subprocess, with the platform
folders (XDG_*) pointed into the test's temp folder. A configuration error
gives exactly one stderr line that names the key, exit code 2, and writes
nothing: no database file, nothing in the data, state or config folders. A
runtime failure (an IMAP port where nobody listens) gives exit code 1 and
stores nothing.

A case the CLI does not meet yet is a strict xfail with its reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

IMAP = '[sources.mail]\ntype = "imap"\nhost = "127.0.0.1"\nusername = "sam@example.org"\n'


@dataclass(frozen=True)
class Case:
    id: str
    toml: str
    # every one of these must appear in the error line
    names: tuple[str, ...]
    exit_code: int = 2
    env: tuple[tuple[str, str], ...] = ()
    # why the CLI does not pass yet (a strict xfail), or ""
    bug: str = ""


CASES = [
    Case("unknown-key", "[general]\ncolour = 1\n", ("[general]", "colour")),
    Case("unknown-section", "[genral]\nx = 1\n", ("genral",)),
    Case("unknown-rules-key", "[rules.neglected]\ninner_dayz = 3\n", ("neglected", "inner_dayz")),
    Case("wrong-type-int", '[analysis]\nsilence_days = "14"\n', ("[analysis]", "silence_days")),
    Case("wrong-type-bool", '[rules.neglected]\nenabled = "yes"\n', ("neglected", "enabled")),
    Case("wrong-type-list", '[general]\nme = "sam@example.org"\n', ("[general]", "me")),
    Case("not-positive", "[analysis]\nmax_recipients = 0\n", ("[analysis]", "max_recipients")),
    Case("missing-required", '[sources.mail]\ntype = "maildir"\n', ("[sources.mail]", "path")),
    Case("missing-type", '[sources.mail]\npath = "/nowhere"\n', ("[sources.mail]", "type")),
    Case("unknown-source-type", '[sources.mail]\ntype = "pop3"\n', ("[sources.mail]", "pop3")),
    Case(
        "unknown-sink-type",
        '[sinks.cal]\ntype = "carrier-pigeon"\n',
        ("[sinks.cal]", "carrier-pigeon"),
    ),
    Case("unknown-connector-key", IMAP + "pasword_env = 'X'\n", ("[sources.mail]", "pasword_env")),
    Case("sink-not-defined", '[reminders]\nsink = "cal"\n', ("[reminders]", "sink")),
    Case("bad-timezone", '[general]\ntimezone = "Mars/Olympus"\n', ("[general]", "timezone")),
    Case(
        "bad-hours-range",
        '[reminders]\nworking_hours = "25:00-26:00"\n',
        ("[reminders]", "working_hours"),
    ),
    Case(
        "bad-hours-shape",
        '[reminders]\nworking_hours = "nine to five"\n',
        ("[reminders]", "working_hours"),
    ),
    Case(
        "bad-working-day",
        '[reminders]\nworking_days = ["someday"]\n',
        ("[reminders]", "working_days"),
    ),
    Case("invalid-toml", "[general\n", ("invalid TOML",)),
    Case(
        "bad-tls-mode",
        IMAP + 'tls = "sometimes"\npassword_env = "HOME"\n',
        ("[sources.mail]", "tls"),
    ),
    Case(
        "plaintext-not-allowed",
        IMAP + 'tls = "none"\npassword_env = "HOME"\n',
        ("[sources.mail]", "allow_plaintext"),
    ),
    Case(
        "chunk-size-zero",
        IMAP + 'chunk_size = 0\npassword_env = "HOME"\n',
        ("[sources.mail]", "chunk_size"),
    ),
    Case(
        "bad-ca-file",
        IMAP + 'port = 1\nca_file = "/nonexistent/ca.pem"\npassword_env = "HOME"\n',
        ("[sources.mail]", "ca_file"),
    ),
    Case(
        "missing-secret-source",
        IMAP + "port = 1\n",
        ("[sources.mail]", "password_"),
    ),
    Case(
        "missing-secret-env",
        IMAP + 'port = 1\npassword_env = "KK_TEST_UNSET_PASSWORD"\n',
        ("password_env", "KK_TEST_UNSET_PASSWORD"),
    ),
]


def closed_port() -> int:
    """A port on 127.0.0.1 where nobody listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Run:
    code: int
    stderr_lines: list[str]
    db: Path
    home: Path

    def written(self) -> list[Path]:
        """Files and folders kithkeep created (the config file aside)."""
        return sorted(p for p in self.home.rglob("*") if p.name != "config.toml")


def run_sync(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Run:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "data" / "kithkeep.sqlite3"
    config = home / "config.toml"
    # the database line comes first so that the case's own [general] keys stay valid TOML
    body = toml
    if body.startswith("[general]\n"):
        body = body.removeprefix("[general]\n")
    config.write_text(f'[general]\ndatabase = "sqlite:///{db}"\n{body}', encoding="utf-8")
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KITHKEEP", "XDG_", "KK_"))
    }
    full_env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "xdg-data"),
        XDG_STATE_HOME=str(home / "xdg-state"),
        XDG_CONFIG_HOME=str(home / "xdg-config"),
        XDG_CACHE_HOME=str(home / "xdg-cache"),
        **(env or {}),
    )
    full_env.pop("JOURNAL_STREAM", None)
    proc = subprocess.run(
        [sys.executable, "-m", "kithkeep", "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=home,
        check=False,
    )
    return Run(proc.returncode, proc.stderr.splitlines(), db, home)


def _params() -> list[object]:
    out: list[object] = []
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every case, run at once (each is a new interpreter: in a row they take long)."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {
            c.id: pool.submit(run_sync, tmp_path_factory.mktemp(c.id), c.toml, dict(c.env))
            for c in CASES
        }
        return {k: f.result() for k, f in futures.items()}


@pytest.mark.parametrize("case", _params())
def test_a_broken_config_gives_one_line_naming_the_key_and_writes_nothing(
    runs: dict[str, Run], case: Case
) -> None:
    run = runs[case.id]
    assert run.code == case.exit_code, run.stderr_lines
    assert len(run.stderr_lines) == 1, run.stderr_lines
    line = run.stderr_lines[0]
    assert line.startswith("kithkeep: error: "), line
    for name in case.names:
        assert name in line, (name, line)
    assert "Traceback" not in line
    assert not run.db.exists()
    assert run.written() == [], run.written()


def _unreachable(tmp_path: Path) -> Run:
    port = closed_port()
    toml = (
        IMAP + f'port = {port}\ntls = "none"\nallow_plaintext = true\ntimeout = 5\n'
        'password_env = "KK_TEST_IMAP_PW"\nmax_retries = 0\n'
    )
    return run_sync(tmp_path, toml, {"KK_TEST_IMAP_PW": "s3cret-pw"})


def test_an_unreachable_host_is_a_runtime_failure_that_stores_nothing(tmp_path: Path) -> None:
    run = _unreachable(tmp_path)
    assert run.code == 1, run.stderr_lines
    assert len(run.stderr_lines) == 1, run.stderr_lines
    last = run.stderr_lines[-1]
    assert last.startswith("kithkeep: error: ") and "127.0.0.1" in last, last
    assert "cannot connect" in last or "refused" in last.lower(), last
    assert not any("Traceback" in line for line in run.stderr_lines)
    assert not any("s3cret-pw" in line for line in run.stderr_lines)
    if run.db.exists():  # the store may be created for a runtime failure, but stays empty
        import sqlite3

        with sqlite3.connect(run.db) as c:
            assert c.execute("SELECT count(*) FROM messages").fetchone() == (0,)
            assert c.execute("SELECT count(*) FROM sync_state").fetchone() == (0,)
