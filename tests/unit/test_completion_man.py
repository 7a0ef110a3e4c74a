"""Shell completion (PERSON from the store) and the man page generated from the commands."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete
from click.testing import CliRunner

from kithkeep.cli import cli
from kithkeep.cli.app import walk
from kithkeep.cli.manpage import manpage
from tests.helpers import REPO


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _kithkeep_completion kithkeep"),
    ("zsh", "#compdef kithkeep"),
    ("fish", "complete --no-files --command kithkeep"),
])  # fmt: skip
def test_completion_scripts(shell: str, marker: str) -> None:
    res = CliRunner().invoke(cli, ["completion", shell])
    assert res.exit_code == 0, res.output
    assert marker in res.output and "_KITHKEEP_COMPLETE" in res.output
    assert CliRunner().invoke(cli, ["completion", "tcsh"]).exit_code == 2


def complete(config: Path, *words: str) -> list[tuple[str, str | None]]:
    comp = BashComplete(cli, {}, "kithkeep", "_KITHKEEP_COMPLETE")
    *args, incomplete = ["--config", str(config), *words]
    return [(c.value, c.help) for c in comp.get_completions(args, incomplete)]


def test_person_arguments_complete_from_the_store(demo: Path) -> None:
    # a name's word completes to the person's address (one word for the shell), name as help
    assert complete(demo, "show", "Ana") == [("anasilva@gmail.com", "Ana Silva")]
    assert complete(demo, "snooze", "chlo") == [("chloe.martin@gmx.de", "Chloé Martin")]
    assert complete(demo, "dismiss", "ben@") == [("ben@okafor.dev", "Ben Okafor")]
    every = complete(demo, "done", "")
    assert len(every) == 13 and all("@" in value for value, _ in every)
    # options still complete as options
    assert ("--undo", "Take the decision back.") in complete(demo, "ignore", "--u")


def test_completion_without_a_store_offers_nothing(tmp_path: Path) -> None:
    assert complete(tmp_path / "missing.toml", "show", "Ana") == []


def test_man_page_is_generated_from_the_commands() -> None:
    page = manpage(cli)
    committed = (REPO / "man" / "kithkeep.1").read_text()
    assert page == committed, "regenerate: python -m kithkeep.cli.manpage > man/kithkeep.1"
    for cmd in walk(cli):
        if not isinstance(cmd, click.Group):
            assert f"{cmd.name} [OPTIONS]" in page, cmd.name
    assert ".SH EXIT STATUS" in page and "KITHKEEP_CONFIG" in page


def test_every_command_takes_the_common_options_after_its_name() -> None:
    for cmd in walk(cli):
        if isinstance(cmd, click.Group):
            continue
        opts = {o for p in cmd.params for o in getattr(p, "opts", ())}
        assert {"-v", "-q"} <= opts, cmd.name
        assert ("--config" in opts) == (cmd.name not in ("demo", "completion")), cmd.name
