"""`kithkeep me`, `me add/remove`, `explain` and the proposals of `check` and `status`,
through the real CLI, on a Maildir with an alias, an assistant in the sent folder,
machines and a colleague nobody answered."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from kithkeep import clock
from kithkeep.cli import main
from tests.helpers import write_maildir_message

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
ME = "sam@home.example"
ALIAS = "sam.old@home.example"  # the user's old address: most of the sent folder
ASSISTANT = "lena.hoff@corp.example"  # sends some mail from the user's mailbox
DESK = "alerts.desk@ops.example"
BULK = "anna@brand.example"
JANE = "jane.doe@corp.example"  # wrote three times, never got an answer
ANA = "ana@x.example"


def _build(root: Path) -> Path:
    box = root / "Mail"
    n = itertools.count(1)

    def put(frm: str, to: str, days_ago: float, subject: str, extra: str = "") -> str:
        i = next(n)
        mid = f"m{i}@test.example"
        raw = (
            f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: {format_datetime(NOW - timedelta(days=days_ago))}\r\n"
            f"Message-ID: <{mid}>\r\n{extra}\r\n"
        )
        # the assistant's mail to the user is in the inbox; the rest of hers is sent mail
        sent = frm in (ME, ALIAS) or (frm == ASSISTANT and to != ME)
        write_maildir_message(box, f"{1_700_000_000 + i}.M{i}", raw.encode(), "S",
                              "Sent" if sent else "")  # fmt: skip
        return mid

    for k in range(8):  # the old address writes to Ana, who answers it
        mid = put(ALIAS, ANA, 100 - 10 * k, f"plans {k}")
        put(ANA, ALIAS, 99 - 10 * k, f"Re: plans {k}", f"In-Reply-To: <{mid}>\r\n")
    for k in range(3):  # the assistant and the user write to each other
        put(ME, ASSISTANT, 60 - 10 * k, "schedule")
        put(ASSISTANT, ME, 59 - 10 * k, "Re: schedule")
    for k in range(2):  # she sends from the user's mailbox to a client
        put(ASSISTANT, "carl@client.example", 30 - k, "invoice")
    for k in range(4):
        put(DESK, ME, 40 - 5 * k, f"alert {k}")
        put(BULK, ME, 41 - 5 * k, f"our news {k}", "Feedback-ID: 3:news:esp\r\n")
    for k in range(3):
        put(JANE, ME, 20 - 5 * k, "lunch?")
    config = root / "config.toml"
    config.write_text(
        f"""[general]
me = ["{ME}"]
database = "sqlite:///{root / "kk.sqlite3"}"
timezone = "UTC"

[sources.mail]
type = "maildir"
path = "{box}"
"""
    )
    return config


def kk(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    try:
        with pytest.raises(SystemExit) as exc:
            main(["--now", NOW.isoformat(), "--config", str(config), *args])
    finally:
        clock.set_now(None)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out


@pytest.fixture
def config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = _build(tmp_path)
    assert kk(capsys, path, "run", "-q")[0] == 0
    return path


def _json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> object:
    code, out = kk(capsys, config, *args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_me_lists_where_each_address_came_from_and_proposes_the_majority_sender(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = _json(capsys, config, "me")
    assert me == {
        "addresses": [{"address": ME, "sources": ["config"]}],
        "proposals": [
            {
                "address": ALIAS,
                "account": "mail",
                "folder": "Sent",
                "messages": 8,
                "share": round(8 / 13, 3),
                "command": f"kithkeep me add {ALIAS}",
            }
        ],
    }
    check = _json(capsys, config, "check")
    assert [c["address"] for c in check if c["kind"] == "proposal"] == [ALIAS]  # type: ignore[union-attr, index]
    status = _json(capsys, config, "status")
    assert [p["address"] for p in status["me_proposals"]] == [ALIAS]  # type: ignore[index]
    code, out = kk(capsys, config, "me")
    assert code == 0 and f"proposed: {ALIAS}" in out and ASSISTANT not in out


def test_me_add_makes_the_alias_mine_and_remove_undoes_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def ana() -> dict[str, object]:
        people = _json(capsys, config, "people", "--all")
        return next(p for p in people if ANA in p["addresses"])  # type: ignore[union-attr, index]

    assert ana()["messages_out"] == 0  # the alias's mail is not the user's yet
    assert kk(capsys, config, "me", "add", ALIAS)[0] == 0
    assert kk(capsys, config, "run", "-q")[0] == 0
    me = _json(capsys, config, "me")
    assert {"address": ALIAS, "sources": ["you (kithkeep me add)"]} in me["addresses"]  # type: ignore[index]
    assert me["proposals"] == []  # type: ignore[index]
    assert ana()["messages_out"] == 8 and ana()["is_tie"]
    assert kk(capsys, config, "me", "remove", ALIAS)[0] == 0
    assert kk(capsys, config, "run", "-q")[0] == 0
    me = _json(capsys, config, "me")
    # removed: not mine, and never proposed again
    assert me == {"addresses": [{"address": ME, "sources": ["config"]}], "proposals": []}
    assert ana()["messages_out"] == 0
    assert kk(capsys, config, "me", "add", "not an address")[0] == 2


def test_explain_answers_for_every_address_people_all_lists(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = _json(capsys, config, "people", "--all")
    addresses = sorted({a for p in people for a in p["addresses"]})  # type: ignore[union-attr, index]
    assert {ASSISTANT, DESK, BULK, JANE, ANA} <= set(addresses)
    # the assistant's mail to her client is not the user's contact with him
    assert "carl@client.example" not in addresses
    verdicts = {}
    for address in addresses:
        found = _json(capsys, config, "explain", address)
        assert found["address"] == address and found["reasons"]  # type: ignore[index]
        verdicts[address] = found["verdict"]  # type: ignore[index]
    assert verdicts[DESK] == verdicts[BULK] == "automated"
    # the assistant is a person (a tie: mail both ways), the colleague a contact
    assert verdicts[ASSISTANT] == "tie"
    assert verdicts[JANE] == "contact"
    bulk = _json(capsys, config, "explain", BULK)
    assert any("Feedback-ID" in r for r in bulk["reasons"])  # type: ignore[index, union-attr]
    assert _json(capsys, config, "explain", ME)["verdict"] == "me"  # type: ignore[index]
    # `people` without --all leaves the machines out
    persons = _json(capsys, config, "people")
    listed = {a for p in persons for a in p["addresses"]}  # type: ignore[union-attr, index]
    assert DESK not in listed and BULK not in listed and JANE in listed
    code, out = kk(capsys, config, "explain", DESK)
    assert code == 0 and "automated" in out
    assert kk(capsys, config, "explain", "nobody")[0] == 2
