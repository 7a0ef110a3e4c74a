"""`people`, `show`, `merge` and `unmerge` on the demo sample, through the real CLI entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.cells import cell_len

from kithkeep.cli import main
from kithkeep.cli.commands_people import people_lines, sparkline
from kithkeep.model.stats import PersonStats

# The public JSON interface of `people --json` (documented in the README).
PEOPLE_FIELDS = {
    "person_id", "name", "addresses", "first_contact", "last_contact", "last_in", "last_out",
    "last_meeting", "last_meeting_size", "messages_in", "messages_out", "messages_in_direct",
    "messages_in_cc", "messages_out_direct", "messages_out_cc", "meetings", "initiations_me",
    "initiations_them", "initiations_me_answered", "initiations_them_answered", "reply_rate_me",
    "reply_rate_them", "median_reply_hours_me", "median_reply_hours_them", "replies_me",
    "replies_them", "cadence_days", "exchanges", "unanswered_streak", "pending_inbound",
    "strength", "peak_strength", "tier", "tier_source", "is_tie", "ignored", "initiations",
    "monthly", "last_meeting_recurring", "previous_meeting", "meeting_cadence_days",
    "last_kind", "last_subject", "last_message_id", "last_meeting_title", "messages_in_inferred",
    "automated", "automated_reason",
}  # fmt: skip


def kk(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("demo")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--dir", str(d), "--json"])
    assert exc.value.code == 0
    return d / "config.toml"


def test_people_json_fields_and_ties(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = kk(capsys, "--config", str(demo), "people", "--json")
    assert code == 0
    people = json.loads(out)
    assert {p["name"] for p in people} >= {"Ana Silva", "Chloé Martin", "Jonas Berg"}
    for p in people:
        assert set(p) == PEOPLE_FIELDS
        assert len(p["monthly"]) == 24
    chloe = next(p for p in people if p["name"] == "Chloé Martin")
    # the demo's Chloé writes about monthly; replies a day later must not shrink her cadence
    assert 25 <= chloe["cadence_days"] <= 40
    code, out, _ = kk(capsys, "--config", str(demo), "people", "--ties", "--json")
    ties = json.loads(out)
    assert ties and all(p["is_tie"] for p in ties) and len(ties) < len(people)
    # noise from the sample never shows
    addresses = {a for p in people for a in p["addresses"]}
    assert not addresses & {"newsletter@weeklydigest.example", "noreply@github.com",
                            "dev@lists.example.org", "guest0@party.example",
                            "atlas@resource.calendar.google.com", "c0@acme-corp.com"}  # fmt: skip


def test_people_table(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = kk(capsys, "--config", str(demo), "people")
    assert code == 0 and "Ana Silva" in out and "unans" in out and "13 people" in out


def test_show_person(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = kk(capsys, "--config", str(demo), "show", "Chloé")
    assert code == 0, out
    assert "chloe.martin@gmx.de" in out and "last exchanges" in out
    assert "contact by month" in out and "cadence" in out
    code, out, _ = kk(capsys, "--config", str(demo), "show", "ben@okafor.dev", "--json")
    data = json.loads(out)
    assert data["name"] == "Ben Okafor" and data["meetings"] == 1
    kinds = {c["direction"] for c in data["exchanges_list"]}
    assert kinds == {"in", "out", "meeting"}
    assert len([c for c in data["exchanges_list"] if c["direction"] != "meeting"]) == (
        data["messages_in"] + data["messages_out"]
    )


def test_show_unknown_person_is_a_usage_error(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = kk(capsys, "--config", str(demo), "show", "nobody-like-this")
    assert code == 2 and "no person matches" in err


def test_suggest_merge_unmerge(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(demo)
    code, out, _ = kk(capsys, "--config", cfg, "people", "--suggest-merges", "--json")
    suggestions = json.loads(out)
    assert len(suggestions) == 1 and "same full name" in suggestions[0]["reason"]
    addrs = {suggestions[0]["a"]["addresses"][0], suggestions[0]["b"]["addresses"][0]}
    assert addrs == {"isabel.gomez@acme-corp.com", "isabelgomez@gmail.com"}
    code, out, _ = kk(capsys, "--config", cfg, "people", "--json")
    before = json.loads(out)
    apart = [p for p in before if p["name"] == "Isabel Gomez"]

    code, out, err = kk(capsys, "--config", cfg, "merge", "isabel.gomez@acme-corp.com",
                        "Isabel.Gomez+personal@gmail.com")  # fmt: skip
    assert code == 0, err
    assert "now has" in out
    code, out, _ = kk(capsys, "--config", cfg, "people", "--json")
    merged = [p for p in json.loads(out) if p["name"] == "Isabel Gomez"]
    assert len(merged) == 1 and len(merged[0]["addresses"]) == 2
    assert merged[0]["messages_in"] == sum(p["messages_in"] for p in apart)
    assert merged[0]["messages_out"] == sum(p["messages_out"] for p in apart)
    code, out, _ = kk(capsys, "--config", cfg, "people", "--suggest-merges", "--json")
    assert json.loads(out) == []
    code, _, err = kk(capsys, "--config", cfg, "merge", "Isabel", "isabelgomez@gmail.com")
    assert code == 2 and "already one person" in err

    code, out, err = kk(capsys, "--config", cfg, "unmerge", "isabelgomez@gmail.com")
    assert code == 0, err
    code, out, _ = kk(capsys, "--config", cfg, "people", "--json")
    assert len([p for p in json.loads(out) if p["name"] == "Isabel Gomez"]) == 2
    # the user said they are different: not suggested again
    code, out, _ = kk(capsys, "--config", cfg, "people", "--suggest-merges", "--json")
    assert json.loads(out) == []
    code, _, err = kk(capsys, "--config", cfg, "unmerge", "isabelgomez@gmail.com")
    assert code == 2 and "not merged" in err


def test_sparkline() -> None:
    assert sparkline([0, 0]) == "  "
    assert sparkline([0, 1, 8, 4]) == " ▁█▄"
    assert sparkline([]) == ""


@pytest.mark.parametrize("width", [80, 100])
def test_the_people_table_cuts_names_never_figures(width: int) -> None:
    """A long name or address gives way at the terminal's width; the figures stay whole."""
    now = datetime(2026, 12, 6, tzinfo=UTC)
    people = [
        PersonStats(person_id="p00000000001", name="Bartholomew Fitzgerald-Oyelaran-Smith",
                    addresses=("b@x.org", "b2@x.org"), messages_in=1234, messages_out=678,
                    last_contact=now - timedelta(days=12355), cadence_days=5262.2,
                    reply_rate_them=1.0, unanswered_streak=12),
        PersonStats(person_id="p00000000002", name="",
                    addresses=("original-sender.with.a.long.local.part@example.jp",),
                    messages_in=1, last_contact=now),
    ]  # fmt: skip
    lines = people_lines(people, now, width)
    assert max(cell_len(line) for line in lines) <= width, lines
    (first,) = [line for line in lines if "p00000000001" in line]
    for figure in ("678/1234", "12355d", "5262.2d", "100%", "12"):
        assert f" {figure}" in first, (figure, first)
    assert "Barth" in first and "\u2026" in first  # cut, with an ellipsis
    header = next(line for line in lines if line.startswith("id "))
    assert "unans" in header and "\u2026" not in header
