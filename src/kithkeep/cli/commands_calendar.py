"""CLI commands: calendar (``auth google``)."""

from __future__ import annotations

import click

from kithkeep import google_auth
from kithkeep.cli.app import App


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
