"""The A2A partner with push notifications, driven by the broker's own A2A client: the card says whether
it pushes, the push config rides in SendMessage, and the SDK's sender POSTs each task update to the URL
with the token in ``X-A2A-Notification-Token`` (or a tampered one, when told to)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devserver.fakes.a2a_peer import CONTRACT_EXTENSION, FakeA2APeer
from handoff.adapters.a2a_client import A2AClientGateway
from handoff.domain.contract import A2A_EXTENSION_URI
from handoff.domain.registry import AgentConfig
from handoff.settings import Settings

HANDOFF_ID = "5a0e9a4e-1111-4111-8111-000000000001"


class Receiver:
    """A plain HTTP server that writes down what is POSTed to it and answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self.status = 202
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.posts) >= count, self.posts

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pusher() -> Iterator[FakeA2APeer]:
    peer = FakeA2APeer("pusher", push=True).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def poller() -> Iterator[FakeA2APeer]:
    peer = FakeA2APeer("poller").start()
    yield peer
    peer.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


def _agent(name: str, url: str) -> AgentConfig:
    return AgentConfig.model_validate(
        {"name": name, "delivery": {"mode": "a2a", "url": url}, "allowInsecureLocal": True}
    )


def _gateway() -> A2AClientGateway:
    return A2AClientGateway(Settings(), credential=None)  # type: ignore[arg-type]  # no token scope


def test_the_card_says_whether_the_peer_pushes(pusher: FakeA2APeer, poller: FakeA2APeer) -> None:
    gateway = _gateway()
    assert gateway.supports_push(_agent("pusher", pusher.rpc_url)) is True
    assert gateway.supports_push(_agent("poller", poller.rpc_url)) is False
    pusher.clear_requests()
    assert gateway.supports_push(_agent("pusher", pusher.rpc_url)) is True  # read once, then kept
    assert pusher.requests("GET") == []


def test_a_peer_without_a_card_is_polled() -> None:
    gateway = _gateway()
    assert gateway.supports_push(_agent("gone", "http://127.0.0.1:9/a2a")) is False


def test_the_peer_pushes_each_update_with_the_registered_token(
    pusher: FakeA2APeer, receiver: Receiver
) -> None:
    pusher.reset()
    pusher.set_script(work_seconds=0.1)
    url = f"{receiver.url}/api/a2a/push/{HANDOFF_ID}"
    task = _gateway().send_message(
        _agent("pusher", pusher.rpc_url),
        message_id="m-1",
        context_id="c-1",
        text="hello",
        data={"handoffId": HANDOFF_ID},
        push_url=url,
        push_token="the-token",
    )
    receiver.wait(2)
    deadline = time.monotonic() + 10
    while not any(p.state == "TASK_STATE_COMPLETED" for p in pusher.pushes) and time.monotonic() < deadline:
        time.sleep(0.02)
    paths = {path for path, _, _ in receiver.posts}
    assert paths == {f"/api/a2a/push/{HANDOFF_ID}"}
    assert {headers.get("X-A2A-Notification-Token") for _, headers, _ in receiver.posts} == {"the-token"}
    states = [p.state for p in pusher.pushes_to(HANDOFF_ID)]
    assert states[-1] == "TASK_STATE_COMPLETED" and all(p.status == 202 for p in pusher.pushes)
    last = receiver.posts[-1][2]
    assert "statusUpdate" in last or "task" in last
    event = last.get("statusUpdate") or last.get("task")
    assert event.get("taskId", event.get("id")) == task.task_id


def test_a_peer_told_to_tamper_sends_another_token(pusher: FakeA2APeer, receiver: Receiver) -> None:
    pusher.reset()
    pusher.set_script(work_seconds=0.0, push_token="tampered")
    receiver.status = 401
    _gateway().send_message(
        _agent("pusher", pusher.rpc_url),
        message_id="m-2",
        context_id="c-2",
        text="hello",
        data={"handoffId": HANDOFF_ID},
        push_url=f"{receiver.url}/api/a2a/push/{HANDOFF_ID}",
        push_token="the-registered-token",
    )
    receiver.wait(1)
    tokens = {headers.get("X-A2A-Notification-Token") for _, headers, _ in receiver.posts}
    assert "the-registered-token" not in tokens and len(tokens) == 1
    deadline = time.monotonic() + 5
    while not pusher.pushes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pusher.pushes and all(p.status == 401 for p in pusher.pushes)


def _until_completed(gateway: A2AClientGateway, agent: AgentConfig, task_id: str) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task = gateway.get_task(agent, task_id)
        if task.state == "COMPLETED":
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not complete")


@pytest.mark.parametrize("form", ["data", "contract"])
def test_the_contract_extension_travels_both_ways(poller: FakeA2APeer, form: str) -> None:
    poller.reset()
    poller.set_script(work_seconds=0.0, handback_form=form)
    agent = _agent("poller", poller.rpc_url)
    gateway = _gateway()
    request = {"source": {"agent": "ops"}, "target": {"agent": "poller"}, "context": {"title": "t"}}

    task = gateway.send_message(
        agent,
        message_id=f"m-contract-{form}",
        context_id="c-3",
        text="hello",
        data={"handoffId": HANDOFF_ID},
        contract=request,
    )
    done = _until_completed(gateway, agent, task.task_id)

    (execution,) = poller.executions_for(HANDOFF_ID)
    assert execution.extensions == {CONTRACT_EXTENSION} == {A2A_EXTENSION_URI}
    assert execution.contract == request  # the tagged part, next to the untagged payload
    assert execution.data == {"handoffId": HANDOFF_ID}
    (artifact,) = done.artifacts
    assert artifact.data is not None and artifact.data["outcome"] == "rootCauseFound"
    assert (artifact.contract == artifact.data) is (form == "contract")
    assert (artifact.contract is None) is (form == "data")
