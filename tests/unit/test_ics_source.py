"""The .ics source: files, http(s) URLs with conditional GET, and every calendar in the corpora."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from kithkeep.config import Config
from kithkeep.connectors.ics import IcsSource, IcsSourceConfig
from kithkeep.errors import ConfigError, ConnectError, KithkeepError, SourceError
from kithkeep.store import Store
from kithkeep.sync import sync_source

SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPUS = sorted(
    p for folder in ("icalendar", "khal") for p in (SHARED / "corpora" / folder).rglob("*.ics")
)

CAL = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:test\r
BEGIN:VEVENT\r
UID:m1\r
DTSTAMP:20260101T000000Z\r
DTSTART:20261110T100000Z\r
DTEND:20261110T110000Z\r
SUMMARY:{summary}\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:ana@example.org\r
END:VEVENT\r
END:VCALENDAR\r
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    yield s
    s.close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str | None]]] = []
    auth: ClassVar[str | None] = None

    def do_GET(self) -> None:
        _Handler.requests.append((self.path, self.headers.get("If-Modified-Since")))
        _Handler.auth = self.headers.get("Authorization")
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "web"
    root.mkdir()
    _Handler.requests = []

    def handler(*a: object, **kw: object) -> _Handler:
        return _Handler(*a, directory=str(root), **kw)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _source(**kw: str) -> IcsSource:
    return IcsSource.from_config("cal", IcsSourceConfig(**kw), Config())  # type: ignore[arg-type]


def test_url_source_uses_conditional_get(web: tuple[str, Path], store: Store) -> None:
    base, root = web
    f = root / "cal.ics"
    f.write_bytes(CAL.replace(b"{summary}", b"Coffee"))
    src = _source(url=f"{base}/cal.ics")
    sync_source(store, src)
    assert [e.summary for e in store.iter_events()] == ["Coffee"]
    assert "last_modified" in store.checkpoints("cal")["file"]
    # unchanged: the server answers 304 and nothing is parsed or written
    result = sync_source(store, src)
    assert result.batches == 0
    assert _Handler.requests[-1][1] is not None
    # changed (a newer modification time): re-read
    time.sleep(1.1)
    f.write_bytes(CAL.replace(b"{summary}", b"Lunch"))
    sync_source(store, src)
    assert [e.summary for e in store.iter_events()] == ["Lunch"]
    assert [p for p, _ in _Handler.requests] == ["/cal.ics"] * 3


def test_webcal_is_https_and_errors_hide_credentials(web: tuple[str, Path], store: Store) -> None:
    base, _root = web
    src = _source(
        url=base.replace("http://", "http://user:s3cr3t-token@") + "/missing.ics?key=s3cr3t-key"
    )
    with pytest.raises(SourceError) as info:
        sync_source(store, src)
    msg = info.value.format_message()
    assert "HTTP 404" in msg and "s3cr3t" not in msg
    assert _Handler.requests[-1][0] == "/missing.ics?key=s3cr3t-key"
    assert _Handler.auth == "Basic dXNlcjpzM2NyM3QtdG9rZW4="  # user:s3cr3t-token
    assert _source(url="webcal://example.org/c.ics").url == "https://example.org/c.ics"
    # Google's secret address keeps its token in the path
    secret = _source(
        url="https://calendar.google.com/calendar/ical/me%40x.org/private-0123abcd/basic.ics"
    )
    assert secret.where == "https://calendar.google.com/.../basic.ics"


def test_unreachable_url_is_a_connect_error(store: Store) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError, match="cannot fetch"):
        sync_source(store, _source(url=f"http://127.0.0.1:{port}/c.ics"))


def test_config_needs_exactly_one_of_path_and_url() -> None:
    with pytest.raises(ConfigError, match="exactly one of path and url"):
        _source()
    with pytest.raises(ConfigError, match="exactly one of path and url"):
        _source(path="/x.ics", url="https://example.org/x.ics")
    with pytest.raises(ConfigError, match="http, https or webcal"):
        _source(url="ftp://example.org/x.ics")


def test_corpus_is_there() -> None:
    # shared/ sits beside the repository; without it the next test would prove nothing
    assert len(CORPUS) > 200


@pytest.fixture(scope="module")
def corpus_store() -> Iterator[Store]:
    s = Store.open("sqlite://")
    yield s
    s.close()


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(SHARED / "corpora")))
def test_corpus_calendar_never_lets_an_exception_escape(path: Path, corpus_store: Store) -> None:
    # default window; each file its own source, so one store serves the module
    src = IcsSource(str(path), IcsSourceConfig(path=str(path)), UTC)
    try:
        sync_source(corpus_store, src)
    except KithkeepError as exc:
        # a file that is no calendar at all is one clear line naming it
        assert isinstance(exc, SourceError)
        assert str(path) in exc.message


def test_a_broken_event_is_named_and_says_what_it_lacks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One event without DTSTART costs that event; the log names it and says what is
    missing (icalendar raises KeyError('DTSTART')); the other event is kept."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now + timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    end = (now + timedelta(days=2, hours=1)).strftime("%Y%m%dT%H%M%SZ")
    ics = tmp_path / "c.ics"
    ics.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
        "BEGIN:VEVENT\r\nUID:no-start@t\r\nSUMMARY:Lunch\r\nDTSTAMP:20260101T000000Z\r\n"
        "END:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:ok@t\r\nSUMMARY:Call\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
        "DTSTAMP:20260101T000000Z\r\nATTENDEE:mailto:ana@x.org\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    store = Store.open("sqlite://")
    src = IcsSource("cal", IcsSourceConfig(path=str(ics)), UTC)
    result = sync_source(store, src)
    assert result.records == 1
    assert "cal: skipped event no-start@t: it has no DTSTART" in caplog.text
    assert "1 events skipped, 1 kept" in caplog.text
    store.close()
