"""A TCP proxy for tests that drops or stalls connections at random byte offsets.

``FaultProxy`` listens on 127.0.0.1 and forwards each accepted connection to
an upstream server (Dovecot, Radicale). For every new connection it draws,
from its own seeded ``random.Random`` (so a run is reproducible), whether to
inject a fault and which:

- ``drop``: once ``offset`` bytes went in ``direction`` (``up`` = client to
  server, ``down`` = server to client), close both sides;
- ``stall``: once ``offset`` bytes went, hold that direction for
  ``stall_seconds`` (longer than the client's timeout), then go on forwarding
  if the client is still there.

A fault counts as *injected* only when its offset is actually reached (a
connection that ends first carried no fault). Everything is bounded in
time: sockets poll with short timeouts, every connection has a deadline, and
``close`` shuts every socket and joins every thread.
"""

from __future__ import annotations

import contextlib
import math
import random
import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_POLL = 0.2


@dataclass(frozen=True)
class Fault:
    kind: str  # "drop" | "stall"
    direction: str  # "up" | "down"
    offset: int


@dataclass
class _Conn:
    number: int
    fault: Fault | None
    sockets: list[socket.socket] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    pumps_done: int = 0


class FaultProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        seed: int,
        rate: float = 0.5,
        stall_seconds: float = 3.0,
        max_up: int = 1000,
        max_down: int = 50_000,
        stall_share: float = 0.4,
        up_share: float = 0.3,
        conn_deadline: float = 30.0,
        script: Sequence[Fault | None] = (),
    ) -> None:
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.rate = rate
        self.stall_seconds = stall_seconds
        self.max_up = max_up
        self.max_down = max_down
        self.stall_share = stall_share
        self.up_share = up_share
        self.conn_deadline = conn_deadline
        # the faults of the first connections, in order, instead of random ones
        self.script = list(script)
        # False: forward everything untouched (the clean run after the faults)
        self.enabled = True
        self.connections = 0
        # faults whose offset was reached, in order
        self.injected: list[Fault] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[_Conn] = []
        self._threads: list[threading.Thread] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(_POLL)
        self.port: int = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    # ----------------------------------------------------------- decisions

    def _draw(self) -> Fault | None:
        if self.script:
            return self.script.pop(0)
        if not self.enabled or self.rng.random() >= self.rate:
            return None
        kind = "stall" if self.rng.random() < self.stall_share else "drop"
        up = self.rng.random() < self.up_share
        top = self.max_up if up else self.max_down
        # log-uniform: as many faults in the greeting and login as in a long FETCH
        offset = int(math.exp(self.rng.uniform(0.0, math.log(top))))
        return Fault(kind, "up" if up else "down", offset)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for f in self.injected:
                k = f"{f.kind}-{f.direction}"
                out[k] = out.get(k, 0) + 1
            return out

    # ------------------------------------------------------------ plumbing

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                conn = _Conn(self.connections, self._draw())
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            conn.sockets = [client, upstream]
            with self._lock:
                self._conns.append(conn)
            deadline = time.monotonic() + self.conn_deadline
            for args in ((client, upstream, "up"), (upstream, client, "down")):
                t = threading.Thread(target=self._pump, args=(conn, *args, deadline), daemon=True)
                with self._lock:
                    self._threads.append(t)
                t.start()

    def _pump(
        self,
        conn: _Conn,
        src: socket.socket,
        dst: socket.socket,
        direction: str,
        deadline: float,
    ) -> None:
        try:
            self._forward(conn, src, dst, direction, deadline)
        finally:
            with self._lock:
                conn.pumps_done += 1
                both = conn.pumps_done == 2
            if both:
                self._close(conn)

    def _forward(
        self,
        conn: _Conn,
        src: socket.socket,
        dst: socket.socket,
        direction: str,
        deadline: float,
    ) -> None:
        fault = conn.fault if conn.fault and conn.fault.direction == direction else None
        sent = 0
        try:
            while not self._stop.is_set() and not conn.closed.is_set():
                if time.monotonic() > deadline:
                    self._close(conn)
                    return
                readable, _w, _x = select.select([src], [], [], _POLL)
                if not readable:
                    continue
                data = src.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if fault is not None and sent + len(data) > fault.offset:
                    cut = fault.offset - sent
                    dst.sendall(data[:cut])
                    sent += cut
                    data = data[cut:]
                    with self._lock:
                        self.injected.append(fault)
                    if fault.kind == "drop":
                        self._close(conn)
                        return
                    # stall: hold the rest, then go on if the client still listens
                    self._stop.wait(self.stall_seconds)
                    fault = None
                dst.sendall(data)
                sent += len(data)
        except (OSError, ValueError):  # ValueError: select on a socket closed meanwhile
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        conn.closed.set()
        for s in conn.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self._accepter.join(2)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for c in conns:
            self._close(c)
        for t in threads:
            t.join(2)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
