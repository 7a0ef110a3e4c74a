"""sd_notify: tell systemd that the service is ready, what it is doing, and alive.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace). It is a few lines, so no package: see sd_notify(3). Without the
variable (a terminal, a test, a timer-run oneshot) every call does nothing.

The watchdog: when the unit sets ``WatchdogSec=``, systemd passes
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``) and expects ``WATCHDOG=1`` more often
than that. :class:`Watchdog` pings from a thread at half the interval, but
only while the main loop shows signs of life (:meth:`Watchdog.beat`), so a
hung loop still gets the service restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT = 0.5


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        # abstract namespace: a leading NUL byte instead of the '@'
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other families are not for a user service


class Notifier:
    """Sends sd_notify messages; a no-op when not started by systemd (or a test)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET=%s is not a path or @name; not notifying systemd", raw)
        self._sock: socket.socket | None = None
        # the watchdog thread and the main loop both send; reentrant so that a
        # signal handler interrupting a send in the main thread cannot deadlock
        self._lock = threading.RLock()

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (``send(READY=1, STATUS="...")``); True if sent."""
        if self._address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                    # a datagram to a full queue blocks: a listener that stopped
                    # reading must not stall the service (the message is dropped)
                    self._sock.settimeout(SEND_TIMEOUT)
                self._sock.sendto(payload, self._address)
            except OSError as exc:
                # systemd gone or the socket vanished: the service itself must go on
                log.debug("sd_notify %s failed: %s", ",".join(fields), exc)
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def stopping(self, status: str = "") -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds when systemd asked this process for pings."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for a parent process that started us
    return int(usec) / 1_000_000


class Watchdog:
    """Pings ``WATCHDOG=1`` at half the timeout while the main loop is alive.

    ``stall_limit``: how long the main loop may go without :meth:`beat` before
    pings stop. It is far longer than the watchdog timeout because one chunk of
    a slow mail server (timeouts and reconnects included) legitimately takes
    minutes; the first long sync must not get the service killed.
    """

    def __init__(
        self,
        notifier: Notifier,
        timeout: float,
        *,
        stall_limit: float = 30 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.period = max(timeout / 2, 0.05)
        self.stall_limit = stall_limit
        self._clock = clock
        self._last_beat = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kithkeep-watchdog", daemon=True)
        self.pings = 0

    def beat(self) -> None:
        """The main loop made progress."""
        self._last_beat = self._clock()

    def start(self) -> None:
        self.notifier.send(WATCHDOG=1)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            stalled = self._clock() - self._last_beat
            if stalled > self.stall_limit:
                log.error("main loop made no progress for %.0f s: no more watchdog pings", stalled)
                continue
            if self.notifier.send(WATCHDOG=1):
                self.pings += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
