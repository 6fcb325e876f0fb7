"""Helpers to run the local host as a subprocess and to watch queues, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.storage.queue import QueueClient

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HostProcess:
    """A ``python -m devserver.host`` child process with its output captured."""

    process: subprocess.Popen[str]
    url: str
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_host(
    app_root: Path, port: int, env: dict[str, str], stderr_path: Path, timeout: float = 30
) -> HostProcess:
    """Start the host and wait for its readiness line; fail with its log if it does not come."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devserver.host", "--app-root", str(app_root), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    host = HostProcess(process, f"http://127.0.0.1:{port}", stderr_path)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            host.stdout_lines.append(line.rstrip("\n"))
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                raise RuntimeError(f"host exited with {process.returncode}:\n{host.log}") from None
            continue
        if line.startswith("Host started: "):
            assert line.strip() == f"Host started: {host.url}"
            return host
    host.stop()
    raise RuntimeError(f"host did not start within {timeout}s:\n{host.log}")


def host_env(**values: str) -> dict[str, str]:
    """The test process environment without settings that would leak into the host, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AzureWebJobs", "SAMPLE_", "DEVHOST_"))}
    env.update(values)
    return env


class EventLog:
    """Collects the JSON events the sample app writes to its ``<prefix>-out`` queue."""

    def __init__(self, connection_string: str, queue_name: str) -> None:
        self.client = QueueClient.from_connection_string(connection_string, queue_name)
        self.events: list[dict[str, Any]] = []

    def drain(self) -> None:
        try:
            messages = list(self.client.receive_messages(max_messages=32, messages_per_page=32))
        except Exception:  # the app creates the queue on its first event
            return
        for message in messages:
            self.events.append(json.loads(message.content))
            self.client.delete_message(message)

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            if predicate(self.events):
                return self.events
            time.sleep(0.1)
        raise AssertionError(f"condition not met within {timeout}s; events: {self.events}")


def wait_for_messages(client: QueueClient, count: int, timeout: float = 15) -> list[str]:
    """Peeked contents of ``client``'s queue once it holds at least ``count`` messages."""
    deadline = time.monotonic() + timeout
    contents: list[str] = []
    while time.monotonic() < deadline:
        try:
            contents = [m.content for m in client.peek_messages(max_messages=32)]
        except Exception:
            contents = []
        if len(contents) >= count:
            return contents
        time.sleep(0.1)
    raise AssertionError(f"{client.queue_name} has {contents} after {timeout}s")
