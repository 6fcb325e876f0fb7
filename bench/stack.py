"""The benchmark's environment: Azurite, simulated agents, an A2A partner and the broker in this process.

The broker runs under :class:`devserver.host.LocalHost` in the benchmark's own process with
``HANDOFF_COUNT_STORAGE_TRANSACTIONS`` on, so the storage requests it makes are counted in
:data:`handoff.adapters.azure_storage.counting.COUNTS`, each labelled with the function that made it.
The host's own queue-trigger requests (receive, delete, poison) go to :data:`TRIGGER_COUNTS`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from azure.storage.queue import QueueClient

import devserver.hostlib.queues
from devserver.azurite import Azurite, free_port, start_azurite
from devserver.fakes.a2a_peer import FakeA2APeer
from devserver.fakes.sre_agent import FakeSreAgent
from devserver.fakes.stack import FakeStack, start_fake_stack
from devserver.host import LocalHost
from devserver.hostlib.functions import FunctionSpec
from handoff.adapters.azure_storage.counting import COUNTS, TransactionCounts, client_options
from handoff.services import alongside

from .cpu import FUNCTION, FUNCTIONS

ROOT = Path(__file__).resolve().parent.parent
TRIGGER_COUNTS = TransactionCounts()
STORM_ROUTE = "bench-storm"
_HANDOFF_ID = re.compile(r"\[Handoff ([^\]\s]+)\]")
# When the host first started ``deliver`` for each handoff (``time.time()``), by handoff id.
DELIVER_STARTS: dict[str, float] = {}


class CountingHost(LocalHost):
    """The local host, labelling the storage requests of each invocation with the function's name."""

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Any:
        """Run the function with its name as the count label (sync functions get a copy of the context),
        its thread's CPU counted in :data:`bench.cpu.FUNCTIONS`."""
        if spec.name == "deliver":
            _note_delivery_start(trigger_value)
        if not inspect.iscoroutinefunction(spec.user_function):
            spec = dataclasses.replace(spec, user_function=FUNCTIONS.timed(spec.user_function))
        token = FUNCTION.set(spec.name)
        try:
            with COUNTS.labelled(spec.name):
                return await super().invoke(spec, trigger_value, reason)
        finally:
            FUNCTION.reset(token)


def _count_side_requests() -> None:
    """Count the CPU of the side requests functions start on other threads (see ``alongside``) with the
    functions' own."""
    start = alongside._start
    if getattr(start, "counted", False):
        return

    def counted(side: Callable[[], object]) -> Any:
        return start(FUNCTIONS.timed(side))

    counted.counted = True  # type: ignore[attr-defined]
    alongside._start = counted


def _note_delivery_start(message: Any) -> None:
    try:
        handoff_id = json.loads(message.get_body())["handoffId"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return
    DELIVER_STARTS.setdefault(str(handoff_id), time.time())


class _TriggerQueueClient(QueueClient):
    """The host's queue-trigger client, counting into :data:`TRIGGER_COUNTS`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(client_options(TRIGGER_COUNTS))
        super().__init__(*args, **kwargs)


@dataclass
class Services:
    """Everything but the broker: storage, token endpoint, ARM, agents ``ops``/``checkout``, partner."""

    azurite: Azurite
    fakes: FakeStack
    peer: FakeA2APeer
    pusher: FakeA2APeer
    workdir: Path

    def env(self, port: int) -> dict[str, str]:
        """App settings of a broker on ``port`` wired to these services."""
        config = self.fakes.registry_config()
        for name, peer in (("partner", self.peer), ("pusher", self.pusher)):
            config["agents"].append(
                {"name": name, "delivery": {"mode": "a2a", "url": peer.rpc_url}, "allowInsecureLocal": True}
            )
        config["alertRoutes"] = [
            {
                "name": STORM_ROUTE,
                "target": "ops",
                "match": {"customProperties": {"testRoute": STORM_ROUTE}},
                "alertStorm": {"windowSeconds": 600},
            }
        ]
        path = self.workdir / "handoff.config.json"
        path.write_text(json.dumps(config))
        return {
            **self.fakes.env(),
            "HANDOFF_CONFIG": str(path),
            "HANDOFF_STORAGE": self.azurite.connection_string,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "HANDOFF_ARM_ENDPOINT": self.fakes.arm_url,
            "HANDOFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HANDOFF_COUNT_STORAGE_TRANSACTIONS": "true",
            # The per-caller limit (600/min) would cap the load phases; it is not what is measured.
            "HANDOFF_RATE_LIMIT_PER_MINUTE": "0",
            # HANDOFF_POLL_INTERVAL_SECONDS keeps its default (30 s): a partner without push is polled
            # with the adaptive backoff a deployment has, one that pushes is heard from when it pushes.
        }

    def stop(self) -> None:
        """Stop every service."""
        self.peer.stop()
        self.pusher.stop()
        self.fakes.stop()
        self.azurite.stop()


def start_services() -> Services:
    """Start Azurite, the simulated agents and the A2A partner."""
    # Every service of a run is plain HTTP on loopback. A CA-bundle path in the environment (some
    # machines set one) makes requests stat it on every storage call, a cost an Azure host does not
    # have; it would weigh on the floor and the broker alike.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    azurite = start_azurite()
    try:
        fakes = start_fake_stack(("ops", "checkout"))
    except BaseException:
        azurite.stop()
        raise
    peer = FakeA2APeer("partner").start()
    pusher = FakeA2APeer("pusher", push=True).start()
    return Services(azurite, fakes, peer, pusher, workdir)


@dataclass
class Broker:
    """The broker running in this process, and a client for it."""

    host: CountingHost
    client: httpx.Client

    def stop(self) -> None:
        """Stop the host."""
        self.client.close()
        self.host.stop()


def start_broker(services: Services, host_class: type[CountingHost] = CountingHost) -> Broker:
    """Start the broker under the local host in this process, counting storage requests."""
    port = free_port()
    out = (services.workdir / "host.out").open("w")
    host = host_class(ROOT, port=port, env=services.env(port), out=out)
    _count_side_requests()
    with mock.patch.object(devserver.hostlib.queues, "QueueClient", _TriggerQueueClient):
        host.start()
    client = httpx.Client(base_url=host.url, timeout=60, limits=httpx.Limits(max_connections=64))
    return Broker(host, client)


@dataclass
class ThreadWatch:
    """Creation times of the threads the broker starts on an agent, by handoff id (polled)."""

    agent: FakeSreAgent
    interval: float = 0.01
    created: dict[str, float] = field(default_factory=dict)
    thread_ids: dict[str, str] = field(default_factory=dict)
    _seen: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ThreadWatch:
        """Poll in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.agent.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan()

    def scan(self) -> None:
        """Record the threads created since the last scan."""
        with self.agent.lock:
            threads = list(self.agent.store.threads.values())[self._seen :]
            found = [(t.messages[0].text, t.created, t.id) for t in threads]
        self._seen += len(threads)
        for text, created, thread_id in found:
            match = _HANDOFF_ID.search(text)
            if match and match.group(1) not in self.created:
                self.thread_ids[match.group(1)] = thread_id
                self.created[match.group(1)] = created

    def wait(self, handoff_id: str, timeout: float = 60.0) -> float:
        """The creation time (``time.time()``) of the handoff's thread; waits until it exists."""
        deadline = time.monotonic() + timeout
        while handoff_id not in self.created:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no thread for handoff {handoff_id} within {timeout:.0f}s")
            time.sleep(self.interval)
        return self.created[handoff_id]


def message_time(agent: FakeSreAgent, thread_id: str, needle: str) -> float | None:
    """Creation time of the first message in the thread that contains ``needle``, if any."""
    with agent.lock:
        thread = agent.store.threads.get(thread_id)
        messages = list(thread.messages) if thread is not None else []
    return next((m.created for m in messages if needle in m.text), None)


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
    """Poll ``check`` until it returns something other than None (``TimeoutError`` after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:.0f}s")
        time.sleep(interval)


def wait_quiet(counts: TransactionCounts, quiet: float = 0.3, timeout: float = 60.0) -> float:
    """Wait until ``counts`` has not changed for ``quiet`` seconds; returns when it last changed."""
    last = counts.by_label()
    changed = time.monotonic()
    deadline = changed + timeout
    while time.monotonic() - changed < quiet:
        if time.monotonic() > deadline:
            raise TimeoutError(f"storage requests did not stop within {timeout:.0f}s")
        time.sleep(0.02)
        now = counts.by_label()
        if now != last:
            last, changed = now, time.monotonic()
    return changed


def delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``after - before`` of two :meth:`TransactionCounts.by_label` snapshots (zeros left out)."""
    result: dict[str, dict[str, int]] = {}
    for label, kinds in after.items():
        for kind, count in kinds.items():
            change = count - before.get(label, {}).get(kind, 0)
            if change:
                result.setdefault(label, {})[kind] = change
    return result


@contextmanager
def counted() -> Iterator[dict[str, Any]]:
    """Count the app's and the trigger's storage requests inside the block (into the yielded dict)."""
    result: dict[str, Any] = {}
    app, trigger, started = COUNTS.by_label(), TRIGGER_COUNTS.by_label(), time.monotonic()
    yield result
    result["seconds"] = time.monotonic() - started
    result["app"] = delta(COUNTS.by_label(), app)
    result["trigger"] = delta(TRIGGER_COUNTS.by_label(), trigger)
