"""The background service: a foreground loop that systemd supervises.

Every ``[daemon] interval_minutes`` each source is synced on its own schedule,
then the store is analyzed, judged and the reminders reconciled
(:func:`kithkeep.pipeline.analyze_and_act`, the same code as ``kithkeep run``).

- **Readiness**: READY=1 as soon as the config is loaded, the lock taken and
  the store open, before the first sync; a long first sync reports progress
  through STATUS= instead of delaying readiness.
- **Backoff**: a failing source is retried after 1, 2, 4, ... intervals (up to
  ``max_backoff_minutes``); the others keep their schedule. Failures in a row
  survive a restart (``source_status``), so a crash loop does not hammer a
  server that refuses the password.
- **Signals**: SIGTERM and SIGINT set a flag that the sync checks between
  batches: the current chunk commits with its checkpoint, the rest is skipped
  and the process exits 0. SIGHUP reloads the config at the next quiet moment;
  a config that does not load keeps the old one, and says why in the log.
- **One instance per store**: :class:`~kithkeep.daemon.lock.StoreLock`.
- **IMAP IDLE**: for each IMAP source with ``idle = true`` a thread keeps a
  second connection in IDLE on the inbox (:class:`_IdleWatcher`); new mail
  makes that source due at once, so it is synced and analyzed within seconds
  instead of at the next interval. A failing IDLE connection only logs and
  retries: the schedule goes on without it. SIGHUP starts, restarts or stops
  the threads of sources whose options changed; the others keep watching.

Signal handlers only set lock-free flags (:class:`_Flag`, :class:`_Waker`):
all work happens in the main loop, between batches.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType

from kithkeep import clock
from kithkeep.config import Config, ConnectorConfig
from kithkeep.connectors import registry
from kithkeep.daemon import status as run_status
from kithkeep.daemon.lock import StoreLock
from kithkeep.daemon.notify import Notifier, Watchdog, watchdog_interval
from kithkeep.errors import KithkeepError
from kithkeep.interfaces import MailSource
from kithkeep.pipeline import analyze_and_act, sync_all
from kithkeep.store import Store

log = logging.getLogger(__name__)

# The loop never sleeps longer than this in one go: a wait on the monotonic
# clock does not advance while a laptop is suspended, so after a resume the
# wall-clock schedule is looked at again within this many seconds.
MAX_SLEEP = 30.0
# At most one STATUS= per this many seconds during a sync: systemd keeps only
# the last one, and a datagram per batch of a 100 000-message mailbox is noise.
STATUS_EVERY = 1.0
# One wait_for_mail call of an IDLE thread lasts at most this long. The IMAP
# connection stays in IDLE between calls, so nothing is missed in between;
# a source that cannot wait returns at once and is asked again after this.
IDLE_WAIT = 60.0
# A failed IDLE connection is retried after 5 s, doubling up to 5 minutes: the
# source's own sync reports the outage, the IDLE thread need not hammer it.
IDLE_RETRY = 5.0
IDLE_MAX_RETRY = 300.0
# On shutdown, how long all IDLE threads together may take to log out; they
# are daemon threads, so one stuck on a dead server cannot hold up the exit.
IDLE_JOIN = 3.0


def _now() -> datetime:
    return clock.now()


def _fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class _Schedule:
    """One source's place in the loop (in memory; mirrored into source_status)."""

    options: ConnectorConfig
    next_run: datetime
    failures: int = 0
    last_attempt: datetime | None = None
    me: set[str] = field(default_factory=set)


class _Flag:
    """A flag that a signal handler may set.

    Not a threading.Event: its set() takes a lock, and a handler runs in the
    main thread, possibly while that thread holds the same lock (inside
    clear() or wait()); the daemon then hangs for good. A plain attribute
    needs no lock.
    """

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def clear(self) -> None:
        self._value = False

    def is_set(self) -> bool:
        return self._value


class _Waker:
    """Wakes the main loop's wait from a signal handler or another thread.

    A byte on a socketpair: sending takes no Python lock (see :class:`_Flag`),
    and a signal that interrupts the select() finds the byte when select()
    resumes, so the loop wakes at once.
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def set(self) -> None:
        # full: a wake-up is pending anyway; closed: the daemon is exiting
        with contextlib.suppress(OSError):
            self._w.send(b"\0")

    def wait(self, timeout: float) -> bool:
        """True if woken within ``timeout`` seconds (the wake-ups are consumed)."""
        ready, _, _ = select.select([self._r], [], [], timeout)
        if ready:
            self.clear()
        return bool(ready)

    def clear(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError: nothing left
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        self._r.close()
        self._w.close()


class _IdleWatcher:
    """A thread that waits for new mail of one source with IMAP IDLE.

    The thread builds and owns its own source object, so the IDLE connection
    is only ever touched from this thread; the main loop just sets the stop
    flag and hears about new mail through ``on_mail`` (which sets flags only).
    """

    def __init__(
        self,
        config: Config,
        options: ConnectorConfig,
        on_mail: Callable[[_IdleWatcher], None],
        daemon_stop: Callable[[], bool],
    ) -> None:
        self.name = options.name
        self.options = options
        self._config = config
        self._on_mail = on_mail
        self._daemon_stop = daemon_stop
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"kithkeep-idle-{options.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def stopped(self) -> bool:
        # the daemon's flag is read directly: a SIGTERM reaches the thread
        # within one idle_check, before the main loop gets round to stop()
        return self._stop.is_set() or self._daemon_stop()

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 1.0))

    def _run(self) -> None:
        try:
            source = registry.build_source(self._config, self.options)
        except Exception as exc:  # validated at load: only a bug gets here
            log.warning("source %s: cannot wait for mail with IDLE: %s", self.name, exc)
            return
        try:
            if not isinstance(source, MailSource):
                return
            log.info("source %s: waiting for new inbox mail with IMAP IDLE", self.name)
            self._watch(source)
        finally:
            # logs out of the IDLE connection (with short timeouts)
            try:
                source.close()
            except Exception as exc:
                log.debug("source %s: closing the IDLE connection: %s", self.name, exc)
            log.debug("source %s: IDLE thread stopped", self.name)

    def _watch(self, source: MailSource) -> None:
        failures = 0
        while not self.stopped():
            began = time.monotonic()
            try:
                news = source.wait_for_mail(IDLE_WAIT, self.stopped)
            except Exception as exc:
                # never fatal: the source keeps its schedule without IDLE
                failures += 1
                delay = min(IDLE_MAX_RETRY, IDLE_RETRY * 2 ** (failures - 1))
                if isinstance(exc, KithkeepError):
                    why = exc.format_message()
                else:
                    why = f"internal error: {type(exc).__name__}"
                    log.debug("source %s: IDLE failed", self.name, exc_info=True)
                log.info(
                    "source %s: IDLE connection failed (%s); trying again in %g s",
                    self.name,
                    why,
                    delay,
                )
                self._pause(delay)
                continue
            failures = 0
            if news:
                self._on_mail(self)
            elif not self.stopped():
                # a source that cannot wait answers False at once: do not spin
                self._pause(IDLE_WAIT - (time.monotonic() - began))


class Daemon:
    """The service. ``load_config`` is called at start and on every SIGHUP."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        *,
        environ: Mapping[str, str] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self._load_config = load_config
        self._environ = environ
        self.notifier = notifier or Notifier(environ)
        self.config: Config | None = None
        self.store: Store | None = None
        self._lock: StoreLock | None = None
        self._watchdog: Watchdog | None = None
        # set by signal handlers: lock-free (see _Flag and _Waker)
        self._stop = _Flag()
        self._stop_signal: str | None = None
        self._stop_announced = False
        self._reload = _Flag()
        self._wake = _Waker()
        self._schedule: dict[str, _Schedule] = {}
        self._analysis_due = True
        self._last_status = 0.0
        # IMAP IDLE: one watcher per source with idle = true; the names of
        # sources with new mail, filled by the watcher threads
        self._watchers: dict[str, _IdleWatcher] = {}
        self._retired: list[_IdleWatcher] = []
        self._mail_lock = threading.Lock()
        self._new_mail: set[str] = set()

    # ------------------------------------------------------------ signals

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        # only flags here: the handler may interrupt the main loop anywhere,
        # even inside a logging call; the loop logs and notifies (_stopping)
        if self._stop_signal is None:
            self._stop_signal = signal.Signals(signum).name
        self._stop.set()
        self._wake.set()

    def _stopping(self) -> bool:
        """True once a stop was asked for; says so once, in the log and to systemd."""
        if not self._stop.is_set():
            return False
        if not self._stop_announced:
            self._stop_announced = True
            why = self._stop_signal or "stop requested"
            log.info("%s: finishing the current chunk, then exiting", why)
            self.notifier.stopping(f"stopping ({why})")
        return True

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload.set()
        self._wake.set()

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    # -------------------------------------------------------------- hooks

    def _beat(self) -> None:
        if self._watchdog is not None:
            self._watchdog.beat()

    def _should_stop(self) -> bool:
        self._beat()  # called between batches: the loop is alive
        return self._stopping()

    def _progress(self, source: str, scope: str, done: int, total: int | None) -> None:
        self._beat()
        now = time.monotonic()
        if now - self._last_status < STATUS_EVERY:
            return
        self._last_status = now
        of = f"/{total}" if total is not None else ""
        self.notifier.status(f"syncing {source}: {scope} {done}{of}")

    # ---------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; 0 on a graceful stop.

        Startup errors raise: ConfigError (exit 2), LockedError and StoreError (exit 1).
        """
        config = self._load_config()
        self._lock = StoreLock(config.database_url)
        self._lock.acquire()
        try:
            self._install_signals()
            self.store = Store.open(config.database_url)
            self.config = config
            self._init_schedule(config, self.store)
            self._start_watchers(config)
            log.info(
                "kithkeep daemon started: %d sources every %g minutes, store %s",
                len(config.sources),
                config.daemon.interval_minutes,
                self.store.url,
            )
            self.notifier.ready(status="started; first sync")
            timeout = watchdog_interval(self._environ)
            if timeout is not None:
                self._watchdog = Watchdog(self.notifier, timeout)
                self._watchdog.start()
            self._loop()
        finally:
            self._shutdown()
        log.info("kithkeep daemon stopped")
        return 0

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self._retire_watchers()
        self._join_watchers()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.store is not None:
            self.store.close()
        if self._lock is not None:
            self._lock.release()
        self.notifier.close()
        self._wake.close()

    # ----------------------------------------------------------- schedule

    def _interval(self, config: Config) -> timedelta:
        return timedelta(minutes=config.daemon.interval_minutes)

    def _init_schedule(self, config: Config, store: Store) -> None:
        """Everything is due now, except sources still backing off from before a restart."""
        now = _now()
        saved = run_status.load(store)
        for cc in config.sources:
            st = saved.get((run_status.SOURCE, cc.name))
            sched = _Schedule(options=cc, next_run=now)
            if st is not None and st.failures > 0 and st.next_run is not None:
                sched.failures = st.failures
                sched.next_run = max(now, st.next_run)
                if sched.next_run > now:
                    log.info(
                        "source %s failed %d times in a row before; next try %s",
                        cc.name,
                        st.failures,
                        _fmt(sched.next_run),
                    )
            self._schedule[cc.name] = sched

    def _loop(self) -> None:
        while not self._stopping():
            self._beat()
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            self._take_new_mail()
            now = _now()
            # sources due within a moment join this cycle: one analysis for all
            # of them, and their schedules stay aligned
            slack = min(timedelta(seconds=60), self._interval(self._config()) / 10)
            due = [n for n, s in self._schedule.items() if s.next_run <= now + slack]
            if due or self._analysis_due:
                self._cycle(due)
                continue  # look at signals and the clock again before sleeping
            self._idle()

    def _idle(self) -> None:
        wake_at = min((s.next_run for s in self._schedule.values()), default=None)
        if wake_at is None:  # no sources: only signals wake us
            wake_at = _now() + self._interval(self._config())
        failing = sorted(n for n, s in self._schedule.items() if s.failures)
        note = f"; failing: {', '.join(failing)}" if failing else ""
        if self._watchers:
            note += f"; IDLE: {', '.join(sorted(self._watchers))}"
        self.notifier.status(f"idle; next sync {_fmt(wake_at)}{note}")
        while not self._stop.is_set() and not self._reload.is_set() and not self._new_mail:
            left = (wake_at - _now()).total_seconds()
            if left <= 0:
                return
            self._beat()  # waiting is what a healthy daemon does
            if self._wake.wait(min(left, MAX_SLEEP)):
                self._wake.clear()

    def _config(self) -> Config:
        assert self.config is not None
        return self.config

    # --------------------------------------------------------------- IDLE

    def _start_watchers(self, config: Config) -> None:
        """One IDLE thread per source with ``idle = true`` (only IMAP has the option).

        On a reload, a source whose options did not change keeps its thread:
        its IDLE connection never stops watching, so no mail slips through
        while a new one logs in. New and changed sources get a new thread
        (and are synced at once by the reload); removed ones lose theirs.
        """
        wanted = {cc.name: cc for cc in config.sources if cc.options.get("idle") is True}
        with self._mail_lock:
            current = dict(self._watchers)
        for name, watcher in current.items():
            if wanted.get(name) != watcher.options:
                self._retire_watchers([name])
        for name, cc in wanted.items():
            if name in current and current[name].options == cc:
                continue
            watcher = _IdleWatcher(config, cc, self._on_new_mail, self._stop.is_set)
            with self._mail_lock:
                self._watchers[name] = watcher
            watcher.start()

    def _retire_watchers(self, names: list[str] | None = None) -> None:
        """Ask IDLE threads (all by default) to end; they log out on their own."""
        with self._mail_lock:
            which = list(self._watchers) if names is None else names
            gone = [self._watchers.pop(n) for n in which if n in self._watchers]
        for watcher in gone:
            watcher.stop()
        self._retired = [w for w in self._retired if w.thread.is_alive()] + gone

    def _join_watchers(self) -> None:
        deadline = time.monotonic() + IDLE_JOIN
        for watcher in self._retired:
            watcher.thread.join(max(0.0, deadline - time.monotonic()))

    def _on_new_mail(self, watcher: _IdleWatcher) -> None:
        # called in the watcher's thread: flags only, the main loop does the work
        with self._mail_lock:
            if self._watchers.get(watcher.name) is not watcher:
                return  # retired by a reload
            self._new_mail.add(watcher.name)
        self._wake.set()

    def _take_new_mail(self) -> None:
        """Sources whose IDLE reported new mail become due now (unless backing off)."""
        with self._mail_lock:
            names, self._new_mail = self._new_mail, set()
        now = _now()
        for name in sorted(names):
            sched = self._schedule.get(name)
            if sched is None or sched.next_run <= now:
                continue
            if sched.failures:
                # its server answers IDLE, but the sync failed: keep the backoff
                log.debug(
                    "source %s: new mail, but backing off until %s", name, _fmt(sched.next_run)
                )
                continue
            log.info("source %s: new mail (IMAP IDLE); syncing now", name)
            sched.next_run = now

    def _store(self) -> Store:
        assert self.store is not None
        return self.store

    # -------------------------------------------------------------- cycle

    def _cycle(self, due: list[str]) -> None:
        started = _now()
        for name in due:
            if self._stopping():
                return
            self._sync_one(name, started)
        if self._stopping():
            return  # exit promptly: the next start analyzes what was committed
        self._analyze()

    def _sync_one(self, name: str, started: datetime) -> None:
        """Sync one source; its next run counts from ``started``, the cycle's start."""
        config, store = self._config(), self._store()
        sched = self._schedule[name]
        sched.last_attempt = started
        self.notifier.status(f"syncing {name}")
        error: str | None = None
        stopped = False
        try:
            results, errors, me = sync_all(
                config,
                store,
                progress=self._progress,
                should_stop=self._should_stop,
                only={name},
            )
        except KithkeepError as exc:
            error = exc.format_message()
            log.error("source %s failed: %s", name, error)
        except Exception as exc:  # a bug must not take the other sources down
            error = f"internal error: {type(exc).__name__}: {exc}"
            log.exception("source %s failed with an internal error", name)
        else:
            error = errors.get(name)  # sync_all has logged it
            sched.me = me or sched.me
            # a source may notice the stop itself and just end: the flag tells
            stopped = self._stop.is_set() or any(r.stopped for r in results)
        interval = self._interval(config)
        if error is None:
            sched.failures = 0
            sched.next_run = started + interval
            if stopped:
                # interrupted by a stop: not a full success, and due again at the next start
                run_status.set_next_run(store, run_status.SOURCE, name, None)
                return
            run_status.record_success(store, run_status.SOURCE, name, _now(), sched.next_run)
            return
        sched.failures += 1
        delay = run_status.backoff_delay(
            sched.failures, interval, timedelta(minutes=config.daemon.max_backoff_minutes)
        )
        sched.next_run = started + delay
        log.warning(
            "source %s: %d failure(s) in a row; next try %s",
            name,
            sched.failures,
            _fmt(sched.next_run),
        )
        run_status.record_failure(
            store, run_status.SOURCE, name, error, _now(), sched.failures, sched.next_run
        )

    def _analyze(self) -> None:
        config, store = self._config(), self._store()
        self._analysis_due = False
        self.notifier.status("analyzing")
        now = _now()
        me: set[str] = set()
        for s in self._schedule.values():
            me |= s.me
        sink = config.reminders.sink
        try:
            report = analyze_and_act(config, store, now, extra_me=me, reminding_only=True)
        except KithkeepError as exc:
            log.error("analysis or reminders failed: %s", exc.format_message())
            if sink:
                run_status.record_sink(store, sink, exc.format_message(), _now())
            return
        except Exception as exc:
            log.exception("analysis failed with an internal error")
            if sink:
                error = f"internal error: {type(exc).__name__}: {exc}"
                run_status.record_sink(store, sink, error, _now())
            return
        if sink:
            run_status.record_sink(store, sink, None, _now())
        changes = ", ".join(f"{v} {k}" for k, v in sorted(report.reminders.items()) if v)
        log.info("reminders: %s", changes or "no change")

    # ------------------------------------------------------------- reload

    def _do_reload(self) -> None:
        old = self._config()
        self.notifier.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)
        try:
            new = self._load_config()
        except KithkeepError as exc:
            log.error(
                "config reload refused, keeping the previous config: %s", exc.format_message()
            )
            self.notifier.send(READY=1, STATUS="config reload refused (see the log)")
            return
        except Exception as exc:  # a bug in loading must not kill a running service
            log.exception("config reload failed, keeping the previous config")
            self.notifier.send(READY=1, STATUS=f"config reload failed: {type(exc).__name__}")
            return
        if new.database_url != old.database_url:
            log.error(
                "config reload refused, keeping the previous config: [general] database "
                "changed; restart the service to switch stores"
            )
            self.notifier.send(READY=1, STATUS="config reload refused (see the log)")
            return
        now = _now()
        interval = self._interval(new)
        old_schedule, self._schedule = self._schedule, {}
        added: list[str] = []
        changed: list[str] = []
        for cc in new.sources:
            prev = old_schedule.get(cc.name)
            if prev is None or prev.options != cc:
                # new or changed options: sync it now, with a clean slate
                (added if prev is None else changed).append(cc.name)
                self._schedule[cc.name] = _Schedule(options=cc, next_run=now)
                continue
            if not prev.failures and prev.last_attempt is not None:
                # a new interval applies from the last run, so a shorter one takes effect now
                prev.next_run = prev.last_attempt + interval
            self._schedule[cc.name] = prev
        removed = sorted(set(old_schedule) - set(self._schedule))
        self.config = new
        self._start_watchers(new)  # IDLE threads follow the new options
        self._analysis_due = True  # rules, thresholds or the sink may have changed
        log.info(
            "config reloaded from %s: %d sources (added: %s; changed: %s; removed: %s)",
            new.path or "<config>",
            len(new.sources),
            ", ".join(added) or "none",
            ", ".join(changed) or "none",
            ", ".join(removed) or "none",
        )
        self.notifier.send(READY=1, STATUS="config reloaded")
