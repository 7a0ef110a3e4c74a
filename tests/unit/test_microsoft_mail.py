"""The Microsoft Graph mail source against the HTTP-level Graph fake, into a real SQLite store.

Each test asserts on what reaches the store and on the requests sent: paths,
``$select`` (metadata only: never a body), ``Prefer: odata.maxpagesize``, the
links followed, the backoff slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kithkeep.connectors.graph_client import GraphClient
from kithkeep.connectors.microsoft_mail import (
    SELECT_BASIC,
    MicrosoftMailConfig,
    MicrosoftMailSource,
    thread_key,
)
from kithkeep.errors import AuthError, ConfigError, SourceError
from kithkeep.records import MessageRecord
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.graph_fake import ACCOUNT, TOKEN, Answer, GraphFake, error


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    f = GraphFake()
    yield f
    f.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    yield s
    s.close()


def config(fake: GraphFake, **extra: Any) -> MicrosoftMailConfig:
    return MicrosoftMailConfig(
        graph_url=fake.url, token_command=f"echo {TOKEN}", page_size=2, **extra
    )


class Run:
    def __init__(self, fake: GraphFake, store: Store, **extra: Any) -> None:
        self.fake, self.store, self.extra = fake, store, extra
        self.sleeps: list[float] = []

    def source(self) -> MicrosoftMailSource:
        return MicrosoftMailSource(
            "outlook",
            config(self.fake, **self.extra),
            sleep=self.sleeps.append,
            jitter=lambda: 0.5,
        )

    def __call__(self, **kwargs: Any) -> Any:
        src = self.source()
        try:
            return sync_source(self.store, src, **kwargs)
        finally:
            src.close()

    def messages(self) -> dict[tuple[str, str], MessageRecord]:
        return {(m.folder, m.subject): m for m in self.store.iter_messages()}


def person(name: str, address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def fill(fake: GraphFake) -> dict[str, str]:
    ids = {}
    for i in range(5):
        ids[f"in{i}"] = fake.add_message(
            "inbox",
            subject=f"in{i}",
            internetMessageId=f"<IN{i}@Example.ORG>",
            conversationId="AAQkAGconv1" if i < 2 else f"AAQkAGconv-in{i}",
            sentDateTime=f"2026-11-1{i}T09:00:00Z",
            receivedDateTime=f"2026-11-1{i}T09:00:05Z",
            isRead=i % 2 == 0,
            **{"from": person("Ana Silva", "Ana@Example.org")},
            ccRecipients=[person("Bo", "bo@example.org")],
        )
    for i in range(2):
        ids[f"out{i}"] = fake.add_message(
            "sentitems",
            subject=f"out{i}",
            internetMessageId=f"<out{i}@contoso.com>",
            conversationId="AAQkAGconv1",
            sentDateTime=f"2026-11-1{i}T12:00:00Z",
            **{"from": person("Me", ACCOUNT)},
            toRecipients=[person("Ana Silva", "ana@example.org")],
            bccRecipients=[person("Cy", "cy@example.org")],
        )
    return ids


def delta_requests(fake: GraphFake) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/messages/delta")]


def test_first_sync_reads_metadata_only_page_by_page(fake: GraphFake, store: Store) -> None:
    fill(fake)
    run = Run(fake, store)
    result = run()
    assert result.records == 7
    msgs = run.messages()
    assert sorted(msgs) == sorted(
        [("Inbox", f"in{i}") for i in range(5)] + [("Sent Items", f"out{i}") for i in range(2)]
    )
    in0 = msgs["Inbox", "in0"]
    assert in0.message_id == "in0@example.org"
    assert in0.from_[0].email == "ana@example.org" and in0.from_[0].name == "Ana Silva"
    assert [a.email for a in in0.to] == [ACCOUNT] and [a.email for a in in0.cc] == [
        "bo@example.org"
    ]
    assert in0.date == datetime(2026, 11, 10, 9, tzinfo=UTC)
    assert in0.internal_date == datetime(2026, 11, 10, 9, 0, 5, tzinfo=UTC)
    assert in0.flags == frozenset({"\\Seen"}) and msgs["Inbox", "in1"].flags == frozenset()
    assert not in0.in_sent_folder and msgs["Sent Items", "out0"].in_sent_folder
    assert [a.email for a in msgs["Sent Items", "out0"].bcc] == ["cy@example.org"]
    # one thread key for one conversationId, across folders; none for Gmail's message id
    assert in0.gm_thrid == msgs["Sent Items", "out1"].gm_thrid == thread_key("AAQkAGconv1")
    assert 0 < in0.gm_thrid < 2**63 and in0.gm_thrid != msgs["Inbox", "in2"].gm_thrid
    assert in0.gm_msgid is None and in0.in_reply_to is None and in0.list_id is None
    # the requests: well-known folders, then per folder a delta query of metadata only
    first = [r for r in delta_requests(fake) if "$select" in r.query]
    assert len(first) == 3  # inbox, sent items, archive (empty)
    for r in first:
        assert r.query["$select"].split(",") == list(SELECT_BASIC)
        assert "body" not in r.query["$select"].lower()
        assert "$expand" not in r.query
    assert all(r.headers["prefer"] == "odata.maxpagesize=2" for r in delta_requests(fake))
    # 5 inbox messages in pages of 2: three requests, the last two by @odata.nextLink
    inbox = [r for r in delta_requests(fake) if fake.folder_id("inbox") in r.path]
    assert [("$select" in r.query, "$skiptoken" in r.query) for r in inbox] == [
        (True, False),
        (False, True),
        (False, True),
    ]
    assert [r.path for r in fake.sent("GET", "/mailFolders/")[:3]] == [
        "/v1.0/me/mailFolders/inbox",
        "/v1.0/me/mailFolders/sentitems",
        "/v1.0/me/mailFolders/archive",
    ]
    # the position saved is the round's @odata.deltaLink
    cp = store.checkpoints("outlook")["Inbox"]
    assert cp["complete"] is True and "$deltatoken=" in cp["link"]
    assert cp["folder_id"] == fake.folder_id("inbox")


def test_next_run_reads_changes_and_keeps_removed_messages(fake: GraphFake, store: Store) -> None:
    ids = fill(fake)
    run = Run(fake, store)
    run()
    fake.requests.clear()
    fake.update_message(ids["in1"], isRead=True)
    fake.delete_message(ids["in3"])
    fake.add_message("inbox", subject="new", internetMessageId="<new@example.org>")
    result = run()
    assert result.records == 2  # the new message and the changed one
    msgs = run.messages()
    assert msgs["Inbox", "in1"].flags == frozenset({"\\Seen"})
    # deleted on the server: still in the history, the contact happened
    assert ("Inbox", "in3") in msgs and ("Inbox", "new") in msgs
    assert len(msgs) == 8
    inbox = [r for r in delta_requests(fake) if fake.folder_id("inbox") in r.path]
    # three changes in pages of two
    assert [set(r.query) for r in inbox] == [{"$deltatoken"}, {"$skiptoken"}]


def test_a_run_without_changes_asks_one_delta_per_folder(fake: GraphFake, store: Store) -> None:
    fill(fake)
    run = Run(fake, store)
    run()
    fake.requests.clear()
    assert run().records == 0
    assert len(delta_requests(fake)) == 3
    assert all(set(r.query) == {"$deltatoken"} for r in delta_requests(fake))


def test_an_expired_delta_link_resyncs_that_folder(fake: GraphFake, store: Store) -> None:
    ids = fill(fake)
    run = Run(fake, store)
    run()
    fake.delete_message(ids["in4"])
    fake.expire_links()
    fake.requests.clear()
    run()
    statuses = [(r.path.rsplit("/", 2)[-2], sorted(r.query)) for r in delta_requests(fake)][:2]
    # the saved link answered 410, then a fresh initial query of the same folder
    assert statuses[0][1] == ["$deltatoken"] and statuses[1][1] == ["$select"]
    msgs = run.messages()
    # the folder was replaced by what the server holds now (brief: replace_folder)
    assert ("Inbox", "in4") not in msgs and len([k for k in msgs if k[0] == "Inbox"]) == 4
    assert len([k for k in msgs if k[0] == "Sent Items"]) == 2
    assert store.checkpoints("outlook")["Inbox"]["complete"] is True


def test_a_folder_replaced_under_the_same_name_is_resynced(fake: GraphFake, store: Store) -> None:
    fake.add_message("archive", subject="old")
    run = Run(fake, store)
    run()
    fake.remove_folder("archive")
    fake.add_folder("Archive", wk="archive")
    fake.add_message("archive", subject="fresh")
    run()
    assert [k for k in run.messages() if k[0] == "Archive"] == [("Archive", "fresh")]


def test_an_interrupted_first_sync_resumes_at_its_page(fake: GraphFake, store: Store) -> None:
    fill(fake)
    run = Run(fake, store)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 1

    result = run(should_stop=stop)
    assert result.stopped and result.records == 2
    cp = store.checkpoints("outlook")["Inbox"]
    assert cp["complete"] is False and "$skiptoken=" in cp["link"]
    fake.requests.clear()
    run()
    inbox = [r for r in delta_requests(fake) if fake.folder_id("inbox") in r.path]
    assert [sorted(r.query) for r in inbox] == [["$skiptoken"], ["$skiptoken"]]
    assert len(run.messages()) == 7


def test_throttling_waits_what_retry_after_says(fake: GraphFake, store: Store) -> None:
    fill(fake)
    fake.fail = [
        error(429, "TooManyRequests", "Please retry again later.", {"Retry-After": "2.5"}),
        error(503, "serviceNotAvailable", "Service unavailable", {"Retry-After": "1"}),
        error(504, "GatewayTimeout", "gateway timeout"),
    ]
    run = Run(fake, store)
    assert run().records == 7
    # Retry-After where given, else exponential backoff with jitter (0.5 x 4 s)
    assert run.sleeps == [2.5, 1.0, 2.0]


def test_a_retry_after_beyond_the_bound_stops_the_run_at_once(
    fake: GraphFake, store: Store
) -> None:
    fill(fake)
    run = Run(fake, store)
    run()
    fake.fail = [
        error(429, "TooManyRequests", "Please retry again later.", {"Retry-After": "3600"})
    ]
    with pytest.raises(SourceError) as info:
        run()
    assert info.value.format_message() == (
        "source outlook: Microsoft Graph is throttling (HTTP 429 TooManyRequests) and asks to "
        "wait 3600 s before trying to read the inbox folder again; giving up for now "
        "(nothing was lost: the next run tries again)"
    )
    assert run.sleeps == []
    assert run().records == 0


def test_retries_run_out_with_one_line(fake: GraphFake, store: Store) -> None:
    fake.fail = [error(500, "generalException", "boom")] * 6
    run = Run(fake, store, max_retries=5)
    with pytest.raises(SourceError, match=r"failed 6 times \(HTTP 500 generalException\)"):
        run()
    assert run.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_full_headers_read_threading_lists_and_the_replied_state(
    fake: GraphFake, store: Store
) -> None:
    fake.add_message(
        "inbox",
        subject="Re: plan",
        internetMessageHeaders=[
            {"name": "In-Reply-To", "value": "<Root@Example.org>"},
            {"name": "References", "value": "<a@x> <Root@Example.org>"},
            {"name": "Received", "value": "from mail.example.org by ..."},
        ],
        **{"ext:Integer 0x1081": "102"},
    )
    fake.add_message(
        "inbox",
        subject="News",
        internetMessageHeaders=[
            {"name": "List-Id", "value": "News <news.example.org>"},
            {"name": "List-Unsubscribe", "value": "<mailto:u@example.org>"},
            {"name": "Precedence", "value": "bulk"},
        ],
        **{"ext:Integer 0x1081": "104"},  # forwarded: not a reply
    )
    run = Run(fake, store, full_headers=True)
    run()
    msgs = run.messages()
    reply = msgs["Inbox", "Re: plan"]
    assert reply.in_reply_to == "root@example.org"
    assert reply.references == ("a@x", "root@example.org")
    assert reply.flags == frozenset({"\\Answered"})
    news = msgs["Inbox", "News"]
    assert news.list_id == "News <news.example.org>" and news.list_unsubscribe
    assert news.precedence == "bulk" and news.flags == frozenset()
    first = next(r for r in delta_requests(fake) if "$select" in r.query)
    assert first.query["$select"].endswith(",internetMessageHeaders")
    assert first.query["$expand"] == "singleValueExtendedProperties($filter=id eq 'Integer 0x1081')"
    src = run.source()
    assert src.scopes == ("Mail.Read",)
    assert Run(fake, store).source().scopes == ("Mail.ReadBasic",)


def test_include_and_exclude_globs_on_folder_paths(fake: GraphFake, store: Store) -> None:
    projects = fake.add_folder("Projects", parent=fake.folder_id("inbox"))
    fake.add_folder("Old", parent=projects)
    fake.add_message("Projects", subject="p1")
    fake.add_message("Old", subject="o1")
    fake.add_message("inbox", subject="i1")
    src = MicrosoftMailSource(
        "outlook",
        config(fake, include=("Inbox*", "Sent Items"), exclude=("*/Old",)),
    )
    assert [(s.name, s.count, s.note) for s in src.check()] == [
        ("Inbox", 1, "inbox"),
        ("Sent Items", 0, "sent"),
        ("Inbox/Projects", 1, ""),
    ]
    sync_source(store, src)
    assert sorted((m.folder, m.subject) for m in store.iter_messages()) == [
        ("Inbox", "i1"),
        ("Inbox/Projects", "p1"),
    ]


def test_check_lists_the_default_folders_with_counts(fake: GraphFake) -> None:
    fill(fake)
    fake.remove_folder("archive")  # an account without an archive folder
    src = MicrosoftMailSource("outlook", config(fake))
    assert [(s.name, s.count, s.note) for s in src.check()] == [
        ("Inbox", 5, "inbox"),
        ("Sent Items", 2, "sent"),
    ]


def test_a_refused_token_is_refreshed_once_then_reported(fake: GraphFake, store: Store) -> None:
    tokens: list[bool] = []

    def bad_token(*, force_refresh: bool = False) -> str:
        tokens.append(force_refresh)
        return "expired-token-value"

    src = MicrosoftMailSource("outlook", config(fake))
    src.graph._client = GraphClient("source outlook", src.cfg, bad_token, SourceError)
    with pytest.raises(AuthError) as info:
        sync_source(store, src)
    assert tokens == [False, True]
    assert info.value.format_message() == (
        "source outlook: Microsoft Graph refused the token while trying to read the inbox "
        "folder (check token_command)"
    )


def test_links_to_another_host_are_not_followed(fake: GraphFake, store: Store) -> None:
    src = MicrosoftMailSource("outlook", config(fake))
    folder = src.folders()[0]
    fake.fail = [Answer(200, {"value": [], "@odata.nextLink": "https://evil.example/steal"})]
    with pytest.raises(SourceError, match="link to another host"):
        list(src._sync_folder(_NoStore(), folder))
    assert not any("evil" in r.path for r in fake.requests)


class _NoStore:
    def checkpoints(self) -> dict[str, Any]:
        return {}

    def known_uids(self, folder: str) -> dict[str, frozenset[str]]:
        return {}

    def progress(self, *a: Any) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token_command": "", "client_id": ""}, "set client_id"),
        ({"token_command": "", "client_id": "x", "account": ""}, "set account"),
        ({"graph_url": "http://graph.example.org/v1.0"}, "must use https"),
        ({"page_size": 0}, "page_size must be between 1 and 1000"),
    ],
)
def test_bad_options_are_config_errors(
    fake: GraphFake, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        MicrosoftMailSource("outlook", replace(config(fake), **change))
