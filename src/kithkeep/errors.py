"""kithkeep's exception tree.

Library and protocol errors are translated at the boundary where they occur
(``raise SourceError(...) from exc``) so that the CLI and the daemon only deal
with these classes::

    KithkeepError                 base; ``exit_code`` 1 unless said otherwise
    ├── UsageError                exit 2: bad command-line usage
    ├── ConfigError               exit 2: missing, unreadable or invalid config
    ├── StoreError                the database cannot be opened or migrated
    ├── SourceError               a source failed (mail server, calendar, file)
    │   ├── AuthError             the server refused the credentials
    │   └── ConnectError          host unreachable, TLS failure, dropped link
    ├── SinkError                 writing reminders failed
    │   ├── SinkRefused           a safety check refused to act (needs --force)
    │   └── UserDeleted           the sink keeps a tombstone: the user deleted the event
    └── LockedError               another kithkeep holds the store's lock

Every message is one actionable line and never contains a credential.
"""

from __future__ import annotations


class KithkeepError(Exception):
    """Base of every error kithkeep reports to the user."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format_message(self) -> str:
        """The single line the CLI prints."""
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(KithkeepError):
    exit_code = 2


class ConfigError(KithkeepError):
    """A configuration problem; the message names file, section and key."""

    exit_code = 2


class StoreError(KithkeepError):
    pass


class SourceError(KithkeepError):
    pass


class AuthError(SourceError):
    pass


class ConnectError(SourceError):
    pass


class SinkError(KithkeepError):
    pass


class SinkRefused(SinkError):
    pass


class UserDeleted(SinkError):
    """Raised by ``ReminderSink.create`` when the sink keeps a tombstone of the
    event (Google answers 409): the user deleted it, so the reminder counts as
    dismissed."""


class LockedError(KithkeepError):
    pass
