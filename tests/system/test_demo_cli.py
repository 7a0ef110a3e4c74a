"""End to end on the embedded sample: `kithkeep demo`, `run`, `people`, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import icalendar

from kithkeep.connectors.ics import KEY_PROP


def kk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from kithkeep.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def own_events(path: Path) -> list[tuple[str, str, str, str]]:
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    return sorted(
        (str(e["UID"]), str(e[KEY_PROP]), e["DTSTART"].dt.isoformat(), str(e["SUMMARY"]))
        for e in cal.walk("VEVENT")
    )


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    d = tmp_path / "demo"
    res = kk("demo", "--dir", str(d), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    neglected = [f for f in report["findings"] if f["rule"] == "neglected"]
    assert neglected, report
    assert any(f["name"] == "Ana Silva" for f in neglected)
    # reminders were written to an .ics file that icalendar parses, with an alarm each
    reminders = Path(report["reminders_file"])
    events = own_events(reminders)
    assert len(events) == sum(1 for f in report["findings"] if f["remind"])
    cal = icalendar.Calendar.from_ical(reminders.read_bytes())
    assert all(e.walk("VALARM") for e in cal.walk("VEVENT"))

    # running again on the same data leaves the reminder events unchanged, byte for byte
    config = d / "config.toml"
    before = reminders.read_bytes()
    res2 = kk("--config", str(config), "run", "--json")
    assert res2.returncode == 0, res2.stderr
    assert json.loads(res2.stdout)["reminders"].get("create", 0) == 0
    assert reminders.read_bytes() == before


def test_people_never_calls_noise_a_tie(tmp_path: Path) -> None:
    d = tmp_path / "demo"
    assert kk("demo", "--dir", str(d)).returncode == 0
    res = kk("--config", str(d / "config.toml"), "people", "--json")
    assert res.returncode == 0, res.stderr
    people = json.loads(res.stdout)
    addresses = {a for p in people for a in p["addresses"]}
    ties = {a for p in people if p["is_tie"] for a in p["addresses"]}
    noise = {
        "newsletter@weeklydigest.example",
        "noreply@github.com",
        "no-reply@shop.example",
        "dev@lists.example.org",
        "priya@lists.example.org",
    }
    assert not noise & addresses, noise & addresses
    assert not any(a.endswith("@party.example") for a in addresses)  # mass mail
    assert {"anasilva@gmail.com", "ben@okafor.dev"} <= ties  # Gmail addresses are normalized
    assert "jonas.berg@posteo.de" not in ties  # one exchange: a contact, not a tie


def home_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITHKEEP_"))}
    return {**env, "HOME": str(home), **extra}


def test_demo_keeps_its_result_and_says_where(tmp_path: Path) -> None:
    env = home_env(tmp_path, COLUMNS="80")
    res = kk("demo", env=env)
    assert res.returncode == 0, res.stderr
    kept = tmp_path / ".local" / "share" / "kithkeep" / "demo"
    assert f"The demo stays in {kept}" in res.stdout
    assert f"kithkeep --config {kept / 'config.toml'} review -i" in res.stdout
    assert (kept / "reminders.ics").is_file() and (kept / "Mail").is_dir()
    assert "Ana Silva" in res.stdout and "neglected" in res.stdout
    # the review of the kept demo, at 80 columns: nothing wider, no rule name cut
    res = kk("--config", str(kept / "config.toml"), "review", env=env)
    assert res.returncode == 0, res.stderr
    assert max(len(line) for line in res.stdout.splitlines()) <= 80, res.stdout
    assert "reply owed" in res.stdout and "meeting follow-up" in res.stdout
    assert "_" not in "".join(line[:30] for line in res.stdout.splitlines())
    # run again: built afresh (today's dates), not added to
    stamp = (kept / "Mail" / "cur").stat().st_mtime_ns
    assert kk("demo", "--json", env=env).returncode == 0
    assert (kept / "Mail" / "cur").stat().st_mtime_ns != stamp
    # a folder there that is not a demo is never removed
    (kept / "config.toml").write_text("# mine\n")
    res = kk("demo", env=env)
    assert res.returncode == 2 and "is not a kithkeep demo" in res.stderr
    assert (kept / "config.toml").read_text() == "# mine\n"


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[general]\nmee = 1\n")
    res = kk("--config", str(bad), "people")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "unknown key 'mee'" in res.stderr

    missing = tmp_path / "missing.toml"
    res = kk("--config", str(missing), "sync")
    assert res.returncode == 2 and "not found" in res.stderr

    res = kk("nosuchcommand")
    assert res.returncode == 2

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[general]\ndatabase = "sqlite:///{tmp_path / "db.sqlite3"}"\n'
        f'[sources.m]\ntype = "maildir"\npath = "{tmp_path / "nomail"}"\n'
    )
    res = kk("--config", str(cfg), "sync")
    assert res.returncode == 1
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr
    res = kk("--config", str(cfg), "--verbose", "sync")
    assert res.returncode == 1 and "Traceback" in res.stderr


def test_version() -> None:
    res = kk("--version")
    assert res.returncode == 0 and "kithkeep" in res.stdout


def test_init_writes_the_example(tmp_path: Path) -> None:
    target = tmp_path / "cfg" / "config.toml"
    assert kk("--config", str(target), "init").returncode == 0
    assert "[analysis]" in target.read_text()
    res = kk("--config", str(target), "init")
    assert res.returncode == 2 and "--force" in res.stderr
