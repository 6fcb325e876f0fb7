"""Handoffs, hand-backs and A2A hand-backs through the broker, timed and with their storage requests.

Times: ``accept`` is POST → 202 at the client; ``POST → thread`` runs from just before the POST to
the creation time of B's thread in the simulated agent; a hand-back runs from its POST to the
message in A's thread; an A2A hand-back from the partner's task completing (its status timestamp)
to the message in A's thread. Storage requests are counted per function (see :mod:`bench.stack`).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from devserver.hostlib.config import HostSettings
from handoff.adapters.azure_storage.counting import COUNTS
from tests.e2e.helpers import handback_body, handoff_body

from .cpu import CpuMeter, CpuUse
from .stack import (
    DELIVER_STARTS,
    ROOT,
    Broker,
    Services,
    ThreadWatch,
    counted,
    message_time,
    wait_quiet,
    wait_until,
)

ACCEPT_FUNCTION = "create_handoff"
HANDBACK_FUNCTION = "hand_back"
# Functions whose storage requests belong to a handoff's own work (the rest is background).
WORK_FUNCTIONS = ("create_handoff", "deliver", "hand_back", "write_shared_memory")
# After each item of a one-at-a-time phase settles, a pause drawn from 0 to the host's
# maxPollingInterval (host.json): the next POST then meets the queue listener anywhere in its idle
# back-off, as a handoff arriving at a quiet broker does, instead of always at the same point of it.
IDLE_PAUSE_SECONDS = HostSettings.load(ROOT).queues.max_polling_interval


def settle_and_pause(pauses: random.Random) -> None:
    """Wait until storage is quiet, then pause for a random part of the listener's longest sleep."""
    wait_quiet(COUNTS, quiet=0.25)
    time.sleep(pauses.uniform(0, IDLE_PAUSE_SECONDS))


@dataclass
class Delivered:
    """A handoff that reached B: its id and both thread ids."""

    handoff_id: str
    source_thread: str
    target_thread: str


@dataclass
class Timings:
    """Latency samples (seconds) of one phase."""

    accept: list[float] = field(default_factory=list)
    post_to_thread: list[float] = field(default_factory=list)
    # Where the host's start of ``deliver`` was seen: its 202 → that start (the queue trigger's polling),
    # and POST → thread without that wait (the broker's own path).
    queue_wait: list[float] = field(default_factory=list)
    without_queue_wait: list[float] = field(default_factory=list)
    unsplit: int = 0  # handoffs whose start of ``deliver`` was not seen (left out of the split)
    completed: int = 0
    seconds: float = 0.0
    cpu: CpuUse | None = None  # Azurite's and this process's CPU while the clients ran

    def add_path(self, handoff_id: str, started_at: float, accept: float, created: float) -> None:
        """One handoff's POST → thread, and its split at the host's start of ``deliver``."""
        self.post_to_thread.append(created - started_at)
        if handoff_id not in DELIVER_STARTS:
            self.unsplit += 1
            return
        # The 202 is timed at the client: a fast host can start ``deliver`` before it arrives (no wait).
        wait = max(0.0, DELIVER_STARTS[handoff_id] - (started_at + accept))
        self.queue_wait.append(wait)
        self.without_queue_wait.append(created - started_at - wait)


def post_handoff(
    client: httpx.Client, source_thread: str, target: str = "checkout"
) -> tuple[str, float, float]:
    """POST a handoff; returns its id, the wall-clock start and the accept time in seconds."""
    body = handoff_body(source_thread, target=target)
    started_at, started = time.time(), time.perf_counter()
    response = client.post("/api/handoffs", json=body)
    accept = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"handoff not accepted: {response.status_code} {response.text[:500]}")
    return response.json()["id"], started_at, accept


def per_item(
    counts: dict[str, Any], items: int, functions: tuple[str, ...] = WORK_FUNCTIONS
) -> dict[str, Any]:
    """Storage requests of ``functions`` per item, by function and kind, and in all."""
    by_function: dict[str, dict[str, float]] = {}
    for label, kinds in counts["app"].items():
        if label in functions:
            by_function[label] = {kind: count / items for kind, count in sorted(kinds.items())}
    total = sum(sum(kinds.values()) for kinds in by_function.values())
    trigger = {kind: count / items for kinds in counts["trigger"].values() for kind, count in kinds.items()}
    background = sum(
        sum(kinds.values()) for label, kinds in counts["app"].items() if label not in WORK_FUNCTIONS
    )
    return {
        "total": total,
        "byFunction": by_function,
        "trigger": trigger,
        "background": background / items,
        "seconds": counts["seconds"],
        "items": items,
        "raw": counts,
    }


def sequential(
    broker: Broker, services: Services, rounds: int
) -> tuple[Timings, dict[str, Any], list[Delivered]]:
    """``rounds`` handoffs one after another, each left to settle (storage quiet, then a random pause:
    :func:`settle_and_pause`) before the next. After a quiet spell the queue listener has backed off, so
    a handoff's queue wait depends on where its back-off stands when the POST comes."""
    ops, checkout = services.fakes.agents["ops"], services.fakes.agents["checkout"]
    watch = ThreadWatch(checkout).start()
    timings, delivered, pauses = Timings(), [], random.Random(1)
    try:
        source = ops.create_thread("Ops: sequential handoffs")["id"]
        with counted() as counts:
            for _ in range(rounds):
                handoff_id, started_at, accept = post_handoff(broker.client, source)
                created = watch.wait(handoff_id)
                settle_and_pause(pauses)
                timings.accept.append(accept)
                timings.add_path(handoff_id, started_at, accept, created)
                delivered.append(Delivered(handoff_id, source, watch.thread_ids[handoff_id]))
    finally:
        watch.stop()
    timings.completed = rounds
    accept_only = per_item(counts, rounds, (ACCEPT_FUNCTION,))
    return timings, {"accepted": accept_only, "delivered": per_item(counts, rounds)}, delivered


def hand_backs(
    broker: Broker, services: Services, delivered: list[Delivered]
) -> tuple[list[float], dict[str, Any]]:
    """A hand-back for each delivered handoff, one after another: POST → message in A's thread."""
    ops = services.fakes.agents["ops"]
    samples, pauses = [], random.Random(2)
    with counted() as counts:
        for item in delivered:
            token = f"bench hand-back {uuid.uuid4().hex[:12]}"
            body = handback_body(thread_id=item.target_thread, summary=f"Pool exhausted ({token})")
            started_at = time.time()
            response = broker.client.post(f"/api/handoffs/{item.handoff_id}/handback", json=body)
            if response.status_code != 202:
                raise RuntimeError(f"hand-back refused: {response.status_code} {response.text[:500]}")
            posted = wait_until(lambda s=item.source_thread, t=token: message_time(ops, s, t), timeout=60)
            settle_and_pause(pauses)
            samples.append(posted - started_at)
    return samples, per_item(counts, len(delivered))


def _task_finished(peer_url: str, task_id: str) -> float:
    """When the partner's task reached its final state (its status timestamp), via A2A ``GetTask``."""
    request = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
    response = httpx.post(peer_url, json=request, headers={"A2A-Version": "1.0"}, timeout=10)
    stamp = response.json()["result"]["status"]["timestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def a2a_hand_backs(
    broker: Broker, services: Services, rounds: int, push: bool = False
) -> tuple[list[float], dict[str, Any]]:
    """Handoffs to an A2A partner (``pusher``, whose card declares push notifications, or ``partner``,
    which the broker polls): its task completing → the result posted in A's thread."""
    ops = services.fakes.agents["ops"]
    peer, target = (services.pusher, "pusher") if push else (services.peer, "partner")
    needle = peer.script.result["rootCause"]
    samples = []
    with counted() as counts:
        for n in range(rounds):
            source = ops.create_thread(f"Ops: A2A handoff {n}")["id"]
            handoff_id, _, _ = post_handoff(broker.client, source, target=target)
            posted = wait_until(lambda s=source: message_time(ops, s, needle), timeout=60)
            wait_quiet(COUNTS, quiet=0.25)
            record = broker.client.get(f"/api/handoffs/{handoff_id}").json()
            samples.append(posted - _task_finished(peer.rpc_url, record["target"]["taskId"]))
    return samples, per_item(counts, rounds)


def _run_clients(broker: Broker, clients: int, work: Callable[[int, httpx.Client], None]) -> float:
    """Run ``work(index, client)`` on ``clients`` threads, each with its own HTTP client; returns the
    seconds until the last one stopped, and raises the first error any of them met."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with httpx.Client(base_url=broker.host.url, timeout=60) as client:
                work(index, client)
        except BaseException as exc:  # reported once every client has stopped
            errors.append(exc)

    started = time.perf_counter()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def closed_loop(
    broker: Broker, services: Services, clients: int, seconds: float
) -> tuple[Timings, dict[str, Any]]:
    """``clients`` clients each posting a handoff and waiting for B's thread, again, for ``seconds``."""
    ops, checkout = services.fakes.agents["ops"], services.fakes.agents["checkout"]
    watch = ThreadWatch(checkout).start()
    timings = Timings()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    sources = [ops.create_thread(f"Ops: load client {i}")["id"] for i in range(clients)]

    def client_loop(index: int, client: httpx.Client) -> None:
        while time.monotonic() < deadline:
            handoff_id, started_at, accept = post_handoff(client, sources[index])
            created = watch.wait(handoff_id)
            with lock:
                timings.accept.append(accept)
                timings.post_to_thread.append(created - started_at)

    try:
        with counted() as counts:
            with CpuMeter(services.azurite.process.pid) as meter:
                timings.seconds = _run_clients(broker, clients, client_loop)
            wait_quiet(COUNTS, quiet=0.5)
    finally:
        watch.stop()
    timings.cpu = meter.use
    timings.completed = len(timings.post_to_thread)
    return timings, per_item(counts, max(1, timings.completed))


def open_loop(
    broker: Broker, services: Services, rate: float, seconds: float, clients: int
) -> tuple[Timings, dict[str, Any]]:
    """Steady load: handoffs arriving at ``rate`` per second for ``seconds``, spread evenly over
    ``clients`` clients, none waiting for a delivery before the next POST (arrivals do not slow down
    when the broker does). Returns the timings (with each handoff's queue wait: its 202 → the host
    starting ``deliver``, the queue trigger's polling) and the storage requests per handoff."""
    ops, checkout = services.fakes.agents["ops"], services.fakes.agents["checkout"]
    watch = ThreadWatch(checkout).start()
    timings = Timings()
    lock = threading.Lock()
    posted: list[tuple[str, float, float]] = []
    total = max(1, round(rate * seconds))
    sources = [ops.create_thread(f"Ops: steady client {i}")["id"] for i in range(clients)]
    start = time.perf_counter() + 0.1

    def client_loop(index: int, client: httpx.Client) -> None:
        for n in range(index, total, clients):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            handoff_id, started_at, accept = post_handoff(client, sources[index])
            with lock:
                timings.accept.append(accept)
                posted.append((handoff_id, started_at, accept))

    try:
        with counted() as counts:
            timings.seconds = _run_clients(broker, clients, client_loop)
            for handoff_id, started_at, accept in posted:
                timings.add_path(handoff_id, started_at, accept, watch.wait(handoff_id))
            wait_quiet(COUNTS, quiet=0.5)
    finally:
        watch.stop()
    timings.completed = len(posted)
    return timings, per_item(counts, max(1, timings.completed))


def burst(broker: Broker, services: Services, handoffs: int, clients: int) -> tuple[Timings, dict[str, Any]]:
    """``handoffs`` POSTs from ``clients`` clients at once, none waiting for delivery: accepts per second.

    Deliveries run meanwhile, as they would in production; the phase ends when storage is quiet again.
    """
    source = services.fakes.agents["ops"].create_thread("Ops: burst")["id"]
    timings = Timings()
    lock = threading.Lock()
    remaining = iter(range(handoffs))

    def client_loop(_: int, client: httpx.Client) -> None:
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            _, _, accept = post_handoff(client, source)
            with lock:
                timings.accept.append(accept)

    with counted() as counts:
        with CpuMeter(services.azurite.process.pid) as meter:
            timings.seconds = _run_clients(broker, clients, client_loop)
        wait_quiet(COUNTS, quiet=1.0)
    timings.cpu = meter.use
    timings.completed = len(timings.accept)
    return timings, per_item(counts, max(1, timings.completed), (ACCEPT_FUNCTION,))
