"""A stand-in for the SRE Agent portal (``https://sre.azure.com``) that opens the simulated agents' pages.

The broker writes thread links as ``{portal}/agents{resourceId}/views/thread/{threadId}``; with
``HANDOFF_PORTAL_URL`` pointing here (``make run`` does that), such a link redirects to the page of that
thread on the simulated agent that owns the resource (see :mod:`devserver.fakes.sre_agent.pages`).
``GET /`` lists the agents with links to their threads.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from starlette.responses import HTMLResponse, RedirectResponse, Response

from devserver.fakes._service import Call, FakeService
from devserver.fakes.sre_agent import FakeSreAgent
from devserver.fakes.sre_agent.pages import PAGE_HEADERS, thread_path

THREAD_VIEW = (
    "/agents/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.App/agents/{name}"
    "/views/thread/{thread_id}"
)


class FakePortal(FakeService):
    """Redirects portal thread links to the simulated agent that owns the resource."""

    service_name = "sre-portal"

    def __init__(self) -> None:
        super().__init__()
        self._agents: dict[str, FakeSreAgent] = {}
        self.route("GET", "/", self.index, auth=False)
        self.route("GET", THREAD_VIEW, self.thread_view, auth=False)

    def register(self, agent: FakeSreAgent) -> None:
        """Open links to ``agent``'s resource on its pages."""
        with self.lock:
            self._agents[agent.resource_id.lower()] = agent

    def thread_link(self, agent: FakeSreAgent, thread_id: str) -> str:
        """The link the broker writes for a thread of ``agent`` when its portal URL is this fake."""
        return f"{self.url}/agents{agent.resource_id}/views/thread/{quote(thread_id, safe='')}"

    async def index(self, call: Call) -> Response:
        """The simulated agents, each with a link to its threads."""
        with self.lock:
            agents = sorted(self._agents.values(), key=lambda agent: agent.name)
        items = "".join(
            f'<li><a href="{html.escape(agent.endpoint, quote=True)}/">{html.escape(agent.name)}</a></li>'
            for agent in agents
        )
        body = f"<h1>Simulated SRE Agents</h1><ul>{items}</ul>"
        return HTMLResponse(
            f'<!doctype html><meta charset="utf-8"><title>Agents</title>{body}', headers=PAGE_HEADERS
        )

    async def thread_view(self, call: Call) -> Response:
        """Redirect a portal thread link to the thread's page on its agent."""
        params = call.params
        resource_id = (
            f"/subscriptions/{params['subscription']}/resourceGroups/{params['resource_group']}"
            f"/providers/Microsoft.App/agents/{params['name']}"
        )
        with self.lock:
            agent = self._agents.get(resource_id.lower())
        if agent is None:
            body = f"<p>No simulated agent has the resource {html.escape(resource_id)}.</p>"
            return HTMLResponse(body, 404, headers=PAGE_HEADERS)
        return RedirectResponse(agent.endpoint + thread_path(params["thread_id"]), 302)
