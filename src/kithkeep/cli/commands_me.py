"""``kithkeep me`` (who is me) and ``kithkeep explain`` (why an address is what it is)."""

from __future__ import annotations

import click

from kithkeep import clock
from kithkeep.cli.app import App, print_json
from kithkeep.cli.render import console
from kithkeep.errors import UsageError
from kithkeep.model.explain import explain
from kithkeep.model.identity import normalize
from kithkeep.model.refresh import setting_of
from kithkeep.model.vcard import load_contacts
from kithkeep.pipeline import me_report, person_holding


def _address(text: str) -> str:
    addr = normalize(text)
    if "@" not in addr:
        raise UsageError(f"{text!r} is not an address")
    return addr


def register(cli: click.Group) -> None:
    @cli.group(invoke_without_command=True)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def me(ctx: click.Context, as_json: bool) -> None:
        """Your addresses, where each came from, and the ones a sent folder proposes.

        Your addresses are the configured [general] me, the account logins and
        calendar owners, and what you add. An address that sends most of a sent
        folder's mail is only proposed: `kithkeep me add ADDRESS` makes it
        yours. Another sender there (an assistant, a delegate) is a person.
        """
        if ctx.invoked_subcommand is not None:
            return
        app: App = ctx.ensure_object(App)
        report = me_report(app.config(), app.store())
        if as_json:
            print_json(
                {
                    "addresses": [
                        {"address": m.address, "sources": list(m.sources)} for m in report.addresses
                    ],
                    "proposals": [
                        {
                            "address": p.address,
                            "account": p.account,
                            "folder": p.folder,
                            "messages": p.messages,
                            "share": round(p.share, 3),
                            "command": f"kithkeep me add {p.address}",
                        }
                        for p in report.proposals
                    ],
                }
            )
            return
        if not report.addresses:
            click.echo("No address of yours is known: set [general] me in the config.")
        for m in report.addresses:
            click.echo(f"{m.address}  ({', '.join(m.sources)})")
        for p in report.proposals:
            click.echo(f"proposed: {p.address}: {p.reason}; yours? kithkeep me add {p.address}")

    @me.command("add")
    @click.argument("address")
    @click.pass_obj
    def me_add(app: App, address: str) -> None:
        """Make ADDRESS one of yours (an alias, an old address)."""
        addr = _address(address)
        app.store().add_decision("me", addr, value="add", now=clock.now())
        app.say(f"{addr} is yours from the next run on (kithkeep me remove {addr} to undo)")

    @me.command("remove")
    @click.argument("address")
    @click.pass_obj
    def me_remove(app: App, address: str) -> None:
        """Make ADDRESS not yours (and never propose it again)."""
        addr = _address(address)
        app.store().add_decision("me", addr, value="remove", now=clock.now())
        app.say(f"{addr} is not yours from the next run on (kithkeep me add {addr} to undo)")

    @cli.command("explain")
    @click.argument("address")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_obj
    def explain_cmd(app: App, address: str, as_json: bool) -> None:
        """Why ADDRESS is you, a person, a tie, an automated sender, a list or a role."""
        addr = _address(address)
        config, store, now = app.config(), app.store(), clock.now()
        decisions = store.active_decisions()
        cards = load_contacts(config.analysis.contacts_file)
        setting = setting_of(
            store, config.analysis, config.general.me, now, decisions=decisions, cards=cards
        )
        sources = {m.address: m.sources for m in me_report(config, store).addresses}
        found = explain(
            addr,
            setting,
            person_holding(config, store, now, addr),
            sources,
            config.analysis,
            config.rules.neglected,
        )
        if as_json:
            print_json(found.to_json())
            return
        who = f" ({found.person_id})" if found.person_id else ""
        console.print(f"{found.address}{who}: {found.verdict}", soft_wrap=True, markup=False)
        for reason in found.reasons:
            console.print(f"  - {reason}", soft_wrap=True, markup=False)
