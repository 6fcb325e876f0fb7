"""The fault suite: the broker is killed (SIGKILL) at each step of delivery and hand-back, its agents fail
in every way a network call can, its token endpoint fails, and its storage restarts; then it must have
lost no handoff, doubled no thread, cross-link, hand-back or shared-memory write, written every failure
to the audit, and recovered within a bound of a few sweep intervals.

The module runs its own broker with a fast sweeper against its own Azurite, token endpoint, simulated
agents and Jira, so killing it or restarting its storage disturbs no other test (and no other broker
takes its queue messages). A killed host leaves its queue messages invisible for the host's 10-minute
lease, as Azure does: whatever recovers here within seconds is the sweeper's doing. Figures (recovery
times per fault and step) are printed at the end of the run (tests/support/fault_figures.py) and quoted
in docs/reliability.md.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devserver.azurite import Azurite, free_port, start_azurite
from devserver.fakes._service import Fault
from devserver.fakes.jira import FakeJira
from devserver.fakes.sre_agent import FakeSreAgent
from devserver.fakes.stack import FakeStack, start_fake_stack
from handoff.domain.messages import is_handoff_thread, is_marked, marker
from handoff.domain.shared_memory.content import write_marker
from tests.e2e.helpers import handback_body, handoff_body
from tests.support import fault_figures
from tests.support.broker import BrokerProcess
from tests.support.vendors import JIRA_ISSUE, JIRA_USER

SWEEP_AFTER = 10  # HANDOFF_SWEEP_AFTER_SECONDS (its lowest value) and the lease, in this module
BOUND = 3 * SWEEP_AFTER  # recovery must come within this of the restarted host answering
KINDS = ("500", "503-after-work", "429-retry-after", "timeout-after-work", "drop-after-work")
FAST = {
    "HANDOFF_SWEEP_SCHEDULE": "*/2 * * * * *",
    "HANDOFF_SWEEP_AFTER_SECONDS": str(SWEEP_AFTER),
    "HANDOFF_LEASE_SECONDS": str(SWEEP_AFTER),
    "HANDOFF_HTTP_TIMEOUT_SECONDS": "4",
    "HANDOFF_RETRY_BASE_SECONDS": "0.5",
    "HANDOFF_RETRY_MAX_SECONDS": "3",
    "HANDOFF_MAX_DELIVERY_ATTEMPTS": "8",
    "HANDOFF_RATE_LIMIT_PER_MINUTE": "0",
    "HANDOFF_SHARED_MEMORY_RETRY_BASE_SECONDS": "0.5",
    "HANDOFF_SHARED_MEMORY_RETRY_MAX_SECONDS": "2",
    "TEST_JIRA_CREDENTIALS": ":".join(JIRA_USER),
}


@dataclass
class Suite:
    """This module's world: storage, fakes, and the broker that is killed and started again."""

    azurite: Azurite
    stack: FakeStack
    jira: FakeJira
    env: dict[str, str]
    workdir: Path
    port: int
    broker: BrokerProcess | None = None
    restarts: int = 0
    sources: list[str] = field(default_factory=list)

    @property
    def b(self) -> BrokerProcess:
        assert self.broker is not None
        return self.broker

    @property
    def ops(self) -> FakeSreAgent:
        return self.stack.agents["ops"]

    @property
    def checkout(self) -> FakeSreAgent:
        return self.stack.agents["checkout"]

    def start(self) -> float:
        """Start the broker (on the same port each time); returns when it answered."""
        self.restarts += 1
        self.broker = BrokerProcess(self.env, self.workdir / f"host-{self.restarts}.log", port=self.port)
        self.broker.wait_healthy()
        return time.monotonic()

    def kill(self) -> float:
        """SIGKILL the broker; returns when."""
        self.b.kill()
        return time.monotonic()

    def source_thread(self, title: str) -> str:
        thread = str(self.ops.create_thread(f"Ops: {title}")["id"])
        self.sources.append(thread)
        return thread

    def hand_off(self, source_thread: str | None, target: str = "checkout", **headers: str) -> str:
        response = self.b.client.post(
            "/api/handoffs", json=handoff_body(source_thread, target=target), headers=headers
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def hand_back(self, handoff_id: str, agent: str = "checkout") -> None:
        response = self.b.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(agent))
        assert response.status_code == 202, response.text

    def audit(self, handoff_id: str) -> list[dict[str, Any]]:
        return list(self.b.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"])

    def types(self, handoff_id: str) -> list[str]:
        return [event["type"] for event in self.audit(handoff_id)]

    def view(self, handoff_id: str) -> dict[str, Any]:
        return dict(self.b.client.get(f"/api/handoffs/{handoff_id}").json())


# ---------------------------------------------------------------- what the agents and Jira hold


def threads_for(agent: FakeSreAgent, handoff_id: str) -> list[dict[str, Any]]:
    """The threads the broker opened on ``agent`` for the handoff (by its start message)."""
    return [
        t for t in agent.threads() if is_handoff_thread(handoff_id, t["title"], t["startMessage"]["text"])
    ]


def posts(agent: FakeSreAgent, thread_id: str, handoff_id: str, step: str) -> int:
    """How many of the broker's messages for ``step`` of the handoff the thread holds."""
    return sum(1 for m in agent.messages(thread_id) if is_marked(m["text"], marker(handoff_id, step)))


def jira_writes(jira: FakeJira, handoff_id: str) -> int:
    needle = write_marker(handoff_id, "handedBack", 1, "jira")
    return sum(1 for comment in jira.comments(JIRA_ISSUE) if needle in json.dumps(comment["body"]))


def wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``condition()``; returns when it held (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return time.monotonic()
        except Exception:  # the broker may be restarting; try again
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def held(fault: Fault, count: int = 1, timeout: float = 30) -> None:
    """Wait until ``count`` requests are held by ``fault`` (their work done, their answers not sent)."""
    wait(lambda: fault.holding >= count, timeout, f"{count} request(s) held by {fault.method} {fault.path}")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    workdir = tmp_path_factory.mktemp("faults")
    azurite = start_azurite()
    names = ("ops", "checkout", *(f"k{kind.split('-')[0]}{i}" for i, kind in enumerate(KINDS)), "krefused")
    stack = start_fake_stack(names)
    jira = FakeJira(credentials=(JIRA_USER,)).start()
    jira.add_issue(JIRA_ISSUE)
    config = stack.registry_config()
    config["sharedMemory"] = {
        "backends": [
            {"name": "jira", "type": "jira", "baseUrl": jira.url, "project": "OPS", "issue": JIRA_ISSUE,
             "secretSetting": "TEST_JIRA_CREDENTIALS", "allowInsecureLocal": True}
        ]
    }  # fmt: skip
    for agent in config["agents"]:
        if agent["name"] == "checkout":
            agent["sharedMemory"] = ["jira"]
    (workdir / "handoff.config.json").write_text(json.dumps(config))
    port = free_port()
    env = {
        **stack.env(),
        **FAST,
        "HANDOFF_CONFIG": str(workdir / "handoff.config.json"),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "HANDOFF_ARM_ENDPOINT": stack.arm_url,
        "HANDOFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    world = Suite(azurite=azurite, stack=stack, jira=jira, env=env, workdir=workdir, port=port)
    try:
        world.start()
        yield world
    finally:
        if world.broker is not None:
            world.broker.stop()
        jira.stop()
        stack.stop()
        azurite.stop()


@pytest.fixture
def s(suite: Suite) -> Suite:
    """The suite with no faults left over from the test before, and a running broker."""
    for agent in suite.stack.agents.values():
        agent.clear_faults()
    suite.stack.identity.clear_faults()
    suite.jira.clear_faults()
    if suite.broker is None or suite.broker.process.poll() is not None:
        suite.start()
    return suite


# ---------------------------------------------------------------- SIGKILL at each step


def _recover_after_kill(s: Suite, fault: Fault, step: str, done: Callable[[], bool]) -> tuple[float, float]:
    """Kill the host while ``fault`` holds an answer, start it again, wait for ``done``; returns the
    seconds from the kill and from the restarted host answering to ``done``."""
    held(fault)
    killed = s.kill()
    fault.release()  # the caller is gone; let the simulated agent finish its answer
    restarted = s.start()
    recovered = wait(done, BOUND + 15, f"{step} recovered after the kill")
    return recovered - killed, recovered - restarted


def test_kill_after_the_thread_is_created_before_it_is_recorded(s: Suite) -> None:
    source = s.source_thread("kill after create")
    # B creates the thread and holds its answer; the host dies waiting for it.
    fault = s.checkout.inject("POST", "/api/v1/threads", hold=60)
    handoff_id = s.hand_off(source)
    since_kill, since_restart = _recover_after_kill(
        s, fault, "thread creation", lambda: "crossLinked" in s.types(handoff_id)
    )
    threads = threads_for(s.checkout, handoff_id)
    view = s.view(handoff_id)
    types = s.types(handoff_id)
    fault_figures.record(
        "SIGKILL", "thread created, not yet recorded", lost=int(view["status"] != "delivered"),
        duplicates=len(threads) - 1 + posts(s.ops, source, handoff_id, "crosslink") - 1,
        recovery=since_kill, after_restart=since_restart,
    )  # fmt: skip
    assert len(threads) == 1 and view["target"]["threadId"] == threads[0]["id"]
    assert posts(s.ops, source, handoff_id, "crosslink") == 1
    assert "redeliveryScheduled" in types and "deliveryRecovered" in types
    assert since_restart < BOUND


def test_kill_after_recording_before_the_message_is_done(s: Suite) -> None:
    source = s.source_thread("kill during cross-link")
    # The thread is recorded (delivered); A's agent takes the cross-link and holds its answer.
    fault = s.ops.inject("POST", f"/api/v1/threads/{source}/messages", hold=60)
    handoff_id = s.hand_off(source)
    since_kill, since_restart = _recover_after_kill(
        s, fault, "cross-link", lambda: "crossLinked" in s.types(handoff_id)
    )
    crosslinks = posts(s.ops, source, handoff_id, "crosslink")
    threads = threads_for(s.checkout, handoff_id)
    fault_figures.record(
        "SIGKILL", "recorded, cross-link answer pending", lost=int(crosslinks == 0),
        duplicates=max(0, crosslinks - 1) + len(threads) - 1, recovery=since_kill,
        after_restart=since_restart,
    )  # fmt: skip
    assert crosslinks == 1 and len(threads) == 1
    linked = next(e for e in s.audit(handoff_id) if e["type"] == "crossLinked")
    assert linked["details"]["recovered"] is True and linked["details"]["messageId"]
    assert since_restart < BOUND


def test_kill_while_a_hand_back_is_posted(s: Suite) -> None:
    source = s.source_thread("kill during hand-back")
    handoff_id = s.hand_off(source)
    wait(lambda: "crossLinked" in s.types(handoff_id), 20, "cross-linked")
    fault = s.ops.inject("POST", f"/api/v1/threads/{source}/messages", hold=60)
    s.hand_back(handoff_id)
    since_kill, since_restart = _recover_after_kill(
        s, fault, "hand-back", lambda: s.view(handoff_id)["handbacks"][0]["delivery"] == "posted"
    )
    handbacks = posts(s.ops, source, handoff_id, "handback:1")
    fault_figures.record(
        "SIGKILL", "hand-back posted, answer pending", lost=int(handbacks == 0),
        duplicates=max(0, handbacks - 1), recovery=since_kill, after_restart=since_restart,
    )  # fmt: skip
    assert handbacks == 1
    assert s.view(handoff_id)["status"] == "handedBack"
    handed = next(e for e in s.audit(handoff_id) if e["type"] == "handedBack")
    assert handed["details"]["recovered"] is True
    assert since_restart < BOUND
    # Its shared-memory note goes to the Jira issue the next test holds a comment on: let it land first,
    # so the comment held there is the next test's own.
    wait(lambda: "sharedMemoryWritten" in s.types(handoff_id), BOUND, "its shared-memory note written")


def test_kill_in_the_middle_of_a_shared_memory_write(s: Suite) -> None:
    source = s.source_thread("kill during shared-memory write")
    handoff_id = s.hand_off(source)
    wait(lambda: "crossLinked" in s.types(handoff_id), 20, "cross-linked")
    fault = s.jira.inject("POST", f"/rest/api/3/issue/{JIRA_ISSUE}/comment", hold=60)
    s.hand_back(handoff_id)

    def written() -> bool:
        return any(
            e["type"] == "sharedMemoryWritten" and e["details"]["backend"] == "jira"
            for e in s.audit(handoff_id)
        )

    since_kill, since_restart = _recover_after_kill(s, fault, "shared-memory write", written)
    writes = jira_writes(s.jira, handoff_id)
    fault_figures.record(
        "SIGKILL", "shared-memory write, answer pending", lost=int(writes == 0),
        duplicates=max(0, writes - 1), recovery=since_kill, after_restart=since_restart,
    )  # fmt: skip
    assert writes == 1
    events = s.audit(handoff_id)
    assert "sharedMemoryRequeued" in [e["type"] for e in events]
    assert next(e for e in events if e["type"] == "sharedMemoryWritten")["details"]["foundExisting"] is True
    assert posts(s.ops, source, handoff_id, "handback:1") == 1
    assert since_restart < BOUND


def test_burst_from_one_source_thread_killed_midway_cross_links_each_once(s: Suite) -> None:
    count = 60
    source = s.source_thread("burst")
    # The first cross-links are posted and their answers held when the host dies: by the time the
    # sweeper brings them back, dozens of newer messages sit above them in A's thread.
    fault = s.ops.inject("POST", f"/api/v1/threads/{source}/messages", hold=60, times=3)
    ids = [s.hand_off(source) for _ in range(count)]
    held(fault, 3)
    wait(lambda: len(s.ops.messages(source)) >= 10, 30, "part of the burst cross-linked")
    killed = s.kill()
    fault.release()
    restarted = s.start()
    pending = set(ids)

    def all_linked() -> bool:
        for handoff_id in list(pending):
            if "crossLinked" in s.types(handoff_id):
                pending.discard(handoff_id)
        return not pending

    try:
        recovered = wait(all_linked, BOUND + 60, "every handoff of the burst cross-linked")
    except AssertionError as exc:
        stuck = {h: (s.view(h)["status"], s.types(h)[-3:]) for h in sorted(pending)[:5]}
        raise AssertionError(f"{exc}; {len(pending)} not cross-linked, e.g. {stuck}") from None
    counts = {handoff_id: posts(s.ops, source, handoff_id, "crosslink") for handoff_id in ids}
    threads = {handoff_id: len(threads_for(s.checkout, handoff_id)) for handoff_id in ids}
    fault_figures.record(
        "SIGKILL mid-burst", f"{count} handoffs from one source thread", handoffs=count,
        lost=sum(1 for n in counts.values() if n == 0),
        duplicates=sum(max(0, n - 1) for n in counts.values()) + sum(max(0, n - 1) for n in threads.values()),
        recovery=recovered - killed, after_restart=recovered - restarted,
    )  # fmt: skip
    assert len(s.ops.messages(source)) > 50  # the marker search had to page
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert set(threads.values()) == {1}


# ---------------------------------------------------------------- agents failing in every way


def _inject(agent: FakeSreAgent, kind: str, path: str) -> None:
    """One failure of ``kind`` on the next POST to ``path``."""
    if kind == "500":
        agent.inject("POST", path, 500)
    elif kind == "503-after-work":
        agent.inject("POST", path, 503, perform=True)
    elif kind == "429-retry-after":
        agent.inject("POST", path, 429, retry_after=1)
    elif kind == "timeout-after-work":
        agent.inject("POST", path, hold=6)  # past HANDOFF_HTTP_TIMEOUT_SECONDS
    elif kind == "drop-after-work":
        agent.inject("POST", path, perform=True, drop=True)


def _kind_run(s: Suite, kind: str, target: str) -> dict[str, Any]:
    """A handoff to ``target`` whose thread creation, cross-link and hand-back each meet ``kind``."""
    source = s.source_thread(f"agent fault {kind}")
    agent = s.stack.agents[target]
    _inject(agent, kind, "/api/v1/threads")
    _inject(s.ops, kind, f"/api/v1/threads/{source}/messages")
    handoff_id = s.hand_off(source, target=target)
    wait(lambda: "crossLinked" in s.types(handoff_id), 60, f"{kind}: cross-linked")
    _inject(s.ops, kind, f"/api/v1/threads/{source}/messages")
    s.hand_back(handoff_id, agent=target)
    wait(lambda: s.view(handoff_id)["status"] == "handedBack", 60, f"{kind}: handed back")
    events = s.audit(handoff_id)
    return {
        "id": handoff_id,
        # Each step from its start to done, by the audit's own times.
        "seconds": {
            "threads": _between(events, "accepted", "delivered"),
            "crosslinks": _between(events, "delivered", "crossLinked"),
            "handbacks": _between(events, "handBackReceived", "handedBack"),
        },
        "threads": len(threads_for(agent, handoff_id)),
        "crosslinks": posts(s.ops, source, handoff_id, "crosslink"),
        "handbacks": posts(s.ops, source, handoff_id, "handback:1"),
        "retries": [e["details"]["reason"] for e in events if e["type"] == "retryScheduled"],
    }


def _between(events: list[dict[str, Any]], first: str, last: str) -> float:
    times = {e["type"]: datetime.fromisoformat(e["at"]) for e in reversed(events)}
    return (times[last] - times[first]).total_seconds()


def test_agent_failures_of_every_kind_at_every_step(s: Suite) -> None:
    targets = {kind: f"k{kind.split('-')[0]}{i}" for i, kind in enumerate(KINDS)}
    with concurrent.futures.ThreadPoolExecutor(len(KINDS)) as pool:
        runs = dict(zip(KINDS, pool.map(lambda kind: _kind_run(s, kind, targets[kind]), KINDS), strict=True))
    for kind, run in runs.items():
        for step, key in (
            ("create thread", "threads"),
            ("cross-link", "crosslinks"),
            ("hand-back", "handbacks"),
        ):
            fault_figures.record(
                f"agent {kind}", step, lost=int(run[key] == 0), duplicates=max(0, run[key] - 1),
                recovery=run["seconds"][key],
            )  # fmt: skip
    for kind, run in runs.items():
        assert (run["threads"], run["crosslinks"], run["handbacks"]) == (1, 1, 1), (kind, run)
        # Each of the three failures is in the audit with its reason.
        assert len(run["retries"]) >= 3, (kind, run["retries"])


def test_connection_refused_until_the_agent_comes_up(s: Suite) -> None:
    refused = s.stack.agents["krefused"]
    port = int(refused.endpoint.rsplit(":", 1)[1])
    refused.stop()
    source = s.source_thread("connection refused")
    started = time.monotonic()
    handoff_id = s.hand_off(source, target="krefused")
    wait(lambda: "retryScheduled" in s.types(handoff_id), 20, "a retry scheduled")
    time.sleep(2)
    refused.start(port=port)
    done = wait(lambda: "crossLinked" in s.types(handoff_id), 60, "delivered once the agent is up")
    threads = threads_for(refused, handoff_id)
    reasons = [e["details"]["reason"] for e in s.audit(handoff_id) if e["type"] == "retryScheduled"]
    fault_figures.record(
        "agent connection refused", "create thread", duplicates=max(0, len(threads) - 1),
        lost=int(not threads), recovery=done - started,
    )  # fmt: skip
    assert len(threads) == 1 and posts(s.ops, source, handoff_id, "crosslink") == 1
    assert any("ConnectError" in reason for reason in reasons), reasons


def test_token_endpoint_failures_are_retried_and_audited(s: Suite) -> None:
    # A fresh host has no token yet: its first ones fail (azure-identity retries each request a few
    # times itself, then the broker schedules a retry of the step).
    s.kill()
    fault = s.stack.identity.inject("GET", "**", 500, times=6)
    restarted = s.start()
    source = s.source_thread("token endpoint down")
    handoff_id = s.hand_off(source)
    done = wait(
        lambda: "crossLinked" in s.types(handoff_id), 60, "delivered after the token endpoint recovered"
    )
    reasons = [e["details"]["reason"] for e in s.audit(handoff_id) if e["type"] == "retryScheduled"]
    threads = threads_for(s.checkout, handoff_id)
    fault_figures.record(
        "token endpoint 500", "create thread", lost=int(not threads), duplicates=max(0, len(threads) - 1),
        recovery=done - restarted,
    )  # fmt: skip
    assert fault.hits == 6
    assert any("token request" in reason for reason in reasons), reasons
    assert len(threads) == 1 and posts(s.ops, source, handoff_id, "crosslink") == 1


def test_an_azurite_restart_loses_and_doubles_nothing(s: Suite) -> None:
    source = s.source_thread("storage restart")
    # A delivery in flight: B creates the thread while storage goes away, so it cannot be recorded.
    fault = s.checkout.inject("POST", "/api/v1/threads", hold=8)
    in_flight = s.hand_off(source)
    held(fault)
    s.azurite.suspend()
    down = time.monotonic()
    try:
        refused = s.b.client.post(
            "/api/handoffs", json=handoff_body(source), headers={"Idempotency-Key": "storage-restart-1"}
        )
        assert refused.status_code == 503
        time.sleep(6)
    finally:
        s.azurite.resume()
    s.b.wait_healthy(timeout=30)
    # The caller retries its refused request with the same key.
    retried = s.b.client.post(
        "/api/handoffs", json=handoff_body(source), headers={"Idempotency-Key": "storage-restart-1"}
    )
    assert retried.status_code in (200, 202), retried.text
    later = retried.json()["id"]
    done = wait(
        lambda: all("crossLinked" in s.types(h) for h in (in_flight, later)), BOUND + 30, "both cross-linked"
    )
    counts = [len(threads_for(s.checkout, h)) for h in (in_flight, later)]
    links = [posts(s.ops, source, h, "crosslink") for h in (in_flight, later)]
    fault_figures.record(
        "Azurite restart", "thread created while storage is down", handoffs=2,
        lost=sum(1 for n in links if n == 0), duplicates=sum(max(0, n - 1) for n in counts + links),
        recovery=done - down,
    )  # fmt: skip
    assert counts == [1, 1] and links == [1, 1]


# ---------------------------------------------------------------- replaying failed handoffs


def test_failed_handoffs_are_replayed_once(s: Suite) -> None:
    source = s.source_thread("replay")
    # B opens the thread but answers 400: a permanent failure, so the handoff fails at once.
    s.checkout.inject("POST", "/api/v1/threads", 400, perform=True)
    handoff_id = s.hand_off(source)
    wait(lambda: s.view(handoff_id)["status"] == "failed", 20, "failed")
    assert "deliveryFailed" in s.types(handoff_id)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: s.b.client.post(f"/api/handoffs/{handoff_id}/retry"), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202], [a.text for a in answers]
    queued = next(a.json() for a in answers if a.status_code == 202)
    assert queued["retried"] == [{"step": "delivery"}]
    done = wait(lambda: "crossLinked" in s.types(handoff_id), 30, "replayed delivery cross-linked")
    again = s.b.client.post(f"/api/handoffs/{handoff_id}/retry")
    assert again.status_code == 200 and again.json()["retried"] == []
    threads = threads_for(s.checkout, handoff_id)
    fault_figures.record(
        "replay of a failed delivery", "operator retry (4 at once, then again)", lost=int(not threads),
        duplicates=max(0, len(threads) - 1), recovery=done - started,
    )  # fmt: skip
    assert len(threads) == 1 and posts(s.ops, source, handoff_id, "crosslink") == 1
    types = s.types(handoff_id)
    assert types.count("retryRequested") == 1 and "deliveryRecovered" in types
