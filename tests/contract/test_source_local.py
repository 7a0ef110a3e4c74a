"""The mail-source contract on the local sources: a Maildir tree and an mbox file."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from kithkeep.connectors.maildir import MaildirConfig, MaildirSource
from kithkeep.connectors.mbox import MboxConfig, MboxSource
from kithkeep.interfaces import MailSource
from tests.contract.mail_source_contract import MailSourceContract

_LETTERS = {"\\Answered": "R", "\\Seen": "S", "\\Flagged": "F"}


def _info(flags: frozenset[str]) -> str:
    return "".join(sorted(_LETTERS[f] for f in flags))


class TestMaildirSource(MailSourceContract):
    """INBOX is the Maildir root; Sent and Archive are Maildir++ subfolders."""

    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path / "Maildir"
        self.keys = itertools.count(1)

    def _dir(self, folder: str) -> Path:
        base = self.root if folder == "INBOX" else self.root / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        return base

    def _path(self, folder: str, message_id: str) -> Path:
        for p in (self._dir(folder) / "cur").iterdir():
            if f"<{message_id}>".encode() in p.read_bytes():
                return p
        raise KeyError(message_id)

    def make_source(self, chunk_size: int = 1000) -> MailSource:
        return MaildirSource("maildir", MaildirConfig(path=str(self.root), chunk_size=chunk_size))

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()) -> None:
        name = f"{1700000000 + next(self.keys)}.M1P1.host:2,{_info(flags)}"
        (self._dir(folder) / "cur" / name).write_bytes(raw)

    def set_flags(self, folder: str, message_id: str, flags: frozenset[str]) -> None:
        path = self._path(folder, message_id)
        path.rename(path.with_name(path.name.split(":")[0] + ":2," + _info(flags)))

    def remove(self, folder: str, message_id: str) -> None:
        self._path(folder, message_id).unlink()


class TestMboxSource(MailSourceContract):
    """One mbox file filed under INBOX; Status/X-Status carry the flags."""

    SENT = None
    OTHER = None

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "mail.mbox"
        self.messages: list[tuple[bytes, frozenset[str]]] = []
        self._write()

    def _write(self) -> None:
        out = []
        for raw, flags in self.messages:
            status = b"Status: RO\n" if "\\Seen" in flags else b""
            if "\\Answered" in flags:
                status += b"X-Status: A\n"
            text = raw.replace(b"\r\n", b"\n")
            out.append(b"From ana@example.com Mon Nov  2 10:00:00 2026\n" + status + text + b"\n")
        self.path.write_bytes(b"".join(out))

    def _index(self, message_id: str) -> int:
        return next(
            i for i, (raw, _) in enumerate(self.messages) if f"<{message_id}>".encode() in raw
        )

    def make_source(self, chunk_size: int = 1000) -> MailSource:
        cfg = MboxConfig(path=str(self.path), folder="INBOX", chunk_size=chunk_size)
        return MboxSource("mbox", cfg)

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()) -> None:
        assert folder == "INBOX"
        self.messages.append((raw, flags))
        self._write()

    def set_flags(self, folder: str, message_id: str, flags: frozenset[str]) -> None:
        i = self._index(message_id)
        self.messages[i] = (self.messages[i][0], flags)
        self._write()

    def remove(self, folder: str, message_id: str) -> None:
        del self.messages[self._index(message_id)]
        self._write()
