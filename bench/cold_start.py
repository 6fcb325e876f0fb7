"""Cold start: from launching the local host (a new process) to its first accepted handoff, and
the import time of ``function_app`` against importing its declared dependencies.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from devserver.azurite import free_port
from tests.e2e.helpers import handoff_body

from . import import_time
from .stack import ROOT, Services


def first_handoff(services: Services, timeout: float = 120.0) -> dict[str, float]:
    """Seconds from starting ``python -m devserver.host`` to the first 202 of ``POST /api/handoffs``
    (and to its first healthy answer on the way)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANDOFF_", "IDENTITY_"))}
    env.update(services.env(port))
    env.pop("HANDOFF_COUNT_STORAGE_TRANSACTIONS")
    source = services.fakes.agents["ops"].create_thread("Ops: cold start")["id"]
    log = (services.workdir / f"cold-start-{port}.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "devserver.host", "--app-root", str(ROOT), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            listening = None
            while time.perf_counter() - started < timeout:
                if process.poll() is not None:
                    raise RuntimeError(f"the host exited with {process.returncode}")
                try:
                    response = client.post("/api/handoffs", json=handoff_body(source))
                except httpx.TransportError:
                    time.sleep(0.02)
                    continue
                listening = listening or time.perf_counter() - started
                if response.status_code == 202:
                    return {"firstAccepted": time.perf_counter() - started, "firstAnswer": listening}
                time.sleep(0.02)
        raise TimeoutError(f"no handoff accepted within {timeout:.0f}s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def measure(services: Services, starts: int, import_runs: int) -> dict[str, Any]:
    """``starts`` cold starts and ``import_runs`` fresh-interpreter import samples per target."""
    runs = [first_handoff(services) for _ in range(starts)]
    imports = import_time.samples(import_runs)
    return {
        "firstAccepted": [run["firstAccepted"] for run in runs],
        "firstAnswer": [run["firstAnswer"] for run in runs],
        "imports": {name: [seconds for seconds, _ in taken] for name, taken in imports.items()},
        "importMedians": {name: statistics.median(s for s, _ in taken) for name, taken in imports.items()},
    }
