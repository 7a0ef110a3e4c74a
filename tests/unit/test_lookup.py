"""Person matching: whole words and names before parts of them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from freezegun import freeze_time

from kithkeep.config import load_config
from kithkeep.errors import UsageError
from kithkeep.model.lookup import fold, matches, resolve_person
from kithkeep.model.stats import PersonStats
from kithkeep.pipeline import find_person, load_people
from kithkeep.store import Store
from tests.unit.demo_cli import NOW


def person(pid: str, name: str, *addresses: str) -> PersonStats:
    return PersonStats(person_id=pid, name=name, addresses=addresses)


PEOPLE = [
    person("p1", "Ana Silva", "anasilva@gmail.com"),
    person("p2", "Hiro Tanaka", "hiro@tanaka.jp"),
    person("p3", "Chloé Martin", "chloe.martin@gmx.de"),
    person("p4", "Ben Okafor", "ben@okafor.dev"),
    person("p5", "Benedikt Ana", "bene@example.net"),
    person("p6", "", "noname@example.net"),
    person("p7", "Anabel Stone", "anabel@stone.example"),
]


def who(query: str) -> str:
    return resolve_person(PEOPLE, query).person_id


def test_a_name_beats_a_part_of_another_name() -> None:
    # "ana" is inside "Tanaka" and "Anabel": the person named Ana wins, unless two are
    assert [p.person_id for p in matches(PEOPLE, "Silva")] == ["p1"]
    with pytest.raises(UsageError, match=r"matches 2 people: Ana Silva .*Benedikt Ana"):
        who("Ana")
    assert who("ana silva") == "p1"
    assert who("Silva Ana") == "p1"  # words in any order
    assert who("tanaka") == "p2"  # a whole word of the name, not the address


def test_accents_and_case_do_not_matter() -> None:
    assert who("chloe") == "p3"
    assert who("CHLOÉ MARTIN") == "p3"
    assert fold("Chloé") == "chloe"


def test_word_beginnings_then_parts() -> None:
    assert who("Chlo") == "p3"  # the beginning of a word
    assert who("an sil") == "p1"  # beginnings of both words
    assert who("kafo") == "p4"  # a part, when nothing matches better
    # "Ben" is a whole word of Ben Okafor's name: it wins over Benedikt's beginning
    assert who("Ben") == "p4"


def test_ids_and_addresses() -> None:
    assert who("p2") == "p2"
    assert who("Ana.Silva@GMail.com") == "p1"  # normalized as the store keeps it
    assert who("okafor") == "p4"  # a whole word of an address
    assert who("noname") == "p6"  # someone without a name


def test_errors_name_the_candidates_and_what_to_do() -> None:
    with pytest.raises(UsageError, match="no person matches 'Zed'") as exc:
        who("Zed")
    assert "kithkeep people" in exc.value.format_message()
    with pytest.raises(UsageError) as exc:
        who("example")
    assert "use an id or address" in exc.value.format_message()


def test_finding_one_person_in_the_store_is_matching_everyone(template: Path) -> None:
    """find_person matches the directory of names and addresses and reads one person's
    statistics: the same person, as of the same day, as matching every stored one."""
    config = load_config(template / "config.toml")
    with freeze_time(NOW), Store.open(config.database_url) as store:
        now = datetime.now(UTC)
        everyone = load_people(config, store, now)
        queries = ["Ana", "chloe", "okafor", "grace lee", "Isabel", "nobody at all", "@gmail"]
        queries += [p.person_id for p in everyone] + [p.addresses[-1] for p in everyone]
        for query in queries:
            try:
                want: PersonStats | str = resolve_person(everyone, query)
            except UsageError as exc:
                want = exc.format_message()
            try:
                got: PersonStats | str = find_person(config, store, now, query)
            except UsageError as exc:
                got = exc.format_message()
            if isinstance(want, str) and "matches" in want and "people:" in want:
                # several: the same ones (the directory lists them by stored strength)
                assert isinstance(got, str) and sorted(got.split()) == sorted(want.split())
            else:
                assert got == want, query
