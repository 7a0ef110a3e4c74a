"""The whole job, once: sync every source, analyze, judge, write reminders.

Shared by ``kithkeep run``, ``kithkeep demo`` and the daemon. A failing source
is reported and skipped; the others still sync, and analysis runs on what the
store holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kithkeep import clock
from kithkeep.config import Config
from kithkeep.connectors import registry
from kithkeep.daemon import status as run_status
from kithkeep.decisions import DecisionIndex
from kithkeep.errors import KithkeepError, UsageError
from kithkeep.model.analyze import Analysis, Setting
from kithkeep.model.history import Contact, contacts_of
from kithkeep.model.lookup import resolve_person
from kithkeep.model.me import MyAddress, Proposal, me_decisions, my_addresses, proposals
from kithkeep.model.refresh import Cycle, State, analysis_of, refresh, setting_of, stored_people
from kithkeep.model.stats import PersonStats
from kithkeep.model.vcard import load_contacts
from kithkeep.records import DecisionRecord
from kithkeep.reminders import reconcile
from kithkeep.rules.base import Finding
from kithkeep.rules.engine import budget, judge, judge_person, rejudge_at
from kithkeep.store import Store
from kithkeep.sync import Progress, SyncResult, sync_source

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    synced: list[SyncResult] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    analysis: Analysis | None = None
    cycle: Cycle | None = None
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


def _finding_row(f: Finding) -> dict[str, object]:
    return {
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
        "data_json": json.dumps(f.to_json(), sort_keys=True),
    }


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


def load_people(config: Config, store: Store, now: datetime) -> list[PersonStats]:
    """Everyone as stored, as of ``now``, strongest first."""
    return stored_people(store, now, config.analysis.half_life_days)


@dataclass(frozen=True, slots=True)
class PersonEntry:
    """A person as the directory lists them: what they are found by."""

    person_id: str
    name: str
    addresses: tuple[str, ...]


def person_directory(store: Store) -> list[PersonEntry]:
    """Everyone's id, name and addresses, strongest first (as last stored)."""
    return [
        PersonEntry(pid, name, tuple(json.loads(addresses)))
        for pid, name, addresses in store.people_directory()
    ]


def person_holding(config: Config, store: Store, now: datetime, address: str) -> PersonStats | None:
    """The stored person one of whose addresses is ``address`` (normalized), as of ``now``."""
    entry = next((e for e in person_directory(store) if address in e.addresses), None)
    text = store.person_json(entry.person_id) if entry is not None else None
    return (
        None if text is None else PersonStats.from_stored(text, now, config.analysis.half_life_days)
    )


def find_person(config: Config, store: Store, now: datetime, query: str) -> PersonStats:
    """The one person ``query`` names (model.lookup's levels), as of ``now``.

    Matched against the directory of names and addresses, and only that
    person's statistics read: at 20,000 people reading everyone's took
    seconds for one `kithkeep show`.
    """
    entries = person_directory(store)
    if not entries:
        raise UsageError(
            "no people known yet", hint="run `kithkeep run` (or `kithkeep sync`) first"
        )
    entry = resolve_person(entries, query)
    text = store.person_json(entry.person_id)
    if text is None:  # gone between the two reads: a daemon's cycle removed them
        raise UsageError(f"no person matches {query!r}", hint="they were just analyzed away")
    return PersonStats.from_stored(text, now, config.analysis.half_life_days)


def contact_setting(config: Config, store: Store, now: datetime) -> Setting:
    """Who is who as the last analysis saw it: what :func:`contacts_for` reads with."""
    return setting_of(
        store,
        config.analysis,
        config.general.me,
        now,
        decisions=store.active_decisions(),
        cards=load_contacts(config.analysis.contacts_file),
    )


def contacts_for(
    config: Config,
    store: Store,
    person: PersonStats,
    now: datetime,
    setting: Setting | None = None,
) -> list[Contact]:
    """Every counted message and meeting with ``person``, oldest first (show, review -i;
    ``setting``: :func:`contact_setting`'s, when several people are shown)."""
    if setting is None:
        setting = contact_setting(config, store, now)
    return contacts_of(store, person, setting)


def judge_stored(
    config: Config, store: Store, now: datetime, people: list[PersonStats] | None = None
) -> tuple[list[PersonStats], list[Finding]]:
    """Judge everyone as stored (or ``people``) with today's clock and today's decisions.

    Judging is cheap and pure, so ``kithkeep review`` and the decision
    commands see a decision at once, without a sync or a new analysis.
    Only the reminder budget ranks people against each other.
    """
    if people is None:
        people = load_people(config, store, now)
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


# meta key of what the last analysis cycle did (kithkeep status)
LAST_CYCLE = "last_cycle"
# meta key of what the stored findings were judged with
_JUDGE_KEY = "judge_state"


def _decision_prints(decisions: Sequence[DecisionRecord]) -> dict[str, str]:
    """A fingerprint of the active decisions about each address."""
    by: dict[str, list[str]] = {}
    for d in decisions:
        by.setdefault(d.person.strip().lower(), []).append(
            f"{d.id}:{d.kind}:{d.rule}:{d.until}:{d.value}"
        )
    return {a: hashlib.sha256("|".join(v).encode()).hexdigest()[:12] for a, v in by.items()}


def judge_changes(
    config: Config,
    store: Store,
    now: datetime,
    decisions: Sequence[DecisionRecord],
    *,
    reminding_only: bool = False,
) -> list[Finding]:
    """Judge again the people whose verdicts may have changed, and return every finding,
    budgeted.

    Judged again: the people the analysis just recomputed, those whose time has
    come (a threshold of a rule, a snooze's end: ``derived_people.judge_at``),
    those whose decisions or deleted reminders changed, and everyone when the
    rules' config did. Everyone else keeps the findings stored for them.
    """
    sink = config.reminders.sink
    deleted = deleted_reminder_keys(store, sink)
    rules_print = hashlib.sha256(
        json.dumps(dataclasses.asdict(config.rules), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    prints = _decision_prints(decisions)
    previous: dict[str, Any] = json.loads(store.get_meta(_JUDGE_KEY) or "{}")
    if previous.get("rules") != rules_print:
        store.rejudge()
    else:
        old_prints: dict[str, str] = previous.get("decisions", {})
        touched = {
            a for a in old_prints.keys() | prints.keys() if old_prints.get(a) != prints.get(a)
        }
        if touched:
            store.rejudge(roots=store.roots_of(touched))
        was_deleted = set(previous.get("deleted", ()))
        changed_keys = was_deleted ^ deleted
        if changed_keys:
            store.rejudge(ids={k.split(":")[1] for k in changed_keys if k.count(":") >= 2})
    index = DecisionIndex.build(decisions)
    cfg = config.rules
    judged: dict[str, tuple[list[dict[str, object]], datetime | None]] = {}
    for _root, text in store.people_to_judge(now):
        p = PersonStats.from_stored(text, now, config.analysis.half_life_days)
        d = index.for_person(p.addresses)
        found = judge_person(p, now, cfg, d, deleted)
        judged[p.person_id] = ([_finding_row(f) for f in found], rejudge_at(p, now, cfg, d))
    store.save_findings(judged)
    store.save_analysis(
        meta={
            _JUDGE_KEY: json.dumps(
                {"rules": rules_print, "decisions": prints, "deleted": sorted(deleted)},
                sort_keys=True,
            )
        }
    )
    # the daemon needs only the findings that want a reminder (a cycle's cost must not
    # grow with everyone's findings); the CLI and tests see them all
    texts = store.findings_json(reminding=reminding_only)
    findings = [Finding.from_json(json.loads(text)) for text in texts]
    return budget(findings, config.reminders.max_per_week, written_reminder_keys(store, sink))


def describe_cycle(c: Cycle) -> str:
    """One line on what an analysis cycle did (the daemon's journal)."""
    if c.kind == "none":
        return f"no change ({c.seconds:.2f} s)"
    read = f"{c.messages} messages and {c.events} events read"
    if c.kind == "full":
        return f"full rebuild, {c.people} people, {read} ({c.seconds:.2f} s)"
    return (
        f"incremental, {c.people} people recomputed, {c.removed} gone, {read} ({c.seconds:.2f} s)"
    )


def analyze_and_act(
    config: Config,
    store: Store,
    now: datetime,
    *,
    extra_me: set[str] | None = None,
    force: bool = False,
    full: bool = False,
    reminding_only: bool = False,
    report: RunReport | None = None,
) -> RunReport:
    """Bring the statistics up to date, judge what may have changed, write the reminders.

    ``extra_me``: the user's addresses the sources reported this run (None: those
    of the last run). ``full`` rebuilds the statistics from scratch.
    """
    report = report or RunReport()
    decisions = store.active_decisions()
    report.cycle = refresh(
        store,
        config.analysis,
        config.general.me,
        now,
        extra_me,
        decisions=decisions,
        cards=load_contacts(config.analysis.contacts_file),
        full=full,
    )
    c = report.cycle
    store.save_analysis(
        meta={
            LAST_CYCLE: json.dumps(
                {
                    "kind": c.kind,
                    "seconds": round(c.seconds, 3),
                    "at": now.isoformat(),
                    "people": c.people,
                    "removed": c.removed,
                    "messages": c.messages,
                    "events": c.events,
                }
            )
        }
    )
    report.analysis = analysis_of(store, report.cycle)
    report.findings = judge_changes(config, store, now, decisions, reminding_only=reminding_only)
    if config.reminders.sink:
        sink = registry.build_sink(config, config.sink(config.reminders.sink))
        try:
            report.reminders = reconcile(sink, report.findings, config, store, now, force=force)
            report.sink = sink.name
        finally:
            sink.close()
    log.info("analyzed: %s; %d findings", describe_cycle(report.cycle), len(report.findings))
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
    """The whole job once (`kithkeep run`, the timer, the demo). Each source's and the
    sink's outcome is kept for `kithkeep status` as the daemon keeps it, a failing
    sink's too."""
    now = now or clock.now()
    report = RunReport()
    report.synced, report.source_errors, me = sync_all(
        config, store, progress=progress, should_stop=should_stop, log_errors=log_errors
    )
    run_status.record_results(store, [r.source for r in report.synced], report.source_errors, now)
    sink = config.reminders.sink
    try:
        analyze_and_act(config, store, now, extra_me=me, force=force, report=report)
    except KithkeepError as exc:
        if sink:
            run_status.record_sink(store, sink, exc.format_message(), now)
        raise
    if sink:
        run_status.record_sink(store, sink, None, now)
    return report


@dataclass(frozen=True)
class MeReport:
    """The user's addresses with where each came from, and what the sent folders propose."""

    addresses: list[MyAddress]
    proposals: list[Proposal]


def me_report(config: Config, store: Store) -> MeReport:
    """Who is me (``kithkeep me``, ``check``, ``status``): the configured addresses, the
    ones the sources reported at the last run, the user's decisions, the contacts
    card; and the majority senders of sent folders that are none of them."""
    state = State.load(store)
    known = [(a, "account login or calendar owner") for a in (state.known if state else [])]
    decisions = store.active_decisions()
    mine = my_addresses(
        config.general.me, known, decisions, load_contacts(config.analysis.contacts_file)
    )
    _, removed = me_decisions(decisions)
    found = proposals(store.sent_folder_senders(), [m.address for m in mine], removed)
    return MeReport(mine, found)
