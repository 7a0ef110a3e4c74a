"""Person matching: whole words and names before parts of them."""

from __future__ import annotations

import pytest

from kithkeep.errors import UsageError
from kithkeep.model.lookup import fold, matches, resolve_person
from kithkeep.model.stats import PersonStats


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
