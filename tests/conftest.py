"""Shared pytest configuration.

Fixtures that start real servers live in tests/fixtures/ (one module per
server) and are registered here.
"""

from __future__ import annotations

pytest_plugins: list[str] = [
    # radicale and xandikos before cyrus: each imports the one before it
    "tests.fixtures.radicale",
    "tests.fixtures.xandikos",
    "tests.fixtures.cyrus",
    "tests.fixtures.dovecot",
    "tests.fixtures.postgres",
]
