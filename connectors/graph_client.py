"""Microsoft Graph over HTTP: tokens, throttling, paging and error translation.

Shared by the Microsoft mail source, calendar source and reminders sink
(:mod:`kithkeep.connectors.microsoft_mail`, :mod:`kithkeep.connectors.microsoft_calendar`).

- **Tokens** come from MSAL's cache of ``kithkeep auth microsoft``
  (:class:`kithkeep.microsoft_auth.MsalTokens`) or from ``token_command``, a
  command that prints an access token (for a test server, or a token broker
  the user already has). A 401 asks for a fresh token once.
- **Throttling**: 429, 503 and 504 (and other 5xx, dropped connections,
  timeouts) are retried ``max_retries`` times, waiting what ``Retry-After``
  says or, without it, an exponential backoff with full jitter; a
  ``Retry-After`` longer than ``max_retry_after`` seconds ends the run at
  once instead (waiting that long would hold the daemon; nothing is lost, the
  next run carries on).
- **Paging**: ``@odata.nextLink`` and ``@odata.deltaLink`` are followed only
  when they point at the configured ``graph_url``'s host, so that the token is
  never sent anywhere else.
- **Errors** become kithkeep's own (:mod:`kithkeep.errors`): one line with the
  HTTP status and Graph's error ``code``; an expired delta link (410, or
  ``syncStateNotFound``/``resyncRequired``) is :class:`DeltaExpired`, which
  the sources answer with a full resync.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from kithkeep.errors import AuthError, ConfigError, KithkeepError, SourceError
from kithkeep.microsoft_auth import DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL, MsalTokens, graph_scopes
from kithkeep.secrets import redact, remember, run_secret_command

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 32.0
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

Sleep = Callable[[float], None]
TokenSource = Callable[..., str]


@dataclass(frozen=True)
class GraphAccountConfig:
    """The options every Microsoft connector shares (one sign-in, one Graph endpoint)."""

    # the address you sign in with; names the token cache file
    account: str = ""
    # the Application (client) id of your app registration (README)
    client_id: str = ""
    # login host and tenant: "common" takes work, school and personal accounts
    authority: str = DEFAULT_AUTHORITY
    # Microsoft Graph's root; the national clouds and test servers use others
    graph_url: str = DEFAULT_GRAPH_URL
    # a command printing an access token, used instead of the MSAL sign-in
    token_command: str = ""
    timeout: float = 60.0
    # retries of a throttled (429/503) or failed (5xx, dropped link) request
    max_retries: int = 5
    # a Retry-After longer than this ends the run instead (the next run carries on)
    max_retry_after: float = 300.0


@dataclass(frozen=True)
class MsalLogin:
    """What ``kithkeep auth microsoft`` needs to sign one connector's account in."""

    client_id: str
    authority: str
    account: str
    scopes: tuple[str, ...]


def check_account_config(cfg: GraphAccountConfig, where: str) -> None:
    """Config errors found before anything connects (ConfigError naming the key)."""
    parts = urllib.parse.urlsplit(cfg.graph_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{where}: graph_url {cfg.graph_url!r} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        # a bearer token in clear text: only to a test server on this machine
        raise ConfigError(
            f"{where}: graph_url must use https (plain http only for 127.0.0.1 or localhost)"
        )
    if not cfg.token_command:
        if not cfg.client_id:
            raise ConfigError(
                f"{where}: set client_id (your app registration's id) or token_command",
                hint="README: Microsoft 365 and Outlook.com",
            )
        if not cfg.account:
            raise ConfigError(f"{where}: set account (the address you sign in with)")
    if cfg.max_retries < 0 or cfg.timeout <= 0 or cfg.max_retry_after < 0:
        raise ConfigError(f"{where}: timeout, max_retries and max_retry_after must be positive")


def msal_login(cfg: GraphAccountConfig, scope_names: Iterable[str]) -> MsalLogin | None:
    if cfg.token_command:
        return None
    return MsalLogin(
        cfg.client_id,
        cfg.authority,
        cfg.account,
        tuple(graph_scopes(cfg.graph_url, scope_names)),
    )


def token_source(cfg: GraphAccountConfig, scope_names: Iterable[str], what: str) -> TokenSource:
    """Where this connector's access tokens come from: token_command or MSAL."""
    if cfg.token_command:

        def from_command(*, force_refresh: bool = False) -> str:
            return run_secret_command(cfg.token_command, what=f"{what}: token_command")

        return from_command
    return MsalTokens(
        cfg.client_id, cfg.authority, cfg.account, graph_scopes(cfg.graph_url, scope_names)
    )


class DeltaExpired(Exception):
    """Graph no longer knows a delta link (410 Gone, syncStateNotFound): resync."""


class GraphHTTPError(Exception):
    """A Graph answer with an error status, for callers that handle some statuses."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}")
        self.status = status
        self.code = code
        self.message = message


def error_code(body: Any) -> tuple[str, str]:
    """(code, message) of a Graph error body ``{"error": {"code", "message"}}``."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("code", "")), str(err.get("message", ""))
    return "", ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        # Graph sends seconds, sometimes with a fraction ("2.128")
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    base = now if now is not None else time.time()
    return max(0.0, when.timestamp() - base)


def parse_graph_time(value: dict[str, Any] | str | None) -> datetime | None:
    """A Graph dateTimeTimeZone (``{"dateTime", "timeZone"}``, UTC as kithkeep asks for it)
    or DateTimeOffset string, as aware UTC.

    Graph writes seven fractional digits ("2016-12-09T20:30:00.0000000"),
    more than datetime parses; the extra digit is dropped.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        raw = str(value.get("dateTime") or "")
        zone = str(value.get("timeZone") or "UTC")
    else:
        raw, zone = str(value), "UTC"
    if not raw:
        return None
    raw = raw.replace("Z", "+00:00")
    head, dot, rest = raw.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        tail = rest[len(digits) :]
        raw = f"{head}.{digits[:6]}{tail}"
    dt = datetime.fromisoformat(raw)
    if dt.tzinfo is None:
        if zone.upper() not in ("UTC", "ETC/UTC", "GMT", "COORDINATED UNIVERSAL TIME"):
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                dt = dt.replace(tzinfo=ZoneInfo(zone))
            except (ZoneInfoNotFoundError, ValueError):
                # a Windows zone name: kithkeep asks for UTC, so this is a server's whim
                log.debug("unknown time zone %r read as UTC", zone)
                dt = dt.replace(tzinfo=UTC)
        else:
            dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def graph_time(dt: datetime) -> dict[str, str]:
    """A dateTimeTimeZone in UTC for a request body."""
    return {"dateTime": dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


class GraphClient:
    """One Graph endpoint with one account's tokens; every request goes through :meth:`call`."""

    def __init__(
        self,
        what: str,
        cfg: GraphAccountConfig,
        tokens: TokenSource,
        error: type[KithkeepError],
        *,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.what = what
        self.cfg = cfg
        self.base = cfg.graph_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base)
        self._origin = (parts.scheme, parts.netloc.lower())
        self.tokens = tokens
        self.error = error
        self.session = session or requests.Session()
        self.sleep = sleep
        self.jitter = jitter
        self._token: str | None = None

    def close(self) -> None:
        self.session.close()

    def url(self, path_or_url: str) -> str:
        """An absolute URL on this Graph endpoint; a link elsewhere is refused."""
        if path_or_url.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(path_or_url)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                raise self.error(
                    f"{self.what}: Graph returned a link to another host "
                    f"({parts.scheme}://{parts.netloc}); not following it with the token"
                )
            return path_or_url
        return self.base + "/" + path_or_url.lstrip("/")

    def _auth_error(self, action: str) -> KithkeepError:
        cls = AuthError if self.error is SourceError else self.error
        hint = (
            "check token_command"
            if self.cfg.token_command
            else "run `kithkeep auth microsoft` again"
        )
        return cls(
            f"{self.what}: Microsoft Graph refused the token while trying to {action}", hint=hint
        )

    def _token_for(self, *, force_refresh: bool) -> str:
        if self._token is None or force_refresh:
            try:
                self._token = remember(self.tokens(force_refresh=force_refresh))
            except KithkeepError as exc:
                if isinstance(exc, self.error):
                    raise
                cls = AuthError if self.error is SourceError else self.error
                raise cls(f"{self.what}: {exc.message}", hint=exc.hint) from None
        return self._token

    def call(
        self,
        method: str,
        path_or_url: str,
        action: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        passthrough: frozenset[int] = frozenset(),
        delta: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        """Send one request; returns (status, headers, parsed JSON or None).

        Statuses in ``passthrough`` raise :class:`GraphHTTPError` for the
        caller; with ``delta``, an expired link raises :class:`DeltaExpired`.
        """
        url = self.url(path_or_url)
        attempt = 0
        refreshed = False
        while True:
            token = self._token_for(force_refresh=False)
            send = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                **(headers or {}),
            }
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=send,
                    timeout=self.cfg.timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._wait(attempt, None, action, f"{type(exc).__name__}", exc)
                attempt += 1
                continue
            status = resp.status_code
            body = _json(resp)
            if status < 400:
                return status, dict(resp.headers), body
            code, message = error_code(body)
            if status == 401 and not refreshed:
                # an expired or revoked access token: one fresh one, then give up
                refreshed = True
                self._token_for(force_refresh=True)
                continue
            if status == 401:
                raise self._auth_error(action)
            if delta and (status == 410 or code.lower() in _EXPIRED_CODES):
                raise DeltaExpired(f"HTTP {status} {code}")
            if status in passthrough:
                raise GraphHTTPError(status, code, message)
            if status in _TRANSIENT:
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                self._wait(attempt, wait, action, f"HTTP {status} {code}".strip(), None)
                attempt += 1
                continue
            raise self._translate(status, code, message, action)

    def _wait(
        self,
        attempt: int,
        retry_after: float | None,
        action: str,
        why: str,
        exc: BaseException | None,
    ) -> None:
        if attempt >= self.cfg.max_retries:
            raise self.error(
                f"{self.what}: {action} failed {attempt + 1} times ({why}); giving up for now",
                hint="nothing was lost: the next run tries again",
            ) from exc
        if retry_after is not None and retry_after > self.cfg.max_retry_after:
            raise self.error(
                f"{self.what}: Microsoft Graph is throttling ({why}) and asks to wait "
                f"{retry_after:.0f} s before trying to {action} again; giving up for now",
                hint="nothing was lost: the next run tries again",
            ) from exc
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self.jitter() * min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt)
        log.warning(
            "%s: %s: %s, retry %d of %d in %.1f s",
            self.what,
            action,
            why,
            attempt + 1,
            self.cfg.max_retries,
            delay,
        )
        self.sleep(delay)

    def _translate(self, status: int, code: str, message: str, action: str) -> KithkeepError:
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        if status == 403:
            return self.error(
                f"{self.what}: {action}: access denied ({detail})",
                hint="the app registration needs the scopes in the README, and "
                "`kithkeep auth microsoft` must be run after adding one",
            )
        if status == 404:
            return self.error(f"{self.what}: {action}: not found ({detail})")
        text = redact(message.strip().splitlines()[0][:200]) if message.strip() else ""
        return self.error(
            f"{self.what}: {action} failed ({detail}" + (f": {text})" if text else ")")
        )

    # ------------------------------------------------------------ helpers

    def get(self, path_or_url: str, action: str, **kwargs: Any) -> Any:
        return self.call("GET", path_or_url, action, **kwargs)[2]

    def pages(
        self,
        path_or_url: str,
        action: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterable[dict[str, Any]]:
        """Every page of a collection, following ``@odata.nextLink``."""
        url: str | None = path_or_url
        first = True
        while url:
            page = self.get(url, action, params=params if first else None, headers=headers)
            first = False
            yield page if isinstance(page, dict) else {}
            url = page.get("@odata.nextLink") if isinstance(page, dict) else None


class GraphConnection:
    """What every Microsoft connector has: its account's options and a client built on first use.

    Built lazily so that a missing sign-in fails that connector's sync (reported,
    the others go on), not the building of every connector from the config.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        cfg: GraphAccountConfig,
        scopes: tuple[str, ...],
        error: type[KithkeepError],
        *,
        sleep: Sleep = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        check_account_config(cfg, f"[{kind}s.{name}]")
        self.what = f"{kind} {name}"
        self.cfg, self.scopes, self.error = cfg, scopes, error
        self._sleep, self._jitter = sleep, jitter
        self._client: GraphClient | None = None

    @property
    def client(self) -> GraphClient:
        if self._client is None:
            self._client = GraphClient(
                self.what,
                self.cfg,
                token_source(self.cfg, self.scopes, self.what),
                self.error,
                sleep=self._sleep,
                jitter=self._jitter,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def msal_login(self) -> MsalLogin | None:
        return msal_login(self.cfg, self.scopes)

    def me_addresses(self) -> set[str]:
        account = self.cfg.account.strip().lower()
        return {account} if "@" in account and " " not in account else set()


class GraphBacked:
    """The methods a Microsoft connector takes from its :class:`GraphConnection`."""

    graph: GraphConnection

    @property
    def client(self) -> GraphClient:
        return self.graph.client

    def msal_login(self) -> MsalLogin | None:
        return self.graph.msal_login()

    def close(self) -> None:
        self.graph.close()

    def me_addresses(self) -> set[str]:
        return self.graph.me_addresses()


@dataclass(frozen=True)
class DeltaPage:
    """One page of a delta round."""

    items: list[Any]
    # where the round goes on: the @odata.nextLink, or the round's @odata.deltaLink
    link: str
    complete: bool
    # the first page of a full listing that replaced an expired link
    restarted: bool


def delta_pages(
    client: GraphClient,
    link: str | None,
    first: tuple[str, dict[str, str]],
    action: str,
    *,
    page_size: int,
) -> Iterator[DeltaPage]:
    """The pages of one delta round, from a saved link or, without one, from ``first``.

    An expired link (410, syncStateNotFound) starts a full listing once; the
    caller sees ``restarted`` on its first page and replaces what it stored.
    """
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    restarted = resynced = False
    while True:
        url, params = (link, None) if link else first
        try:
            page = client.call("GET", url, action, params=params, headers=headers, delta=True)[2]
        except DeltaExpired:
            if resynced:
                raise client.error(
                    f"{client.what}: Graph refused even a fresh listing to {action}",
                    hint="nothing was lost: the next run tries again",
                ) from None
            log.info("%s: the delta link expired (%s): full listing", client.what, action)
            link, restarted = None, True
            resynced = True
            continue
        page = page if isinstance(page, dict) else {}
        next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
        if not next_link and not delta_link:
            raise client.error(
                f"{client.what}: Graph ended a page without a next or delta link ({action})"
            )
        yield DeltaPage(
            list(page.get("value") or []),
            str(delta_link or next_link),
            bool(delta_link),
            restarted,
        )
        restarted = False
        if delta_link:
            return
        link = str(next_link)


def _json(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None
