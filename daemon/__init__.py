"""kithkeep.daemon: the background service that systemd supervises.

- :mod:`.service`: the loop (per-source schedule and backoff, analysis,
  signals, config reload);
- :mod:`.notify`: sd_notify (READY, STATUS, WATCHDOG, STOPPING);
- :mod:`.lock`: one daemon per store (flock);
- :mod:`.status`: the ``source_status`` table behind ``kithkeep status``.
"""
