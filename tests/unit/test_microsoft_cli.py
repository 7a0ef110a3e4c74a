"""`kithkeep check` and `kithkeep run` with Microsoft connectors, against the Graph fake.

The config names the fake as graph_url and gets its token from token_command,
as a user would point kithkeep at a test server: the registry, the CLI, the
sync and the reminders all go through the real wiring.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time

from kithkeep.cli import main
from tests.graph_fake import ACCOUNT, TOKEN, GraphFake


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    f = GraphFake()
    yield f
    f.close()


def write_config(tmp_path: Path, fake: GraphFake) -> Path:
    common = f'account = "{ACCOUNT}"\ngraph_url = "{fake.url}"\ntoken_command = "echo {TOKEN}"\n'
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[general]\ndatabase = "sqlite:///{tmp_path / "kk.sqlite3"}"\ntimezone = "UTC"\n\n'
        f'[sources.outlook]\ntype = "microsoft"\n{common}\n'
        f'[sources.outlook-cal]\ntype = "microsoft-calendar"\n{common}\n'
        f'[sinks.outlook]\ntype = "microsoft"\n{common}calendar = "kithkeep"\n\n'
        '[reminders]\nsink = "outlook"\n'
    )
    return cfg


def kk(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@freeze_time("2026-11-23 07:00:00")
def test_check_lists_folders_and_the_calendar_with_counts(
    fake: GraphFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_message("inbox", subject="a")
    fake.add_message("inbox", subject="b")
    fake.add_message("sentitems", subject="c")
    fake.add_event(subject="Coffee")
    code, out, err = kk(capsys, "--config", str(write_config(tmp_path, fake)), "check", "--json")
    assert code == 0, err
    items = json.loads(out)
    got = {
        s["source"]: [(x["name"], x["count"], x["note"]) for x in s["scopes"]]
        for s in items
        if s["kind"] == "source"
    }
    # the reminders sink is checked too (issue 18): it lists what kithkeep wrote there
    assert [(s["sink"], s["ok"]) for s in items if s["kind"] == "sink"] == [("outlook", True)]
    assert got == {
        "outlook": [("Inbox", 2, "inbox"), ("Sent Items", 1, "sent"), ("Archive", 0, "archive")],
        "outlook-cal": [("Calendar", 1, "730 days back, 60 ahead")],
    }


@freeze_time("2026-11-23 07:00:00")
def test_run_syncs_mail_and_meetings_and_a_second_run_changes_nothing(
    fake: GraphFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_message("inbox", subject="a", internetMessageId="<a@example.org>")
    fake.add_event(subject="Coffee")
    cfg = str(write_config(tmp_path, fake))
    code, out, err = kk(capsys, "--config", cfg, "run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {r["source"]: r["records"] for r in report["synced"]} == {"outlook": 1, "outlook-cal": 1}
    assert report["source_errors"] == {}
    fake.requests.clear()
    code, out, err = kk(capsys, "--config", cfg, "run", "--json")
    assert code == 0, err
    assert [r.method for r in fake.requests if r.method != "GET"] == ["POST"]  # getSchedule only
