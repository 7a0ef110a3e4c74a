"""Where kithkeep keeps its files (platform folders, created with mode 0700)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP = "kithkeep"


def _ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # not ours to change (a shared mount): keep going
        path.chmod(0o700)
    return path


def config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def data_dir() -> Path:
    return _ensure_private_dir(Path(platformdirs.user_data_dir(APP)))


def state_dir() -> Path:
    return _ensure_private_dir(Path(platformdirs.user_state_dir(APP)))


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'kithkeep.sqlite3'}"


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a file so that readers see the old or the new content, never a mix.

    Temp file in the same folder, fsync, rename. Mode 0600 unless told (token
    files must stay private; a reminders .ics may be shared with a calendar app).
    """
    if not path.parent.exists():
        _ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
