"""Running the scenarios: options, the HTTP session a scenario uses, results and the table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from handoff_conformance.agents import SimulatedAgents

PROBLEM_TYPE = "application/problem+json"


class Failure(Exception):
    """A scenario found the broker breaking a rule (the message says which)."""


class NotSimulated(Exception):
    """The broker does not name the kit's simulated agents as its source and target agents: the run
    would create handoffs for real agents, so it does not start (the message says why)."""


@dataclass(frozen=True)
class Options:
    """What a run needs: the broker's base URL, headers every call carries (a function key ...), how
    long to wait for asynchronous work (delivery, hand-back), and which scenarios (all when empty)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """One scenario's outcome."""

    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class Session:
    """What a scenario works with: the broker's REST API, the simulated agents and the options."""

    options: Options
    agents: SimulatedAgents
    http: httpx.Client

    @property
    def source(self) -> str:
        return self.agents.source_name

    @property
    def target(self) -> str:
        return self.agents.target_name

    # ---------------------------------------------------------------- bodies

    def source_thread(self) -> str:
        """A new thread of the source agent (as if a person had opened it), to hand off from."""
        thread: dict[str, Any] = self.agents.source.create_thread("Conformance: something is wrong")
        return str(thread["id"])

    def handoff_body(self, nonce: str, *, thread: str | None = None, **extra: Any) -> dict[str, Any]:
        """A valid handoff request from the source to the target whose title holds ``nonce``."""
        body: dict[str, Any] = {
            "schemaId": "handoffContext",
            "schemaVersion": "1.0",
            "source": {"agent": self.source, **({"threadId": thread} if thread else {})},
            "target": {"agent": self.target},
            "intent": "investigate",
            "context": {
                "title": f"Conformance {nonce}",
                "summary": "Error rate rose from 0.1% to 7% after a deployment",
                "severity": "Sev3",
                "evidence": [{"kind": "note", "content": "Rollback not attempted yet"}],
            },
        }
        body.update(extra)
        return body

    def handback_body(self, agent: str, nonce: str) -> dict[str, Any]:
        """A hand-back by ``agent`` whose root cause holds ``nonce``."""
        return {
            "agent": agent,
            "outcome": "rootCauseFound",
            "summary": "Connection pool exhausted",
            "rootCause": root_cause(nonce),
            "recommendedActions": ["Roll the deployment back"],
        }

    # ---------------------------------------------------------------- calls

    def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        if isinstance(body, bytes):
            return self.http.post(path, content=body, headers={"Content-Type": "application/json", **headers})
        return self.http.post(path, json=body, headers=headers)

    def create(self, body: dict[str, Any], key: str | None = None, expect: int = 202) -> dict[str, Any]:
        """``POST /api/handoffs``; the handoff, or a failure when the answer is not ``expect``."""
        response = self.post("/api/handoffs", body, key or new_key())
        check(
            response.status_code == expect, f"POST /api/handoffs answered {describe(response)}, not {expect}"
        )
        view: dict[str, Any] = response.json()
        return view

    def get(self, handoff_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/handoffs/{handoff_id}")
        check(response.status_code == 200, f"GET /api/handoffs/{handoff_id} answered {describe(response)}")
        view: dict[str, Any] = response.json()
        return view

    def wait_status(self, handoff_id: str, wanted: Iterable[str], seen: list[str] | None = None) -> str:
        """Poll until the status is one of ``wanted``; every status seen, in order, goes into ``seen``."""
        wanted = set(wanted)
        seen = [] if seen is None else seen
        deadline = time.monotonic() + self.options.timeout
        while True:
            status = str(self.get(handoff_id)["status"])
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in wanted:
                return status
            if time.monotonic() > deadline:
                raise Failure(f"handoff {handoff_id} never reached {sorted(wanted)}: statuses seen {seen}")
            time.sleep(0.1)


def root_cause(nonce: str) -> str:
    """The root cause of :meth:`Session.handback_body`: text found nowhere but in the hand-back."""
    return f"Pool size lowered by the deployment (finding {nonce})"


def new_key() -> str:
    return f"conformance-{uuid.uuid4()}"


def nonce() -> str:
    return uuid.uuid4().hex[:12]


def check(condition: bool, message: str) -> None:
    """A failure with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Failure(message)


def describe(response: httpx.Response) -> str:
    """``status`` and the start of the body, for failure messages."""
    return f"{response.status_code} {response.text[:300]!r}"


Scenario = Callable[[Session], str | None]


def check_simulated(http: httpx.Client, agents: SimulatedAgents) -> None:
    """Refuse (:class:`NotSimulated`) a broker whose ``GET /api/agents`` does not list the source and the
    target agent with the resource IDs of the kit's simulated agents (``--print-registry``): the
    scenarios hand off and hand back for real, so against agents of a real registry they would open
    threads on those agents and leave handoffs in the broker's audit."""
    response = http.get("/api/agents")
    if response.status_code != 200:
        raise NotSimulated(f"GET /api/agents answered {response.status_code}; the kit needs it to run")
    listed = response.json().get("agents") if "json" in response.headers.get("content-type", "") else None
    resources = {
        str(agent.get("name")): agent.get("resourceId")
        for agent in (listed if isinstance(listed, list) else [])
        if isinstance(agent, dict)
    }
    wrong = [
        name
        for name in (agents.source_name, agents.target_name)
        if resources.get(name) != agents.resource_id(name)
    ]
    if wrong:
        raise NotSimulated(
            f"the broker does not name {' and '.join(repr(name) for name in wrong)} as the kit's simulated "
            "agent (its registry entry must be the one --print-registry prints); refusing to create "
            "handoffs for agents that may be real"
        )


def run(
    options: Options,
    agents: SimulatedAgents,
    scenarios: dict[str, Scenario] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run the scenarios (``options.only`` of them when set) against the broker; one result each.
    Nothing runs unless the broker names the kit's simulated agents (:func:`check_simulated`)."""
    from handoff_conformance.scenarios import SCENARIOS

    chosen = scenarios or SCENARIOS
    unknown = [name for name in options.only if name not in chosen]
    if unknown:
        raise ValueError(f"no such scenario: {', '.join(unknown)}; known: {', '.join(chosen)}")
    names = [name for name in chosen if not options.only or name in options.only]
    results = []
    with httpx.Client(base_url=options.url.rstrip("/"), headers=options.headers, timeout=30) as http:
        check_simulated(http, agents)
        agents.start()
        session = Session(options, agents, http)
        for name in names:
            started = time.monotonic()
            try:
                detail = chosen[name](session) or "ok"
                passed = True
            except Failure as failure:
                detail, passed = str(failure), False
            except httpx.HTTPError as exc:
                detail, passed = f"HTTP error: {type(exc).__name__}: {exc}", False
            result = Result(name, passed, detail, time.monotonic() - started)
            results.append(result)
            if on_result:
                on_result(result)
    return results


def table(results: list[Result]) -> str:
    """The results as a plain-text table."""
    width = max([len("scenario"), *(len(r.name) for r in results)])
    lines = [f"{'scenario':<{width}}  result  seconds  detail", f"{'-' * width}  ------  -------  ------"]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(f"{r.name:<{width}}  {verdict:<6}  {r.seconds:7.2f}  {r.detail.splitlines()[0][:160]}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)
