"""Commands that read: audit, timeline, links, history and agents."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from handoff.entrypoints.cli.chart import draw_png
from handoff.entrypoints.cli.client import segment
from handoff.entrypoints.cli.group import cli, since_value
from handoff.entrypoints.cli.output import agents_table, audit_table, clean, history_table, links_tree, text
from handoff.entrypoints.cli.session import Session, broker_command

OUTCOMES = ("rootCauseFound", "mitigated", "needsAction", "unableToDetermine", "declined", "reported")


@cli.command()
@click.argument("handoff_id", metavar="ID")
@broker_command
def audit(session: Session, handoff_id: str) -> None:
    """Show a handoff's audit as a timeline table.

    Every event, oldest first (all pages), with its time in UTC, actor and details.

    \b
    Example:
      handoff audit 3f2c9a7e-4b1d-4c55-9d1e-0c6a5e2b7f10
    """
    events = session.client.audit(handoff_id)
    if session.out.as_json:
        session.out.json({"handoffId": handoff_id, "events": events})
        return
    session.out.show(audit_table(handoff_id, events))


def _write(path: str, content: str | bytes) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc.strerror}") from exc


@cli.command()
@click.argument("handoff_id", metavar="ID")
@click.option(
    "--svg", "svg_path", metavar="FILE", help="Write the diagram as SVG, drawn by the broker (- for stdout)."
)
@click.option(
    "--png", "png_path", metavar="FILE", help="Draw the chain's audit events with matplotlib into FILE."
)
@broker_command
def timeline(session: Session, handoff_id: str, svg_path: str | None, png_path: str | None) -> None:
    """Draw a handoff's chain as a sequence diagram.

    The root and every child of the chain (GET /api/handoffs/{id}/timeline), as Mermaid source.

    Paste it into a ```mermaid block on GitHub, or write a picture with --svg / --png.

    \b
    Examples:
      handoff timeline 3f2c9a7e-... > chain.mmd
      handoff timeline 3f2c9a7e-... --svg chain.svg
      handoff timeline 3f2c9a7e-... --png chain.png
    """
    path = f"/api/handoffs/{segment(handoff_id)}/timeline"
    client, out = session.client, session.out
    if svg_path:
        _write(svg_path, client.text(path, {"format": "svg"}))
        if svg_path != "-" and not out.as_json:
            out.line(f"Wrote {svg_path}")
    if png_path:
        answer = client.get(path, {"format": "json"})
        handoffs: list[dict[str, Any]] = answer.get("handoffs") or []
        audits = {str(h["id"]): client.audit(str(h["id"])) for h in handoffs}
        draw_png(png_path, str(answer.get("rootHandoffId")), handoffs, audits)
        if not out.as_json:
            out.line(f"Wrote {png_path}")
    if out.as_json:
        out.json(client.get(path, {"format": "json"}))
    elif not svg_path and not png_path:
        click.echo(client.text(path, {"format": "mermaid"}), nl=False)


@cli.command()
@click.argument("agent")
@click.argument("thread_id", metavar="THREAD")
@broker_command
def links(session: Session, agent: str, thread_id: str) -> None:
    """Show the threads linked to AGENT's THREAD.

    Every linked thread, following chains, as a tree.

    AGENT is a registered name (GET /api/threads/{agent}/{thread}/links) or a resource ID (GET /api/links).

    \b
    Examples:
      handoff links ops thread-8f2a
      handoff links /subscriptions/.../agents/ops thread-8f2a --json
    """
    answer = session.client.thread_links(agent, thread_id)
    if session.out.as_json:
        session.out.json(answer)
        return
    session.out.show(links_tree(answer))
    if not answer.get("links"):
        session.out.show(text("(no linked threads)", "dim"))


@cli.command()
@click.option("--resource", help="A resource ID, or a resource-group or subscription prefix.")
@click.option("--alert-rule", help="The alert rule that opened the handoff.")
@click.option("--agent", help="Source or target agent (name or resource ID).")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="Hand-back outcome.")
@click.option("--since", help="Handed back at or after: ISO 8601, or 30m / 2h / 7d ago.")
@click.option("--until", "until_", help="Handed back at or before (ISO 8601).")
@click.option("--text", "words", help="Words that must all appear in title, summary or root cause.")
@click.option("--top", type=click.IntRange(1, 100), default=20, show_default=True, help="Page size.")
@click.option("--continuation-token", help="The page after the one that printed this token.")
@broker_command
def history(session: Session, **query: Any) -> None:
    """Search earlier investigations, newest first.

    GET /api/history: by resource, alert rule, agent, outcome, time or words.

    \b
    Examples:
      handoff history --resource /subscriptions/<sub>/resourceGroups/shop
      handoff history --agent checkout --outcome rootCauseFound --since 7d
    """
    params = {
        "resource": query["resource"],
        "alertRule": query["alert_rule"],
        "agent": query["agent"],
        "outcome": query["outcome"],
        "since": since_value(query["since"]),
        "until": query["until_"],
        "q": query["words"],
        "top": query["top"],
        "continuationToken": query["continuation_token"],
    }
    page = session.client.get("/api/history", params)
    if session.out.as_json:
        session.out.json(page)
        return
    session.out.show(history_table(page.get("items") or []))
    if page.get("continuationToken"):
        session.out.show(text(f"More: add --continuation-token {clean(page['continuationToken'])}", "dim"))


@cli.command()
@broker_command
def agents(session: Session) -> None:
    """List the agents you can hand off to.

    The broker's registry (GET /api/agents), as the MCP tool handoff_list_agents lists it.

    \b
    Example:
      handoff agents
    """
    answer = session.client.get("/api/agents")
    if session.out.as_json:
        session.out.json(answer)
        return
    session.out.show(agents_table(answer.get("agents") or []))
