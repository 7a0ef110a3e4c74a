"""Logging: plain lines on stderr, credentials redacted.

Under journald (``JOURNAL_STREAM`` names our stderr) lines carry no timestamp,
the journal adds its own, and start with a ``<N>`` syslog priority that
journald turns into the entry's priority (so ``journalctl -p err`` works).

Every secret that :mod:`kithkeep.secrets` resolved is masked in every record,
whichever logger it comes from.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping
from typing import TextIO

from kithkeep.secrets import RedactingFilter, install_log_redaction

# logging level -> syslog priority (sd-daemon(3) prefixes)
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``fd`` is the journal stream systemd set up (``JOURNAL_STREAM=dev:ino``).

    The variable is inherited by children whose stderr goes elsewhere (a
    terminal, a pipe), so it is compared with the descriptor itself, as
    systemd.exec(5) recommends.
    """
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class JournalFormatter(logging.Formatter):
    """``<priority>level name: message``, without a timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno)
        if prio is None:
            prio = 3 if record.levelno > logging.WARNING else 6
        text = super().format(record)
        # a traceback spans lines: each line gets the prefix, or journald files
        # the continuation lines at the default priority
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def setup_logging(verbose: bool = False, *, level: int | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_kithkeep", False):
            root.removeHandler(h)
    install_log_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler._kithkeep = True  # type: ignore[attr-defined]
    # the record factory masks records at creation; this filter also catches
    # records made by a factory some library installed after ours
    handler.addFilter(RedactingFilter())
    fmt = "%(levelname)s %(name)s: %(message)s"
    formatter: logging.Formatter
    if stderr_is_journal():
        formatter = JournalFormatter(fmt)
    elif os.environ.get("JOURNAL_STREAM"):
        # journald captures a pipe we cannot identify (a wrapper): still no timestamps
        formatter = logging.Formatter(fmt)
    else:
        formatter = logging.Formatter("%(asctime)s " + fmt, datefmt="%Y-%m-%d %H:%M:%S")
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level if level is not None else (logging.INFO if verbose else logging.WARNING))
    # third-party chatter stays at WARNING even with --verbose
    for noisy in ("imapclient", "googleapiclient", "urllib3", "alembic", "caldav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # a library's warnings (icalendar guessing a time zone, say) are log lines like
    # ours: one line naming the warning, not a file path and a line of its source
    warnings.showwarning = _log_warning


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    parts = filename.replace(os.sep, "/").split("/")
    # the package that warned (site-packages/icalendar/prop/dt/types.py: icalendar)
    where = next(
        (parts[i + 1] for i, p in enumerate(parts[:-1]) if p in ("site-packages", "dist-packages")),
        parts[-1].removesuffix(".py"),
    )
    logging.getLogger("kithkeep.warnings").warning(
        "%s (%s from %s)", message, category.__name__, where
    )
