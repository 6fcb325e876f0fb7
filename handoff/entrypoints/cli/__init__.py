"""``handoff``: the command line for on-call engineers (docs/cli.md).

It is a client of the broker's REST API over HTTP (httpx) and nothing else: it imports no use case and no
adapter, so it runs anywhere the broker can be reached.
"""

from __future__ import annotations

from handoff.entrypoints.cli import commands, views
from handoff.entrypoints.cli.group import cli

__all__ = ["cli", "commands", "main", "views"]


def main() -> None:
    """The console script ``handoff``."""
    cli(prog_name="handoff")
