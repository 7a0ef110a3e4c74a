"""CLI commands: calendar (``auth google``, ``auth microsoft``)."""

from __future__ import annotations

import click

from kithkeep import google_auth, microsoft_auth
from kithkeep.cli.app import App
from kithkeep.config import Config
from kithkeep.connectors import registry
from kithkeep.errors import ConfigError


def microsoft_logins(config: Config) -> dict[tuple[str, str, str], set[str]]:
    """(client id, authority, account) -> scopes, over the config's Microsoft connectors.

    Connectors with a ``token_command`` need no sign-in and are left out.
    """
    out: dict[tuple[str, str, str], set[str]] = {}
    connectors = [registry.build_source(config, cc) for cc in config.sources] + [
        registry.build_sink(config, cc) for cc in config.sinks
    ]
    for connector in connectors:
        try:
            login = connector.msal_login() if hasattr(connector, "msal_login") else None
        finally:
            connector.close()
        if login is not None:
            key = (login.client_id, login.authority, login.account)
            out.setdefault(key, set()).update(login.scopes)
    return out


def register(cli: click.Group) -> None:
    """Add this area's commands to the kithkeep group."""

    @cli.group()
    def auth() -> None:
        """Authorize kithkeep to read and write an account's data."""

    @auth.command("google")
    @click.option(
        "--console",
        "use_console",
        is_flag=True,
        help="No browser on this machine: print a link, then paste back the address "
        "the browser ends up on.",
    )
    @click.option(
        "--client-secrets",
        type=click.Path(dir_okay=False),
        help="The OAuth client JSON ('Desktop app') from the Google Cloud console "
        "(default: google-client.json beside the config file).",
    )
    @click.option(
        "--no-mail",
        is_flag=True,
        help="Ask for calendar access only (no Gmail over IMAP).",
    )
    @click.pass_obj
    def google(app: App, use_console: bool, client_secrets: str | None, no_mail: bool) -> None:
        """Sign in to Google and store the token (mode 0600) in the state folder.

        The token serves the Google Calendar source and sink and Gmail over
        IMAP; kithkeep refreshes it on its own. Run this again if Google
        revokes it.
        """
        secrets = google_auth.client_secrets_path(client_secrets)
        scopes = [google_auth.CALENDAR_SCOPE]
        if not no_mail:
            scopes.append(google_auth.MAIL_SCOPE)
        if use_console:
            creds = google_auth.authorize_console(
                secrets,
                scopes,
                ask=lambda prompt: str(click.prompt(prompt, err=True)),
                say=lambda text: click.echo(text, err=True),
            )
        else:
            creds = google_auth.authorize_loopback(secrets, scopes)
        path = google_auth.save_credentials(creds)
        click.echo(f"Google token stored in {path}")

    @auth.command("microsoft")
    @click.option(
        "--device-code",
        is_flag=True,
        help="No browser on this machine: print a code and a URL to enter it at, on any device.",
    )
    @click.option(
        "--account",
        help="Sign in only this account (when the config names several).",
    )
    @click.pass_obj
    def microsoft(app: App, device_code: bool, account: str | None) -> None:
        """Sign in to Microsoft 365 or Outlook.com and store the token (mode 0600).

        Signs in the account of each Microsoft source and sink in the config
        (``type = "microsoft"`` or ``"microsoft-calendar"``) with their
        client_id and authority, asking for the scopes they need together.
        The token cache goes to the state folder, one file per account;
        kithkeep refreshes it on its own. Run this again after adding a
        Microsoft source or sink, or if Microsoft revokes the sign-in.
        """
        logins = microsoft_logins(app.config())
        if account:
            logins = {k: v for k, v in logins.items() if k[2].lower() == account.lower()}
        if not logins:
            raise ConfigError(
                "no Microsoft source or sink to sign in" + (f" for {account}" if account else ""),
                hint='add a source or sink with type = "microsoft" and a client_id, as the '
                "README shows under Microsoft 365 and Outlook.com; one with token_command "
                "needs no sign-in",
            )
        for (client_id, authority, name), scopes in sorted(logins.items()):
            user, path = microsoft_auth.sign_in(
                client_id,
                authority,
                name,
                sorted(scopes),
                device_code=device_code,
                say=lambda text: click.echo(text, err=True),
            )
            click.echo(f"Microsoft sign-in of {user} stored in {path}")
