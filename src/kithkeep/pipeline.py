"""The whole job, once: sync every source, analyze, judge, write reminders.

Shared by ``kithkeep run``, ``kithkeep demo`` and the daemon. A failing source
is reported and skipped; the others still sync, and analysis runs on what the
store holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kithkeep.config import Config
from kithkeep.connectors import registry
from kithkeep.errors import KithkeepError
from kithkeep.model.analyze import Analysis, analyze_store, load_people
from kithkeep.model.stats import PersonStats
from kithkeep.reminders import reconcile
from kithkeep.rules.base import Finding
from kithkeep.rules.engine import judge
from kithkeep.store import Store
from kithkeep.sync import Progress, SyncResult, sync_source

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    synced: list[SyncResult] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    analysis: Analysis | None = None
    findings: list[Finding] = field(default_factory=list)
    reminders: dict[str, int] = field(default_factory=dict)
    sink: str | None = None


def sync_all(
    config: Config,
    store: Store,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    only: set[str] | None = None,
    log_errors: bool = True,
) -> tuple[list[SyncResult], dict[str, str], set[str]]:
    """Sync each source; returns results, errors by source, and the user's addresses they know."""
    results: list[SyncResult] = []
    errors: dict[str, str] = {}
    me: set[str] = set()
    for cc in config.sources:
        if only and cc.name not in only:
            continue
        source = registry.build_source(config, cc)
        try:
            me |= source.me_addresses()
            results.append(sync_source(store, source, progress=progress, should_stop=should_stop))
        except KithkeepError as exc:
            if log_errors:
                log.error("source %s failed: %s", cc.name, exc.format_message())
            errors[cc.name] = exc.format_message()
        finally:
            source.close()
        if should_stop is not None and should_stop():
            break
    return results, errors, me


def save_findings(store: Store, findings: list[Finding]) -> None:
    store.replace_findings(
        [
            {
                "key": f.key,
                "rule": f.rule,
                "person_id": f.person_id,
                "severity": f.severity,
                "due": f.due,
                "title": f.title,
                "explanation": f.explanation,
                "suggestion": f.suggestion,
                "evidence_json": json.dumps(f.evidence, sort_keys=True, default=str),
                "status": f.status,
                "remind": f.remind,
            }
            for f in findings
        ]
    )


@dataclass(frozen=True)
class ReminderInfo:
    """Where a finding's reminder sits."""

    sink: str
    start: datetime
    uid: str


def reminder_index(store: Store, prefer_sink: str = "") -> dict[str, ReminderInfo]:
    """Reminders kithkeep wrote and believes present, by finding key.

    Rows the user deleted (status ``dismissed``) are not reminders any more.
    With several sinks holding the same key, ``prefer_sink`` wins.
    """
    written = [(sink, st) for sink, st in store.reminder_states() if st.status == "written"]
    return {
        st.key: ReminderInfo(sink, st.start, st.uid)
        for sink, st in sorted(written, key=lambda r: (r[0] == prefer_sink, r[0]))
    }


def _reminder_keys(store: Store, sink: str, status: str) -> frozenset[str]:
    if not sink:
        return frozenset()
    return frozenset(st.key for _, st in store.reminder_states(sink) if st.status == status)


def deleted_reminder_keys(store: Store, sink: str) -> frozenset[str]:
    """Keys of reminders the user deleted from ``sink``: their findings count as dismissed."""
    return _reminder_keys(store, sink, "dismissed")


def written_reminder_keys(store: Store, sink: str) -> frozenset[str]:
    """Keys of reminders kithkeep wrote to ``sink``: their findings keep their budget place."""
    return _reminder_keys(store, sink, "written")


def judge_stored(
    config: Config, store: Store, now: datetime
) -> tuple[list[PersonStats], list[Finding]]:
    """Judge the last analysis again with today's clock and today's decisions.

    Judging is cheap and pure, so ``kithkeep review`` and the decision
    commands see a decision at once, without a sync or a new analysis.
    """
    people = load_people(store)
    deleted = deleted_reminder_keys(store, config.reminders.sink)
    findings = judge(
        people,
        now,
        config.rules,
        config.reminders,
        store.active_decisions(),
        deleted_reminders=deleted,
        written_reminders=written_reminder_keys(store, config.reminders.sink),
    )
    return people, findings


def analyze_and_act(
    config: Config,
    store: Store,
    now: datetime,
    *,
    extra_me: set[str] | None = None,
    force: bool = False,
    report: RunReport | None = None,
) -> RunReport:
    report = report or RunReport()
    decisions = store.active_decisions()
    report.analysis = analyze_store(
        store, config.analysis, config.general.me, now, extra_me or (), decisions=decisions
    )
    report.findings = judge(
        report.analysis.people,
        now,
        config.rules,
        config.reminders,
        decisions,
        deleted_reminders=deleted_reminder_keys(store, config.reminders.sink),
        written_reminders=written_reminder_keys(store, config.reminders.sink),
    )
    save_findings(store, report.findings)
    if config.reminders.sink:
        sink = registry.build_sink(config, config.sink(config.reminders.sink))
        try:
            report.reminders = reconcile(sink, report.findings, config, store, now, force=force)
            report.sink = sink.name
        finally:
            sink.close()
    return report


def run_once(
    config: Config,
    store: Store,
    *,
    now: datetime | None = None,
    force: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    log_errors: bool = True,
) -> RunReport:
    now = now or datetime.now(UTC)
    report = RunReport()
    report.synced, report.source_errors, me = sync_all(
        config, store, progress=progress, should_stop=should_stop, log_errors=log_errors
    )
    return analyze_and_act(config, store, now, extra_me=me, force=force, report=report)
