"""The mail-source contract on IMAP against a real Dovecot (CONDSTORE, SPECIAL-USE)."""

from __future__ import annotations

import pytest
from imapclient import IMAPClient

from kithkeep.connectors.imap import ImapConfig, ImapSource
from kithkeep.interfaces import MailSource
from tests.contract.mail_source_contract import MailSourceContract
from tests.fixtures.dovecot import ImapUser

PW_ENV = "KK_CONTRACT_IMAP_PASSWORD"


class TestImapSource(MailSourceContract):
    @pytest.fixture(autouse=True)
    def _user(self, imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch) -> None:
        self.user = imap_user
        monkeypatch.setenv(PW_ENV, imap_user.password)

    def _client(self) -> IMAPClient:
        c = IMAPClient(self.user.host, self.user.port, ssl=False, timeout=10)
        c.login(self.user.username, self.user.password)
        return c

    def _uid(self, c: IMAPClient, folder: str, message_id: str) -> int:
        c.select_folder(folder)
        (uid,) = c.search(["HEADER", "Message-ID", f"<{message_id}>"])
        return int(uid)

    def make_source(self, chunk_size: int = 1000) -> MailSource:
        cfg = ImapConfig(
            host=self.user.host,
            port=self.user.port,
            tls="none",
            allow_plaintext=True,
            username=self.user.username,
            password_env=PW_ENV,
            timeout=10,
            chunk_size=chunk_size,
        )
        return ImapSource("imap", cfg)

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()) -> None:
        c = self._client()
        try:
            c.append(folder, raw, flags=sorted(flags))
        finally:
            c.logout()

    def set_flags(self, folder: str, message_id: str, flags: frozenset[str]) -> None:
        c = self._client()
        try:
            c.set_flags([self._uid(c, folder, message_id)], sorted(flags))
        finally:
            c.logout()

    def remove(self, folder: str, message_id: str) -> None:
        c = self._client()
        try:
            c.delete_messages([self._uid(c, folder, message_id)])
            c.expunge()
        finally:
            c.logout()
