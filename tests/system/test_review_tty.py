"""`kithkeep review -i` in a real terminal: a pseudo-terminal, one key at a time.

click's test runner feeds keys through a stand-in for getchar
(tests/unit/test_triage.py); here the real program reads them from a pty in
cbreak mode, as it does for a person at a keyboard: no Enter after a key,
and keys typed ahead are kept.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.system.test_demo_cli import kk

PROMPT = b"[?] "


def read_until(fd: int, wanted: bytes, timeout: float = 60.0) -> bytes:
    out = b""
    end = time.monotonic() + timeout
    while wanted not in out:
        left = end - time.monotonic()
        assert left > 0, out.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out


def test_review_i_reads_single_keys_from_a_terminal(tmp_path: Path) -> None:
    assert kk("demo", "--dir", str(tmp_path / "demo"), "--json").returncode == 0
    config = str(tmp_path / "demo" / "config.toml")
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kithkeep", "--config", config, "review", "-i"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
    )
    os.close(child)
    try:
        screen = read_until(main, PROMPT)
        assert b"[1/" in screen and b"Ana Silva" in screen
        # two keys at once, no Enter: next (Ana), then dismiss (Grace); typed ahead while
        # the second card is drawn, the "d" must not be lost
        os.write(main, b"nd")
        screen = read_until(main, b"until new evidence")
        assert b"[2/" in screen and b"Grace Lee" in screen
        assert b"dismissed (reply owed) until new evidence" in screen
        read_until(main, PROMPT)
        os.write(main, b"q")
        screen = read_until(main, b"decision(s) stored")
        assert b"1 decision(s) stored" in screen
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    statuses = json.loads(kk("--config", config, "review", "--all", "--json").stdout)
    status = {f["person"]["name"]: f["status"] for f in statuses}
    assert status["Ana Silva"] == "open" and status["Grace Lee"] == "dismissed"
