"""The mail-source contract on an in-memory mailbox: the reference for what a source does.

:class:`MemoryMailbox` behaves like an IMAP server with CONDSTORE: folders of
messages by UID, a UIDVALIDITY, and a modification sequence that grows with
every new message or flag change. :class:`MemorySource` saves per folder the
highest UID stored and the modification sequence seen, and yields new
messages in chunks and flag changes since, each chunk with its checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from kithkeep.headers import header_block, record_from_headers
from kithkeep.interfaces import MailSource, SyncContext
from kithkeep.records import Checkpoint, FlagUpdate, MailBatch
from tests.contract.mail_source_contract import MailSourceContract


@dataclass
class Stored:
    raw: bytes
    flags: frozenset[str]
    modseq: int


@dataclass
class MemoryMailbox:
    folders: dict[str, dict[int, Stored]] = field(default_factory=dict)
    uidnext: dict[str, int] = field(default_factory=dict)
    modseq: int = 0
    sent: frozenset[str] = frozenset({"Sent"})

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str]) -> None:
        self.modseq += 1
        uid = self.uidnext.get(folder, 1)
        self.uidnext[folder] = uid + 1
        self.folders.setdefault(folder, {})[uid] = Stored(raw, flags, self.modseq)

    def find(self, folder: str, message_id: str) -> int:
        for uid, m in self.folders[folder].items():
            if f"<{message_id}>".encode() in m.raw:
                return uid
        raise KeyError(message_id)


class MemorySource(MailSource):
    def __init__(self, name: str, box: MemoryMailbox, chunk_size: int) -> None:
        super().__init__(name)
        self.box = box
        self.chunk_size = chunk_size

    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        saved = ctx.checkpoints()
        for folder, messages in sorted(self.box.folders.items()):
            state = dict(saved.get(folder, {"uid": 0, "modseq": 0}))
            last_uid, last_modseq = state["uid"], state["modseq"]
            flags = [
                FlagUpdate(folder, str(uid), m.flags)
                for uid, m in sorted(messages.items())
                if uid <= last_uid and m.modseq > last_modseq
            ]
            new = [(uid, m) for uid, m in sorted(messages.items()) if uid > last_uid]
            state["modseq"] = self.box.modseq
            if not new and not flags:
                continue
            for i in range(0, max(len(new), 1), self.chunk_size):
                chunk = new[i : i + self.chunk_size]
                records = [
                    record_from_headers(
                        header_block(m.raw),
                        account=self.name,
                        folder=folder,
                        uid=str(uid),
                        flags=m.flags,
                        in_sent_folder=folder in self.box.sent,
                    )
                    for uid, m in chunk
                ]
                if chunk:
                    state["uid"] = chunk[-1][0]
                yield MailBatch(
                    records=records,
                    flag_updates=flags if i == 0 else (),
                    checkpoint=Checkpoint(self.name, folder, dict(state)),
                )


class TestMemorySource(MailSourceContract):
    def setup_method(self) -> None:
        self.box = MemoryMailbox()

    def make_source(self, chunk_size: int = 1000) -> MailSource:
        return MemorySource("memory", self.box, chunk_size)

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()) -> None:
        self.box.deliver(folder, raw, flags)

    def set_flags(self, folder: str, message_id: str, flags: frozenset[str]) -> None:
        m = self.box.folders[folder][self.box.find(folder, message_id)]
        self.box.modseq += 1
        m.flags, m.modseq = flags, self.box.modseq

    def remove(self, folder: str, message_id: str) -> None:
        del self.box.folders[folder][self.box.find(folder, message_id)]
