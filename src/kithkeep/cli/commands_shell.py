"""CLI commands for the shell: completion scripts."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("shell", type=click.Choice(SHELLS))
    @click.pass_context
    def completion(ctx: click.Context, shell: str) -> None:
        """Print the completion script for SHELL (PERSON completes from the store).

        \b
        bash: kithkeep completion bash > ~/.local/share/bash-completion/completions/kithkeep
        zsh:  eval "$(kithkeep completion zsh)"   (in ~/.zshrc)
        fish: kithkeep completion fish > ~/.config/fish/completions/kithkeep.fish
        """
        cls = get_completion_class(shell)
        assert cls is not None  # every name in SHELLS is one of click's
        root = ctx.find_root().command
        click.echo(cls(root, {}, "kithkeep", "_KITHKEEP_COMPLETE").source())
