# Bulk writes to a SQLite store with the GIL released (see _sqlitebulk.c and sqlite_bulk.py).
from collections.abc import Callable, Sequence
from typing import Any

class Connection:
    def __init__(self, path: str, busy_timeout_ms: int = 10000) -> None: ...
    def transaction(
        self,
        steps: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
        before_commit: Callable[[], object] | None = None,
    ) -> None: ...
    def close(self) -> None: ...
