"""`kithkeep check` checks the reminders sink too; a sink error at `run` is one line;
`run` off a terminal prints one summary line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from kithkeep.cli import main
from tests.unit.demo_cli import kk


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def move_sink(config: Path, folder: Path) -> None:
    text = config.read_text()
    old = str(config.parent / "reminders.ics")
    config.write_text(text.replace(f'path = "{old}"', f'path = "{folder / "reminders.ics"}"'))


def test_check_names_the_missing_folder_and_exits_non_zero(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "--config", str(demo), "check")
    assert code == 0, out
    assert "sink reminders (ics) (reminders go here): ok" in out
    gone = tmp_path / "gone"
    move_sink(demo, gone)
    code, out, err = run_main(capsys, "--config", str(demo), "check")
    assert code == 1
    assert f"FAILED: sink reminders: folder {gone} does not exist" in out
    assert err.count("\n") == 1 and str(gone) in err
    items = json.loads(kk(demo, "check", "--json").output)
    (sink,) = [i for i in items if i["kind"] == "sink"]
    assert sink["ok"] is False and sink["used"] is True and str(gone) in sink["error"]


def test_a_sink_error_at_run_is_one_line(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = tmp_path / "gone"
    move_sink(demo, gone)
    (demo.parent / "kithkeep.sqlite3").unlink()  # a fresh store: nothing written before
    code, _, err = run_main(capsys, "--config", str(demo), "run")
    assert code == 1
    assert err == (
        f"kithkeep: error: sink reminders: folder {gone} does not exist "
        f"(for {gone / 'reminders.ics'})\n"
    )


def test_status_keeps_what_each_run_did_with_the_sink(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-off run (the timer's) records the sink's outcome as the daemon does: a
    failure with its message and count, then the success that ends it."""

    def sink_status() -> dict[str, object]:
        (row,) = [s for s in json.loads(kk(demo, "status", "--json").output)["sources"]
                  if s["kind"] == "sink"]  # fmt: skip
        return row

    assert kk(demo, "run").exit_code == 0
    ok = sink_status()
    assert ok["last_success"] is not None and ok["failures"] == 0 and ok["last_error"] is None
    text = demo.read_text()
    move_sink(demo, tmp_path / "gone")
    for n in (1, 2):
        code, _, err = run_main(capsys, "--config", str(demo), "run")
        failed = sink_status()
        assert code == 1 and failed["failures"] == n
        assert "refusing to act" in str(failed["last_error"])
        assert str(failed["last_error"]) in err
        assert failed["last_success"] == ok["last_success"]
    demo.write_text(text)  # the sink back where it was
    assert kk(demo, "run").exit_code == 0
    again = sink_status()
    assert again["failures"] == 0 and again["last_success"] is not None
    assert "refusing to act" in str(again["last_error"])  # kept for reference


def test_placeholders_from_init_fail_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    assert run_main(capsys, "--config", str(cfg), "init")[0] == 0
    code, out, err = run_main(capsys, "--config", str(cfg), "check")
    assert code == 2
    assert "config: FAILED: [general] me: 'you@example.org' is the example's placeholder" in out
    assert "you@example.org" in err and str(cfg) in err
    cfg.write_text(
        cfg.read_text().replace('me = ["you@example.org"]', 'me = ["sam@posteo.de"]')
        + '\n[sources.m]\ntype = "imap"\nhost = "imap.example.org"\nusername = "sam"\n'
        'password_env = "KK_NOPE"\n'
    )
    code, out, _ = run_main(capsys, "--config", str(cfg), "check")
    assert code == 2
    assert "[sources.m] host: 'imap.example.org' is the example's placeholder" in out
    assert "sam@posteo.de" not in out


# ------------------------------------------------------------------ run's output


def test_run_prints_one_line_off_a_terminal_and_nothing_with_q(demo: Path) -> None:
    res = kk(demo, "run")
    assert res.exit_code == 0, res.output
    (line,) = res.output.splitlines()
    assert line.startswith("synced mail +0, calendar +0; 13 people, 12 ties; ")
    assert "need attention" in line and "reminders in reminders: no change" in line
    assert kk(demo, "run", "-q").output == ""


def test_run_shows_the_findings_review_shows(demo: Path) -> None:
    """run prints the findings its own judging stored (only the people whose verdicts
    may have changed are judged again); as days pass and a decision is taken, they are
    the findings review gets by judging everyone afresh."""
    from datetime import timedelta

    from tests.unit.demo_cli import NOW, review

    def by_run(at: datetime) -> list[tuple[object, ...]]:
        res = kk(demo, "run", "--json", at=at)
        assert res.exit_code == 0, res.output
        return [(f["rule"], f["person"], f["severity"], f["status"], f["due"], f["title"])
                for f in json.loads(res.output)["findings"]]  # fmt: skip

    def by_review(at: datetime) -> list[tuple[object, ...]]:
        return [(f["rule"], f["person"]["id"], f["severity"], f["status"], f["due"], f["title"])
                for f in review(demo, "--all", at=at)]  # fmt: skip

    for days in (0, 3, 12, 45):
        at = NOW + timedelta(days=days)
        if days == 12:
            assert kk(demo, "snooze", "Ana", "--for", "2w", at=at).exit_code == 0
        assert by_run(at) == by_review(at), days
