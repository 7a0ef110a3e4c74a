"""`kithkeep review` and the decision commands, through click's CliRunner.

Against a real SQLite store built from the embedded demo (a Maildir, a
calendar, an .ics reminders file) with the clock frozen. Every command runs
in a fresh App, so decisions that show up later were read back from the store.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import icalendar
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from freezegun import freeze_time
from rich import box
from rich.console import Console
from rich.measure import Measurement

from kithkeep.cli import cli
from kithkeep.cli.render import findings_table, table_width
from kithkeep.config import load_config
from kithkeep.connectors.ics import KEY_PROP
from kithkeep.errors import UsageError
from kithkeep.pipeline import RunReport, judge_stored, run_once
from kithkeep.store import Store
from tests.helpers import write_maildir_message
from tests.unit.demo_cli import NOW, kk, review

SCHEMA_KEYS = {
    "person", "rule", "severity", "due", "title", "explanation", "evidence", "status", "reminder",
}  # fmt: skip


def rows(config: Path, name: str, *args: str, at: datetime = NOW) -> list[tuple[str, str]]:
    return [(f["rule"], f["status"]) for f in review(config, *args, at=at)
            if f["person"]["name"] == name]  # fmt: skip


def run(config: Path, at: datetime) -> RunReport:
    cfg = load_config(config)
    with freeze_time(at), Store.open(cfg.database_url) as store:
        return run_once(cfg, store, now=datetime.now(UTC))


def reminder_keys(config: Path) -> dict[str, str]:
    """key -> UID of the events in the reminders .ics file."""
    path = config.parent / "reminders.ics"
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    return {str(e[KEY_PROP]): str(e["UID"]) for e in cal.walk("VEVENT")}


# ------------------------------------------------------------------ review


def test_review_json_schema(demo: Path) -> None:
    data = review(demo)
    assert data, "the demo has findings"
    calendar = reminder_keys(demo)
    with_reminder = 0
    for f in data:
        assert set(f) == SCHEMA_KEYS
        assert set(f["person"]) == {"id", "name", "addresses"}
        assert isinstance(f["person"]["id"], str) and f["person"]["id"]
        assert isinstance(f["person"]["name"], str)
        assert f["person"]["addresses"] and all("@" in a for a in f["person"]["addresses"])
        assert f["rule"] in {"neglected", "reply_owed", "meeting_followup", "unanswered",
                             "one_way_ask"}  # fmt: skip
        assert isinstance(f["severity"], int) and 1 <= f["severity"] <= 100
        assert datetime.fromisoformat(f["due"]).tzinfo is not None
        assert isinstance(f["title"], str) and isinstance(f["explanation"], str)
        assert isinstance(f["evidence"], dict) and f["evidence"]
        assert f["status"] == "open"  # without --all
        r = f["reminder"]
        if r is not None:
            with_reminder += 1
            assert set(r) == {"sink", "start", "uid"}
            assert r["sink"] == "reminders"
            assert datetime.fromisoformat(r["start"]) >= NOW
            # the uid is the one of the event in the calendar for this finding
            key = f"{f['rule']}:{f['person']['id']}:"
            assert any(k.startswith(key) and uid == r["uid"] for k, uid in calendar.items())
    assert with_reminder == len(calendar) > 0
    assert any(f["reminder"] is None for f in data)  # review-only findings
    assert [f["severity"] for f in data] == sorted((f["severity"] for f in data), reverse=True)


def test_review_rule_filter_and_table(demo: Path) -> None:
    only = review(demo, "--rule", "unanswered")
    assert only and {f["rule"] for f in only} == {"unanswered"}
    bad = kk(demo, "review", "--rule", "nosuchrule")
    assert bad.exit_code == 2
    # wide enough: one row per finding, with the suggestion
    res = kk(demo, "review", columns=250)
    assert res.exit_code == 0, res.output
    for word in ("finding", "suggested", "Ana Silva", "Reconnect by offering something useful"):
        assert word in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 250


@pytest.mark.parametrize("columns", [80, 60])
def test_review_reads_at_80_columns_and_below(demo: Path, columns: int) -> None:
    res = kk(demo, "review", columns=columns)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= columns, res.output
    # rules in plain words, never cut, never the code names
    for label in ("neglected", "reply owed", "meeting follow-up", "unanswered", "one-way ask"):
        assert any(f" {label} " in line for line in lines), (label, res.output)
    for code in ("reply_ow", "meeting_f", "one_way"):
        assert code not in res.output
    # no table at this width: each finding is a line of who and what, and a line of why
    assert "\u2503" not in res.output and "\u2502" not in res.output
    (ana,) = [i for i, line in enumerate(lines) if "Ana Silva" in line]
    assert "neglected" in lines[ana] and "reminder" in lines[ana]
    assert lines[ana + 1].strip().startswith("last contact 39 days ago")
    assert "mostly gets in touch to ask" in res.output  # one-way ask, told kindly
    # the demo's Isabel writes from two addresses: review points at the suggestion
    assert "1 possible merge: kithkeep people --suggest-merges" in lines


def test_one_day_arithmetic_everywhere(demo: Path) -> None:
    """The days in review's why are the days in people's "last" and show's dates."""
    at = NOW + timedelta(hours=23)  # late in the day: rounding would add one
    res = kk(demo, "review", at=at, columns=80)
    liam = res.output.split("Liam O'Brien", 1)[1].splitlines()[1]
    days = int(liam.split("last contact ", 1)[1].split(" days ago")[0])
    people = kk(demo, "people", at=at, columns=200)
    (row,) = [line for line in people.output.splitlines() if "Liam O'Brien" in line]
    assert f" {days}d " in row
    (f,) = [f for f in review(demo, at=at) if f["person"]["name"] == "Liam O'Brien"]
    last = datetime.fromisoformat(f["evidence"]["last_contact"])
    assert days == int((at - last).total_seconds() // 86400)


# ------------------------------------------------------------ decisions


def test_snooze_hides_until_the_date_and_persists_across_runs(demo: Path) -> None:
    assert ("neglected", "open") in rows(demo, "Ana Silva")
    res = kk(demo, "snooze", "Ana Silva", "--for", "2w")
    assert res.exit_code == 0, res.output
    assert "until 2026-12-07" in res.output
    assert rows(demo, "Ana Silva") == []
    assert rows(demo, "Ana Silva", "--all") == [("neglected", "snoozed")]
    # the next run takes her reminder out of the calendar and records the status
    run(demo, NOW + timedelta(hours=1))
    ana_id = next(f["person"]["id"] for f in review(demo, "--all")
                  if f["person"]["name"] == "Ana Silva")  # fmt: skip
    assert not [k for k in reminder_keys(demo) if ana_id in k]
    cfg = load_config(demo)
    with Store.open(cfg.database_url) as store, store.engine.connect() as c:
        status = c.execute(
            sa.text("select status from derived_findings where person_id = :p"), {"p": ana_id}
        ).scalar_one()
    assert status == "snoozed"
    # the day before it ends, still snoozed; from the date on, back with a reminder
    assert rows(demo, "Ana Silva", at=NOW + timedelta(days=13)) == []
    assert rows(demo, "Ana Silva", at=NOW + timedelta(days=14, minutes=1)) == [
        ("neglected", "open")
    ]
    run(demo, NOW + timedelta(days=14, minutes=1))
    assert [k for k in reminder_keys(demo) if ana_id in k]


def test_snooze_until_a_date_and_clear(demo: Path) -> None:
    assert kk(demo, "snooze", "ana.silva@gmail.com", "--until", "2026-12-01").exit_code == 0
    assert rows(demo, "Ana Silva", at=datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == []
    assert rows(demo, "Ana Silva", at=datetime(2026, 12, 1, 0, 0, tzinfo=UTC)) == [
        ("neglected", "open")
    ]
    assert kk(demo, "snooze", "Silva", "--clear").exit_code == 0
    assert rows(demo, "Ana Silva") == [("neglected", "open")]


def test_dismiss_lasts_until_new_mail(demo: Path) -> None:
    assert rows(demo, "Chloé Martin") == [("neglected", "open")]
    res = kk(demo, "dismiss", "Chloé")
    assert res.exit_code == 0, res.output
    assert rows(demo, "Chloé Martin") == []
    # silence going on is not new evidence
    later = NOW + timedelta(days=30)
    run(demo, later)
    assert rows(demo, "Chloé Martin", "--all", at=later) == [("neglected", "dismissed")]
    # she writes; months of silence later the tie is flagged again
    raw = (
        "From: Chloé Martin <chloe.martin@gmx.de>\r\nTo: sam.rivera@example.org\r\n"
        f"Date: {format_datetime(later)}\r\nSubject: Back in town\r\n"
        "Message-ID: <new.1@gmx.de>\r\n\r\n"
    ).encode()
    write_maildir_message(demo.parent / "Mail", "1800000000.new1", raw, "RS")
    much_later = later + timedelta(days=200)
    run(demo, much_later)
    assert rows(demo, "Chloé Martin", "--all", at=much_later) == [("neglected", "open")]


def test_dismiss_one_rule_and_undo(demo: Path) -> None:
    assert kk(demo, "dismiss", "Elena", "--rule", "unanswered").exit_code == 0
    assert rows(demo, "Elena Rossi", "--all") == [("unanswered", "dismissed")]
    assert kk(demo, "dismiss", "Elena", "--undo").exit_code == 0
    assert rows(demo, "Elena Rossi") == [("unanswered", "open")]


def test_done_resets_until_the_cadence_passes_again(demo: Path) -> None:
    res = kk(demo, "done", "Ana Silva", "--note", "long call")
    assert res.exit_code == 0, res.output
    assert rows(demo, "Ana Silva") == []
    # inner tier: 21 days after the call she is due again
    assert rows(demo, "Ana Silva", at=NOW + timedelta(days=20)) == []
    assert rows(demo, "Ana Silva", at=NOW + timedelta(days=22)) == [("neglected", "open")]
    # a contact on a past date counts from that date
    day22 = NOW + timedelta(days=22)
    assert kk(demo, "done", "Ana Silva", "--on", "2026-12-10", at=day22).exit_code == 0
    assert rows(demo, "Ana Silva", at=day22) == []


def test_cadence_tier_ignore(demo: Path) -> None:
    # a yearly tie, silent 70 days: not neglected, unless the user wants monthly contact
    assert rows(demo, "Dmitri Ivanov") == []
    assert kk(demo, "cadence", "Dmitri", "30d").exit_code == 0
    (f,) = [f for f in review(demo) if f["person"]["name"] == "Dmitri Ivanov"]
    assert f["evidence"]["cadence_days"] == 30 and f["evidence"]["cadence_source"] == "user"
    assert kk(demo, "cadence", "Dmitri", "auto").exit_code == 0
    assert rows(demo, "Dmitri Ivanov") == []
    # tier: the inner tier's 21 days do not beat his own yearly rhythm (3 x ~330 days)
    assert kk(demo, "tier", "Dmitri", "inner").exit_code == 0
    assert rows(demo, "Dmitri Ivanov") == []
    # ignore: no findings about them after the next run
    assert ("one_way_ask", "open") in rows(demo, "Farid Haddad")
    assert kk(demo, "ignore", "Farid").exit_code == 0
    run(demo, NOW + timedelta(hours=1))
    assert rows(demo, "Farid Haddad", "--all", at=NOW + timedelta(hours=1)) == []


def test_usage_errors(demo: Path) -> None:
    res = kk(demo, "snooze", "Ana Silva")
    assert isinstance(res.exception, UsageError) and "--until" in str(res.exception)
    res = kk(demo, "snooze", "Ana Silva", "--for", "soon")
    assert isinstance(res.exception, UsageError)
    res = kk(demo, "snooze", "Ana Silva", "--until", "2020-01-01")
    assert isinstance(res.exception, UsageError) and "past" in str(res.exception)
    res = kk(demo, "cadence", "Nobody Known", "30d")
    assert isinstance(res.exception, UsageError) and "no person" in str(res.exception)
    res = kk(demo, "tier", "Ana Silva", "bestie")
    assert isinstance(res.exception, UsageError)
    assert UsageError.exit_code == 2


def test_review_before_any_analysis(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[general]\ndatabase = "sqlite:///{tmp_path / "kk.sqlite3"}"\n')
    assert review(config) == []
    res = kk(config, "review")
    assert res.exit_code == 0 and "kithkeep run" in res.output
    res = kk(config, "snooze", "Ana", "--for", "2w")
    assert isinstance(res.exception, UsageError) and "no people" in str(res.exception)


def test_deleting_a_reminder_in_the_calendar_dismisses_it(demo: Path) -> None:
    ics = demo.parent / "reminders.ics"
    cal = icalendar.Calendar.from_ical(ics.read_bytes())
    (ana,) = [f for f in review(demo) if f["person"]["name"] == "Ana Silva"]
    assert ana["reminder"] is not None
    kept = [c for c in cal.subcomponents if c.get("UID") != ana["reminder"]["uid"]]
    cal.subcomponents[:] = kept
    ics.write_bytes(cal.to_ical())
    later = NOW + timedelta(hours=1)
    run(demo, later)
    assert rows(demo, "Ana Silva", "--all", at=later) == [("neglected", "dismissed")]
    assert ana["reminder"]["uid"] not in reminder_keys(demo).values()
    # and it stays so on the following runs
    run(demo, later + timedelta(hours=1))
    assert ana["reminder"]["uid"] not in reminder_keys(demo).values()
    (f,) = [f for f in review(demo, "--all", at=later) if f["person"]["name"] == "Ana Silva"]
    assert f["reminder"] is None


# ------------------------------------------------ one undo style, --json, -q


def json_of(res: Result) -> Any:
    assert res.exit_code == 0, res.output + repr(res.exception)
    return json.loads(res.output)


def test_every_decision_prints_itself_as_stored_and_undoes_with_undo(demo: Path) -> None:
    decisions = {
        "snooze": ["--for", "2w", "--rule", "neglected"],
        "dismiss": ["--rule", "neglected"],
        "done": ["--note", "a call"],
        "ignore": [],
        "cadence": ["30d"],
        "tier": ["close"],
    }
    for kind, args in decisions.items():
        d = json_of(kk(demo, kind, "Ana Silva", *args, "--json"))
        assert set(d) == {"id", "kind", "person", "rule", "until", "value", "note",
                          "created_at", "active"}  # fmt: skip
        assert d["kind"] == kind and d["person"] == "anasilva@gmail.com" and d["active"]
        assert datetime.fromisoformat(d["created_at"]) == NOW
        # read back from the store: the printed decision is the stored one
        cfg = load_config(demo)
        with Store.open(cfg.database_url) as store:
            (row,) = [r for r in store.active_decisions() if r.id == d["id"]]
        assert (row.kind, row.rule, row.value, row.note) == (
            kind, d["rule"], d["value"], d["note"],
        )  # fmt: skip
    snoozed = json_of(kk(demo, "snooze", "Ana Silva", "--for", "1w", "--json"))
    assert snoozed["until"] == (NOW + timedelta(days=7)).isoformat() and snoozed["rule"] is None
    # the same --undo for every kind; it prints what it took back
    for kind in decisions:
        undone = json_of(kk(demo, kind, "Ana Silva", "--undo", "--json"))
        assert undone and {u["kind"] for u in undone} == {kind}
        assert not any(u["active"] for u in undone)
        assert json_of(kk(demo, kind, "Ana Silva", "--undo", "--json")) == []
    assert rows(demo, "Ana Silva") == [("neglected", "open")]


def test_old_undo_words_still_work(demo: Path) -> None:
    assert kk(demo, "cadence", "Dmitri", "30d").exit_code == 0
    assert json_of(kk(demo, "cadence", "Dmitri", "auto", "--json"))[0]["kind"] == "cadence"
    assert kk(demo, "snooze", "Ana Silva", "--for", "2w").exit_code == 0
    assert json_of(kk(demo, "snooze", "Ana Silva", "--clear", "--json"))[0]["kind"] == "snooze"
    res = kk(demo, "cadence", "Dmitri")
    assert isinstance(res.exception, UsageError) and "--undo" in str(res.exception)


def test_quiet_and_options_after_the_command(demo: Path) -> None:
    loud = kk(demo, "snooze", "Ana Silva", "--for", "2w")
    assert "snoozed all findings for Ana Silva" in loud.output
    quiet = kk(demo, "snooze", "Ana Silva", "--for", "2w", "-q")
    assert quiet.exit_code == 0 and quiet.output == ""
    # --config (and -v, -q) after the command name: `kithkeep review --config X`
    with freeze_time(NOW):
        res = CliRunner().invoke(cli, ["review", "--json", "--config", str(demo)])
    assert res.exit_code == 0, res.output
    assert {f["person"]["name"] for f in json.loads(res.output)} >= {"Grace Lee"}
    with freeze_time(NOW):
        res = CliRunner().invoke(cli, ["--config", "/nonexistent.toml", "review", "-q",
                                       "--config", str(demo)])  # fmt: skip
    assert res.exit_code == 0 and "Grace Lee" in res.output


@pytest.mark.parametrize("variant", ["default", "simple", "no-edge-padding", "no-box"])
def test_table_width_is_what_rich_measures(demo: Path, variant: str) -> None:
    """review decides table or lines by table_width, which does not render the cells;
    it must agree with rich's own measure."""
    cfg = load_config(demo)
    with Store.open(cfg.database_url) as store:
        findings = judge_stored(cfg, store, datetime.now(UTC))[1]
    table = findings_table(findings, datetime.now(UTC))
    if variant == "simple":
        table.box = box.SIMPLE
    elif variant == "no-edge-padding":
        table.pad_edge = False
    elif variant == "no-box":
        table.box = None
    out = Console(width=500, file=io.StringIO())
    assert findings
    assert table_width(table) == Measurement.get(out, out.options, table).maximum
