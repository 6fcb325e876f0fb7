"""The options every command takes (where the broker is, how to authenticate, JSON or not) and the one
place that turns failures into exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from handoff.entrypoints.cli.client import (
    AGENT_KEY_HEADER,
    DEFAULT_URL,
    FUNCTION_KEY_HEADER,
    BrokerClient,
    BrokerError,
    ExitCode,
    Unreachable,
)
from handoff.entrypoints.cli.output import Output, json_text

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Session:
    """One command's connection to the broker and where it prints."""

    client: BrokerClient
    out: Output


class CommandFailed(Exception):
    """The command ran and its answer is a failure (a failed handoff): exit 1 after printing."""


def entra_token(scope: str) -> str:
    """A Microsoft Entra token for ``scope`` from ``DefaultAzureCredential`` (Azure CLI login, managed
    identity, environment ...)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:  # pragma: no cover - azure-identity is in requirements.txt
        raise click.UsageError("--entra needs azure-identity: pip install azure-identity") from exc
    from azure.core.exceptions import ClientAuthenticationError

    try:
        return DefaultAzureCredential().get_token(scope).token
    except ClientAuthenticationError as exc:
        raise click.ClickException(f"could not get an Entra token for {scope}: {exc.message}") from exc


def auth_headers(key: str | None, agent_key: str | None, entra: bool, scope: str | None) -> dict[str, str]:
    """The headers that say who the caller is."""
    headers: dict[str, str] = {}
    if key:
        headers[FUNCTION_KEY_HEADER] = key
    if agent_key:
        headers[AGENT_KEY_HEADER] = agent_key
    if entra:
        if not scope:
            raise click.UsageError("--entra needs --scope or HANDOFF_SCOPE (such as api://<app-id>/.default)")
        headers["Authorization"] = f"Bearer {entra_token(scope)}"
    return headers


def broker_command(func: F) -> F:
    """Give a command the common options and run it with a :class:`Session` as its first argument:
    a broker error prints its problem and exits 1, no answer exits 3."""

    @click.option(
        "--url",
        envvar="HANDOFF_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The broker's base URL (env HANDOFF_URL).",
    )
    @click.option(
        "--key", envvar="HANDOFF_KEY", help="Function key, sent as x-functions-key (env HANDOFF_KEY)."
    )
    @click.option(
        "--agent-key",
        envvar="HANDOFF_AGENT_KEY",
        help=f"An agent's or the operators' key, sent as {AGENT_KEY_HEADER} (env HANDOFF_AGENT_KEY).",
    )
    @click.option("--entra", is_flag=True, help="Send a Microsoft Entra token from DefaultAzureCredential.")
    @click.option("--scope", envvar="HANDOFF_SCOPE", help="Token scope for --entra (env HANDOFF_SCOPE).")
    @click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for each answer.")
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables.")
    @functools.wraps(func)
    def run(
        url: str,
        key: str | None,
        agent_key: str | None,
        entra: bool,
        scope: str | None,
        timeout: float,
        as_json: bool,
        **kwargs: Any,
    ) -> Any:
        out = Output(as_json)
        client = BrokerClient(url, auth_headers(key, agent_key, entra, scope), timeout=timeout)
        try:
            return func(Session(client, out), **kwargs)
        except BrokerError as exc:
            if as_json and exc.problem is not None:
                click.echo(json_text(exc.problem))
            out.error(exc.lines())
            raise click.exceptions.Exit(ExitCode.FAILED) from None
        except Unreachable as exc:
            out.error([str(exc)])
            raise click.exceptions.Exit(ExitCode.UNREACHABLE) from None
        except CommandFailed as exc:
            if str(exc):
                out.error([str(exc)])
            raise click.exceptions.Exit(ExitCode.FAILED) from None
        finally:
            client.close()

    return run  # type: ignore[return-value]  # the wrapper takes the options Click adds, not F's own
