"""How fast ``/api/health`` answers while storage is down (the probe has 2 s timeouts and no retries).

Runs the broker under the local host with its own Azurite, stops Azurite, and times ``GET /api/health``
ten times. Prints the median and the slowest; figures, not limits.
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
ROUNDS = 10


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
        healthy = client.get("/api/health").status_code
        azurite.suspend()
        timings, statuses = [], set()
        for _ in range(ROUNDS):
            started = time.perf_counter()
            statuses.add(client.get("/api/health").status_code)
            timings.append(time.perf_counter() - started)
        print(f"storage up: {healthy}; storage down: {sorted(statuses)}")
        print(f"health with storage down   median {statistics.median(timings) * 1000:7.1f} ms   "
              f"max {max(timings) * 1000:7.1f} ms   (n={ROUNDS})")  # fmt: skip
    finally:
        host.stop()
        stack.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
