"""What the user's decisions mean: snooze, dismiss, done, ignore, cadence, tier, merge.

Decisions are raw data (they cannot be recomputed) and always win over rules.
A decision names a person by address, so it survives rebuilding the derived
people table; ``active`` is cleared when a decision is undone or superseded.
The store keeps them (:meth:`kithkeep.store.Store.add_decision`); this module
only reads :class:`~kithkeep.records.DecisionRecord` values, so that rules and
the model can use it without touching the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kithkeep.records import DecisionRecord

KINDS = ("snooze", "dismiss", "done", "ignore", "cadence", "tier", "merge", "unmerge", "me")
# Kinds where a newer decision replaces the older one for the same person (and rule).
SUPERSEDING = ("snooze", "dismiss", "done", "ignore", "cadence", "tier")


# --------------------------------------------------------------------------
# parsing what the user types

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwmy]?)\s*$", re.IGNORECASE)
_UNIT_DAYS = {"": 1.0, "d": 1.0, "w": 7.0, "m": 30.0, "y": 365.0}


def parse_span_days(text: str) -> float:
    """``"30d"``, ``"2w"``, ``"3m"`` (30 days), ``"1y"`` or a bare number of days."""
    m = _SPAN.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a span like 30d, 2w, 3m or 1y")
    return float(m.group(1)) * _UNIT_DAYS[m.group(2).lower()]


# --------------------------------------------------------------------------
# what the decisions mean for one person


@dataclass(frozen=True)
class Dismissal:
    """A dismissal holds while the finding's episode is one that was dismissed,
    or, for a rule that had no finding then, until there is newer contact."""

    rule: str | None
    episodes: dict[str, tuple[str, ...]]
    last_contact: datetime | None
    created_at: datetime

    def covers(self, rule: str, episode: str, last_contact: datetime | None) -> bool:
        if self.rule is not None and self.rule != rule:
            return False
        if rule in self.episodes:
            return episode in self.episodes[rule]
        if last_contact is None:
            return True
        return self.last_contact is not None and last_contact <= self.last_contact


def dismissal_value(episodes: dict[str, list[str]], last_contact: datetime | None) -> str:
    """What a dismiss decision stores in ``value``: the evidence it was made against."""
    return json.dumps(
        {
            "episodes": {k: sorted(v) for k, v in sorted(episodes.items())},
            "last_contact": last_contact.isoformat() if last_contact else None,
        },
        sort_keys=True,
    )


def _parse_dismissal(d: DecisionRecord) -> Dismissal:
    data: dict[str, Any] = {}
    if d.value:
        try:
            loaded = json.loads(d.value)
            data = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            data = {}
    episodes = {str(k): tuple(str(e) for e in v) for k, v in data.get("episodes", {}).items()}
    lc = data.get("last_contact")
    return Dismissal(
        rule=d.rule,
        episodes=episodes,
        # without recorded evidence, a dismissal holds until contact after it was made
        last_contact=datetime.fromisoformat(lc) if lc else d.created_at,
        created_at=d.created_at,
    )


@dataclass(frozen=True)
class PersonDecisions:
    """The active decisions about one person, parsed."""

    ignored: bool = False
    tier: str | None = None
    cadence_days: float | None = None
    done_at: datetime | None = None
    done_note: str | None = None
    snoozes: tuple[tuple[str | None, datetime], ...] = ()  # (rule or None for all, until)
    dismissals: tuple[Dismissal, ...] = ()

    def snoozed_until(self, rule: str, now: datetime) -> datetime | None:
        ends = [u for r, u in self.snoozes if (r is None or r == rule) and u > now]
        return max(ends) if ends else None

    def dismissed(self, rule: str, episode: str, last_contact: datetime | None) -> bool:
        return any(d.covers(rule, episode, last_contact) for d in self.dismissals)


@dataclass
class DecisionIndex:
    """Active decisions grouped by the address they name."""

    by_address: dict[str, list[DecisionRecord]] = field(default_factory=dict)

    @classmethod
    def build(cls, decisions: Sequence[DecisionRecord]) -> DecisionIndex:
        idx = cls()
        for d in decisions:
            idx.by_address.setdefault(d.person.strip().lower(), []).append(d)
        return idx

    def for_person(self, addresses: Iterable[str]) -> PersonDecisions:
        found = sorted(
            (d for a in {x.lower() for x in addresses} for d in self.by_address.get(a, ())),
            key=lambda d: (d.created_at, d.id),
        )
        return summarize(found)


def summarize(decisions: Sequence[DecisionRecord]) -> PersonDecisions:
    """Fold one person's decisions, oldest first: the newest of each kind wins."""
    ignored = False
    tier: str | None = None
    cadence: float | None = None
    done_at: datetime | None = None
    done_note: str | None = None
    snoozes: list[tuple[str | None, datetime]] = []
    dismissals: list[Dismissal] = []
    for d in decisions:
        if d.kind == "ignore":
            ignored = True
        elif d.kind == "tier" and d.value:
            tier = d.value
        elif d.kind == "cadence" and d.value:
            try:
                cadence = float(d.value)
            except ValueError:
                continue
        elif d.kind == "done":
            at = d.created_at
            if d.value:
                try:
                    at = datetime.fromisoformat(d.value)
                except ValueError:
                    at = d.created_at
            if done_at is None or at >= done_at:
                done_at, done_note = at, d.note
        elif d.kind == "snooze" and d.until is not None:
            snoozes.append((d.rule, d.until))
        elif d.kind == "dismiss":
            dismissals.append(_parse_dismissal(d))
    return PersonDecisions(
        ignored=ignored,
        tier=tier,
        cadence_days=cadence,
        done_at=done_at,
        done_note=done_note,
        snoozes=tuple(snoozes),
        dismissals=tuple(dismissals),
    )
