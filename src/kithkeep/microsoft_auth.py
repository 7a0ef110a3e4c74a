"""Microsoft sign-in with MSAL: get a token once, keep it per account, refresh it silently.

``kithkeep auth microsoft`` signs in with the user's own app registration (a
public client id, no secret) through MSAL, Microsoft's own library:

- the browser flow: MSAL listens on 127.0.0.1 (any free port) and the
  registration's redirect URI is ``http://localhost`` (Entra accepts any port
  for it);
- the device-code flow (``--device-code``) for a machine without a browser:
  MSAL prints a code and a URL, the user approves on any other device.

Work or school and personal accounts both sign in through the ``common``
authority; a tenant id or a national cloud's login host goes in ``authority``.

MSAL's token cache (the refresh token and the access tokens it holds) is one
file per account in the platform state folder
(``microsoft-token-<account>.json``, mode 0600, written atomically).
:class:`MsalTokens` reads it, lets MSAL refresh silently and writes it back
when MSAL changed it. Tokens are registered with :func:`kithkeep.secrets.remember`
so that no log line or message can show them.

This module speaks only OAuth (msal); it knows no mail or calendar.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kithkeep import paths
from kithkeep.errors import AuthError, ConfigError, ConnectError
from kithkeep.secrets import remember

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY = "https://login.microsoftonline.com/common"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
# the Graph resource that bare scope names ("Mail.ReadBasic") mean
_GLOBAL_GRAPH_HOST = "graph.microsoft.com"

# Delegated scopes, least privilege first (see the README, "Microsoft 365 and Outlook.com").
# Mail metadata without bodies, attachments or extended properties:
MAIL_BASIC = "Mail.ReadBasic"
# ... plus the internet headers (In-Reply-To, References, List-Id, ...) and the
# replied state (an extended property): Graph gives these only with Mail.Read
MAIL_FULL = "Mail.Read"
# events without their body, attachments and extensions
CALENDAR_READ = "Calendars.ReadBasic"
# creating, updating and deleting reminder events; free/busy (getSchedule)
CALENDAR_WRITE = "Calendars.ReadWrite"

TOKEN_PREFIX = "microsoft-token-"  # noqa: S105 - a file name, not a secret

HttpClientFactory = Callable[[], Any]
# Tests replace this with a fake MSAL http_client (MSAL's own seam: any object
# with requests-like get/post); None lets MSAL use its requests session.
http_client_factory: HttpClientFactory | None = None


def account_slug(account: str) -> str:
    """A file-name-safe form of an account's address (lower-cased)."""
    slug = re.sub(r"[^a-z0-9@._-]+", "_", account.strip().lower()).strip("._")
    if not slug:
        raise ConfigError("a Microsoft account name is empty")
    return slug


def cache_path(account: str) -> Path:
    return paths.state_dir() / f"{TOKEN_PREFIX}{account_slug(account)}.json"


def graph_scopes(graph_url: str, names: Iterable[str]) -> list[str]:
    """Scope strings for a Graph endpoint.

    A bare name means the global Graph resource; the US Government and
    21Vianet clouds (and any other Graph host) need the resource in front
    (``https://graph.microsoft.us/Mail.ReadBasic``).
    """
    host = urllib.parse.urlsplit(graph_url).hostname or ""
    unique = sorted(set(names))
    if host in (_GLOBAL_GRAPH_HOST, ""):
        return unique
    scheme = urllib.parse.urlsplit(graph_url).scheme or "https"
    return [f"{scheme}://{host}/{n}" for n in unique]


def _load_cache(path: Path) -> Any:
    import msal

    cache = msal.SerializableTokenCache()
    try:
        cache.deserialize(path.read_text("utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise AuthError(
            f"cannot read the Microsoft token cache {path} ({type(exc).__name__})",
            hint="run `kithkeep auth microsoft` again",
        ) from None
    return cache


def _save_cache(cache: Any, path: Path) -> None:
    if cache.has_state_changed:
        paths.write_atomic(path, cache.serialize().encode("utf-8"), mode=0o600)
        cache.has_state_changed = False


def public_app(client_id: str, authority: str, cache: Any) -> Any:
    """An MSAL PublicClientApplication; MSAL looks the authority up at once."""
    import msal
    import requests

    if not client_id:
        raise ConfigError(
            "no Microsoft client_id configured",
            hint="register an app in the Entra admin center and set client_id "
            "(README: Microsoft 365 and Outlook.com)",
        )
    kwargs: dict[str, Any] = {}
    if http_client_factory is not None:
        kwargs["http_client"] = http_client_factory()
    try:
        return msal.PublicClientApplication(
            client_id, authority=authority, token_cache=cache, **kwargs
        )
    except requests.RequestException as exc:
        raise ConnectError(
            f"cannot reach the Microsoft sign-in service at {authority}: {type(exc).__name__}"
        ) from None
    except ValueError as exc:
        # MSAL's words for an unknown authority or tenant; they hold no secret
        raise ConfigError(f"authority {authority!r} is not usable: {str(exc)[:200]}") from None


def _refused(what: str, result: dict[str, Any]) -> AuthError:
    error = str(result.get("error", "unknown_error"))
    # the first line only: the rest is trace and correlation ids
    description = str(result.get("error_description", "")).strip().splitlines()
    detail = f": {description[0][:200]}" if description else ""
    return AuthError(f"{what} ({error}{detail})", hint="run `kithkeep auth microsoft` again")


def _remember_tokens(result: dict[str, Any]) -> None:
    for key in ("access_token", "refresh_token", "id_token"):
        value = result.get(key)
        if isinstance(value, str):
            remember(value)


def sign_in(
    client_id: str,
    authority: str,
    account: str,
    scopes: Sequence[str],
    *,
    device_code: bool,
    say: Callable[[str], None],
) -> tuple[str, Path]:
    """Sign ``account`` in and store MSAL's cache; returns (signed-in user, cache file).

    The browser flow opens the system browser and waits on 127.0.0.1; the
    device-code flow prints a URL and a code to enter there, then waits.
    """
    path = cache_path(account)
    cache = _load_cache(path)
    app = public_app(client_id, authority, cache)
    if device_code:
        flow = app.initiate_device_flow(scopes=list(scopes))
        if "user_code" not in flow:
            raise _refused("Microsoft did not start the device-code sign-in", flow)
        say(
            f"To sign in as {account}, open {flow['verification_uri']} in a browser "
            f"on any device and enter the code {flow['user_code']}"
        )
        result = app.acquire_token_by_device_flow(flow)
    else:
        say(f"Opening the browser to sign in as {account} (the answer comes back to 127.0.0.1)")
        result = app.acquire_token_interactive(
            list(scopes), login_hint=account, prompt="select_account"
        )
    if "access_token" not in result:
        raise _refused("Microsoft refused the sign-in", result)
    _remember_tokens(result)
    claims = result.get("id_token_claims") or {}
    user = str(claims.get("preferred_username") or claims.get("email") or "")
    if user and user.lower() != account.strip().lower():
        raise AuthError(
            f"signed in as {user}, but the config names the account {account}",
            hint="sign in with that account, or set account to the one you use",
        )
    _save_cache(cache, path)
    log.info("stored the Microsoft sign-in of %s in %s", account, path)
    return user or account, path


class MsalTokens:
    """Access tokens for one account from its MSAL cache file, refreshed silently."""

    def __init__(self, client_id: str, authority: str, account: str, scopes: Sequence[str]):
        self.client_id = client_id
        self.authority = authority
        self.account = account
        self.scopes = list(scopes)
        self.path = cache_path(account)
        self._app: Any = None
        self._cache: Any = None

    def _setup(self) -> Any:
        if self._app is None:
            if not self.path.exists():
                raise AuthError(
                    f"no Microsoft sign-in stored for {self.account} ({self.path})",
                    hint="run `kithkeep auth microsoft` first",
                )
            self._cache = _load_cache(self.path)
            self._app = public_app(self.client_id, self.authority, self._cache)
        return self._app

    def __call__(self, *, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` after Graph refused the last one."""
        app = self._setup()
        accounts = app.get_accounts(username=self.account)
        if not accounts:
            raise AuthError(
                f"the Microsoft token cache {self.path} holds no sign-in of {self.account}",
                hint="run `kithkeep auth microsoft` again",
            )
        result = app.acquire_token_silent_with_error(
            self.scopes, account=accounts[0], force_refresh=force_refresh
        )
        if not result or "access_token" not in result:
            raise _refused(
                f"the Microsoft sign-in of {self.account} needs renewing",
                result or {"error": "no_token_for_these_scopes"},
            )
        _remember_tokens(result)
        _save_cache(self._cache, self.path)
        return str(result["access_token"])
