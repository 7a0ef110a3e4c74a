"""No credential leaks: not in output, logs, the store, or any file kithkeep writes.

The real CLI runs as subprocesses (``python -m kithkeep``) with HOME, every
XDG folder and TMPDIR pointed into a temp HOME, so every file kithkeep writes
lands there. With known, distinctive secrets it runs, against a private
Dovecot whose users all have the password ``kk-Secret-9f3c``:

- ``sync``, ``check``, ``run``, ``status`` (plain, ``--json`` and ``--verbose``)
  with the password from ``password_command`` and from ``password_env``;
- the same with failing logins: a wrong password, an XOAUTH2 token from
  ``oauth2_token_command`` and kithkeep's stored Google token (Dovecot offers
  no XOAUTH2, so AUTHENTICATE fails);
- ``kithkeep --verbose daemon`` (debug logging) with all of these sources for
  one cycle, then SIGTERM.

Then no secret, nor the base64 of what goes over the wire (SASL PLAIN,
XOAUTH2), may appear in any stdout or stderr line, any log line, any row of
any table of the SQLite store, or any byte of any file under the temp HOME
(the database, its WAL, the reminders calendar, ...). The one exception is
the Google token file itself, which must hold the Google token and nothing
else secret, with mode 0600; the data and state folders must be 0700.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.fixtures.dovecot import DOVECOT, DovecotServer, ImapUser
from tests.system.test_daemon import DaemonProcess, NotifySocket

SECRET = "kk-Secret-9f3c"  # the IMAP password of every user of this Dovecot
WRONG = "kk-Wrong-7b1e"  # a wrong password, tried and refused
XOAUTH = "ya29.kk-Xoauth2-Token-4d2a"  # printed by oauth2_token_command
G_TOKEN = "ya29.a0kk-Google-Access-Token-7e5b"
G_REFRESH = "1//0kk-Google-Refresh-Token-2c8d"
G_CLIENT_SECRET = "GOCSPX-kk-Client-Secret-6a1f"
SECRETS = {
    "password": SECRET,
    "wrong password": WRONG,
    "xoauth2 token": XOAUTH,
    "google token": G_TOKEN,
    "google refresh token": G_REFRESH,
    "google client secret": G_CLIENT_SECRET,
}
GOOGLE_ONLY = {"google token", "google refresh token", "google client secret"}


class SecretDovecot(DovecotServer):
    """The test Dovecot with one known password for all its users."""

    @staticmethod
    def _user(n: int) -> tuple[str, str]:
        return f"user{n}@example.org", SECRET


@pytest.fixture(scope="module")
def dovecot() -> Iterator[SecretDovecot]:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd); CI installs it")
    server = SecretDovecot()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- helpers


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def needles(users: dict[str, ImapUser]) -> dict[str, str]:
    """Every form a secret could take: as is, URL-quoted, base64, and the SASL strings."""
    out: dict[str, str] = {}
    for name, value in SECRETS.items():
        out[name] = value
        out[f"{name} (url-quoted)"] = urllib.parse.quote(value, safe="")
        out[f"{name} (base64)"] = _b64(value)
    for u in users.values():
        for name, pw in (("password", SECRET), ("wrong password", WRONG)):
            out[f"SASL PLAIN of {name} for {u.username}"] = _b64(f"\0{u.username}\0{pw}")
        for name, tok in (("xoauth2 token", XOAUTH), ("google token", G_TOKEN)):
            out[f"XOAUTH2 of {name} for {u.username}"] = _b64(
                f"user={u.username}\x01auth=Bearer {tok}\x01\x01"
            )
    return out


def find_leaks(where: str, data: str | bytes, forms: dict[str, str]) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [f"{where}: {name}" for name, form in forms.items() if form in text]


def append(user: ImapUser, n: int, tag: str) -> None:
    from imapclient import IMAPClient

    c = IMAPClient(user.host, user.port, ssl=False, timeout=10)
    try:
        c.login(user.username, SECRET)
        for i in range(n):
            c.append(
                "INBOX",
                (
                    f"From: Ana Silva <ana{i % 3}@example.com>\r\nTo: me@example.org\r\n"
                    f"Subject: hello {i}\r\nDate: Mon, 1 Jan 2024 10:{i:02d}:00 +0000\r\n"
                    f"Message-ID: <{tag}{i}@example.com>\r\n\r\nbody\r\n"
                ).encode(),
            )
    finally:
        c.logout()


def imap_source(name: str, user: ImapUser, secret_lines: str) -> str:
    return f"""
[sources.{name}]
type = "imap"
host = "{user.host}"
port = {user.port}
tls = "none"
allow_plaintext = true
username = "{user.username}"
timeout = 10
chunk_size = 5
max_retries = 0
{secret_lines}
"""


class VerboseDaemon(DaemonProcess):
    """``kithkeep --verbose daemon`` (debug logging), else as tests/test_daemon.py runs it."""

    def __init__(self, config: Path, notify: NotifySocket, env: dict[str, str], cwd: Path) -> None:
        self.log_path = config.parent / "daemon-verbose.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kithkeep", "--verbose", "--config", str(config), "daemon"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**env, "NOTIFY_SOCKET": notify.name},
            cwd=cwd,
        )


# ------------------------------------------------------------------- test


@pytest.mark.slow
def test_no_secret_reaches_output_logs_store_or_files(
    dovecot: SecretDovecot, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # everything kithkeep writes
    outside = tmp_path / "outside"  # the test's own files: config, secret sources, logs
    home.mkdir()
    outside.mkdir()
    (home / "tmp").mkdir()
    (home / "run").mkdir(mode=0o700)
    users = {name: dovecot.add_user() for name in ("cmd", "env", "wrong", "xoauth", "google")}
    append(users["cmd"], 6, "c")
    append(users["env"], 4, "e")
    (outside / "password.txt").write_text(SECRET + "\n")
    (outside / "token.txt").write_text(XOAUTH + "\n")

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "KITHKEEP", "WATCHDOG_", "JOURNAL", "NOTIFY_SOCKET"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
        TMPDIR=str(home / "tmp"),
        KK_LEAK_PW=SECRET,
        KK_LEAK_WRONG=WRONG,
    )
    data_dir = home / ".local" / "share" / "kithkeep"
    state_dir = home / ".local" / "state" / "kithkeep"
    token_file = state_dir / "google-token.json"

    # kithkeep's stored Google authorization, written by its own code
    saved = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, datetime\n"
            "from google.oauth2.credentials import Credentials\n"
            "from kithkeep.google_auth import MAIL_SCOPE, save_credentials\n"
            "creds = Credentials(token=os.environ['G_TOKEN'],"
            " refresh_token=os.environ['G_REFRESH'],"
            " client_id='kk-test.apps.googleusercontent.com',"
            " client_secret=os.environ['G_SECRET'],"
            " token_uri='https://oauth2.googleapis.com/token', scopes=[MAIL_SCOPE],"
            # valid for a month: no refresh (and no network), the token goes to XOAUTH2
            " expiry=datetime.datetime.utcnow() + datetime.timedelta(days=30))\n"
            "print(save_credentials(creds))\n",
        ],
        env={**env, "G_TOKEN": G_TOKEN, "G_REFRESH": G_REFRESH, "G_SECRET": G_CLIENT_SECRET},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert saved.returncode == 0, saved.stderr
    assert Path(saved.stdout.strip()) == token_file

    general = f"""\
[general]
me = ["me@example.org"]
timezone = "UTC"

[sinks.reminders]
type = "ics"
path = "{home / "calendar" / "reminders.ics"}"

[reminders]
sink = "reminders"
"""
    good_sources = imap_source(
        "cmd", users["cmd"], f'password_command = "cat {outside / "password.txt"}"'
    ) + imap_source("env", users["env"], 'password_env = "KK_LEAK_PW"')
    bad_sources = (
        imap_source("wrong", users["wrong"], 'password_env = "KK_LEAK_WRONG"')
        + imap_source(
            "xoauth", users["xoauth"], f'oauth2_token_command = "cat {outside / "token.txt"}"'
        )
        + imap_source("google", users["google"], "oauth2_google = true")
    )
    (home / "calendar").mkdir()  # the .ics sink writes into a folder, never creates it
    good, bad, daemon_cfg = outside / "good.toml", outside / "bad.toml", outside / "daemon.toml"
    good.write_text(general + good_sources)
    bad.write_text(general + bad_sources)
    daemon_cfg.write_text(
        general + "\n[daemon]\ninterval_minutes = 60\n" + good_sources + bad_sources
    )

    outputs: list[tuple[str, str]] = []
    forms = needles(users)
    # Google's own secrets may be in its token file, and nowhere else
    token_forms = {
        k: v
        for k, v in forms.items()
        if k not in GOOGLE_ONLY and k.split(" (")[0] not in GOOGLE_ONLY
    }
    file_leaks: set[str] = set()

    def scan_files(stage: str) -> list[str]:
        """Every file under HOME, as bytes (the store, its WAL, temp files, ...)."""
        found: list[str] = []
        for path in sorted(p for p in home.rglob("*") if p.is_file()):
            rel = path.relative_to(home)
            found += find_leaks(f"file name {rel}", str(rel), forms)
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # a temp file gone meanwhile
                continue
            found += find_leaks(
                f"file {rel} ({stage})", data, token_forms if path == token_file else forms
            )
        return found

    def kk(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "kithkeep", "--config", str(config), *args],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        label = f"{config.stem} {' '.join(args)}"
        outputs.append((f"stdout of `{label}`", res.stdout))
        outputs.append((f"stderr of `{label}`", res.stderr))
        file_leaks.update(scan_files(f"after `{label}`"))
        return res

    # working logins, both password sources
    first = kk(good, "sync")
    assert first.returncode == 0, first.stderr
    assert "synced cmd: 6 new" in first.stdout and "synced env: 4 new" in first.stdout
    for args in (
        ("--verbose", "sync", "--json"),
        ("check",),
        ("--verbose", "check", "--json"),
        ("run", "--json"),
        ("--verbose", "run"),
        ("status", "--json"),
        ("--verbose", "status"),
    ):
        res = kk(good, *args)
        assert res.returncode == 0, (args, res.stderr)

    # failing logins: a wrong password, an XOAUTH2 token, the stored Google token
    refused = kk(bad, "sync")
    assert refused.returncode == 1
    assert f"refused the login for {users['wrong'].username}" in refused.stderr
    assert "xoauth" in refused.stderr and "google" in refused.stderr
    for args in (
        ("--verbose", "sync"),
        ("check",),
        ("--verbose", "check", "--json"),
        ("run", "--json"),
        ("--verbose", "run", "--json"),
        ("status", "--json"),
    ):
        res = kk(bad, *args)
        assert res.returncode in (0, 1), (args, res.stderr)
        assert "Traceback" not in res.stderr or "--verbose" in args, res.stderr

    # the daemon, with debug logging, for one cycle of all five sources
    append(users["cmd"], 2, "d")
    notify = NotifySocket()
    d = VerboseDaemon(daemon_cfg, notify, env, home)
    try:
        notify.wait_for(lambda m: "READY" in m, timeout=30)
        notify.wait_for(lambda m: m.get("STATUS", "").startswith("idle; next sync"), timeout=60)
        file_leaks.update(scan_files("while the daemon runs"))
        rc, _took = d.stop()
        assert rc == 0, d.log()
    finally:
        d.kill()
        notify.close()
    daemon_log = d.log()
    outputs.append(("daemon log", daemon_log))
    assert "synced cmd" in daemon_log and "source wrong failed" in daemon_log, daemon_log
    assert "DEBUG" in daemon_log  # --verbose reached the daemon: the most talkative it gets

    leaks: list[str] = []

    # 1. every line of output and log
    for where, text in outputs:
        for n, line in enumerate(text.splitlines(), 1):
            leaks += find_leaks(f"{where}, line {n}", line, forms)

    # 2. every row of every table of the store
    db = data_dir / "kithkeep.sqlite3"
    assert db.is_file()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = 0
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                rows += 1
                leaks += find_leaks(f"table {table}", repr(row), forms)
                for value in row:
                    if isinstance(value, bytes | str):
                        leaks += find_leaks(f"table {table}", value, forms)
        messages = con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        errors = dict(
            con.execute("SELECT source, last_error FROM source_status WHERE kind = 'source'")
        )
    finally:
        con.close()
    assert {"messages", "sync_state", "source_status"} <= set(tables)
    assert messages == 6 + 4 + 2 and rows > messages
    assert errors["cmd"] is None and errors["env"] is None
    assert "AUTHENTICATIONFAILED" in errors["wrong"]
    # both tokens were loaded and offered: Dovecot refuses the XOAUTH2 mechanism itself
    assert "Unsupported authentication mechanism" in errors["xoauth"]
    assert "Unsupported authentication mechanism" in errors["google"]

    # 3. every byte of every file under HOME, now as after each command above
    files = sorted(p for p in home.rglob("*") if p.is_file())
    assert db in files and token_file in files
    file_leaks.update(scan_files("at the end"))

    # the scan finds what is there: the token file holds the Google secrets
    token_data = token_file.read_bytes()
    assert find_leaks("token", token_data, {"t": G_TOKEN, "r": G_REFRESH}) == [
        "token: t",
        "token: r",
    ]
    assert find_leaks("pw", (outside / "password.txt").read_bytes(), forms)

    assert sorted({*leaks, *file_leaks}) == []

    # 4. modes: the token file 0600, the data and state folders 0700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
