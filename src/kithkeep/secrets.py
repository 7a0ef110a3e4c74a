"""Secrets: where passwords and tokens come from, and keeping them out of logs.

A secret is never required in the config file. It comes from one of:

- a command (``password_command``, like mbsync's ``PassCmd``): run through the
  shell, the first line of its standard output, stripped;
- the system keyring (``password_keyring``: the service name; the account's
  username is the key);
- an environment variable (``password_env``).

Every secret resolved here is remembered (in this process only) so that
:func:`redact` and :class:`RedactingFilter` can mask it wherever it might
surface: log records, exception text. Error messages name the *source* of a
secret (the variable, the keyring service), never its value and never the
output of a failing command, which may contain the secret itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable

from kithkeep.errors import SourceError

log = logging.getLogger(__name__)

MASK = "********"
# Shorter strings are not masked: "a" or "12" would mangle every log line and
# are no secret worth the name anyway.
_MIN_SECRET_LEN = 4

_known: set[str] = set()
_lock = threading.Lock()


def remember(secret: str) -> str:
    """Register a secret for redaction and return it unchanged."""
    if len(secret) >= _MIN_SECRET_LEN:
        with _lock:
            _known.add(secret)
    return secret


def redact(text: str) -> str:
    """``text`` with every known secret replaced by a mask."""
    if not _known:
        return text
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)  # longest first: no partial leaks
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks known secrets in a record's message and args.

    Attach it to handlers (a filter on a logger only sees records created on
    that very logger, not on its children); :func:`install_log_redaction`
    does this for the root logger's handlers and for record creation.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's business
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            # an exception's text can hold a secret too: format it now, masked;
            # formatters reuse a record's cached exc_text
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_formatter = logging.Formatter()


_installed = False


def install_log_redaction() -> None:
    """Mask known secrets in every log record this process creates.

    Wraps the record factory, so records are clean before any handler or
    filter sees them, whichever logger they come from (imaplib's protocol
    trace included). Idempotent.
    """
    global _installed  # noqa: PLW0603 - one process-wide hook, installed once
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()
    redactor = RedactingFilter()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)


def run_secret_command(command: str, *, what: str, timeout: float = 60.0) -> str:
    """Run ``command`` through the shell; the first line of its output, stripped.

    ``what`` names the secret for messages ("source work: password_command").
    Neither the command's output nor its error output ever reaches a message.
    """
    try:
        proc = subprocess.run(  # noqa: S602 - a shell command is the documented interface (mbsync PassCmd)
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SourceError(f"{what} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise SourceError(f"{what} could not be run: {exc.strerror}") from None
    if proc.returncode != 0:
        # stderr may echo the secret (or part of a vault dump): only its size is said
        log.debug("%s exited %d (%d bytes on stderr)", what, proc.returncode, len(proc.stderr))
        raise SourceError(f"{what} failed with exit status {proc.returncode}")
    out = proc.stdout.decode("utf-8", "replace")
    first = out.splitlines()[0].strip() if out.strip() else ""
    if not first:
        raise SourceError(f"{what} printed nothing")
    return remember(first)


def from_keyring(service: str, username: str, *, what: str) -> str:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # pragma: no cover - keyring is a dependency
        raise SourceError(f"{what}: the keyring package is not installed") from None
    try:
        value = keyring.get_password(service, username)
    except KeyringError as exc:
        raise SourceError(f"{what}: system keyring unavailable ({type(exc).__name__})") from None
    except Exception as exc:  # keyring backends raise all sorts of things (D-Bus, ...)
        raise SourceError(f"{what}: system keyring failed ({type(exc).__name__})") from None
    if not value:
        raise SourceError(
            f"{what}: no password in the system keyring for service {service!r}, user {username!r}",
            hint=f"store one with: keyring set {service} {username}",
        )
    return remember(value)


def from_env(variable: str, *, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise SourceError(f"{what}: environment variable {variable} is not set or empty")
    return remember(value)


def resolve_secret(
    *,
    what: str,
    command: str = "",
    keyring_service: str = "",
    username: str = "",
    env: str = "",
    runner: Callable[..., str] = run_secret_command,
) -> str:
    """The secret from the first configured source: command, keyring, environment.

    Raises :class:`SourceError` when none is configured or the configured one
    yields nothing.
    """
    if command:
        return runner(command, what=f"{what}: password_command")
    if keyring_service:
        return from_keyring(keyring_service, username, what=what)
    if env:
        return from_env(env, what=what)
    raise SourceError(
        f"{what}: no password source configured",
        hint="set password_command, password_keyring or password_env",
    )
