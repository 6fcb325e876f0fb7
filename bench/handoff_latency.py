"""Handoff latency through the real stack: local host + Azurite + simulated agents on this machine.

Measures, in one run: the time to accept a handoff (POST → 202), the time from the POST to
``delivered`` (thread created on B), and the same with an Idempotency-Key replay. Prints medians and
95th percentiles; these are figures for comparison between versions, not limits.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from devserver.azurite import start_azurite
from devserver.fakes.stack import start_fake_stack
from devserver.host import LocalHost

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 40


def _body(thread_id: str, n: int) -> dict:
    return {
        "source": {"agent": "ops", "threadId": thread_id},
        "target": {"agent": "checkout"},
        "context": {
            "title": f"Benchmark handoff {n}",
            "summary": "latency benchmark",
            "severity": "Sev3",
            "evidence": [
                {"kind": "kql", "title": "rows", "query": "T | take 50", "columns": ["a", "b"],
                 "rows": [[f"value {i}", i] for i in range(50)]}
            ],
        },
    }  # fmt: skip


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> None:
    """Run the benchmark and print its figures."""
    azurite = start_azurite()
    stack = start_fake_stack(("ops", "checkout"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    config = workdir / "handoff.config.json"
    config.write_text(json.dumps(stack.registry_config()))
    env = {**stack.env(), "HANDOFF_CONFIG": str(config), "HANDOFF_STORAGE": azurite.connection_string,
           "AzureWebJobsStorage": azurite.connection_string}  # fmt: skip
    host = LocalHost(ROOT, port=0, env=env, out=open(workdir / "host.out", "w"))  # noqa: SIM115
    host.start()
    try:
        client = httpx.Client(base_url=host.url, timeout=30)
        thread = stack.agents["ops"].create_thread("benchmark")["id"]
        client.post("/api/handoffs", json=_body(thread, -1))  # warm-up: first request builds the clients
        accept, deliver, replay = [], [], []
        for n in range(ROUNDS):
            body = _body(thread, n)
            started = time.perf_counter()
            response = client.post("/api/handoffs", json=body, headers={"Idempotency-Key": f"bench-{n}"})
            accept.append(time.perf_counter() - started)
            handoff_id = response.json()["id"]
            while client.get(f"/api/handoffs/{handoff_id}").json()["status"] != "delivered":
                time.sleep(0.01)
            deliver.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.post("/api/handoffs", json=body, headers={"Idempotency-Key": f"bench-{n}"})
            replay.append(time.perf_counter() - started)
        for name, values in (("accept (POST → 202)", accept), ("POST → delivered", deliver),
                             ("idempotent replay (→ 200)", replay)):  # fmt: skip
            median, p95 = statistics.median(values) * 1000, _p95(values) * 1000
            print(f"{name:28s} median {median:7.1f} ms   p95 {p95:7.1f} ms")
        print(
            f"delivered / accept median ratio: {statistics.median(deliver) / statistics.median(accept):.1f}"
        )
        print(f"rounds: {ROUNDS} (sequential, one client)")
    finally:
        host.stop()
        stack.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
