"""Figures for POST /api/alerts through the local host: duplicates, storms, audit reads (medians, one run).

Run: ``.venv/bin/python -m bench.alerts`` (starts its own Azurite, simulated agents and broker).
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devserver.azurite import start_azurite
from devserver.fakes.stack import start_fake_stack
from tests.e2e.alert_payloads import envelope, unique_alert_id
from tests.support.broker import BrokerProcess


def main() -> None:
    azurite = start_azurite()
    stack = start_fake_stack(("ops", "checkout"))
    work = Path(tempfile.mkdtemp())
    config = stack.registry_config()
    config["alertRoutes"] = [
        {
            "name": "storm",
            "target": "ops",
            "match": {"customProperties": {"testRoute": "storm"}},
            "alertStorm": {"windowSeconds": 600},
        },
        {"name": "samples", "target": "checkout", "alertStorm": {"threshold": 10000}},
    ]
    (work / "config.json").write_text(json.dumps(config))
    env = {
        **stack.env(),
        "HANDOFF_CONFIG": str(work / "config.json"),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
    }
    broker = BrokerProcess(env, work / "host.log")
    try:
        broker.wait_healthy()
        client = broker.client

        def post(body: dict) -> float:
            start = time.perf_counter()
            assert client.post("/api/alerts", json=body).status_code == 202
            return time.perf_counter() - start

        body = envelope("metric-static-fired", "samples", unique_alert_id())
        first = post(body)
        repeats = [post(body) for _ in range(100)]
        repeat_ms = statistics.median(repeats) * 1000
        print(f"first alert: {first * 1000:.1f} ms; sequential repeat median {repeat_ms:.1f} ms")
        distinct = [post(envelope("metric-static-fired", "samples")) for _ in range(50)]
        print(f"sequential new alert (own handoff) median {statistics.median(distinct) * 1000:.1f} ms")

        body = envelope("metric-static-fired", "samples", unique_alert_id())
        start = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda _: post(body), range(200)))
        print(f"200 concurrent duplicates: {time.perf_counter() - start:.2f} s")

        ids = [unique_alert_id() for _ in range(50)]
        base = envelope("metric-static-fired", "storm")

        def storm(i: int) -> float:
            b = copy.deepcopy(base)
            b["data"]["essentials"]["alertId"] = ids[i % 50]
            return post(b)

        for workers in (1, 8, 24):
            ids = [unique_alert_id() for _ in range(50)]
            start = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                latencies = list(pool.map(storm, range(1000 if workers > 1 else 200)))
            total = time.perf_counter() - start
            print(
                f"storm, {workers} clients: {len(latencies)} alerts in {total:.2f} s "
                f"({len(latencies) / total:.0f}/s), median {statistics.median(latencies) * 1000:.1f} ms"
            )
        start = time.perf_counter()
        health = [client.get("/api/health") for _ in range(50)]
        print(f"health median-ish: {(time.perf_counter() - start) / len(health) * 1000:.1f} ms per call")
    finally:
        broker.stop()
        stack.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
