"""`kithkeep review -i`, driven with keystrokes (click's test runner feeds getchar).

Each decision is read back through `review --json --all` and the store: the
same rows the commands write.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kithkeep.cli import triage
from kithkeep.config import load_config
from kithkeep.store import Store
from tests.unit.demo_cli import kk, review


def statuses(config: Path) -> dict[tuple[str, str], str]:
    return {(f["person"]["name"], f["rule"]): f["status"] for f in review(config, "--all")}


def decisions(config: Path) -> list[tuple[str, str, str | None]]:
    with Store.open(load_config(config).database_url) as store:
        return [(d.kind, d.person, d.rule) for d in store.active_decisions()]


def test_steps_through_the_findings_highest_first(demo: Path) -> None:
    order = [f["person"]["name"] for f in review(demo)]
    res = kk(demo, "review", "-i", keys="n" * len(order))
    assert res.exit_code == 0, res.output
    cards = [line for line in res.output.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    shown = [line.split(" \u00b7 ", 1)[1].split("  ")[0] for line in cards]
    assert shown == order
    assert f"[1/{len(order)}]" in res.output and "0 decision(s) stored." in res.output
    # each card: the why, the explanation, the suggestion and the last exchanges
    card = res.output.split("[2/", 1)[0]
    assert "last contact 39 days ago" in card and "Suggested: Reconnect" in card
    assert "Last exchanges:" in card and "\u2190 in" in card
    assert decisions(demo) == []


def test_each_key_stores_the_decision_the_command_would(demo: Path) -> None:
    before = statuses(demo)
    assert before[("Ana Silva", "neglected")] == "open"
    # Ana: snooze 2w; Grace: done; Hiro (follow-up): next; Liam: dismiss; then quit
    res = kk(demo, "review", "-i", keys="s2w\nxndq")
    assert res.exit_code == 0, res.output
    assert "snoozed (neglected) until 2026-12-07" in res.output
    assert "undo: kithkeep snooze anasilva@gmail.com --rule neglected --undo" in res.output
    assert "3 decision(s) stored; reminders follow on the next run." in res.output
    after = statuses(demo)
    assert after[("Ana Silva", "neglected")] == "snoozed"
    assert ("Grace Lee", "reply_owed") not in after  # done: contact today answers her
    assert after[("Hiro Tanaka", "meeting_followup")] == "open"
    assert after[("Liam O'Brien", "neglected")] == "dismissed"
    assert after[("Chloé Martin", "neglected")] == "open"  # quit before her
    assert sorted(decisions(demo)) == sorted(
        [
            ("snooze", "anasilva@gmail.com", "neglected"),
            ("done", "grace.lee@outlook.com", None),
            ("dismiss", "liam.obrien@protonmail.com", "neglected"),
        ]
    )


def test_ignore_skips_the_persons_other_findings(demo: Path) -> None:
    names = [f["person"]["name"] for f in review(demo)]
    farid = names.index("Farid Haddad")
    res = kk(demo, "review", "-i", keys="n" * farid + "i")
    assert res.exit_code == 0, res.output
    assert "ignoring Farid Haddad from the next run on" in res.output
    assert ("ignore", "farid@haddad.co", None) in decisions(demo)


def test_open_hands_the_message_link_to_the_desktop(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(triage, "open_url", opened.append)
    # Ana's last exchange is a message; Hiro's finding is about a meeting: nothing to open
    res = kk(demo, "review", "-i", keys="onnoq")
    assert res.exit_code == 0, res.output
    assert (
        len(opened) == 1 and opened[0].startswith("mid:demo.") and "@mail.example.org" in opened[0]
    )
    assert f"Open the message: {opened[0]}" in res.output
    assert "no message to open for this finding" in res.output


def test_help_unknown_keys_a_bad_span_and_the_end_of_input(demo: Path) -> None:
    res = kk(demo, "review", "-i", keys="?zssoon\n")
    assert res.exit_code == 0, res.output
    assert "  x  done: you were in touch outside mail" in res.output
    assert "unknown key; ? shows the keys" in res.output
    assert "neither a span like 2w nor a date" in res.output and "not snoozed" in res.output
    # the input ended: that is quitting, with nothing stored
    assert "0 decision(s) stored." in res.output
    assert decisions(demo) == []
    # a snooze until a date, and Enter for the default of two weeks
    res = kk(demo, "review", "-i", keys="s2026-12-24\ns\nq")
    assert "until 2026-12-24" in res.output and "until 2026-12-07" in res.output
