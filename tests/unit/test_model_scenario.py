"""A planted mailbox with people of every kind, through real files, the store and analysis.

Healthy weekly friend, fading former close tie, one-way asker, someone who
stopped answering, a friend with a work and a Gmail address (vCard), noise of
every sort (newsletter, no-reply, list, mass mail, role address), and meetings.
Then the threading traps of the real corpora: every mail file of
shared/corpora through the Maildir source and analysis without an exception,
and every calendar through the ics source.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from freezegun import freeze_time

from kithkeep.config import AnalysisConfig
from kithkeep.connectors.ics import IcsSource, IcsSourceConfig
from kithkeep.connectors.maildir import MaildirConfig, MaildirSource
from kithkeep.errors import SourceError
from kithkeep.model.analyze import Analysis
from kithkeep.model.merges import suggest_merges
from kithkeep.model.refresh import analyze_store, stored_people
from kithkeep.model.stats import PersonStats
from kithkeep.store import Store
from kithkeep.sync import sync_source

ME = "sam@example.org"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# In CI, shared/ sits beside the repository clone.
CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


class Box:
    """A Maildir written message by message (INBOX and a Sent folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def add(self, frm: str, to: list[str], when: datetime, subject: str = "hi", *,
            cc: list[str] | None = None, irt: str | None = None, flags: str = "S",
            extra: dict[str, str] | None = None) -> str:  # fmt: skip
        self.n += 1
        mid = f"<s{self.n}@scenario.test>"
        headers = {
            "From": frm,
            "To": ", ".join(to),
            "Date": format_datetime(when),
            "Subject": subject,
            "Message-ID": mid,
        }
        if cc:
            headers["Cc"] = ", ".join(cc)
        if irt:
            headers["In-Reply-To"] = irt
            headers["References"] = irt
        headers.update(extra or {})
        folder = self.root / ".Sent" if ME in frm else self.root
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\nbody\r\n"
        (folder / "cur" / f"{self.n}.scenario:2,{flags}").write_bytes(text.encode())
        return mid

    def exchange(self, other: str, when: datetime, *, me_first: bool = True,
                 reply_hours: float | None = 10, subject: str = "hello") -> None:  # fmt: skip
        me = f"Sam <{ME}>"
        a, b = (me, other) if me_first else (other, me)
        mid = self.add(a, [b], when, subject)
        if reply_hours is not None:
            self.add(b, [a], when + timedelta(hours=reply_hours), "Re: " + subject, irt=mid)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def plant(tmp_path: Path) -> tuple[Store, Path]:
    """A store of planted people of every kind, and the vCard file; the caller closes it."""
    box = Box(tmp_path / "Mail")
    # healthy: a weekly friend for a year, both ways
    for k in range(52):
        box.exchange("Ana Silva <ana.silva@gmail.com>", ago(3 + 7 * k), me_first=k % 2 == 0)
    # fading: close for two years, silent for the last 300 days
    for k in range(40):
        box.exchange("Liam O'Brien <liam@obrien.ie>", ago(300 + 18 * k), me_first=k % 3 != 0)
    # one-way asker: opens every few months with a favour, never answers mine
    for k in range(6):
        box.exchange("Farid <farid@haddad.co>", ago(20 + 90 * k), me_first=False,
                     subject="Quick favour?")  # fmt: skip
    box.add(f"Sam <{ME}>", ["Farid <farid@haddad.co>"], ago(250), "Coffee soon?")
    box.add(f"Sam <{ME}>", ["Farid <farid@haddad.co>"], ago(150), "Your talk")
    # stopped answering: answered early on, my last four went unanswered
    for k in range(4):
        box.exchange("Elena Rossi <elena@rossi.it>", ago(200 + 20 * k))
    for k in range(4):
        box.exchange("Elena Rossi <elena@rossi.it>", ago(10 + 20 * k), reply_hours=None)
    # several addresses: Isabel at work and on Gmail, grouped by the contacts file
    for k in range(5):
        box.exchange("Isabel Gomez <isabel.gomez@acme-corp.com>", ago(5 + 30 * k))
        box.exchange("Isabel Gomez <Isabel.Gomez+home@gmail.com>", ago(12 + 30 * k),
                     me_first=False)  # fmt: skip
    # same name on two addresses without a card: only suggested
    for k in range(3):
        box.exchange("Ben Okafor <ben@okafor.dev>", ago(4 + 40 * k))
        box.exchange("Ben Okafor <ben.okafor@bigco.example>", ago(6 + 40 * k), me_first=False)
    # a question from a friend, still unanswered
    box.add("Ana Silva <ana.silva@gmail.com>", [ME], ago(1), "Are you coming Saturday?")
    # noise of every kind
    for k in range(20):
        box.add(
            "Digest <newsletter@digest.example>",
            [ME],
            ago(k * 7),
            "Issue",
            extra={"List-Unsubscribe": "<https://digest.example/u>", "Precedence": "bulk"},
        )
        box.add(
            "GitHub <noreply@github.com>",
            [ME],
            ago(k * 5),
            "CI failed",
            extra={"Auto-Submitted": "auto-generated"},
        )
        box.add(
            "Priya <priya@x.org>",
            ["dev@lists.example.org"],
            ago(k * 9),
            "[dev] thread",
            extra={
                "List-Id": "<dev.lists.example.org>",
                "List-Post": "<mailto:dev@lists.example.org>",
            },
        )
        box.add(f"Sam <{ME}>", ["dev@lists.example.org"], ago(k * 9 - 0.1), "Re: [dev] thread")
        box.add("Support <support@shop.example>", [ME], ago(k * 11), "Your ticket")
        box.add(f"Sam <{ME}>", ["support@shop.example"], ago(k * 11 - 0.2), "Re: Your ticket")
    crowd = [f"guest{i}@party.example" for i in range(15)]
    for k in range(5):
        box.add(f"Sam <{ME}>", crowd, ago(30 * k + 2), "Save the date")
    cal = tmp_path / "cal.ics"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for uid, when, people in [
        ("m1", ago(8), ["liam@obrien.ie"]),  # a meeting with the fading tie
        ("m2", ago(15), [f"c{i}@acme-corp.com" for i in range(12)]),  # too big
    ]:
        lines += [
            "BEGIN:VEVENT", f"UID:{uid}",
            f"DTSTART:{when:%Y%m%dT%H%M%SZ}", f"DTEND:{when + timedelta(hours=1):%Y%m%dT%H%M%SZ}",
            f"DTSTAMP:{when:%Y%m%dT%H%M%SZ}", "SUMMARY:Catch-up", f"ORGANIZER:mailto:{ME}",
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ME}",
            *(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{p}" for p in people),
            "END:VEVENT",
        ]  # fmt: skip
    lines.append("END:VCALENDAR")
    cal.write_text("\r\n".join(lines) + "\r\n")
    vcf = tmp_path / "contacts.vcf"
    vcf.write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Isabel Gómez\r\n"
        "item1.EMAIL;TYPE=INTERNET:isabel.gomez@acme-corp.com\r\n"
        "EMAIL;TYPE=HOME:isabelgomez@gmail.com\r\nEND:VCARD\r\n"
    )
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with freeze_time(NOW):
        sync_source(store, MaildirSource("mail", MaildirConfig(path=str(box.root))))
        sync_source(store, IcsSource("cal", IcsSourceConfig(path=str(cal)), UTC))
    return store, vcf


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Store, Path]:
    store, vcf = plant(tmp_path)
    yield store, vcf  # type: ignore[misc]
    store.close()


def analyzed(store: Store, vcf: Path) -> Analysis:
    cfg = AnalysisConfig(contacts_file=str(vcf))
    with freeze_time(NOW):
        return analyze_store(store, cfg, [ME], NOW, decisions=store.active_decisions())


def who(people: list[PersonStats], address: str) -> PersonStats:
    return next(p for p in people if address in p.addresses)


def test_planted_people_of_every_kind(planted: tuple[Store, Path]) -> None:
    store, vcf = planted
    result = analyzed(store, vcf)
    people = stored_people(store, NOW, AnalysisConfig().half_life_days)
    assert people == result.people
    addresses = {a for p in people for a in p.addresses}

    # noise never became a person
    for noise in ("newsletter@digest.example", "noreply@github.com", "dev@lists.example.org",
                  "support@shop.example", "guest0@party.example", "c0@acme-corp.com"):  # fmt: skip
        assert noise not in addresses, noise
    assert result.skipped_bulk >= 60 and result.skipped_mass == 5 and result.skipped_list >= 20
    # Priya writes only to the list: not a contact either
    assert "priya@x.org" not in addresses

    ana = who(people, "anasilva@gmail.com")
    assert ana.is_tie and ana.tier == "inner" and ana.cadence_days == 7.0
    assert ana.pending_inbound is not None
    assert ana.pending_inbound.subject == "Are you coming Saturday?"
    assert ana.median_reply_hours_them == 10.0 and ana.median_reply_hours_me == 10.0

    liam = who(people, "liam@obrien.ie")
    assert liam.is_tie and liam.tier == "close"
    assert liam.strength < liam.peak_strength / 2  # fading, but the tier stays
    assert liam.meetings == 1 and liam.last_meeting is not None
    assert liam.last_contact == liam.last_meeting

    farid = who(people, "farid@haddad.co")
    assert farid.initiations_them == 6 and farid.reply_rate_me == 1.0
    assert farid.initiations_me == 2 and farid.reply_rate_them == 0.0
    assert all(i.subject == "Quick favour?" for i in farid.initiations if i.side == "them")

    elena = who(people, "elena@rossi.it")
    assert elena.unanswered_streak == 4
    assert elena.reply_rate_them == 0.5

    isabel = who(people, "isabel.gomez@acme-corp.com")
    assert set(isabel.addresses) == {"isabel.gomez@acme-corp.com", "isabelgomez@gmail.com"}
    assert isabel.name == "Isabel Gómez"
    assert (isabel.messages_out, isabel.messages_in) == (10, 10)

    # Ben's two addresses are suggested, with the reason, not merged
    bens = [p for p in people if p.name == "Ben Okafor"]
    assert len(bens) == 2
    suggestions = suggest_merges(people)
    assert [("same full name" in s.reason) for s in suggestions] == [True]


def test_user_merge_and_ignore_through_decisions(planted: tuple[Store, Path]) -> None:
    store, vcf = planted
    analyzed(store, vcf)
    store.add_decision("merge", "ben@okafor.dev", value="ben.okafor@bigco.example")
    store.add_decision("ignore", "farid@haddad.co")
    store.add_decision("tier", "elena@rossi.it", value="inner")
    people = analyzed(store, vcf).people
    ben = who(people, "ben@okafor.dev")
    assert "ben.okafor@bigco.example" in ben.addresses and ben.messages_in == 6
    farid = who(people, "farid@haddad.co")
    assert farid.ignored and not farid.is_tie
    elena = who(people, "elena@rossi.it")
    assert (elena.tier, elena.tier_source) == ("inner", "user")
    assert suggest_merges(people) == []


# ------------------------------------------------------------ real corpora


def _mail_files() -> list[Path]:
    skip = {".ics", ".md", ".vcf"}
    return sorted(
        p
        for p in CORPORA.rglob("*")
        if p.is_file() and p.suffix.lower() not in skip and "icalendar" not in p.parts
        and "khal" not in p.parts
    )  # fmt: skip


def corpora_store(tmp_path: Path) -> Store:
    """Every corpus message synced through a Maildir into a new store."""
    files = _mail_files()
    assert len(files) > 500
    root = tmp_path / "Mail"
    for i, f in enumerate(files):
        # every seventh message also lands in Sent: its From becomes "me", and
        # other messages' In-Reply-To / References point into real, broken threads
        folders = [root] + ([root / ".Sent"] if i % 7 == 0 else [])
        for folder in folders:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, folder / "cur" / f"c{i}:2,{'RS' if i % 3 == 0 else 'S'}")
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        sync_source(store, MaildirSource("corpora", MaildirConfig(path=str(root))))
    except BaseException:
        store.close()
        raise
    return store


@pytest.mark.skipif(not CORPORA.is_dir(), reason="shared/corpora is not beside the repository")
def test_real_corpora_through_maildir_and_analysis(tmp_path: Path) -> None:
    store = corpora_store(tmp_path)
    try:
        result = analyze_store(store, AnalysisConfig(), [ME], NOW)
        assert result.messages > 200 and result.skipped_bulk > 100  # bounces are automatic
        assert result.people, "some corpus senders are people"
        for p in stored_people(store, NOW, AnalysisConfig().half_life_days):
            assert p.addresses and p.person_id.startswith("p")
            assert p.messages_in + p.messages_out + p.meetings >= 1
            for d in (p.first_contact, p.last_contact, p.last_in, p.last_out):
                assert d is None or d.tzinfo is not None
        # the user's own addresses (from Sent) are never people
        assert not (result.me & {a for p in result.people for a in p.addresses})
    finally:
        store.close()


@pytest.mark.skipif(not CORPORA.is_dir(), reason="shared/corpora is not beside the repository")
def test_real_calendars_through_ics_and_analysis(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        for i, f in enumerate(sorted(CORPORA.rglob("*.ics"))):
            try:
                sync_source(store, IcsSource(f"cal{i}", IcsSourceConfig(path=str(f)), UTC))
            except SourceError:
                continue  # a file the ics source refuses is its own test's business
        result = analyze_store(store, AnalysisConfig(), [ME], NOW)
        assert result.meetings >= 0
    finally:
        store.close()
