# The C twin of person.py's time line loops (see _timeline.c).
from collections.abc import Callable, Sequence
from typing import Any

LAYOUT: tuple[int, int, int, int, int, int]
CONSTANTS: tuple[int, float, float, float]

def walk(
    items: list[tuple[float, int, int, bool]],
    msgs: list[Any],
    by_id: dict[str, int],
    known: dict[int, tuple[int, ...]],
    ancestors: Callable[[int], Sequence[int]],
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
