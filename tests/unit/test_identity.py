"""Who is who: address normalization, role and resource addresses, list ids, names,
the contacts file, and merge suggestions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kithkeep.model.identity import (
    fold_name,
    is_noreply,
    is_resource,
    is_role_address,
    list_id_address,
    mailto_address,
    normalize,
)
from kithkeep.model.merges import (
    UnionFind,
    _colleague_pairs,
    _same_initials,
    build_identity,
    suggest_merges,
)
from kithkeep.model.stats import PersonStats
from kithkeep.model.vcard import Card, load_contacts, parse_vcards
from tests.unit.test_model_stats import decision


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Ana.Silva@Gmail.com", "anasilva@gmail.com"),
        ("ana.silva+news@googlemail.com", "anasilva@gmail.com"),
        ("<a.b+tag@gmail.com>", "ab@gmail.com"),
        ("  'Ben@Okafor.DEV' ", "ben@okafor.dev"),
        # dots and +tags are significant elsewhere
        ("first.last+x@example.org", "first.last+x@example.org"),
        ("ben@okafor.dev.", "ben@okafor.dev"),
        ("no-at-sign", "no-at-sign"),
    ],
)
def test_normalize(raw: str, norm: str) -> None:
    assert normalize(raw) == norm
    assert normalize(norm) == norm  # idempotent


@pytest.mark.parametrize(
    "addr",
    ["info@x.org", "Support@x.org", "noreply@x.org", "no_reply@x.org", "do.not.reply@x.org",
     "bounces+abc@x.org", "mailer-daemon@x.org", "postmaster@x.org", "newsletter@x.org",
     # separators do not hide a role (a Verizon bounce comes from post_master@vtext.com)
     "post_master@vtext.com", "customer-service@x.org", "web.master@x.org", "staff@hotmail.com"],
)  # fmt: skip
def test_role_addresses(addr: str) -> None:
    assert is_role_address(addr)


@pytest.mark.parametrize(
    "addr",
    ["ana@gmail.com", "infoline.jones@x.org", "annette@x.org", "supporter.max@gmx.de",
     "replyguy@x.org", "post.malone@x.org", "staff.jones@x.org", "team.lead.kim@x.org"],
)  # fmt: skip
def test_people_are_not_role_addresses(addr: str) -> None:
    assert not is_role_address(addr)


def test_noreply_and_resource() -> None:
    assert is_noreply("no-reply@x.org") and is_noreply("NoReply-123@x.org")
    assert not is_noreply("noreen@x.org")
    assert is_resource("c_188@resource.calendar.google.com")
    assert is_resource("team@group.calendar.google.com")
    assert not is_resource("ana@calendar.example")
    assert is_role_address("frontdesk@x.org", ("frontdesk",))


def test_list_addresses_from_headers() -> None:
    assert mailto_address("<mailto:dev@Lists.Example.org?subject=help>") == "dev@lists.example.org"
    assert mailto_address("NO (posting not allowed)") is None
    assert mailto_address("<https://x.org/post>") is None
    assert mailto_address(None) is None
    assert list_id_address("Python Dev <python-dev.python.org>") == "python-dev@python.org"
    assert list_id_address("<team.groups.example.com>") == "team@groups.example.com"
    assert list_id_address("<localhost>") is None
    assert list_id_address("<a.b>") is None  # no dotted host left
    assert list_id_address(None) is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Isabel Gómez", "isabel gomez"),
        ("Gomez, Isabel", "Isabel Gomez"),
        ('"Ana  Silva"', "ana silva"),
    ],
)
def test_fold_name(a: str, b: str) -> None:
    assert fold_name(a) == fold_name(b)
    assert fold_name("Łukasz Nowak") == "łukasz nowak"  # no combining mark: kept as a letter


def test_union_find_roots_are_the_smallest_address() -> None:
    uf = UnionFind()
    uf.union("c@x", "b@x")
    uf.union("b@x", "a@x")
    uf.union("d@x", "d@x")
    assert {uf.find(x) for x in ("a@x", "b@x", "c@x")} == {"a@x"}
    assert uf.find("d@x") == "d@x" and uf.find("unknown@x") == "unknown@x"


def test_identity_from_decisions_in_order() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ds = [
        decision(1, "merge", "a@x.org", "B@x.org"),
        decision(2, "merge", "b@x.org", "c@x.org"),
        decision(3, "unmerge", "c@x.org", "a@x.org"),
        decision(4, "ignore", "Z@x.org"),
        decision(5, "tier", "a@x.org", "close"),
    ]
    ident = build_identity(ds, [Card("C", ("c@x.org", "c2@x.org"))], ["me@x.org"], now)
    assert ident.root("b@x.org") == ident.root("a@x.org") == "a@x.org"
    assert ident.root("c@x.org") == "c@x.org"  # unmerged, and its card is ignored too
    assert ident.root("c2@x.org") == "c2@x.org"
    assert ident.ignored == {"z@x.org"} and ident.tiers["a@x.org"] == (5, "close")
    assert ("a@x.org", "c@x.org") in ident.separated


def _p(pid: str, name: str, *addresses: str, msgs: int = 3) -> PersonStats:
    return PersonStats(person_id=pid, name=name, addresses=addresses, messages_in=msgs)


def test_suggest_merges_with_reasons() -> None:
    people = [
        _p("p1", "Isabel Gómez", "isabel@acme.example"),
        _p("p2", "Gomez, Isabel", "isabelg@gmail.com"),
        _p("p3", "Ana Silva", "ana.silva@gmail.com"),
        _p("p4", "", "ana.silva@work.example"),
        _p("p5", "Ben", "ben@a.example"),  # one-word names are too common
        _p("p6", "Ben", "ben@b.example"),
        _p("p7", "Chloé Martin", "chloe@x.example"),
        _p("p8", "Chloé Martin", "chloe@y.example", msgs=0),  # never exchanged mail
        _p("p9", "Dan Brown", "dan.brown@x.example"),
        _p("p10", "Daniel Green", "dan.brown@y.example"),  # conflicting names
    ]
    found = {(s.a.person_id, s.b.person_id): s.reason for s in suggest_merges(people)}
    assert set(found) == {("p1", "p2"), ("p3", "p4")}
    assert "same full name" in found[("p1", "p2")]
    assert "ana.silva" in found[("p3", "p4")]
    # a pair the user separated is not suggested again
    separated = suggest_merges(
        people, [decision(1, "unmerge", "isabelg@gmail.com", "isabel@acme.example")]
    )
    assert {(s.a.person_id, s.b.person_id) for s in separated} == {("p3", "p4")}
    assert (
        separated[0].to_json()["command"]
        == "kithkeep merge ana.silva@gmail.com ana.silva@work.example"
    )


_LOCALS = st.sampled_from(
    ["anne.berg", "a.k.berg", "aberg", "akberg", "kberg", "anne_berg", "berg", "an.berg",
     "a.bergman", "abergman", "b.erg", "ab", "anne.berg+x", "z.berg", "zberg", "abe.rg"]
)  # fmt: skip
_NAMES = st.sampled_from(["", "Anne Berg", "Berg, Anne K.", "Zoe Berg", "Ann Bergman", "Kai"])


@given(
    st.lists(
        st.tuples(
            _NAMES,
            st.lists(
                st.tuples(_LOCALS, st.sampled_from(["corp.example", "x.example"])),
                min_size=1,
                max_size=3,
            ),
        ),
        max_size=8,
    )
)
@example([("Anne Berg", [("akberg", "corp.example")]), ("", [("a.k.berg", "corp.example")])])
@example([("", [("aberg", "x.example")]), ("Berg, Anne K.", [("anne_berg", "x.example")])])
@settings(max_examples=300)
def test_colleague_pairs_miss_no_pair_that_all_pairs_would_match(
    drawn: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    """Pairing by surname key finds every same-initials match that comparing everyone
    at a domain with everyone finds, with the same reason."""
    people = [
        _p(f"p{i}", name, *dict.fromkeys(f"{local}@{d}" for local, d in boxes))
        for i, (name, boxes) in enumerate(drawn)
    ]
    everyone = {
        (a.person_id, b.person_id): why
        for i, a in enumerate(people)
        for b in people[i + 1 :]
        if (why := _same_initials(a, b)) is not None
    }
    paired = {
        (a.person_id, b.person_id): why
        for a, b in _colleague_pairs(people)
        if (why := _same_initials(a, b)) is not None
    }
    assert paired == everyone


VCF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Isabel G\r\n ómez\r\n"
    "item1.EMAIL;type=INTERNET;type=pref:Isabel.Gomez@Acme.example\r\n"
    "EMAIL;TYPE=HOME:isabel.gomez+x@gmail.com\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=B6rg=20M=\r\n"
    "=C3=BCller\r\nEMAIL;INTERNET:joerg@x.de\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\nVERSION:4.0\nFN:No Mail\nTEL:123\nEND:VCARD\n"
    "BEGIN:VCARD\nFN:Escaped\\, Name\nEMAIL:mailto:esc@x.org\nEND:VCARD\n"
    "garbage line without colon\nEND:VCARD\n"
)


def test_parse_vcards() -> None:
    cards = parse_vcards(VCF)
    assert cards == [
        Card("Isabel Gómez", ("isabel.gomez@acme.example", "isabelgomez@gmail.com")),
        Card("Jörg Müller", ("joerg@x.de",)),
        Card("Escaped, Name", ("esc@x.org",)),
    ]


def test_load_contacts_missing_file_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_contacts("") == []
    assert load_contacts(str(tmp_path / "nope.vcf")) == []
    assert "not read" in caplog.text
    f = tmp_path / "c.vcf"
    f.write_bytes(VCF.encode("utf-8"))
    assert len(load_contacts(str(f))) == 3
