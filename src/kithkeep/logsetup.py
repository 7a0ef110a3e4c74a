"""Logging: plain lines on stderr, credentials redacted.

Under journald (``JOURNAL_STREAM`` set) lines carry no timestamp: the journal
adds its own.
"""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(verbose: bool = False, *, level: int | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_kithkeep", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._kithkeep = True  # type: ignore[attr-defined]
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level if level is not None else (logging.INFO if verbose else logging.WARNING))
    # third-party chatter stays at WARNING even with --verbose
    for noisy in ("imapclient", "googleapiclient", "urllib3", "alembic", "caldav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
