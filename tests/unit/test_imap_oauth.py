"""XOAUTH2 with kithkeep's stored Google token (no network: a token that is still valid)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kithkeep.connectors.imap import load_google_access_token
from kithkeep.errors import KithkeepError


def test_stored_google_token_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with pytest.raises(KithkeepError) as missing:
        load_google_access_token()
    assert "kithkeep auth google" in missing.value.format_message()
    token_file = tmp_path / "state" / "kithkeep" / "google-token.json"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(
        json.dumps(
            {
                "token": "ya29.test-access-token",
                "refresh_token": "1//refresh",
                "client_id": "id.apps.googleusercontent.com",
                "client_secret": "secret",
                "expiry": "2999-01-01T00:00:00Z",
            }
        )
    )
    assert load_google_access_token() == "ya29.test-access-token"
