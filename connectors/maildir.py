"""Maildir mail source: headers of each message file, incrementally.

A folder is the Maildir root (``INBOX``) or a Maildir++ subfolder
(``.Sent`` -> ``Sent``). The file key (the name before ``:2,``) is the uid;
flags come from the info suffix (``R`` is ``\\Answered``). Files that vanish
stay in the history: the contact happened.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kithkeep.config import Config as KithkeepConfig
from kithkeep.errors import SourceError
from kithkeep.headers import read_header_block, record_from_headers
from kithkeep.interfaces import MailSource, ScopeInfo, SyncContext
from kithkeep.records import Checkpoint, FlagUpdate, MailBatch, MessageRecord

log = logging.getLogger(__name__)

_FLAG_LETTERS = {
    "R": "\\Answered",
    "S": "\\Seen",
    "F": "\\Flagged",
    "T": "\\Deleted",
    "D": "\\Draft",
}
DEFAULT_SENT = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "Gesendet", "Envoyés")


@dataclass(frozen=True)
class MaildirConfig:
    path: str
    # glob patterns of folder names to read (INBOX is the root)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ("Trash", "Junk", "Spam", "Drafts")
    sent_folders: tuple[str, ...] = DEFAULT_SENT
    chunk_size: int = 500


def split_key(filename: str) -> tuple[str, frozenset[str]]:
    """``1234.M1P2.host:2,RS`` -> (``1234.M1P2.host``, {\\Answered, \\Seen})."""
    key, sep, info = filename.partition(":")
    if not sep:
        # some tools on file systems without ':' use '!' or ';'
        for alt in ("!", ";"):
            if alt in filename:
                key, _, info = filename.partition(alt)
                break
    flags: set[str] = set()
    if info.startswith("2,"):
        flags = {_FLAG_LETTERS[c] for c in info[2:] if c in _FLAG_LETTERS}
    return key, frozenset(flags)


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


class MaildirSource(MailSource):
    Config = MaildirConfig

    def __init__(self, name: str, cfg: MaildirConfig) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.root = Path(os.path.expanduser(cfg.path))

    @classmethod
    def from_config(cls, name: str, cfg: MaildirConfig, config: KithkeepConfig) -> MaildirSource:
        return cls(name, cfg)

    def folders(self) -> dict[str, Path]:
        """Folder name -> directory, after include/exclude patterns."""
        if not self.root.is_dir():
            raise SourceError(f"source {self.name}: Maildir {self.root} does not exist")
        found: dict[str, Path] = {}
        if _is_maildir(self.root):
            found["INBOX"] = self.root
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") and child.name not in (".", "..") and _is_maildir(child):
                found[child.name[1:]] = child
            elif (
                not child.name.startswith(".")
                and child.name not in ("cur", "new", "tmp")
                and _is_maildir(child)  # a tree of plain Maildirs (mbsync's "Path" layout)
            ):
                found[child.name] = child
        if not found:
            raise SourceError(f"source {self.name}: {self.root} holds no Maildir (no cur/ or new/)")
        return {
            n: p
            for n, p in found.items()
            if any(fnmatch.fnmatchcase(n, pat) for pat in self.cfg.include)
            and not any(fnmatch.fnmatchcase(n, pat) for pat in self.cfg.exclude)
        }

    def _is_sent(self, folder: str) -> bool:
        leaf = folder.replace("/", ".").split(".")[-1]
        return any(leaf.lower() == s.lower() for s in self.cfg.sent_folders)

    @staticmethod
    def _files(folder_dir: Path) -> Iterator[tuple[str, frozenset[str], str]]:
        for sub in ("new", "cur"):
            d = folder_dir / sub
            if not d.is_dir():
                continue
            with os.scandir(d) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    key, flags = split_key(entry.name)
                    yield key, flags, entry.path

    def check(self) -> list[ScopeInfo]:
        return [
            ScopeInfo(
                name, sum(1 for _ in self._files(path)), "sent" if self._is_sent(name) else ""
            )
            for name, path in self.folders().items()
        ]

    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        for folder, folder_dir in self.folders().items():
            yield from self._sync_folder(ctx, folder, folder_dir)
            if ctx.should_stop():
                return

    def _sync_folder(self, ctx: SyncContext, folder: str, folder_dir: Path) -> Iterator[MailBatch]:
        known = ctx.known_uids(folder)
        sent = self._is_sent(folder)
        files = sorted(self._files(folder_dir))
        total = len(files)
        records: list[MessageRecord] = []
        flag_updates: list[FlagUpdate] = []
        done = 0
        for key, flags, path in files:
            done += 1
            if key in known:
                if known[key] != flags:
                    flag_updates.append(FlagUpdate(folder, key, flags))
                continue
            try:
                raw = read_header_block(path)
                mtime = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
            except OSError as exc:  # vanished or unreadable: skip it, say so
                log.warning("%s: cannot read %s: %s", self.name, path, exc.strerror)
                continue
            records.append(
                record_from_headers(
                    raw,
                    account=self.name,
                    folder=folder,
                    uid=key,
                    flags=flags,
                    internal_date=mtime,
                    in_sent_folder=sent,
                )
            )
            if len(records) + len(flag_updates) >= self.cfg.chunk_size:
                yield self._batch(folder, records, flag_updates, done)
                ctx.progress(folder, done, total)
                records, flag_updates = [], []
                if ctx.should_stop():
                    return
        yield self._batch(folder, records, flag_updates, done)
        ctx.progress(folder, total, total)

    def _batch(
        self, folder: str, records: list[MessageRecord], flags: list[FlagUpdate], seen: int
    ) -> MailBatch:
        return MailBatch(
            records=records,
            flag_updates=flags,
            checkpoint=Checkpoint(self.name, folder, {"files_seen": seen}),
        )
