"""kithkeep: keeps relationships from going cold.

Reads mail and calendar metadata, infers per person how contact flows, flags
ties that need care and writes follow-up reminders into the user's calendar.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kithkeep")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
