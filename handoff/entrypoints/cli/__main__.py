"""``python -m handoff.entrypoints.cli``: the ``handoff`` command without installing the project."""

from handoff.entrypoints.cli import main

main()
