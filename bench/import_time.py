"""Cold-start cost of importing the app: median import time of ``function_app`` against its core
dependencies (``azure.functions`` + ``pydantic``) and against every declared runtime dependency, and
what the lazily imported MCP SDK would add.

Each sample is a fresh interpreter (``python -c``), as a cold start is; run from the repository root:
``python -m bench.import_time [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every runtime package of requirements.txt, by its top-level module, but the telemetry ones: they are
# imported only when telemetry is on (their own line below shows what that adds), and leaving them out
# keeps the figures comparable with those taken before telemetry existed.
DECLARED = (
    "import azure.functions, pydantic, httpx, azure.identity, azure.storage.queue, azure.data.tables, "
    "mcp, starlette, anyio, a2a, sse_starlette, jwt, cryptography"
)
TARGETS = {
    "core (azure.functions + pydantic)": "import azure.functions, pydantic",
    "declared dependencies (requirements.txt)": DECLARED,
    "function_app": "import function_app",
    "mcp SDK (first MCP request)": "import mcp.server.mcpserver, mcp.server.streamable_http_manager",
    "telemetry over OTLP (only when configured)": (
        "import opentelemetry.sdk.trace, opentelemetry.sdk.metrics, "
        "opentelemetry.exporter.otlp.proto.http.trace_exporter, "
        "opentelemetry.exporter.otlp.proto.http.metric_exporter"
    ),
}
PROBE = (
    "import time, sys; t = time.perf_counter(); exec(sys.argv[1]); "
    "print(time.perf_counter() - t); "
    "print(int(any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules)))"
)


def sample(statement: str) -> tuple[float, bool]:
    """Seconds to run ``statement`` in a fresh interpreter, and whether the MCP SDK got imported."""
    env = {**os.environ, "HANDOFF_CONFIG": str(ROOT / "handoff.config.sample.json")}
    command = [sys.executable, "-c", PROBE, statement]
    out = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), out[1] == "1"


def samples(runs: int, targets: dict[str, str] = TARGETS) -> dict[str, list[tuple[float, bool]]]:
    """``runs`` samples of each target, interleaved so that machine noise spreads over all of them."""
    result: dict[str, list[tuple[float, bool]]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, statement in targets.items():
            result[name].append(sample(statement))
    return result


def main(argv: list[str] | None = None) -> None:
    """Print the median of each target and the ratio of function_app to its core dependencies."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args(argv).runs
    medians: dict[str, float] = {}
    for name, taken in samples(runs).items():
        medians[name] = statistics.median(seconds for seconds, _ in taken)
        loads_mcp = any(flag for _, flag in taken)
        print(f"{name:45s} median {medians[name] * 1000:7.1f} ms  (n={runs}, imports mcp: {loads_mcp})")
    core = medians["core (azure.functions + pydantic)"]
    app = medians["function_app"]
    print(f"function_app / core dependencies: {app / core:.2f}x (+{(app - core) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
