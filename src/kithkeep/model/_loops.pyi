# The analysis' hot loops in C (see _loops.c); the Python twins are in messages.py and person.py.
from collections.abc import Callable, Sequence
from typing import Any

LAYOUT: tuple[int, ...]
CONSTANTS: tuple[int, float, float, float]

def walk(
    items: list[tuple[float, int, int, bool]],
    msgs: list[Any],
    by_id: dict[str, int],
    known: dict[int, tuple[int, ...]],
    refs_from_json: Callable[[str], Sequence[str]],
    subjects: dict[str, bool],
    reply_subject: Callable[[str], bool],
    silence: float,
) -> Any: ...
def strength(
    items: list[tuple[float, int, int, bool]],
    half_life_days: float,
    now_ts: float,
    weights: tuple[float, float, float],
) -> tuple[float, float]: ...
def monthly(items: list[tuple[float, int, int, bool]], bounds: list[float]) -> tuple[int, ...]: ...
def messages_from_rows(
    rows: list[Any],
    out: list[Any],
    sender_cache: dict[Any, Any],
    sender_text: Callable[[Any], Any],
    rc_cache: dict[Any, Any],
    recipients: Callable[[Any], Any],
    sent_from: set[str],
    list_posts: list[str],
) -> int: ...
def timelines(
    msgs: list[Any],
    max_recipients: int,
    lists: set[str],
    me: frozenset[str],
    person_of: dict[str, str],
    who: Callable[[str], str],
    targets_of: dict[int, Any],
    rc_uses: dict[int, list[Any]],
    pairs: dict[tuple[str, str], int],
    items_by: dict[str, list[tuple[float, int, int, bool]]],
) -> tuple[int, int]: ...
def initiations_json(
    inits: tuple[Any, ...],
    utc: Any,
    iso: Callable[[Any], str],
    encode_string: Callable[[str], str],
    json_value: Callable[[Any], str],
) -> str: ...
