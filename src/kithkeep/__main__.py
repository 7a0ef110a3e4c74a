"""``python -m kithkeep``: the same as the ``kithkeep`` command."""

from kithkeep.cli import main

main()
