"""A library's warnings reach the user as one log line, not a file path and source."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest

from kithkeep.logsetup import setup_logging


class GuessedZone(UserWarning):
    pass


@pytest.fixture
def logged() -> Iterator[None]:
    with warnings.catch_warnings():  # restores showwarning and the filters after
        warnings.simplefilter("always")
        setup_logging()
        yield
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_kithkeep", False)]:
        root.removeHandler(h)


def test_a_library_warning_is_one_log_line(
    logged: None, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    warnings.warn_explicit(
        "guessing 'Europe/Berlin' for '/mozilla.org/Europe/Berlin'",
        GuessedZone,
        "/venv/lib/python3.11/site-packages/icalendar/prop/dt/types.py",
        102,
    )
    warnings.warn_explicit("plain", UserWarning, "/opt/tool/helper.py", 7)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "kithkeep.warnings",
            "WARNING",
            "guessing 'Europe/Berlin' for '/mozilla.org/Europe/Berlin' "
            "(GuessedZone from icalendar)",
        ),
        ("kithkeep.warnings", "WARNING", "plain (UserWarning from helper)"),
    ]
    # nothing printed the Python way (path, line number, a line of source)
    assert "types.py" not in capsys.readouterr().err
