"""The floor: what the storage and agent calls a handoff needs cost on their own, measured directly.

Each operation is timed with the SDK (or httpx for the agent) against the same Azurite and simulated
agent the broker uses, in the same process, so the broker's figures can be read as multiples of
these. Saturation is ``threads`` threads inserting entities for ``seconds`` seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devserver.fakes.sre_agent import FakeSreAgent
from devserver.fakes.stack import FakeStack

from .cpu import CpuMeter
from .stack import Services

TABLE = "benchfloor"
QUEUE = "bench-floor"
DOC = "x" * 4000  # about the size of a small handoff request document
MESSAGE = '{"op": "deliver", "handoffId": "%s", "attempt": 1}'
AGENT_SCOPE = "https://azuresre.dev"


def _timed(call: Callable[[int], Any], rounds: int) -> list[float]:
    samples = []
    for n in range(rounds):
        started = time.perf_counter()
        call(n)
        samples.append(time.perf_counter() - started)
    return samples


def _entity(partition: str, row: str) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": row, "Status": "accepted", "Doc0": DOC}


def storage_floor(connection_string: str, rounds: int) -> dict[str, list[float]]:
    """Seconds per table insert, 4-entity batch, queue send and receive + delete (``rounds`` each)."""
    tables = TableServiceClient.from_connection_string(connection_string)
    tables.create_table_if_not_exists(TABLE)
    table = tables.get_table_client(TABLE)
    queue = QueueClient.from_connection_string(
        connection_string, QUEUE, message_encode_policy=TextBase64EncodePolicy()
    )
    queue.create_queue()
    table.create_entity(_entity("warm-up", "0"))  # first call opens the connection
    samples: dict[str, list[float]] = {}
    samples["tableInsert"] = _timed(lambda _: table.create_entity(_entity(str(uuid.uuid4()), "r")), rounds)
    samples["pointRead"] = _timed(lambda _: table.get_entity("warm-up", "0"), rounds)

    def batch(_: int) -> None:
        partition = str(uuid.uuid4())
        table.submit_transaction([("create", _entity(partition, f"r{i}")) for i in range(4)])

    samples["batch4"] = _timed(batch, rounds)
    samples["queueSend"] = _timed(lambda n: queue.send_message(MESSAGE % n), rounds)

    def receive_delete(_: int) -> None:
        message = queue.receive_message()
        if message is None:
            raise RuntimeError("the floor queue ran empty")
        queue.delete_message(message)

    samples["receiveDelete"] = _timed(receive_delete, rounds)
    queue.delete_queue()
    return samples


def agent_floor(fakes: FakeStack, agent: FakeSreAgent, rounds: int) -> dict[str, list[float]]:
    """Seconds per direct ``POST /api/v1/threads`` and ``POST …/messages`` to a simulated agent."""
    token = fakes.identity.issue(AGENT_SCOPE)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=agent.endpoint, headers=headers, timeout=30) as client:
        client.post("/api/v1/threads", json={"startMessage": {"text": "warm-up"}}).raise_for_status()
        thread_ids: list[str] = []

        def create(n: int) -> None:
            response = client.post("/api/v1/threads", json={"startMessage": {"text": f"floor {n}\n" + DOC}})
            response.raise_for_status()
            thread_ids.append(response.json()["id"])

        samples = {"createThread": _timed(create, rounds)}

        def post(n: int) -> None:
            thread = thread_ids[n % len(thread_ids)]
            client.post(f"/api/v1/threads/{thread}/messages", json={"text": f"floor {n}"}).raise_for_status()

        samples["postMessage"] = _timed(post, rounds)
    return samples


def saturation(connection_string: str, threads: int, seconds: float) -> dict[str, Any]:
    """Inserts per second with ``threads`` threads, one client each, inserting for ``seconds``."""
    clients = [TableClient.from_connection_string(connection_string, TABLE) for _ in range(threads)]
    for client in clients:
        client.create_entity(_entity(str(uuid.uuid4()), "warm-up"))
    done = [0] * threads
    stop = threading.Event()

    def work(index: int) -> None:
        client = clients[index]
        while not stop.is_set():
            client.create_entity(_entity(str(uuid.uuid4()), "r"))
            done[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "seconds": elapsed,
        "operations": sum(done),
        "opsPerSecond": sum(done) / elapsed,
    }


def measure(services: Services, rounds: int, saturation_seconds: float) -> dict[str, Any]:
    """Every floor figure: samples per operation (seconds) and the saturation rate."""
    connection = services.azurite.connection_string
    samples = storage_floor(connection, rounds)
    samples.update(agent_floor(services.fakes, services.fakes.agents["checkout"], rounds))
    services.fakes.agents["checkout"].reset()
    with CpuMeter(services.azurite.process.pid) as meter:
        saturated = saturation(connection, 8, saturation_seconds)
    saturated.update(azuriteCpuSeconds=meter.use.azurite, benchCpuSeconds=meter.use.here)
    return {"samples": samples, "saturation": saturated}
