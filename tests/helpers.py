"""Small helpers shared by tests (no fixtures here: see conftest.py and fixtures/)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# In CI, shared/ sits beside the clone; in a session it is /work/shared.
SHARED = REPO.parent / "shared"
CORPORA = SHARED / "corpora"


def corpus_files() -> list[Path]:
    """Every file under shared/corpora (the real-world mail and calendar files)."""
    return sorted(p for p in CORPORA.rglob("*") if p.is_file())


def write_maildir_message(
    root: Path, key: str, raw: bytes, flags: str = "S", folder: str = ""
) -> Path:
    """Put one message into a Maildir (``folder`` is a Maildir++ subfolder like ``Sent``)."""
    base = root / f".{folder}" if folder else root
    for sub in ("cur", "new", "tmp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    path = base / "cur" / f"{key}:2,{flags}"
    path.write_bytes(raw)
    return path
