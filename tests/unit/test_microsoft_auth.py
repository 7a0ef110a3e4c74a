"""``kithkeep auth microsoft`` and silent refresh, through MSAL's own seam: its ``http_client``.

MSAL accepts any object with requests-like ``get``/``post`` as its
``http_client``. :class:`FakeEntra` answers the requests MSAL sends to the
Microsoft identity platform (OpenID discovery, the device authorization
endpoint, the token endpoint) the way the platform documents them, and
records them. MSAL itself runs unchanged: the discovery, the device-code
polling, the token cache and the refresh are its own.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kithkeep import microsoft_auth
from kithkeep.cli import cli, main
from kithkeep.errors import AuthError

CLIENT_ID = "4a1aa1d5-c567-49d0-ad0b-cd957a47f842"
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
ACCOUNT = "Ana.Silva@Contoso.com"
AUTHORITY = "https://login.microsoftonline.com/common"
USER_CODE = "FJ4W3QKLP"
VERIFY_URL = "https://microsoft.com/devicelogin"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Response:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        self.text = json.dumps(body)
        self.headers: dict[str, str] = {"Content-Type": "application/json"}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(self.status_code)


class FakeEntra:
    """The Microsoft identity platform's endpoints, as MSAL's http_client sees them."""

    def __init__(self, username: str = ACCOUNT) -> None:
        self.username = username
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.issued: list[str] = []
        self.pending = 1  # the first poll: the user has not entered the code yet
        self.device_scope = ""

    def _token(self, scope: str) -> dict[str, Any]:
        n = len(self.issued)
        access, refresh = f"eyJ0eXAi.access-token-{n}-x9Qz", f"0.AUoA-refresh-token-{n}-Yh7w"
        self.issued += [access, refresh]
        now = int(time.time())
        claims = {
            "aud": CLIENT_ID,
            "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Ana Silva",
            "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "preferred_username": self.username,
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "tid": TENANT,
            "ver": "2.0",
        }
        id_token = ".".join(
            [b64(b'{"typ":"JWT","alg":"RS256"}'), b64(json.dumps(claims).encode()), "c2ln"]
        )
        client_info = b64(json.dumps({"uid": claims["oid"], "utid": TENANT}).encode())
        return {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": client_info,
        }

    def get(self, url: str, params: Any = None, headers: Any = None, **kw: Any) -> Response:
        self.calls.append(("GET", url, dict(params or {})))
        base = "https://login.microsoftonline.com"
        if url == f"{base}/common/v2.0/.well-known/openid-configuration":
            return Response(
                200,
                {
                    "token_endpoint": f"{base}/common/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/common/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/common/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/{{tenantid}}/v2.0",
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                },
            )
        return Response(404, {"error": "not_found"})

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any
    ) -> Response:
        form = dict(urllib.parse.parse_qsl(data)) if isinstance(data, str) else dict(data or {})
        self.calls.append(("POST", url, form))
        if url.endswith("/oauth2/v2.0/devicecode"):
            self.device_scope = form.get("scope", "")
            return Response(
                200,
                {
                    "user_code": USER_CODE,
                    "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
                    "verification_uri": VERIFY_URL,
                    "expires_in": 900,
                    "interval": 1,
                    "message": f"To sign in, use a web browser to open the page {VERIFY_URL} "
                    f"and enter the code {USER_CODE} to authenticate.",
                },
            )
        if url.endswith("/oauth2/v2.0/token"):
            grant = form.get("grant_type", "")
            if grant.endswith("device_code") and self.pending:
                self.pending -= 1
                return Response(
                    400,
                    {
                        "error": "authorization_pending",
                        "error_description": "AADSTS70016: OAuth 2.0 device flow error. "
                        "Authorization is pending. Continue polling.",
                    },
                )
            # the platform answers with the scopes granted (the device code's, for that grant)
            return Response(200, self._token(form.get("scope") or self.device_scope))
        return Response(404, {"error": "not_found"})


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeEntra]:
    fake = FakeEntra()
    monkeypatch.setattr(microsoft_auth, "http_client_factory", lambda: fake)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    yield fake


def write_config(tmp_path: Path, *, sink: bool = True) -> Path:
    cfg = tmp_path / "config.toml"
    text = f"""
[general]
database = "sqlite:///{tmp_path / "kk.sqlite3"}"

[sources.work-mail]
type = "microsoft"
account = "{ACCOUNT}"
client_id = "{CLIENT_ID}"

[sources.work-calendar]
type = "microsoft-calendar"
account = "{ACCOUNT}"
client_id = "{CLIENT_ID}"

[sources.test-server]
type = "microsoft"
graph_url = "http://127.0.0.1:9/v1.0"
token_command = "echo x"
"""
    if sink:
        text += f"""
[sinks.outlook]
type = "microsoft"
account = "{ACCOUNT}"
client_id = "{CLIENT_ID}"
calendar = "kithkeep"
"""
    cfg.write_text(text)
    return cfg


def test_device_code_prints_code_and_url_and_stores_the_cache_0600(
    entra: FakeEntra, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = write_config(tmp_path)
    result = CliRunner().invoke(
        cli, ["--config", str(cfg), "--verbose", "auth", "microsoft", "--device-code"]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"To sign in as {ACCOUNT}, open {VERIFY_URL} in a browser on any device and enter "
        f"the code {USER_CODE}"
    ) in result.output
    path = tmp_path / "state" / "kithkeep" / "microsoft-token-ana.silva@contoso.com.json"
    assert f"Microsoft sign-in of {ACCOUNT} stored in {path}" in result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    cache = json.loads(path.read_text())
    assert [r["secret"] for r in cache["RefreshToken"].values()] == [entra.issued[1]]
    # one sign-in for the three connectors of the account, with the scopes of all three;
    # the source with token_command needs none
    device = [c for c in entra.calls if c[1].endswith("/devicecode")]
    assert len(device) == 1 and device[0][2]["client_id"] == CLIENT_ID
    assert set(device[0][2]["scope"].split()) == {
        "Mail.ReadBasic",
        "Calendars.ReadBasic",
        "Calendars.ReadWrite",
        "offline_access",
        "openid",
        "profile",
    }
    polls = [c for c in entra.calls if c[1].endswith("/token")]
    assert len(polls) == 2  # pending once, then the token
    # no token in any output or log line
    text = result.output + "\n".join(r.getMessage() for r in caplog.records)
    for secret in entra.issued:
        assert secret not in text


def test_tokens_are_refreshed_silently_and_saved(entra: FakeEntra, tmp_path: Path) -> None:
    user, path = microsoft_auth.sign_in(
        CLIENT_ID, AUTHORITY, ACCOUNT, ["Mail.ReadBasic"], device_code=True, say=lambda t: None
    )
    assert user == ACCOUNT
    tokens = microsoft_auth.MsalTokens(CLIENT_ID, AUTHORITY, ACCOUNT.lower(), ["Mail.ReadBasic"])
    assert tokens() == entra.issued[0]  # from the cache: no token request
    assert len([c for c in entra.calls if c[1].endswith("/token")]) == 2
    # Graph refused it: a fresh one with the refresh token, and the cache file follows
    assert tokens(force_refresh=True) == entra.issued[2]
    refresh = entra.calls[-1]
    assert refresh[2]["grant_type"] == "refresh_token"
    assert refresh[2]["refresh_token"] == entra.issued[1]
    cache = json.loads(path.read_text())
    assert entra.issued[3] in [r["secret"] for r in cache["RefreshToken"].values()]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_another_signed_in_user_is_refused(entra: FakeEntra) -> None:
    entra.username = "someone.else@contoso.com"
    with pytest.raises(AuthError, match=r"signed in as someone\.else@contoso\.com, but the config"):
        microsoft_auth.sign_in(
            CLIENT_ID,
            AUTHORITY,
            ACCOUNT,
            ["Mail.ReadBasic"],
            device_code=True,
            say=lambda t: None,
        )
    assert not microsoft_auth.cache_path(ACCOUNT).exists()


def test_no_sign_in_yet_is_one_line(entra: FakeEntra) -> None:
    tokens = microsoft_auth.MsalTokens(CLIENT_ID, AUTHORITY, ACCOUNT, ["Mail.ReadBasic"])
    with pytest.raises(AuthError) as info:
        tokens()
    assert info.value.format_message().endswith("(run `kithkeep auth microsoft` first)")


def test_without_microsoft_connectors_the_command_says_what_to_add(
    entra: FakeEntra, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[general]\ndatabase = "sqlite:///{tmp_path / "kk.sqlite3"}"\n')
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(cfg), "auth", "microsoft"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("kithkeep: error: no Microsoft source or sink to sign in (add a source")
    assert len(err.strip().splitlines()) == 1


def test_scopes_name_the_national_cloud_resource() -> None:
    assert microsoft_auth.graph_scopes("https://graph.microsoft.com/v1.0", ["Mail.ReadBasic"]) == [
        "Mail.ReadBasic"
    ]
    assert microsoft_auth.graph_scopes(
        "https://graph.microsoft.us/v1.0", ["Calendars.ReadWrite", "Mail.ReadBasic"]
    ) == [
        "https://graph.microsoft.us/Calendars.ReadWrite",
        "https://graph.microsoft.us/Mail.ReadBasic",
    ]
