"""Maildir and mbox sources against real files, and the real-world corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from kithkeep.config import parse_config
from kithkeep.connectors.maildir import MaildirConfig, MaildirSource, split_key
from kithkeep.connectors.mbox import MboxConfig, MboxSource
from kithkeep.schema import Message
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.helpers import CORPORA, corpus_files, write_maildir_message


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield s  # type: ignore[misc]
    s.close()


def msg(n: int, frm: str = "ana@example.org", to: str = "sam@example.org") -> bytes:
    return (
        f"From: {frm}\nTo: {to}\nSubject: hello {n}\nMessage-ID: <m{n}@example.org>\n"
        f"Date: Tue, 03 Nov 2026 10:{n % 60:02d}:00 +0000\n\nbody {n}\n"
    ).encode()


def test_split_key_flags() -> None:
    key, flags = split_key("1234.M1P2.host:2,RS")
    assert key == "1234.M1P2.host"
    assert flags == {"\\Answered", "\\Seen"}
    assert split_key("1234.host") == ("1234.host", frozenset())


def test_maildir_first_sync_incremental_and_flags(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "Mail"
    for i in range(5):
        write_maildir_message(root, f"k{i}", msg(i))
    write_maildir_message(root, "s1", msg(99, "sam@example.org", "ana@example.org"), folder="Sent")
    src = MaildirSource("mail", MaildirConfig(path=str(root), chunk_size=2))
    r1 = sync_source(store, src)
    assert r1.records == 6
    assert store.count(Message) == 6
    sent = [m for m in store.iter_messages() if m.folder == "Sent"]
    assert len(sent) == 1 and sent[0].in_sent_folder

    # a second run with no change adds nothing
    assert sync_source(store, src).records == 0
    # new mail and a flag change (R = answered)
    write_maildir_message(root, "k9", msg(9))
    (root / "cur" / "k0:2,S").rename(root / "cur" / "k0:2,RS")
    r3 = sync_source(store, src)
    assert (r3.records, r3.flag_updates) == (1, 1)
    flags = {m.uid: m.flags for m in store.iter_messages()}
    assert "\\Answered" in flags["k0"]
    # a deleted file stays in the history
    (root / "cur" / "k1:2,S").unlink()
    sync_source(store, src)
    assert store.count(Message) == 7


def test_mbox_sync_is_idempotent(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "archive.mbox"
    parts = [b"From ana@example.org Tue Nov  3 10:00:00 2026\n" + msg(i) + b"\n" for i in range(4)]
    path.write_bytes(b"".join(parts))
    src = MboxSource("arch", MboxConfig(path=str(path), chunk_size=3))
    assert sync_source(store, src).records == 4
    assert sync_source(store, src).records == 0  # unchanged file: one stat
    with path.open("ab") as fh:
        fh.write(b"From x Tue Nov  3 10:00:00 2026\n" + msg(50) + b"\n")
    assert sync_source(store, src).records == 1
    assert store.count(Message) == 5


def test_every_corpus_file_goes_through_the_maildir_source(tmp_path: Path, store: Store) -> None:
    files = corpus_files()
    if not files:
        pytest.skip(f"corpora not found at {CORPORA}")
    root = tmp_path / "Corpus"
    for i, f in enumerate(files):
        write_maildir_message(root, f"c{i:05d}", f.read_bytes())
    src = MaildirSource("corpus", MaildirConfig(path=str(root)))
    result = sync_source(store, src)
    assert result.records == len(files)
    records = list(store.iter_messages())
    assert len(records) == len(files)
    # every file is kept, with an id; most mail files have a parsed sender (the rest
    # truly lack one: MIME fragments, bounces with "From: foo")
    assert all(r.message_id for r in records)
    mail_keys = {f"c{i:05d}" for i, f in enumerate(files) if f.suffix not in (".ics", ".md")}
    with_from = sum(1 for r in records if r.uid in mail_keys and r.from_)
    assert with_from > len(mail_keys) * 0.85
    talon = [r for r in records if r.subject and "talon" in str(files[int(r.uid[1:])])]
    assert talon and all(r.from_ for r in talon)


def test_missing_maildir_is_a_clear_error(tmp_path: Path) -> None:
    from kithkeep.errors import SourceError

    src = MaildirSource("mail", MaildirConfig(path=str(tmp_path / "nope")))
    with pytest.raises(SourceError, match="does not exist"):
        src.folders()


def test_config_builds_sources(tmp_path: Path) -> None:
    from kithkeep.connectors import registry

    config = parse_config({"sources": {"m": {"type": "maildir", "path": str(tmp_path)}}}, None)
    src = registry.build_source(config, config.sources[0])
    assert isinstance(src, MaildirSource)
