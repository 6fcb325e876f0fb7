"""The ``handoff`` command group and the options several commands share."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
HANDOFF_STATUSES = ("accepted", "delivered", "handedBack", "failed", "inputRequired", "rejected", "canceled")
_RELATIVE = re.compile(r"^([0-9]{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """Hand investigations between Azure SRE Agents through the Handoff Broker, and follow them.

    Every command talks to the broker's REST API (--url, default http://127.0.0.1:7071, the local
    broker of `make run`). Exit codes: 0 ok, 1 not found / refused / the handoff failed, 2 usage,
    3 the broker cannot be reached.

    \b
    Examples:
      handoff send handoff.yaml --watch
      handoff status 3f2c9a7e-... --watch
      handoff failed --since 2h
      handoff timeline 3f2c9a7e-... --svg chain.svg
    """


def since_value(value: str | None) -> str | None:
    """``--since``: an ISO 8601 time as it is, or ``30m``/``2h``/``7d`` ago as one (UTC)."""
    if not value:
        return None
    match = _RELATIVE.match(value.strip())
    if match is None:
        return value
    delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return (datetime.now(UTC) - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def watch_options(func: click.decorators.FC) -> click.decorators.FC:
    """``--watch`` and how long and how far to follow."""
    for option in reversed(
        [
            click.option(
                "--watch", is_flag=True, help="Follow the handoff live until it is delivered or ends."
            ),
            click.option(
                "--until",
                type=click.Choice(["delivered", "handedBack"]),
                default="delivered",
                show_default=True,
                help="With --watch: stop at this status (or when the handoff fails or needs input).",
            ),
            click.option(
                "--interval", default=1.0, show_default=True, help="With --watch: seconds between polls."
            ),
            click.option(
                "--max-wait",
                default=600.0,
                show_default=True,
                help="With --watch: give up after these seconds.",
            ),
        ]
    ):
        func = option(func)
    return func
