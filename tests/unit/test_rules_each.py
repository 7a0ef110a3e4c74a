"""Each rule on hand-built statistics, at, just before and just after its thresholds.

The clock is frozen with freezegun; rules read it through ``datetime.now``
passed in as ``now``, the way the pipeline calls them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from kithkeep.config import (
    MeetingFollowupConfig,
    NeglectedConfig,
    OneWayAskConfig,
    ReplyOwedConfig,
    UnansweredConfig,
)
from kithkeep.errors import ConfigError
from kithkeep.model.stats import Initiation, PendingMessage, PersonStats
from kithkeep.rules import meeting_followup, neglected, one_way_ask, reply_owed, unanswered
from kithkeep.rules.base import Finding

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the last contact in most tests
SECOND = timedelta(seconds=1)


@contextmanager
def clock(at: datetime) -> Iterator[datetime]:
    with freeze_time(at):
        yield datetime.now(UTC)


def tie(**kw: object) -> PersonStats:
    base = PersonStats(
        person_id="p1",
        name="Ana Silva",
        addresses=("ana@example.net",),
        first_contact=T0 - timedelta(days=700),
        last_contact=T0,
        last_in=T0 - timedelta(days=1),
        last_out=T0,
        messages_in=30,
        messages_out=30,
        is_tie=True,
        tier="wider",
        tier_source="strength",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ neglected


@pytest.mark.parametrize(
    ("tier", "limit"), [("inner", 21), ("close", 60), ("wider", 180), (None, 180)]
)
def test_neglected_tier_cadence_threshold(tier: str | None, limit: int) -> None:
    p = tie(tier=tier, cadence_days=None)
    cfg = NeglectedConfig()
    with clock(T0 + timedelta(days=limit) - SECOND) as now:
        assert neglected.evaluate(p, now, cfg) is None
    with clock(T0 + timedelta(days=limit)) as now:
        assert neglected.evaluate(p, now, cfg) is None  # at the cadence: not yet over it
    with clock(T0 + timedelta(days=limit) + SECOND) as now:
        f = neglected.evaluate(p, now, cfg)
    assert f is not None
    assert f.evidence["cadence_days"] == limit
    assert f.evidence["tier_days"] == limit
    assert f.evidence["due"] == (T0 + timedelta(days=limit)).isoformat()
    assert f.evidence["cadence_source"] == "tier"
    assert f.due == T0 + timedelta(days=limit)
    assert f.remind
    assert f.key == f"neglected:p1:{T0.date().isoformat()}"


def test_neglected_yearly_tie_is_not_neglected_after_70_days() -> None:
    p = tie(tier="inner", cadence_days=330.0)
    with clock(T0 + timedelta(days=70)) as now:
        assert neglected.evaluate(p, now, NeglectedConfig()) is None
    # its cadence is 3 x 330 days, not the inner tier's 21
    with clock(T0 + timedelta(days=990) - SECOND) as now:
        assert neglected.evaluate(p, now, NeglectedConfig()) is None
    with clock(T0 + timedelta(days=990) + SECOND) as now:
        f = neglected.evaluate(p, now, NeglectedConfig())
    assert f is not None and f.evidence["cadence_source"] == "rhythm"
    assert "3 x your usual gap of 330 days" in f.explanation


def test_neglected_fortnightly_tie_is_after_six_weeks() -> None:
    p = tie(tier="inner", cadence_days=14.0)
    with clock(T0 + timedelta(days=42) - SECOND) as now:
        assert neglected.evaluate(p, now, NeglectedConfig()) is None
    with clock(T0 + timedelta(days=42) + SECOND) as now:
        f = neglected.evaluate(p, now, NeglectedConfig())
    assert f is not None
    assert f.evidence["cadence_days"] == 42 and f.evidence["rhythm_multiple"] == 3.0
    assert f.summary == "silent 42 days; cadence 42"
    assert "offering something useful" in f.suggestion


def test_neglected_cadence_override_wins_both_ways() -> None:
    p = tie(tier="wider", cadence_days=100.0)  # inferred: max(180, 300) = 300
    with clock(T0 + timedelta(days=31)) as now:
        f = neglected.evaluate(p, now, NeglectedConfig(), cadence_override=30)
        assert f is not None and f.evidence["cadence_source"] == "user"
        assert neglected.evaluate(p, now, NeglectedConfig()) is None
    p = tie(tier="inner", cadence_days=None)  # inferred 21, the user says 90
    with clock(T0 + timedelta(days=60)) as now:
        assert neglected.evaluate(p, now, NeglectedConfig(), cadence_override=90) is None


def test_neglected_needs_a_tie_and_respects_disable() -> None:
    later = T0 + timedelta(days=400)
    with clock(later) as now:
        assert neglected.evaluate(tie(is_tie=False), now, NeglectedConfig()) is None
        assert neglected.evaluate(tie(ignored=True), now, NeglectedConfig()) is None
        assert neglected.evaluate(tie(), now, NeglectedConfig(enabled=False)) is None
        assert neglected.evaluate(tie(), now, NeglectedConfig()) is not None


def test_neglected_severity_grows_with_overdue_and_inner_tier() -> None:
    with clock(T0 + timedelta(days=200)) as now:
        wider = neglected.evaluate(tie(tier="wider"), now, NeglectedConfig())
        inner = neglected.evaluate(tie(tier="inner"), now, NeglectedConfig())
    assert wider is not None and inner is not None
    assert inner.severity > wider.severity
    assert 1 <= wider.severity <= 100 and inner.severity == 100


# ----------------------------------------------------------------- reply_owed

MSG_AT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def owed(recipients: int = 1, **kw: object) -> PersonStats:
    pending = PendingMessage("<q1@example.net>", MSG_AT, "Question about the grant", recipients)
    fields: dict[str, object] = {
        "last_contact": MSG_AT,
        "last_in": MSG_AT,
        "last_out": MSG_AT - timedelta(days=2),
        "pending_inbound": pending,
    }
    return tie(**{**fields, **kw})


def test_reply_owed_after_three_days() -> None:
    cfg = ReplyOwedConfig()
    with clock(MSG_AT + timedelta(days=3) - SECOND) as now:
        assert reply_owed.evaluate(owed(), now, cfg) is None
    with clock(MSG_AT + timedelta(days=3)) as now:
        at = reply_owed.evaluate(owed(), now, cfg)
    with clock(MSG_AT + timedelta(days=3) + SECOND) as now:
        after = reply_owed.evaluate(owed(), now, cfg)
    assert at is not None and after is not None
    assert after.evidence["after_days"] == 3.0 and after.evidence["recipients"] == 1
    assert after.evidence["max_recipients"] == 3
    assert after.due == MSG_AT + timedelta(days=3)
    assert "Question about the grant" in after.title
    assert after.remind and after.episode.startswith("m")


def test_reply_owed_recipients_limit() -> None:
    with clock(MSG_AT + timedelta(days=4)) as now:
        assert reply_owed.evaluate(owed(recipients=3), now, ReplyOwedConfig()) is not None
        assert reply_owed.evaluate(owed(recipients=4), now, ReplyOwedConfig()) is None


def test_reply_owed_only_from_ties_and_not_after_a_reply_or_meeting() -> None:
    with clock(MSG_AT + timedelta(days=5)) as now:
        cfg = ReplyOwedConfig()
        assert reply_owed.evaluate(owed(is_tie=False), now, cfg) is None
        assert reply_owed.evaluate(owed(last_out=MSG_AT + timedelta(hours=3)), now, cfg) is None
        assert reply_owed.evaluate(owed(last_meeting=MSG_AT + timedelta(days=1)), now, cfg) is None
        # \Answered: the model leaves no pending message, so nothing is owed
        assert reply_owed.evaluate(owed(pending_inbound=None), now, cfg) is None


def test_reply_owed_skips_replies_unless_configured() -> None:
    p = owed()
    assert p.pending_inbound is not None
    reply = replace(p, pending_inbound=replace(p.pending_inbound, is_reply=True))
    with clock(MSG_AT + timedelta(days=4)) as now:
        assert reply_owed.evaluate(reply, now, ReplyOwedConfig()) is None
        f = reply_owed.evaluate(reply, now, ReplyOwedConfig(include_replies=True))
        plain = reply_owed.evaluate(p, now, ReplyOwedConfig())
    assert f is not None and plain is not None and f.severity < plain.severity


def test_reply_owed_expires() -> None:
    cfg = ReplyOwedConfig(expire_days=30)
    with clock(MSG_AT + timedelta(days=30)) as now:
        assert reply_owed.evaluate(owed(), now, cfg) is not None
    with clock(MSG_AT + timedelta(days=30) + SECOND) as now:
        assert reply_owed.evaluate(owed(), now, cfg) is None
        assert reply_owed.evaluate(owed(), now, ReplyOwedConfig(expire_days=0)) is not None


# ----------------------------------------------------------- meeting_followup

MET = datetime(2026, 4, 7, 16, 0, tzinfo=UTC)


def met(size: int = 2, **kw: object) -> PersonStats:
    fields: dict[str, object] = {
        "last_meeting": MET,
        "last_meeting_size": size,
        "last_contact": MET,
        "last_out": MET - timedelta(days=3),
        "is_tie": False,  # a new acquaintance: worth a follow-up too
    }
    return tie(**{**fields, **kw})


def test_meeting_followup_window() -> None:
    cfg = MeetingFollowupConfig()
    with clock(MET + timedelta(days=1) - SECOND) as now:
        assert meeting_followup.evaluate(met(), now, cfg) is None
    with clock(MET + timedelta(days=1)) as now:
        first = meeting_followup.evaluate(met(), now, cfg)
    with clock(MET + timedelta(days=7)) as now:
        last = meeting_followup.evaluate(met(), now, cfg)
    with clock(MET + timedelta(days=7) + SECOND) as now:
        assert meeting_followup.evaluate(met(), now, cfg) is None
    assert first is not None and last is not None
    assert first.key == last.key  # one episode: one reminder
    assert first.severity > last.severity  # fresher is more useful
    assert first.evidence["attendees"] == 2 and first.evidence["max_attendees"] == 4
    assert first.remind


def test_meeting_followup_small_meetings_only_and_not_after_a_message() -> None:
    cfg = MeetingFollowupConfig()
    with clock(MET + timedelta(days=2)) as now:
        assert meeting_followup.evaluate(met(size=4), now, cfg) is not None
        assert meeting_followup.evaluate(met(size=5), now, cfg) is None
        sent = met(last_out=MET + timedelta(hours=20))
        assert meeting_followup.evaluate(sent, now, cfg) is None
        assert meeting_followup.evaluate(met(ignored=True), now, cfg) is None


# ----------------------------------------------------------------- unanswered


def quiet(streak: int) -> PersonStats:
    return tie(unanswered_streak=streak, last_in=T0 - timedelta(days=90))


def test_unanswered_from_three_messages() -> None:
    cfg = UnansweredConfig()
    with clock(T0 + timedelta(days=1)) as now:
        assert unanswered.evaluate(quiet(2), now, cfg) is None
        f = unanswered.evaluate(quiet(3), now, cfg)
        assert f is not None
        assert unanswered.evaluate(quiet(4), now, cfg) is not None
    assert not f.remind  # never a nudge
    assert f.evidence["unanswered_streak"] == 3 and f.evidence["min_streak"] == 3
    assert "room" in f.suggestion
    # the episode ends when they write
    assert f.episode == f"since-{(T0 - timedelta(days=90)).date().isoformat()}"


def test_unanswered_needs_someone_who_wrote_once() -> None:
    with clock(T0 + timedelta(days=1)) as now:
        p = replace(quiet(5), messages_in=0, last_in=None)
        assert unanswered.evaluate(p, now, UnansweredConfig()) is None


# ---------------------------------------------------------------- one_way_ask


def init(days_ago: int, side: str, subject: str, answered: bool, gap: float | None) -> Initiation:
    return Initiation(T0 - timedelta(days=days_ago), side, subject, answered, gap)


ASKER = (
    init(700, "them", "Hello", True, None),
    init(500, "them", "Quick favor?", True, 200.0),
    init(400, "me", "Coffee next week", False, 100.0),
    init(300, "them", "Could you intro me to your CTO", True, 100.0),
    init(200, "me", "Photos from the trip", False, 100.0),
    init(100, "them", "Referral", True, 100.0),
    init(2, "them", "Hilfe beim Umzug", True, 98.0),
)


def test_one_way_ask_them() -> None:
    p = tie(initiations=ASKER)
    with clock(T0) as now:
        f = one_way_ask.evaluate(p, now, OneWayAskConfig())
    assert f is not None and f.rule == "one_way_ask"
    assert f.evidence["side"] == "them"
    assert f.evidence["initiations"] == 5
    assert f.evidence["silence_share"] == 1.0  # the first has no gap and is not judged
    assert f.evidence["ask_share"] == 0.8  # "Hello" is not an ask
    assert f.evidence["answer_rate"] == 0.0 and f.evidence["max_answer_rate"] == 0.34
    assert not f.remind
    assert "real conversation" in f.suggestion


def test_one_way_ask_thresholds() -> None:
    with clock(T0) as now:
        # answering the other side's openings (a reply 3 days later) clears them
        answered = tuple(
            replace(i, answered=True)
            if i.side == "me"
            else replace(i, gap_days=97.0)
            if k > 0 and ASKER[k - 1].side == "me"
            else i
            for k, i in enumerate(ASKER)
        )
        assert one_way_ask.evaluate(tie(initiations=answered), now, OneWayAskConfig()) is None
        # openings that follow short silences are a rhythm, not out of the blue
        cfg = OneWayAskConfig(long_silence_days=101)
        assert one_way_ask.evaluate(tie(initiations=ASKER), now, cfg) is None
        # ask share just at and just above the threshold (4 of 5 asks = 0.8)
        at = OneWayAskConfig(min_ask_share=0.8)
        above = OneWayAskConfig(min_ask_share=0.81)
        assert one_way_ask.evaluate(tie(initiations=ASKER), now, at) is not None
        assert one_way_ask.evaluate(tie(initiations=ASKER), now, above) is None
        # too few openings to judge
        few = OneWayAskConfig(min_initiations=6)
        assert one_way_ask.evaluate(tie(initiations=ASKER), now, few) is None


def test_a_new_opening_months_later_is_not_an_answer() -> None:
    # the model marks "me" answered because they wrote before the user's next
    # opening; but nothing happened in between: they opened a new exchange
    mine = init(200, "me", "Photos", True, 100.0)
    theirs = init(100, "them", "Quick favor?", True, 100.0)
    assert not one_way_ask.answered_in_exchange((mine, theirs), 0)
    replied = replace(theirs, gap_days=97.0)  # contact three days after the user wrote
    assert one_way_ask.answered_in_exchange((mine, replied), 0)
    assert not one_way_ask.answered_in_exchange((replace(mine, answered=False), replied), 0)
    assert one_way_ask.answered_in_exchange((mine,), 0)


def test_one_way_ask_me() -> None:
    mine = tuple(replace(i, side="me" if i.side == "them" else "them") for i in ASKER)
    with clock(T0) as now:
        f = one_way_ask.evaluate(tie(initiations=mine), now, OneWayAskConfig())
    assert f is not None and f.evidence["side"] == "me"
    assert f.title.startswith("Give before your next ask")
    assert f.suggestion.startswith("Give before your next ask:")


@pytest.mark.parametrize(
    "subject",
    [
        "Quick question?",
        "A favour",
        "Could you help me",
        "Intro to Maria",
        "Introduction request",
        "Referral for the job",
        "Kleiner Gefallen",
        "Brauche deine Hilfe",
        "Necesito tu ayuda",
        "Un petit service",
        "Besoin d'aide",
        "Por favor",
        "お願いがあります",
        "Нужна помощь",
    ],
)
def test_ask_patterns_match_in_several_languages(subject: str) -> None:
    assert one_way_ask.is_ask(subject, OneWayAskConfig().ask_patterns)


@pytest.mark.parametrize(
    "subject", ["Photos from the trip", "Happy birthday", "Notes from Tokyo", "Helsinki"]
)
def test_ask_patterns_leave_news_alone(subject: str) -> None:
    assert not one_way_ask.is_ask(subject, OneWayAskConfig().ask_patterns)


def test_ask_patterns_are_configurable_and_validated() -> None:
    assert one_way_ask.is_ask("Kannst du mal", ("kannst du",))
    assert not one_way_ask.is_ask("Quick favor?", ("kannst du",))
    with pytest.raises(ConfigError, match=r"\[rules.one_way_ask\]: ask_patterns"):
        OneWayAskConfig(ask_patterns=("(unclosed",))


def test_example_config_documents_the_rule_defaults() -> None:
    import tomllib
    from pathlib import Path

    from kithkeep.config import RulesConfig, build_dataclass

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    data = tomllib.loads(example.read_text("utf-8"))
    assert set(data["rules"]) == {f.name for f in dataclasses.fields(RulesConfig)}
    assert build_dataclass(RulesConfig, data["rules"], "[rules]") == RulesConfig()


def _neglected(now: datetime) -> Finding | None:
    return neglected.evaluate(tie(), now, NeglectedConfig())


def _reply_owed(now: datetime) -> Finding | None:
    return reply_owed.evaluate(owed(), now, ReplyOwedConfig())


def _meeting(now: datetime) -> Finding | None:
    return meeting_followup.evaluate(met(), now, MeetingFollowupConfig())


@pytest.mark.parametrize(
    ("evaluate", "start"),
    [
        (_neglected, T0 + timedelta(days=181)),
        (_reply_owed, MSG_AT + timedelta(days=4)),
        (_meeting, MET + timedelta(days=1.5)),
    ],
)
def test_reminder_text_does_not_change_while_the_episode_lasts(
    evaluate: Callable[[datetime], Finding | None], start: datetime
) -> None:
    """Explanation and evidence become the reminder's text: no clock in them."""
    with clock(start) as now:
        a = evaluate(now)
    with clock(start + timedelta(hours=37)) as now:
        b = evaluate(now)
    assert a is not None and b is not None and a.remind
    assert (a.key, a.title, a.explanation, a.suggestion, a.evidence) == (
        b.key, b.title, b.explanation, b.suggestion, b.evidence,
    )  # fmt: skip
    assert a.summary != b.summary  # the table's one-line why may move on


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"neglected": {"inner_days": 0}}, r"\[rules.neglected\]: inner_days must be positive"),
        ({"reply_owed": {"after_days": -1}}, r"\[rules.reply_owed\]: after_days"),
        ({"meeting_followup": {"max_attendees": 1}}, r"max_attendees must be at least 2"),
        ({"meeting_followup": {"after_days": 3, "expire_days": 2}}, r"expire_days must not"),
        ({"unanswered": {"min_streak": 0}}, r"\[rules.unanswered\]: min_streak"),
        ({"one_way_ask": {"min_ask_share": 1.5}}, r"min_ask_share must be a share"),
        ({"one_way_ask": {"ask_patterns": ["[a-"]}}, r"ask_patterns has an invalid"),
        ({"one_way_ask": {"ask_pattern": []}}, r"unknown key 'ask_pattern'"),
    ],
)
def test_bad_rule_config_names_the_section_and_key(table: dict[str, object], match: str) -> None:
    from kithkeep.config import parse_config

    with pytest.raises(ConfigError, match=match):
        parse_config({"rules": table}, None)
