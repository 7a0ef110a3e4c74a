# Types of the compiled IMAP bulk path (connectors/_imapfast.c).
from collections.abc import Callable
from typing import Any

OTHER: int
NEED_MORE: int
LIMIT: int

def scan_rows(
    buf: bytes, pos: int, min_uid: int, limit: int, account: str, folder: str, sent: bool, /
) -> tuple[list[tuple[Any, ...]], int, int, int]: ...
def encode_header(
    raw: bytes,
    account: str,
    folder: str,
    uid: str,
    flags: str,
    internal_date: str | None,
    sent: bool,
    /,
) -> tuple[Any, ...] | None: ...
def configure(
    addresses: Callable[[list[str]], str],
    name: Callable[[str], str],
    date: Callable[[str], str | None],
    words: Callable[[str], str],
    flags: Callable[[bytes], str],
    internal_date: Callable[[bytes], str | None],
    message: Callable[
        [int, bytes, bytes | None, bytes, str, str, bool, int | None, int | None],
        tuple[Any, ...],
    ],
    /,
) -> None: ...
def clear_caches() -> None: ...
