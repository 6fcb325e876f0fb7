"""The storage requests of one handoff and of one hand-back, in order: ``python -m bench.trace``.

Runs the broker in this process (see :mod:`bench.stack`), lets one handoff be delivered and handed
back, and prints each request the app made with the function that made it, its kind, method and
path (the query shortened). The queue trigger's own polls are left out.
"""

from __future__ import annotations

import time
from urllib.parse import unquote, urlsplit

from handoff.adapters.azure_storage.counting import COUNTS
from tests.e2e.helpers import handback_body

from .flows import post_handoff
from .stack import ThreadWatch, message_time, start_broker, start_services, wait_quiet, wait_until


def _show(title: str, trace: list[tuple[str, str, str]]) -> None:
    print(f"\n== {title}: {len(trace)} requests ==")
    for n, (label, kind, request) in enumerate(trace, 1):
        method, url = request.split(" ", 1)
        parts = urlsplit(url)
        path = unquote(parts.path).split("/", 2)[-1]
        query = unquote(parts.query)
        print(f"{n:3d} {label:16s} {kind:15s} {method:6s} {path[:70]}{'?' + query[:60] if query else ''}")


def main() -> None:
    """Print the traces."""
    services = start_services()
    broker = start_broker(services)
    try:
        ops = services.fakes.agents["ops"]
        watch = ThreadWatch(services.fakes.agents["checkout"]).start()
        source = ops.create_thread("Ops: trace")["id"]
        watch.wait(post_handoff(broker.client, source)[0])  # warm-up
        wait_quiet(COUNTS, quiet=0.5)
        COUNTS.start_trace()
        handoff_id = post_handoff(broker.client, source)[0]
        watch.wait(handoff_id)
        wait_quiet(COUNTS, quiet=0.5)
        _show("one handoff, POST to delivered and cross-linked", COUNTS.stop_trace())
        COUNTS.start_trace()
        body = handback_body(thread_id=watch.thread_ids[handoff_id], summary="trace hand-back")
        broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=body).raise_for_status()
        wait_until(lambda: message_time(ops, source, "trace hand-back"), timeout=60)
        time.sleep(0.1)
        wait_quiet(COUNTS, quiet=0.5)
        _show("one hand-back, POST to posted in A's thread", COUNTS.stop_trace())
        watch.stop()
    finally:
        broker.stop()
        services.stop()


if __name__ == "__main__":
    main()
