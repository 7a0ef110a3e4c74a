"""Google OAuth for an installed app: get a token once, keep it, refresh it.

``kithkeep auth google`` runs the installed-app flow with the user's own OAuth
client (a "Desktop app" client_secret JSON from the Google Cloud console):

- loopback: a one-shot HTTP server on 127.0.0.1 receives the redirect;
- console: for machines without a browser. Google retired the copy-the-code
  (OOB) flow, so the redirect goes to a loopback address where nothing
  listens; the user opens the link on any machine, approves, and pastes the
  address the browser ends up on (or just its ``code``).

The token is stored as ``Credentials.to_json()`` in the platform state folder
(``google-token.json``, mode 0600, written atomically); the IMAP connector
reads the same file for Gmail's XOAUTH2. :func:`load_credentials` refreshes an
expired token and saves the new one. Tokens never reach logs or messages.

This module speaks only OAuth (google-auth); it knows no calendar or mail.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kithkeep import paths
from kithkeep.errors import AuthError, ConfigError
from kithkeep.secrets import remember

log = logging.getLogger(__name__)

TOKEN_FILE = "google-token.json"  # noqa: S105 - a file name, not a secret
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
# Gmail over IMAP with XOAUTH2 needs the full mail scope; kithkeep still only
# fetches headers (BODY.PEEK[HEADER.FIELDS ...]).
MAIL_SCOPE = "https://mail.google.com/"
# where the console flow sends the browser: nothing listens there, the user
# copies the address from the address bar
CONSOLE_REDIRECT = "http://127.0.0.1:1/"


def token_path() -> Path:
    return paths.state_dir() / TOKEN_FILE


def client_secrets_path(explicit: str | Path | None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    return paths.config_file().parent / "google-client.json"


def save_credentials(creds: Any, path: Path | None = None) -> Path:
    path = path or token_path()
    paths.write_atomic(path, creds.to_json().encode("utf-8"), mode=0o600)
    return path


def _flow(secrets: Path, scopes: Sequence[str]) -> Any:
    from google_auth_oauthlib.flow import InstalledAppFlow

    if not secrets.exists():
        raise ConfigError(
            f"no Google OAuth client file at {secrets}",
            hint="create a 'Desktop app' OAuth client in the Google Cloud console, download "
            "its JSON there or pass --client-secrets",
        )
    try:
        return InstalledAppFlow.from_client_secrets_file(str(secrets), scopes=list(scopes))
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{secrets}: not a Google OAuth client file ({exc})") from None


def authorize_loopback(secrets: Path, scopes: Sequence[str]) -> Any:
    """Run the flow with a browser and a one-shot server on 127.0.0.1 (any free port)."""
    flow = _flow(secrets, scopes)
    return flow.run_local_server(
        host="127.0.0.1",
        port=0,
        open_browser=True,
        authorization_prompt_message="Opening the browser; if it does not open, visit: {url}",
        success_message="kithkeep is authorized. You can close this tab.",
        access_type="offline",
        prompt="consent",
    )


def code_from_pasted(text: str) -> str:
    """The authorization code from a pasted redirect address, or the code itself."""
    text = text.strip()
    if "code=" in text:
        query = urllib.parse.urlparse(text).query or text.split("?", 1)[-1]
        values = urllib.parse.parse_qs(query).get("code")
        if not values:
            raise AuthError("the pasted address has no code in it")
        return values[0]
    if not text:
        raise AuthError("nothing was pasted")
    return text


def authorize_console(
    secrets: Path,
    scopes: Sequence[str],
    ask: Callable[[str], str],
    say: Callable[[str], None],
) -> Any:
    """Run the flow without a local browser: print a link, read back the redirect address."""
    flow = _flow(secrets, scopes)
    flow.redirect_uri = CONSOLE_REDIRECT
    url, _ = flow.authorization_url(access_type="offline", prompt="consent")
    say(
        "Open this link in a browser on any machine and approve access:\n\n"
        f"  {url}\n\n"
        "The browser then fails to load a page on 127.0.0.1; copy that page's address "
        "from the address bar and paste it here."
    )
    code = code_from_pasted(ask("Address (or code)"))
    try:
        flow.fetch_token(code=code)
    except Exception as exc:  # oauthlib raises its own tree; the message names no secret
        raise AuthError(f"Google did not accept the code: {type(exc).__name__}") from None
    return flow.credentials


def load_credentials(path: Path | None = None, *, transport: Any = None) -> Any:
    """The stored credentials, refreshed (and saved) when expired.

    ``transport`` is a ``google.auth.transport.Request`` (tests pass their own).
    """
    from google.auth.exceptions import RefreshError, TransportError
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    path = path or token_path()
    try:
        info = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise AuthError(
            f"no Google token at {path}", hint="run `kithkeep auth google` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise AuthError(
            f"cannot read the Google token at {path} ({type(exc).__name__})",
            hint="run `kithkeep auth google` again",
        ) from None
    try:
        creds = Credentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise AuthError(
            f"the Google token at {path} is incomplete ({exc})",
            hint="run `kithkeep auth google` again",
        ) from None
    if not creds.valid:
        if not creds.refresh_token:
            raise AuthError(
                "the Google token expired and cannot be refreshed",
                hint="run `kithkeep auth google` again",
            )
        try:
            creds.refresh(transport or Request())
        except RefreshError:
            raise AuthError(
                "Google refused to refresh the token (revoked or expired)",
                hint="run `kithkeep auth google` again",
            ) from None
        except TransportError as exc:
            raise AuthError(f"cannot reach Google to refresh the token: {exc}") from None
        save_credentials(creds, path)
        log.info("refreshed the Google token")
    if creds.token:
        remember(creds.token)
    if creds.refresh_token:
        remember(creds.refresh_token)
    return creds
