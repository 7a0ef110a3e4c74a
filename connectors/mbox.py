"""mbox mail source: headers of each message in an mbox file.

The file is scanned as a stream, keeping only header blocks. A message's key
is a hash of its header block (plus its rank among identical blocks), stable
as long as the message is in the file. The checkpoint is the file's size,
modification time and a hash of its first bytes: an unchanged file costs one
``stat``; a changed one is scanned again and upserted by key, so nothing is
counted twice. ``Status``/``X-Status`` give flags (``A`` is ``\\Answered``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kithkeep.config import Config as KithkeepConfig
from kithkeep.errors import SourceError
from kithkeep.headers import MAX_HEADER_BYTES, record_from_headers
from kithkeep.interfaces import MailSource, ScopeInfo, SyncContext
from kithkeep.records import Checkpoint, FlagUpdate, MailBatch, MessageRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MboxConfig:
    path: str
    # true when the file holds the user's sent mail
    sent: bool = False
    # folder name the messages are filed under; default: the file name
    folder: str = ""
    chunk_size: int = 500


def _flags(header: bytes) -> frozenset[str]:
    flags: set[str] = set()
    for line in header.splitlines():
        low = line.lower()
        if low.startswith(b"status:") and b"r" in low[7:]:
            flags.add("\\Seen")
        elif low.startswith(b"x-status:"):
            val = line[9:]
            if b"A" in val:
                flags.add("\\Answered")
            if b"F" in val:
                flags.add("\\Flagged")
    return frozenset(flags)


def _key_digest(header: bytes) -> str:
    """Hash of a header block without its status lines, so a flag change keeps the key."""
    kept = [
        line
        for line in header.splitlines()
        if not line.lower().startswith((b"status:", b"x-status:"))
    ]
    return hashlib.sha256(b"\n".join(kept)).hexdigest()[:32]


def iter_mbox_headers(path: Path) -> Iterator[bytes]:
    """Yield the header block of each message (the ``From_`` line excluded).

    Lines past MAX_HEADER_BYTES are dropped, but for the one that crosses
    it: the parser sees that the block was cut.
    """
    with path.open("rb") as fh:
        header: list[bytes] | None = None
        size = 0
        in_header = False
        prev_blank = True
        for line in fh:
            if line.startswith(b"From ") and prev_blank:
                if header is not None:
                    yield b"".join(header)
                header, size, in_header = [], 0, True
                prev_blank = False
                continue
            prev_blank = line in (b"\n", b"\r\n")
            if in_header and header is not None:
                if prev_blank:
                    in_header = False
                    header.append(line)
                elif size <= MAX_HEADER_BYTES:
                    header.append(line)
                    size += len(line)
        if header is not None:
            yield b"".join(header)


class MboxSource(MailSource):
    Config = MboxConfig

    def __init__(self, name: str, cfg: MboxConfig) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.path = Path(os.path.expanduser(cfg.path))
        self.folder = cfg.folder or self.path.name

    @classmethod
    def from_config(cls, name: str, cfg: MboxConfig, config: KithkeepConfig) -> MboxSource:
        return cls(name, cfg)

    def _signature(self) -> dict[str, object]:
        try:
            st = self.path.stat()
            with self.path.open("rb") as fh:
                head = hashlib.sha256(fh.read(65536)).hexdigest()
        except FileNotFoundError:
            raise SourceError(f"source {self.name}: mbox file {self.path} does not exist") from None
        except OSError as exc:
            raise SourceError(
                f"source {self.name}: cannot read {self.path}: {exc.strerror}"
            ) from None
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head": head}

    def check(self) -> list[ScopeInfo]:
        self._signature()
        count = sum(1 for _ in iter_mbox_headers(self.path))
        return [ScopeInfo(self.folder, count, "sent" if self.cfg.sent else "")]

    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        sig = self._signature()
        if ctx.checkpoints().get(self.folder) == sig:
            return
        known = ctx.known_uids(self.folder)
        seen: dict[str, int] = {}
        records: list[MessageRecord] = []
        flag_updates: list[FlagUpdate] = []
        done = 0
        for header in iter_mbox_headers(self.path):
            done += 1
            digest = _key_digest(header)
            rank = seen.get(digest, 0)
            seen[digest] = rank + 1
            key = digest if rank == 0 else f"{digest}.{rank}"
            flags = _flags(header)
            if key in known:
                if known[key] != flags:
                    flag_updates.append(FlagUpdate(self.folder, key, flags))
                continue
            records.append(
                record_from_headers(
                    header,
                    account=self.name,
                    folder=self.folder,
                    uid=key,
                    flags=flags,
                    in_sent_folder=self.cfg.sent,
                )
            )
            if len(records) + len(flag_updates) >= self.cfg.chunk_size:
                # intermediate chunks carry no checkpoint: the file is done only at the end
                yield MailBatch(records=records, flag_updates=flag_updates)
                ctx.progress(self.folder, done, None)
                records, flag_updates = [], []
                if ctx.should_stop():
                    return
        yield MailBatch(
            records=records,
            flag_updates=flag_updates,
            checkpoint=Checkpoint(self.name, self.folder, sig),
        )
        ctx.progress(self.folder, done, done)
