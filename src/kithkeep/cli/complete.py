"""Shell completion of PERSON arguments from the store.

A person completes to their primary address (no spaces: a shell inserts it
as one word), found by the beginning of an address, of a word of the name or
of the id; shells that show help (zsh, fish) show the name beside it. It
reads the stored names and addresses only, not everyone's statistics (a
TAB at 20,000 people took seconds), and a completion must never print an
error into the user's prompt: any failure completes nothing.
"""

from __future__ import annotations

import logging

import click
from click.shell_completion import CompletionItem

from kithkeep.cli.app import App
from kithkeep.model.lookup import fold, words
from kithkeep.pipeline import person_directory

MAX_ITEMS = 50


def complete_person(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    app = ctx.find_object(App) or App()
    logging.disable(logging.CRITICAL)  # nothing may reach the terminal mid-prompt
    try:
        people = person_directory(app.store())
    except Exception:
        return []
    finally:
        app.close()
        logging.disable(logging.NOTSET)
    q = fold(incomplete.strip())
    out: list[CompletionItem] = []
    for p in people:
        if not p.addresses:
            continue
        hit = (
            not q
            or p.person_id.startswith(q)
            or any(a.startswith(q) for a in p.addresses)
            or any(w.startswith(q) for w in words(p.name))
            or fold(p.name).startswith(q)
        )
        if hit:
            address = next((a for a in p.addresses if a.startswith(q)), p.addresses[0])
            out.append(CompletionItem(address, help=p.name or None))
        if len(out) >= MAX_ITEMS:
            break
    return out
