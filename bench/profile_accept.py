"""Where the time of an accept goes: cProfile of ``POST /api/handoffs`` inside the in-process broker.

``python -m bench.profile_accept [--accepts 200] [--clients 4]`` posts the handoffs from ``clients``
clients at once (deliveries run meanwhile, as they would), first without the profiler for the
latency, then with a profiler around each ``create_handoff`` invocation (in its worker thread),
and prints the slowest functions by cumulative time per accept, the share of the accept spent
outside the function (HTTP server, request conversion, thread hand-off), and the storage requests.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from devserver.hostlib.functions import FunctionSpec
from handoff.adapters.azure_storage.counting import COUNTS

from .flows import ACCEPT_FUNCTION, post_handoff
from .stack import CountingHost, ThreadWatch, start_broker, start_services
from .stats import median, percentile


class ProfilingHost(CountingHost):
    """Runs ``create_handoff`` under a per-invocation profiler while :attr:`profiling` is set."""

    profiling = False
    profiles: list[cProfile.Profile] = []
    durations: list[float] = []
    lock = threading.Lock()

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Any:
        """Wrap the accept function; everything else runs as usual."""
        if spec.name == ACCEPT_FUNCTION:
            spec = dataclasses.replace(spec, user_function=self._wrapped(spec.user_function))
        return await super().invoke(spec, trigger_value, reason)

    def _wrapped(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(**kwargs: Any) -> Any:
            profile = cProfile.Profile() if self.profiling else None
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            try:
                return function(**kwargs)
            finally:
                if profile is not None:
                    profile.disable()
                with self.lock:
                    self.durations.append(time.perf_counter() - started)
                    if profile is not None:
                        self.profiles.append(profile)

        return run


def _accepts(url: str, sources: list[str], total: int) -> list[float]:
    samples: list[float] = []
    lock = threading.Lock()
    per_client = total // len(sources)

    def client_loop(source: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(per_client):
                accept = post_handoff(client, source)[2]
                with lock:
                    samples.append(accept)

    workers = [threading.Thread(target=client_loop, args=(source,)) for source in sources]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return samples


# Where an accept's time goes: (label, file name ending, function name); cumulative per accept.
BREAKDOWN = (
    ("handoff create (one batch: request, state, accepted, chain)", "azure_storage/handoffs.py", "create"),
    ("queue send", "azure_storage/queues.py", "send"),
    ("all storage requests (azure-core Pipeline.run)", "azure/core/pipeline/_base.py", "run"),
    ("  of which: batch body preparation", "pipeline/_base.py", "_prepare_multipart"),
    # azure_storage/batches.py parses the parts on the calling thread (azure-core: _parts_helper).
    ("  of which: batch answer parsing", "azure_storage/batches.py", "parts_of"),
    ("  of which: HTTP round trip (urllib3 urlopen)", "urllib3/connectionpool.py", "urlopen"),
    ("request parsing and validation (pydantic)", "pydantic/main.py", "model_validate"),
)


def breakdown(stats: pstats.Stats, accepts: int) -> list[tuple[str, float]]:
    """Milliseconds per accept in each part of :data:`BREAKDOWN` (cumulative, recursion counted once)."""
    table = stats.stats  # type: ignore[attr-defined]
    result = []
    for label, file_end, function in BREAKDOWN:
        seconds = sum(
            entry[3]
            for (path, _, name), entry in table.items()
            if path.endswith(file_end) and name == function
        )
        result.append((label, seconds / accepts * 1000))
    return result


def _summary(label: str, samples: list[float], durations: list[float]) -> None:
    print(
        f"{label}: accept p50 {median(samples) * 1000:.1f} ms, p99 {percentile(samples, 99) * 1000:.1f} ms; "
        f"inside create_handoff p50 {median(durations) * 1000:.1f} ms "
        f"({median(durations) / median(samples):.0%} of the accept)"
    )


def main(argv: list[str] | None = None) -> None:
    """Profile the accepts and print where their time goes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accepts", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    services = start_services()
    broker = start_broker(services, ProfilingHost)
    try:
        ops = services.fakes.agents["ops"]
        sources = [ops.create_thread(f"Ops: profile client {i}")["id"] for i in range(args.clients)]
        watch = ThreadWatch(services.fakes.agents["checkout"]).start()
        watch.wait(post_handoff(broker.client, sources[0])[0])  # warm-up
        watch.stop()
        ProfilingHost.durations.clear()
        plain = _accepts(broker.host.url, sources, args.accepts)
        _summary("without profiler", plain, list(ProfilingHost.durations))
        ProfilingHost.durations.clear()
        ProfilingHost.profiling = True
        before = COUNTS.by_label().get(ACCEPT_FUNCTION, {})
        profiled = _accepts(broker.host.url, sources, args.accepts)
        ProfilingHost.profiling = False
        _summary("with profiler", profiled, list(ProfilingHost.durations))
        after = COUNTS.by_label().get(ACCEPT_FUNCTION, {})
        requests = {kind: (after[kind] - before.get(kind, 0)) / len(profiled) for kind in after}
        print(f"storage requests per accept: {requests}")
        stats = pstats.Stats(ProfilingHost.profiles[0], stream=io.StringIO())
        for profile in ProfilingHost.profiles[1:]:
            stats.add(profile)
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats(args.top)
        print("\nmilliseconds per accept (profiled, cumulative):")
        for label, value in breakdown(stats, len(ProfilingHost.profiles)):
            print(f"  {label:62s} {value:8.1f}")
        print(f"\ncumulative seconds over {len(ProfilingHost.profiles)} profiled accepts:")
        print(out.getvalue())
    finally:
        broker.stop()
        services.stop()


if __name__ == "__main__":
    main()
