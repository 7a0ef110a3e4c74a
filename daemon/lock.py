"""One daemon per store: an exclusive ``flock`` on a lock file.

For SQLite the lock file sits next to the database (``kithkeep.sqlite3.lock``),
so two configs naming the same file collide; for a server URL it lives in the
state folder, named by a hash of the URL (without its password). The kernel
drops the lock when the process dies, however it dies: no stale lock files to
clean up. The file holds the holder's pid, for the error message only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path

import sqlalchemy as sa

from kithkeep import paths
from kithkeep.errors import LockedError, StoreError

log = logging.getLogger(__name__)


def lock_path(database_url: str, *, state_dir: Path | None = None) -> Path | None:
    """Where the lock for this store lives; None for an in-memory database."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db = url.database or ""
        if not db or db == ":memory:" or db.startswith("file:"):
            return None
        p = Path(db).expanduser().absolute()
        return p.with_name(p.name + ".lock")
    key = url.render_as_string(hide_password=True).encode()
    folder = state_dir if state_dir is not None else paths.state_dir()
    return folder / f"store-{hashlib.sha256(key).hexdigest()[:16]}.lock"


class StoreLock:
    """An exclusive lock on a store, held until :meth:`release` or process exit."""

    def __init__(self, database_url: str, *, state_dir: Path | None = None) -> None:
        self.path = lock_path(database_url, state_dir=state_dir)
        self._display = sa.engine.make_url(database_url).render_as_string(hide_password=True)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockedError` naming the holder."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise LockedError(
                f"another kithkeep process{who} is already running on the store {self._display}",
                hint=f"stop it first; lock file {self.path}",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
        # record our pid for the next one's message; the lock, not the pid, is the truth
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        log.debug("locked %s", self.path)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def held_by(self) -> int | None:
        """The pid of a process holding the lock now, or None (for ``kithkeep status``)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_pid(fd) or -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
