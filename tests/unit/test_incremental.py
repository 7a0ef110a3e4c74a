"""The incremental analysis equals a full rebuild, value for value (Hypothesis).

A state machine applies random sequences of new mail (threads, copies in two
folders, Cc, mailing lists, bulk and undated mail), flag changes, folders
rescanned after a new UIDVALIDITY, meetings (past, future, cancelled, gone),
merges, unmerges, ignore/tier/snooze/dismiss decisions, a contacts card,
another address of the user's, and the clock moving on. Two stores get the
same changes: one is brought up to date incrementally after each step, the
other rebuilt in full. After every step their people and their judged
findings must be equal.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kithkeep.config import AnalysisConfig, Config, GeneralConfig
from kithkeep.model.refresh import Cycle, refresh
from kithkeep.model.vcard import Card
from kithkeep.pipeline import judge_changes
from kithkeep.records import Attendee, EventBatch, EventRecord, FlagUpdate, MailBatch, MessageRecord
from kithkeep.schema import Base
from kithkeep.store import Store
from tests.unit.test_model_stats import ME, T0, mail

PEOPLE = ["ana@x.org", "ben@y.org", "chloe@gmx.de", "dmitri.ivanov@gmail.com", "news@list.example"]
OTHER_ME = "sam.alt@example.net"  # an address of the user's that the config may name
LIST = "team@lists.example"
FOLDERS = ["INBOX", "Sent", "Archive"]
CFG = AnalysisConfig(min_messages_each_way=1, silence_days=7)
CONFIG = Config(general=GeneralConfig(me=(ME,), timezone="UTC"), analysis=CFG)
SETTINGS = settings(
    max_examples=200,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

_STORES: list[Store] = []


def _fresh_stores() -> tuple[Store, Store]:
    """Two migrated in-memory stores, emptied (migrating costs more than an example)."""
    if not _STORES:
        _STORES.extend([Store.open("sqlite://"), Store.open("sqlite://")])
    for store in _STORES:
        with store.transaction() as s:
            for table in reversed(Base.metadata.sorted_tables):
                s.execute(sa.delete(table))
    return _STORES[0], _STORES[1]


def _people(store: Store) -> list[tuple[str, str]]:
    return sorted(store.people_json())


def _findings(store: Store) -> list[dict[str, object]]:
    """The stored findings without their one-line why: it says "silent 80 days" as of
    when the person was last judged, and the CLI shows it as of now (judge_stored)."""
    out = []
    for text in store.findings_json():
        data = json.loads(text)
        del data["summary"]
        out.append(data)
    return sorted(out, key=lambda f: str(f["rule"]) + str(f["person_id"]))


class IncrementalMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.incremental, self.full = _fresh_stores()
        self.now = T0 + timedelta(days=200)
        self.uids = itertools.count(1)
        self.msgs: list[MessageRecord] = []
        self.events: list[EventRecord] = []
        self.me: tuple[str, ...] = (ME,)
        self.cards: list[Card] = []
        self.last: Cycle | None = None

    def both(self, fn: object) -> None:
        for store in (self.incremental, self.full):
            fn(store)  # type: ignore[operator]

    # ---------------------------------------------------------------- mail

    @rule(data=st.data(), n=st.integers(1, 4))
    def new_mail(self, data: st.DataObject, n: int) -> None:
        batch: list[MessageRecord] = []
        for _ in range(n):
            outbound = data.draw(st.booleans())
            other = data.draw(st.sampled_from([*PEOPLE, LIST, OTHER_ME]))
            mine = data.draw(st.sampled_from([ME, ME, OTHER_ME]))
            cc = data.draw(st.lists(st.sampled_from([*PEOPLE[:4], LIST]), max_size=2))
            when = self.now - timedelta(
                days=data.draw(st.integers(0, 120)), hours=data.draw(st.integers(0, 23))
            )
            earlier = [m.message_id for m in self.msgs + batch]
            irt = (
                data.draw(st.sampled_from(earlier))
                if earlier and data.draw(st.booleans())
                else None
            )
            extra: dict[str, object] = {}
            kind = data.draw(st.sampled_from(["plain"] * 6 + ["list", "bulk", "undated", "gmail"]))
            if kind == "list":
                extra["list_post"] = f"<mailto:{LIST}>"
            elif kind == "bulk":
                extra["list_unsubscribe"] = True
            elif kind == "gmail":
                extra["gm_msgid"] = data.draw(st.integers(1, 5))
                extra["gm_thrid"] = data.draw(st.integers(1, 3))
            uid = next(self.uids)
            m = mail(
                mine if outbound else other,
                [other] if outbound else [mine],
                None if kind == "undated" else when,
                cc=cc,
                mid=f"m{uid}@t" if not data.draw(st.booleans()) or not earlier else None,
                irt=irt,
                refs=[irt] if irt and data.draw(st.booleans()) else [],
                subject=data.draw(st.sampled_from(["hi", "Re: hi", "question?"])),
                folder=data.draw(st.sampled_from(FOLDERS)),
                sent=outbound,
                **extra,
            )
            batch.append(replace(m, uid=str(uid)))
        self.msgs.extend(batch)
        self.both(lambda s: s.apply_mail_batch(MailBatch(records=batch), "acct"))

    @rule(data=st.data())
    def copy_to_another_folder(self, data: st.DataObject) -> None:
        if not self.msgs:
            return
        m = data.draw(st.sampled_from(self.msgs))
        copy = replace(
            m, folder="Archive" if m.folder != "Archive" else "INBOX", uid=str(next(self.uids))
        )
        self.msgs.append(copy)
        self.both(lambda s: s.apply_mail_batch(MailBatch(records=[copy]), "acct"))

    @rule(data=st.data())
    def flags_change(self, data: st.DataObject) -> None:
        if not self.msgs:
            return
        m = data.draw(st.sampled_from(self.msgs))
        flags = data.draw(st.sampled_from([frozenset(), frozenset({"\\Answered", "\\Seen"})]))
        update = FlagUpdate(m.folder, m.uid, flags)
        self.both(lambda s: s.apply_mail_batch(MailBatch(flag_updates=[update]), "acct"))

    @rule(folder=st.sampled_from(FOLDERS), data=st.data())
    def folder_rescanned(self, folder: str, data: st.DataObject) -> None:
        # a new UIDVALIDITY: the folder's records are replaced by what is still there
        kept = [m for m in self.msgs if m.folder == folder and data.draw(st.booleans())]
        self.msgs = [m for m in self.msgs if m.folder != folder] + kept
        batch = MailBatch(records=kept, replace_folder=folder)
        self.both(lambda s: s.apply_mail_batch(batch, "acct"))

    # -------------------------------------------------------------- events

    @rule(data=st.data())
    def meeting(self, data: st.DataObject) -> None:
        who = data.draw(st.lists(st.sampled_from(PEOPLE[:4]), min_size=1, max_size=3, unique=True))
        start = self.now + timedelta(hours=data.draw(st.integers(-24 * 60, 24 * 10)))
        status = data.draw(st.sampled_from(["CONFIRMED", "CONFIRMED", "CANCELLED"]))
        ev = EventRecord(
            source="cal",
            uid=f"ev{next(self.uids)}",
            recurrence_id="",
            start=start,
            end=start + timedelta(hours=1),
            status=status,
            summary="meeting",
            organizer=ME,
            attendees=tuple(Attendee(a, partstat="ACCEPTED") for a in (ME, *who)),
        )
        self.events.append(ev)
        self.both(lambda s: s.apply_event_batch(EventBatch(records=[ev]), "cal"))

    @rule(data=st.data())
    def meeting_gone(self, data: st.DataObject) -> None:
        if not self.events:
            return
        ev = data.draw(st.sampled_from(self.events))
        self.events.remove(ev)
        batch = EventBatch(deleted=[(ev.uid, "")])
        self.both(lambda s: s.apply_event_batch(batch, "cal"))

    # ----------------------------------------------------------- decisions

    @rule(a=st.sampled_from(PEOPLE), b=st.sampled_from(PEOPLE))
    def merge(self, a: str, b: str) -> None:
        if a != b:
            self.both(lambda s: s.add_decision("merge", a, value=b, now=self.now))

    @rule(a=st.sampled_from(PEOPLE), b=st.sampled_from(PEOPLE))
    def unmerge(self, a: str, b: str) -> None:
        if a != b:
            self.both(lambda s: s.add_decision("unmerge", a, value=b, now=self.now))

    @rule(
        kind=st.sampled_from(["ignore", "tier", "snooze", "dismiss", "cadence"]),
        who=st.sampled_from(PEOPLE),
        days=st.integers(1, 30),
    )
    def decide(self, kind: str, who: str, days: int) -> None:
        until = self.now + timedelta(days=days) if kind in ("snooze", "ignore") else None
        value = {"tier": "inner", "cadence": str(days)}.get(kind)
        self.both(
            lambda s: s.add_decision(
                kind, who, until=until, value=value, now=self.now, supersede=True
            )
        )

    @rule(data=st.data())
    def undo(self, data: st.DataObject) -> None:
        decisions = self.incremental.active_decisions()
        if decisions:
            d = data.draw(st.sampled_from(decisions))
            self.both(lambda s: s.deactivate_decisions([d.id]))

    @rule(pair=st.sampled_from([("ana@x.org", "chloe@gmx.de"), ("ben@y.org", OTHER_ME)]))
    def contacts_card(self, pair: tuple[str, str]) -> None:
        card = Card("Card Person", pair)
        self.cards = [] if self.cards == [card] else [card]

    @rule()
    def another_address_of_mine(self) -> None:
        self.me = (ME,) if OTHER_ME in self.me else (ME, OTHER_ME)

    @rule(hours=st.integers(1, 24 * 40))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    # ----------------------------------------------------------- invariant

    @invariant()
    def incremental_equals_a_full_rebuild(self) -> None:
        if not hasattr(self, "incremental"):
            return
        config = replace(CONFIG, general=replace(CONFIG.general, me=self.me))
        for store, full in ((self.incremental, False), (self.full, True)):
            self.last = refresh(
                store,
                CFG,
                self.me,
                self.now,
                (),
                decisions=store.active_decisions(),
                cards=self.cards,
                full=full,
            )
            judge_changes(config, store, self.now, store.active_decisions())
        assert _people(self.incremental) == _people(self.full)
        assert _findings(self.incremental) == _findings(self.full)


TestIncremental = IncrementalMachine.TestCase
TestIncremental.settings = SETTINGS


def test_nothing_new_is_no_work() -> None:
    store, _ = _fresh_stores()
    now = T0 + timedelta(days=200)
    msgs = [mail(ME, ["ana@x.org"], T0), mail("ana@x.org", [ME], T0 + timedelta(days=1))]
    store.apply_mail_batch(MailBatch(records=msgs), "acct")
    assert refresh(store, CFG, (ME,), now, ()).kind == "full"
    again = refresh(store, CFG, (ME,), now + timedelta(minutes=15), ())
    assert (again.kind, again.people, again.messages) == ("none", 0, 0)
    store.apply_mail_batch(
        MailBatch(records=[mail(ME, ["ana@x.org"], T0 + timedelta(days=2))]), "acct"
    )
    step = refresh(store, CFG, (ME,), now + timedelta(minutes=30), ())
    assert (step.kind, step.people, step.messages) == ("incremental", 1, 1)


def test_a_list_learnt_later_recomputes_everyone_who_wrote_with_it() -> None:
    incremental, full = _fresh_stores()
    now = T0 + timedelta(days=200)
    before = [
        mail(ME, [LIST], T0, cc=["ana@x.org"]),
        mail("ana@x.org", [ME], T0 + timedelta(days=1)),
    ]
    # later, a message that names the list in List-Post: its traffic was never personal
    later = [mail("ben@y.org", [ME], T0 + timedelta(days=2), list_post=f"<mailto:{LIST}>")]
    for store in (incremental, full):
        store.apply_mail_batch(MailBatch(records=before), "acct")
    refresh(incremental, CFG, (ME,), now, ())
    ana_then = dict(incremental.people_json())["ana@x.org"]
    assert '"messages_out":1' in ana_then
    for store in (incremental, full):
        store.apply_mail_batch(MailBatch(records=later), "acct")
    step = refresh(incremental, CFG, (ME,), now, ())
    refresh(full, CFG, (ME,), now, (), full=True)
    assert step.kind == "incremental"
    assert _people(incremental) == _people(full)
    assert '"messages_out":0' in dict(incremental.people_json())["ana@x.org"]
