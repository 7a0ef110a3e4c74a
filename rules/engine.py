"""The rules engine: run every enabled rule over every person, then budget reminders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from kithkeep.rules import neglected
from kithkeep.rules.base import Finding

from kithkeep.config import RemindersConfig, RulesConfig
from kithkeep.decisions import DecisionRecord
from kithkeep.model.stats import PersonStats


def evaluate_person(p: PersonStats, now: datetime, cfg: RulesConfig) -> list[Finding]:
    found = [neglected.evaluate(p, now, cfg.neglected)]
    return [f for f in found if f is not None]


def judge(
    people: Iterable[PersonStats],
    now: datetime,
    cfg: RulesConfig,
    reminders: RemindersConfig,
    decisions: Sequence[DecisionRecord] = (),
) -> list[Finding]:
    """All findings, highest severity first; only the top ``max_per_week`` keep ``remind``.

    ``decisions`` (snooze, dismiss, done, cadence) are not applied yet.
    """
    findings = [f for p in people for f in evaluate_person(p, now, cfg)]
    findings.sort(key=lambda f: (-f.severity, f.due, f.person_id, f.rule))
    budget = reminders.max_per_week
    out = []
    for f in findings:
        if f.remind:
            if budget > 0:
                budget -= 1
            else:
                f = replace(f, remind=False)  # noqa: PLW2901 - the budgeted copy replaces it
        out.append(f)
    return out
