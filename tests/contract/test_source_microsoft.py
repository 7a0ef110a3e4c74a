"""The mail-source contract on Microsoft Graph, through the HTTP-level Graph fake.

A delivered message becomes a Graph message in the fake's mailbox, body
included (as Graph keeps it): the contract's check that no body reaches the
store then covers the ``$select`` the source sends. INBOX, SENT and OTHER
are Inbox, Sent Items and Archive. ``\\Answered`` is Graph's replied state
(PidTagLastVerbExecuted), readable only with ``full_headers`` (Mail.Read):
the contract runs in that mode, and again with the default Mail.ReadBasic,
where only ``\\Seen`` can reach the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from email.parser import BytesParser
from email.policy import default
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import pytest

from kithkeep.connectors.microsoft_mail import MicrosoftMailConfig, MicrosoftMailSource
from kithkeep.interfaces import MailSource
from kithkeep.store import Store
from tests.contract.mail_source_contract import MailSourceContract, message
from tests.graph_fake import TOKEN, GraphFake


def _people(value: str | None) -> list[dict[str, Any]]:
    return [
        {"emailAddress": {"name": name, "address": addr}}
        for name, addr in getaddresses([value or ""])
        if addr
    ]


def graph_message(raw: bytes, flags: frozenset[str]) -> dict[str, Any]:
    """What Graph holds for a delivered message (the properties the fake serves)."""
    msg = BytesParser(policy=default).parsebytes(raw)
    sent = parsedate_to_datetime(str(msg["Date"])).astimezone(UTC)
    return {
        "internetMessageId": str(msg["Message-ID"]),
        "subject": str(msg["Subject"]),
        "from": _people(str(msg["From"]))[0],
        "sender": _people(str(msg["From"]))[0],
        "toRecipients": _people(msg["To"]),
        "ccRecipients": _people(msg["Cc"]),
        "sentDateTime": sent.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "receivedDateTime": sent.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conversationId": "AAQkAD" + str(msg["Message-ID"]).strip("<>"),
        "isRead": "\\Seen" in flags,
        "body": {"contentType": "text", "content": raw.split(b"\r\n\r\n", 1)[1].decode()},
        "bodyPreview": raw.split(b"\r\n\r\n", 1)[1].decode()[:255],
        "internetMessageHeaders": [{"name": k, "value": str(v)} for k, v in msg.items()],
        "ext:Integer 0x1081": "102" if "\\Answered" in flags else "0",
    }


class TestMicrosoftMailSource(MailSourceContract):
    INBOX = "Inbox"
    SENT = "Sent Items"
    OTHER = "Archive"
    FULL_HEADERS = True

    @pytest.fixture(autouse=True)
    def _fake(self) -> Iterator[None]:
        self.fake = GraphFake()
        yield
        self.fake.close()

    def make_source(self, chunk_size: int = 1000) -> MailSource:
        cfg = MicrosoftMailConfig(
            graph_url=self.fake.url,
            token_command=f"echo {TOKEN}",
            page_size=chunk_size,
            full_headers=self.FULL_HEADERS,
        )
        return MicrosoftMailSource("outlook", cfg)

    def _find(self, folder: str, message_id: str) -> str:
        fid = self.fake.folder_id(folder)
        return next(
            mid
            for mid, m in self.fake.messages[fid].items()
            if m["internetMessageId"] == f"<{message_id}>"
        )

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()) -> None:
        self.fake.add_message(folder, **graph_message(raw, flags))

    def set_flags(self, folder: str, message_id: str, flags: frozenset[str]) -> None:
        self.fake.update_message(
            self._find(folder, message_id),
            isRead="\\Seen" in flags,
            **{"ext:Integer 0x1081": "102" if "\\Answered" in flags else "0"},
        )

    def remove(self, folder: str, message_id: str) -> None:
        self.fake.delete_message(self._find(folder, message_id))


class TestMicrosoftMailSourceBasic(TestMicrosoftMailSource):
    """Mail.ReadBasic: no extended properties, so no replied state."""

    FULL_HEADERS = False

    def test_flag_changes_reach_the_store(self, store: Store) -> None:
        self.deliver(self.INBOX, message(1))
        self.sync(store)
        self.set_flags(self.INBOX, "m1@example.com", frozenset({"\\Seen", "\\Answered"}))
        self.sync(store)
        # the read state arrives; the replied state needs full_headers (Mail.Read)
        assert self.by_id(store)[self.INBOX, "m1@example.com"][2] == {"\\Seen"}

    def test_what_machines_write_is_read_as_signals(self, store: Store) -> None:
        # without Mail.Read Graph gives no internet headers: no signals, nothing else lost
        self.deliver(self.INBOX, message(2, extra="Feedback-ID: 1:campaign:esp\r\n"))
        self.sync(store)
        assert [(m.message_id, m.signals) for m in store.iter_messages()] == [
            ("m2@example.com", frozenset())
        ]
