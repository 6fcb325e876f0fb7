"""An alert storm: many Azure Monitor alerts over a few alert ids, posted at once to ``/api/alerts``.

The route folds a storm into one handoff (``alertStorm``); the figures are how long the broker takes
to go quiet (no storage request for a second) after the first POST, how many threads it created on
the target, and the storage requests it made.
"""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from handoff.adapters.azure_storage.counting import COUNTS
from tests.e2e.alert_payloads import envelope, unique_alert_id

from .stack import STORM_ROUTE, Broker, Services, counted, wait_quiet


def alert_storm(
    broker: Broker, services: Services, alerts: int, alert_ids: int, clients: int
) -> dict[str, Any]:
    """Post ``alerts`` alerts cycling over ``alert_ids`` ids from ``clients`` clients; wait until quiet."""
    ops = services.fakes.agents["ops"]
    threads_before = len(ops.threads())
    ids = [unique_alert_id() for _ in range(alert_ids)]
    base = envelope("metric-static-fired", STORM_ROUTE)
    local = threading.local()
    statuses: dict[int, int] = {}

    def post(n: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=broker.host.url, timeout=60)
        body = copy.deepcopy(base)
        body["data"]["essentials"]["alertId"] = ids[n % alert_ids]
        started = time.perf_counter()
        status = local.client.post("/api/alerts", json=body).status_code
        statuses[status] = statuses.get(status, 0) + 1
        return time.perf_counter() - started

    with counted() as counts:
        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            latencies = list(pool.map(post, range(alerts)))
        posted = time.monotonic() - started
        quiet_at = wait_quiet(COUNTS, quiet=1.0, timeout=300)
    requests = sum(sum(kinds.values()) for kinds in counts["app"].values())
    return {
        "alerts": alerts,
        "alertIds": alert_ids,
        "clients": clients,
        "statuses": statuses,
        "postSeconds": posted,
        "quiesceSeconds": quiet_at - started,
        "threadsCreated": len(ops.threads()) - threads_before,
        "storageRequests": requests,
        "latencies": latencies,
        "counts": counts,
    }
