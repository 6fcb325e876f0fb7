"""Commands that act on handoffs: send, status, replay, list and failed."""

from __future__ import annotations

from typing import Any

import click

from handoff.entrypoints.cli.client import IDEMPOTENCY_KEY_HEADER, MAX_PAGES, BrokerError, segment
from handoff.entrypoints.cli.group import HANDOFF_STATUSES, cli, since_value, watch_options
from handoff.entrypoints.cli.inputs import INTENTS, SEVERITIES, body_from_flags, read_body
from handoff.entrypoints.cli.output import FAILED_STATUSES, clean, handoff_panel, handoffs_table, text
from handoff.entrypoints.cli.session import CommandFailed, Session, broker_command
from handoff.entrypoints.cli.watch import watch as follow


def _finish(session: Session, view: dict[str, Any], *, shown: bool = False) -> None:
    """Print the handoff (unless a live view already shows it); a failed one exits 1."""
    if session.out.as_json:
        session.out.json(view)
    elif not shown:
        session.out.show(handoff_panel(view))
    if view.get("status") in FAILED_STATUSES:
        raise CommandFailed(f"handoff {clean(view.get('id'))} is {clean(view.get('status'))}")


def _watch(session: Session, handoff_id: str, until: str, interval: float, max_wait: float) -> None:
    view = follow(session, handoff_id, until, interval, max_wait)
    _finish(session, view, shown=session.out.console.is_terminal)


@cli.command(context_settings={"max_content_width": 110})
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--source-agent", help="The agent handing off (registered name or resource ID).")
@click.option("--source-thread", help="The source agent's thread the investigation is in.")
@click.option("--target-agent", help="The agent to hand to.")
@click.option("--title", help="One line (default: the summary's first line).")
@click.option("--summary", help="What is known so far.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Default Sev3 without a FILE.")
@click.option("--intent", type=click.Choice(INTENTS), help="Default investigate without a FILE.")
@click.option("--resource", multiple=True, help="An Azure resource ID involved (repeatable).")
@click.option("--hypothesis", multiple=True, help="A hypothesis (repeatable).")
@click.option("--parent", help="The handoff this one continues (parentHandoffId).")
@click.option("--correlation-id", help="Your own correlation id.")
@click.option("--idempotency-key", help="Send again safely: the same key and body answer the same handoff.")
@watch_options
@broker_command
def send(
    session: Session,
    file: str | None,
    idempotency_key: str | None,
    watch: bool,
    until: str,
    interval: float,
    max_wait: float,
    **flags: Any,
) -> None:
    """Hand an investigation to another agent.

    POST /api/handoffs.

    FILE is a JSON or YAML document with the body of POST /api/handoffs (- reads standard input); the
    flags set or override its fields. Without FILE, --source-agent, --target-agent and --summary are
    needed.

    \b
    Examples:
      handoff send handoff.json
      handoff send handoff.yaml --target-agent payments --watch
      handoff send --source-agent ops --source-thread t-123 --target-agent checkout \\
          --summary "5xx at 7% since 02:10 UTC" --severity Sev2
    """
    body = body_from_flags(flags, read_body(file) if file else None)
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key} if idempotency_key else None
    code, view = session.client.post("/api/handoffs", body, headers)
    if watch:
        if not session.out.as_json:
            session.out.line(f"Accepted handoff {clean(view.get('id'))}; following it", "bold")
        _watch(session, str(view["id"]), until, interval, max_wait)
        return
    if session.out.as_json:
        session.out.json(view)
        return
    what = "Accepted" if code == 202 else "Already accepted (same Idempotency-Key)"
    session.out.line(f"{what}: handoff {clean(view.get('id'))}", "bold green")
    session.out.show(handoff_panel(view))


@cli.command()
@click.argument("handoff_id", metavar="ID")
@watch_options
@broker_command
def status(
    session: Session, handoff_id: str, watch: bool, until: str, interval: float, max_wait: float
) -> None:
    """Show a handoff (exit 1 when it failed).

    Status, both threads, attempts, the last error, its chain and hand-backs.

    \b
    Examples:
      handoff status 3f2c9a7e-4b1d-4c55-9d1e-0c6a5e2b7f10
      handoff status 3f2c9a7e-4b1d-4c55-9d1e-0c6a5e2b7f10 --watch --until handedBack
    """
    if watch:
        _watch(session, handoff_id, until, interval, max_wait)
        return
    _finish(session, session.client.handoff(handoff_id))


@cli.command()
@click.argument("handoff_id", metavar="ID")
@broker_command
def replay(session: Session, handoff_id: str) -> None:
    """Queue a handoff's failed steps again.

    POST /api/handoffs/{id}/retry (operators).

    Each failed step (delivery, cross-link, hand-backs) gets a fresh budget of attempts; a second
    replay finds nothing failed and queues nothing.

    \b
    Example:
      handoff replay 3f2c9a7e-4b1d-4c55-9d1e-0c6a5e2b7f10 && handoff status 3f2c9a7e-... --watch
    """
    code, answer = session.client.post(f"/api/handoffs/{segment(handoff_id)}/retry")
    if session.out.as_json:
        session.out.json(answer)
        return
    steps = [
        " ".join(clean(step[key]) for key in ("step", "seq") if key in step)
        for step in answer.get("retried") or []
    ]
    if code == 202:
        session.out.line(
            f"Queued again: {', '.join(steps)} (handoff is {clean(answer.get('status'))})", "green"
        )
    else:
        session.out.line("Nothing had failed; nothing was queued.")


def _list(session: Session, params: dict[str, Any], follow_pages: bool, title: str) -> None:
    """``GET /api/handoffs``: one page (or all of them), newest first."""
    try:
        if follow_pages:
            items = [
                item
                for page in session.client.pages("/api/handoffs", params, "items")
                for item in page["items"]
            ]
            page: dict[str, Any] = {"items": items, "continuationToken": None}
        else:
            page = session.client.get("/api/handoffs", params)
    except BrokerError as exc:
        if exc.status == 405 or (exc.status == 404 and exc.problem is None):
            raise CommandFailed(
                f"this broker does not list handoffs (GET /api/handoffs answered {exc.status} {exc.reason}); "
                "update it, or use `handoff history` and `handoff status ID`"
            ) from None
        raise
    if session.out.as_json:
        session.out.json(page)
        return
    session.out.show(handoffs_table(page.get("items") or [], title))
    token = page.get("continuationToken")
    if token:
        session.out.show(text(f"More: add --continuation-token {clean(token)} (or --all)", "dim"))


def list_options(func: click.decorators.FC) -> click.decorators.FC:
    """The filters and paging of ``list`` and ``failed``."""
    for option in reversed(
        [
            click.option("--source", help="Source agent."),
            click.option("--target", help="Target agent."),
            click.option("--since", help="Created at or after: ISO 8601, or 30m / 2h / 7d ago."),
            click.option("--alert-rule", help="The alert rule that opened the handoff."),
            click.option(
                "--top", type=click.IntRange(1, 100), default=20, show_default=True, help="Page size."
            ),
            click.option("--continuation-token", help="The page after the one that printed this token."),
            click.option(
                "--all", "all_pages", is_flag=True, help=f"Follow every page (at most {MAX_PAGES})."
            ),
        ]
    ):
        func = option(func)
    return func


def _params(status: str | None, **filters: Any) -> dict[str, Any]:
    return {
        "status": status,
        "source": filters["source"],
        "target": filters["target"],
        "since": since_value(filters["since"]),
        "alertRule": filters["alert_rule"],
        "top": filters["top"],
        "continuationToken": filters["continuation_token"],
    }


@cli.command("list")
@click.option("--status", type=click.Choice(HANDOFF_STATUSES), help="Only handoffs with this status.")
@list_options
@broker_command
def list_handoffs(session: Session, status: str | None, all_pages: bool, **filters: Any) -> None:
    """List handoffs, newest first.

    GET /api/handoffs, a page at a time.

    \b
    Examples:
      handoff list --since 2h
      handoff list --status delivered --target checkout --top 50
      handoff list --alert-rule "High CPU" --all --json
    """
    _list(session, _params(status, **filters), all_pages, "Handoffs")


@cli.command()
@list_options
@broker_command
def failed(session: Session, all_pages: bool, **filters: Any) -> None:
    """List failed handoffs, newest first.

    The same as list --status failed; replay one with `handoff replay ID`.

    \b
    Examples:
      handoff failed --since 24h
      handoff failed --target payments --json
    """
    _list(session, _params("failed", **filters), all_pages, "Failed handoffs")
