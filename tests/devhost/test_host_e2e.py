"""End-to-end: the local host as a subprocess (and in-process) against Azurite, driving the sample app."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devserver.azurite import Azurite, free_port
from devserver.host import LocalHost

from .hostproc import EventLog, HostProcess, host_env, start_host, wait_for_messages

SAMPLE = Path(__file__).parent / "sample_app"
YEARLY = "0 0 0 1 1 *"


def _copy_app(
    tmp: Path, local_settings: dict[str, object] | None = None, host_json: str | None = None
) -> Path:
    root = tmp / "app"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    if local_settings is not None:
        (root / "local.settings.json").write_text(json.dumps(local_settings))
    if host_json is not None:
        (root / "host.json").write_text(host_json)
    return root


class Running:
    """A subprocess host plus what the tests need to talk to it."""

    def __init__(self, host: HostProcess, prefix: str, connection: str) -> None:
        self.host = host
        self.prefix = prefix
        self.connection = connection
        self.http = httpx.Client(base_url=host.url, timeout=15)
        self.events = EventLog(connection, f"{prefix}-out")

    def queue(self, suffix: str, base64_encoded: bool = True) -> QueueClient:
        policy = TextBase64EncodePolicy() if base64_encoded else None
        return QueueClient.from_connection_string(
            self.connection, f"{self.prefix}-{suffix}", message_encode_policy=policy
        )


@pytest.fixture(scope="module")
def running(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("devhost")
    # The file points storage at the default Azurite ports; the environment must win over it.
    root = _copy_app(
        tmp,
        local_settings={
            "IsEncrypted": False,
            "Values": {
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "SampleStorage": "UseDevelopmentStorage=true",
                "SAMPLE_FROM_SETTINGS": "from-settings",
                "SAMPLE_OVERRIDDEN": "from-settings",
                "DEVHOST_TIMER_SCHEDULE": YEARLY,
                "AzureWebJobs.disabled.Disabled": "true",
            },
        },
    )
    prefix = f"dh{secrets.token_hex(4)}"
    env = host_env(
        AzureWebJobsStorage=azurite.connection_string,
        SampleStorage=azurite.connection_string,
        DEVHOST_QUEUE_PREFIX=prefix,
        SAMPLE_OVERRIDDEN="from-env",
    )
    host = start_host(root, free_port(), env, tmp / "host.log")
    state = Running(host, prefix, azurite.connection_string)
    yield state
    state.http.close()
    host.stop()


def test_banner_lists_functions(running: Running) -> None:
    banner = "\n".join(running.host.stdout_lines)
    assert f"items: [GET] {running.host.url}/api/items/{{id:int}}/{{*rest}}" in banner
    assert f"record: queueTrigger (queue: {running.prefix}-in, connection: SampleStorage)" in banner
    assert f"on_startup: timerTrigger (schedule: {YEARLY}" in banner
    assert "disabled:" not in banner


def test_routing_and_route_parameters(running: Running) -> None:
    response = running.http.get("/api/items/42/a/b", params={"x": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["route"] == {"id": "42", "rest": "a/b"}
    assert body["query"] == {"x": "1"}
    assert body["url"].endswith("/api/items/42/a/b?x=1")
    assert running.http.get("/api/hello/bob").text == "hello, bob"
    assert running.http.get("/api/hello/bob/hi").text == "hi, bob"
    assert running.http.get("/api/hello/b0b").status_code == 404  # alpha constraint
    assert running.http.get("/api/items/x/a").status_code == 404  # int constraint


def test_not_found_and_method_not_allowed(running: Running) -> None:
    assert running.http.get("/api/nope").status_code == 404
    assert running.http.get("/items/1").status_code == 404  # no route prefix
    assert running.http.get("/api/disabled").status_code == 404  # AzureWebJobs.disabled.Disabled
    response = running.http.get("/api/echo")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, PUT"


def test_body_round_trip_of_one_mebibyte(running: Running) -> None:
    payload = secrets.token_bytes(1024 * 1024 + 1)
    response = running.http.post(
        "/api/echo",
        content=payload,
        headers={"content-type": "application/octet-stream", "x-custom": "kept"},
    )
    assert response.status_code == 201
    assert response.content == payload
    assert response.headers["x-body-length"] == str(len(payload))
    assert response.headers["x-method"] == "POST"
    assert response.headers["x-custom"] == "kept"
    assert response.headers["content-type"] == "application/octet-stream"


def test_async_function_gets_context_and_asgi_middleware_works(running: Running) -> None:
    info = running.http.get("/api/whoami").json()
    assert info["function_name"] == "whoami"
    assert info["invocation_id"] == info["tls_invocation_id"]
    assert info["trace_parent"].startswith("00-")
    assert info["retry_count"] == 0
    assert running.http.get("/api/asgi/deep/path", params={"q": "3"}).json() == {
        "path": "/api/asgi/deep/path",
        "q": "3",
    }


def test_unhandled_exception_is_a_500_with_a_logged_traceback(running: Running) -> None:
    response = running.http.get("/api/boom")
    assert response.status_code == 500
    assert "failed" in response.text
    log = running.host.log
    assert "Executed 'Functions.boom' (Failed" in log
    assert "RuntimeError: boom on purpose" in log


def test_local_settings_are_loaded_and_the_environment_wins(running: Running) -> None:
    assert running.http.get("/api/settings").json() == {
        "SAMPLE_FROM_SETTINGS": "from-settings",
        "SAMPLE_OVERRIDDEN": "from-env",
        "SAMPLE_UNSET": None,
    }


def test_timer_runs_on_startup_once(running: Running) -> None:
    events = running.events.wait_for(lambda evs: any(e["fn"] == "on_startup" for e in evs))
    assert [e for e in events if e["fn"] == "on_startup"] == [{"fn": "on_startup", "past_due": False}]


def test_queue_trigger_decodes_base64(running: Running) -> None:
    text = f"héllo wörld {secrets.token_hex(4)}"
    running.queue("in").send_message(text)
    events = running.events.wait_for(lambda evs: any(e.get("body") == text for e in evs))
    [event] = [e for e in events if e.get("body") == text]
    assert event["fn"] == "record"
    assert event["dequeue_count"] == 1
    # A successful invocation deletes the message.
    assert wait_for_messages(running.queue("in"), 0) == []


def test_message_that_is_not_base64_goes_to_poison_without_running(running: Running) -> None:
    running.queue("in", base64_encoded=False).send_message("not base64 at all!")
    poison = wait_for_messages(running.queue("in-poison", base64_encoded=False), 1)
    assert poison == ["not base64 at all!"]
    running.events.drain()
    assert not any(e.get("body") == "not base64 at all!" for e in running.events.events)


def test_failing_message_is_retried_then_poisoned_after_max_dequeue_count(running: Running) -> None:
    text = f"fails {secrets.token_hex(4)}"
    running.queue("fail").send_message(text)
    poison = wait_for_messages(running.queue("fail-poison", base64_encoded=False), 1)
    # The poison copy keeps the original (base64) text.
    assert [base64.b64decode(p).decode() for p in poison] == [text]
    attempts = [
        e["dequeue_count"] for e in running.events.wait_for(lambda evs: True) if e.get("body") == text
    ]
    assert attempts == [1, 2, 3]  # host.json maxDequeueCount is 3
    assert wait_for_messages(running.queue("fail"), 0) == []
    assert f"moved to '{running.prefix}-fail-poison'" in running.host.log


def test_graceful_shutdown_finishes_running_requests(azurite: Azurite, tmp_path: Path) -> None:
    root = _copy_app(tmp_path)
    prefix = f"dh{secrets.token_hex(4)}"
    env = host_env(
        AzureWebJobsStorage=azurite.connection_string,
        SampleStorage=azurite.connection_string,
        DEVHOST_QUEUE_PREFIX=prefix,
        DEVHOST_TIMER_SCHEDULE=YEARLY,
    )
    host = start_host(root, free_port(), env, tmp_path / "host.log")
    try:
        results: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: results.setdefault("slow", httpx.get(f"{host.url}/api/slow?ms=1500", timeout=15))
        )
        worker.start()
        time.sleep(0.5)  # the request is running
        host.process.send_signal(signal.SIGTERM)
        worker.join(15)
        assert results["slow"].status_code == 200
        assert results["slow"].text == "done"
        assert host.process.wait(15) == 0
        assert "Host stopped" in host.log
        # Polling stopped with the host: a new message stays in the queue.
        client = QueueClient.from_connection_string(
            azurite.connection_string, f"{prefix}-in", message_encode_policy=TextBase64EncodePolicy()
        )
        client.send_message("after stop")
        time.sleep(0.5)
        assert len(list(client.peek_messages(max_messages=5))) == 1
    finally:
        host.stop()


def test_configuration_error_exits_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\napp = func.FunctionApp()\n"
        "@app.route(route='x')\n@app.queue_output(arg_name='out', queue_name='q', connection='S')\n"
        "def sender(req, out):\n    return 'x'\n"
    )
    with pytest.raises(RuntimeError, match=r"exited with 2:[\s\S]*Function 'sender'"):
        start_host(tmp_path, free_port(), host_env(), tmp_path / "host.log")


def test_in_process_host_with_message_encoding_none(azurite: Azurite, tmp_path: Path) -> None:
    host_json = json.dumps(
        {
            "version": "2.0",
            "extensions": {"queues": {"maxPollingInterval": "00:00:01", "messageEncoding": "none"}},
        }
    )
    root = _copy_app(tmp_path, host_json=host_json)
    prefix = f"dh{secrets.token_hex(4)}"
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "SampleStorage": azurite.connection_string,
        "DEVHOST_QUEUE_PREFIX": prefix,
        "DEVHOST_TIMER_SCHEDULE": YEARLY,
    }
    before = os.environ.get("DEVHOST_QUEUE_PREFIX")
    with LocalHost(root, port=0, env=env, out=open(os.devnull, "w")) as host:
        assert host.port != 0
        assert httpx.get(f"{host.url}/api/hello/ann").text == "hello, ann"
        QueueClient.from_connection_string(azurite.connection_string, f"{prefix}-in").send_message(
            '{"raw": true}'
        )
        events = EventLog(azurite.connection_string, f"{prefix}-out")
        found = events.wait_for(lambda evs: any(e.get("body") == '{"raw": true}' for e in evs))
        assert [e["fn"] for e in found if e.get("body") == '{"raw": true}'] == ["record"]
    assert not host.running
    # The host's environment changes are undone when it stops.
    assert os.environ.get("DEVHOST_QUEUE_PREFIX") == before


SLOW_QUEUE_APP = """
import json, os, time
import azure.functions as func
from azure.storage.queue import QueueClient

app = func.FunctionApp()

@app.queue_trigger(arg_name="msg", queue_name="%SLOW_QUEUE%", connection="")
def slow_queue(msg: func.QueueMessage) -> None:
    time.sleep(3)
    name = os.environ["SLOW_QUEUE"] + "-out"
    out = QueueClient.from_connection_string(os.environ["AzureWebJobsStorage"], name)
    out.create_queue()
    out.send_message(json.dumps({"dequeue_count": msg.dequeue_count}))
"""


def test_lease_is_renewed_while_a_long_function_runs(azurite: Azurite, tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(SLOW_QUEUE_APP)
    (tmp_path / "host.json").write_text(
        '{"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:01"}}}'
    )
    name = f"dh{secrets.token_hex(4)}"
    env = {"AzureWebJobsStorage": azurite.connection_string, "SLOW_QUEUE": name}
    # A 2 s lease renewed every second: without renewal the message would reappear mid-run.
    with LocalHost(tmp_path, port=0, env=env, queue_lease=2, out=io.StringIO()) as host:
        client = QueueClient.from_connection_string(
            azurite.connection_string, name, message_encode_policy=TextBase64EncodePolicy()
        )
        client.send_message("slow")
        events = EventLog(azurite.connection_string, f"{name}-out")
        events.wait_for(lambda evs: len(evs) >= 1, timeout=15)
        time.sleep(1.5)
        assert events.wait_for(lambda evs: True) == [{"dequeue_count": 1}]
        assert wait_for_messages(client, 0) == []
        assert host.running
