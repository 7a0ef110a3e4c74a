"""Secrets: password sources, and keeping secrets out of logs and errors."""

from __future__ import annotations

import logging
import sys

import pytest

from kithkeep import secrets
from kithkeep.errors import SourceError


def test_command_gives_its_first_line_stripped() -> None:
    value = secrets.resolve_secret(what="source t", command="printf '  s3cr3t-one  \\nsecond\\n'")
    assert value == "s3cr3t-one"


def test_failing_command_does_not_echo_its_output() -> None:
    cmd = "echo leaked-secret-xyz; echo leaked-secret-xyz >&2; exit 3"
    with pytest.raises(SourceError) as info:
        secrets.resolve_secret(what="source t", command=cmd)
    text = info.value.format_message()
    assert "exit status 3" in text
    assert "leaked-secret-xyz" not in text
    assert "password_command" in text


def test_command_printing_nothing_is_an_error() -> None:
    with pytest.raises(SourceError, match="printed nothing"):
        secrets.resolve_secret(what="source t", command="true")


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KK_SECRET_TEST", "env-s3cret")
    assert secrets.resolve_secret(what="source t", env="KK_SECRET_TEST") == "env-s3cret"
    monkeypatch.delenv("KK_SECRET_TEST")
    with pytest.raises(SourceError, match="KK_SECRET_TEST is not set"):
        secrets.resolve_secret(what="source t", env="KK_SECRET_TEST")


def test_no_source_configured() -> None:
    with pytest.raises(SourceError, match="no password source"):
        secrets.resolve_secret(what="source t")


def test_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    # The system keyring has no daemon in CI; a backend object is the seam.
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.store = {("kithkeep-work", "me@example.org"): "ring-s3cret"}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        got = secrets.resolve_secret(
            what="source t", keyring_service="kithkeep-work", username="me@example.org"
        )
        assert got == "ring-s3cret"
        with pytest.raises(SourceError, match="no password in the system keyring"):
            secrets.resolve_secret(
                what="source t", keyring_service="kithkeep-work", username="other@example.org"
            )
    finally:
        keyring.set_keyring(previous)


def test_redaction_in_text_and_log_records(caplog: pytest.LogCaptureFixture) -> None:
    secret = secrets.remember("hunter2-very-secret")
    assert secrets.redact(f"login failed for x with {secret}!") == (
        f"login failed for x with {secrets.MASK}!"
    )
    secrets.install_log_redaction()
    secrets.install_log_redaction()  # idempotent
    log = logging.getLogger("kithkeep.test_secrets")
    with caplog.at_level(logging.DEBUG):
        log.debug("sending %s to the server", secret)
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            log.exception("failed")
    assert secret not in caplog.text
    assert secrets.MASK in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()


def test_short_strings_are_not_treated_as_secrets() -> None:
    secrets.remember("ab")
    assert secrets.redact("abc") == "abc"


def test_command_runs_through_the_shell() -> None:
    # like mbsync's PassCmd: pipes and quoting work
    cmd = f"{sys.executable} -c 'print(\"piped-s3cret\")' | cat"
    assert secrets.run_secret_command(cmd, what="t") == "piped-s3cret"
