"""`check` on a CalDAV reminders sink, against a real Radicale: the credentials
work, the calendar exists or will be created; nothing is written by a check."""

from __future__ import annotations

from typing import Any

import pytest
from caldav.davclient import DAVClient

from kithkeep.connectors.caldav_dav import CalDavSink, CalDavSinkConfig
from kithkeep.errors import SinkError
from tests.contract.sink_contract import NOW, reminder
from tests.fixtures.radicale import RadicaleUser


def sink(user: RadicaleUser, **options: Any) -> CalDavSink:
    cfg = CalDavSinkConfig(
        url=user.url, username=user.username, password_env="KK_TEST_DAV_PW", **options
    )
    return CalDavSink("dav", cfg)


def calendars(user: RadicaleUser) -> list[str]:
    client = DAVClient(url=user.url, username=user.username, password=user.password)
    return sorted(str(c.get_display_name()) for c in client.principal().calendars())


@pytest.fixture
def user(radicale_user: RadicaleUser, monkeypatch: pytest.MonkeyPatch) -> RadicaleUser:
    monkeypatch.setenv("KK_TEST_DAV_PW", radicale_user.password)
    return radicale_user


def test_a_missing_calendar_is_created_by_the_run_not_by_the_check(user: RadicaleUser) -> None:
    before = calendars(user)
    checked = sink(user).check()
    assert [(s.name, s.count, s.note) for s in checked] == [
        ("kithkeep", 0, "created on the first run")
    ]
    assert calendars(user) == before  # the check wrote nothing
    s = sink(user)
    s.create(reminder("neglected:p-ana:1", NOW))
    assert "kithkeep" in calendars(user)
    assert [(i.name, i.count) for i in sink(user).check()] == [("kithkeep", 1)]


def test_no_calendar_and_none_to_create_fails(user: RadicaleUser) -> None:
    with pytest.raises(SinkError, match="sink dav: no calendar 'Reminders' on the server"):
        sink(user, calendar="Reminders", create_calendar=False).check()


def test_wrong_credentials_fail_the_check(
    user: RadicaleUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KK_TEST_DAV_PW", "wrong")
    with pytest.raises(SinkError, match="sink dav") as exc:
        sink(user).check()
    assert "wrong" not in str(exc.value)
