"""What a reminder says: what to do, the exchange it is about with a link to
open it, why, and the command that shows the person; no evidence dump."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import icalendar

from kithkeep.config import Config, parse_config
from kithkeep.reminders import (
    describe,
    describer,
    exchange_of,
    gmail_account,
    gmail_url,
    message_links,
    mid_url,
)
from kithkeep.rules.base import Finding

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LITERALS = re.compile(r"\b(None|True|False)\b")


def found(rule: str, **evidence: object) -> Finding:
    return Finding(
        rule=rule,
        person_id="p-ana",
        person_name="Ana Silva",
        severity=50,
        due=NOW,
        title="Reconnect with Ana Silva",
        explanation="Last contact 2026-10-27; the cadence for this tie is 21 days.",
        suggestion="Reconnect by offering something useful.",
        evidence=dict(evidence),
    )


NEGLECTED = found(
    "neglected",
    last_contact="2026-10-27T18:00:00+00:00",
    last_kind="in",
    last_subject="Dinner Friday?",
    last_message_id="CAF+x=1@mail.gmail.com",
    cadence_override_days=None,
    include_replies=False,
)


def test_a_neglected_tie_names_the_last_exchange_and_links_to_it() -> None:
    text = describe(NEGLECTED)
    assert text.split("\n\n") == [
        "Reconnect by offering something useful.",
        "Last exchange: \u201cDinner Friday?\u201d, 2026-10-27 (they wrote)\n"
        "Open the message: mid:CAF%2Bx%3D1@mail.gmail.com",
        "Why: Last contact 2026-10-27; the cadence for this tie is 21 days.",
        "Details: kithkeep show p-ana",
    ]
    assert not LITERALS.search(text)  # None/False of the evidence never show


def test_gmail_users_get_a_search_link_in_their_account() -> None:
    text = describe(NEGLECTED, gmail="sam@gmail.com")
    assert (
        "In Gmail: https://mail.google.com/mail/u/sam@gmail.com/"
        "#search/rfc822msgid%3ACAF%2Bx%3D1%40mail.gmail.com"
    ) in text
    assert gmail_url("a@b", "") == "https://mail.google.com/mail/u/0/#search/rfc822msgid%3Aa%40b"


def test_reply_owed_and_meeting_followup() -> None:
    reply = found("reply_owed", message_date="2026-12-01T09:00:00+00:00",
                  subject="Workshop slides", message_id="w1@x.org", is_reply=False)  # fmt: skip
    text = describe(reply)
    assert "Their message: \u201cWorkshop slides\u201d, 2026-12-01\n" in text
    assert "Open the message: mid:w1@x.org" in text
    meeting = found("meeting_followup", meeting_end="2026-12-04T15:45:00+00:00",
                    meeting_title="Partnership chat", last_out=None)  # fmt: skip
    text = describe(meeting)
    assert "The meeting: \u201cPartnership chat\u201d, 2026-12-04" in text
    assert "mid:" not in text and not LITERALS.search(text)


def test_no_link_without_a_real_message_id() -> None:
    # a message without Message-ID gets a synthetic "kk-<hash>": no client knows it
    assert message_links("kk-0123456789abcdef") == []
    assert message_links("") == []
    assert mid_url("a b@c") == "mid:a%20b@c"
    review_only = found("one_way_ask", side="them", asks=3)
    assert exchange_of(review_only) is None
    assert describe(review_only).count("\n\n") == 2  # what, why, details


def test_gmail_account_from_the_config() -> None:
    def config(text: str, path: Path | None = None) -> Config:
        return parse_config(tomllib.loads(text), path)

    gmail = config('[sources.g]\ntype = "imap"\nhost = "imap.gmail.com"\nusername = "s@x.org"\n')
    assert gmail_account(gmail) == "s@x.org"
    oauth = config('[sources.g]\ntype = "imap"\nhost = "imap.x.org"\noauth2_google = true\n')
    assert gmail_account(oauth) == ""
    me = config('[general]\nme = ["sam@googlemail.com"]\n')
    assert gmail_account(me) == "sam@googlemail.com"
    assert gmail_account(config('[general]\nme = ["sam@posteo.de"]\n')) is None
    # the config's Gmail account reaches the reminders' text
    assert "In Gmail: https://mail.google.com/mail/u/s@x.org/" in describer(gmail)(NEGLECTED)
    assert "In Gmail" not in describer(config(""))(NEGLECTED)


def test_the_demos_reminders_hold_subjects_and_no_literals(template: Path) -> None:
    cal = icalendar.Calendar.from_ical((template / "reminders.ics").read_bytes())
    events = list(cal.walk("VEVENT"))
    assert len(events) >= 4
    kinds = set()
    for e in events:
        text = str(e["DESCRIPTION"])
        assert not LITERALS.search(text), text
        assert "cadence_override_days" not in text and "Evidence" not in text
        heading = re.search(r"^(Last exchange|Their message|The meeting): \u201c(.+)\u201d", text,
                            re.MULTILINE)  # fmt: skip
        assert heading, text
        kinds.add(heading.group(1))
        if heading.group(1) != "The meeting":
            assert "Open the message: mid:" in text
        assert re.search(r"Details: kithkeep show p\w+$", text)
    assert kinds == {"Last exchange", "Their message", "The meeting"}
