"""``make bench``: how close the broker is to the storage floor, in one run.

Starts Azurite, simulated SRE Agents, an A2A partner and the broker (the local host, in this
process, counting its storage requests), measures the floor directly with the SDKs against the same
Azurite, then the broker: storage transactions per handoff, latencies, throughput, cold start and an
alert storm. Prints every figure as ``name value unit (ratio to floor)`` and writes the figures and
their raw samples to ``bench/results/<YYYY-MM-DD>.json`` (``python -m bench.chart`` draws them).

    python -m bench.run            # the full run (4 to 6 minutes on 2 cores)
    python -m bench.run --quick    # a short run while developing
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handoff.adapters.azure_storage.counting import COUNTS

from . import cold_start, floor, flows, storm
from .cpu import ceiling
from .flows import ACCEPT_FUNCTION, WORK_FUNCTIONS
from .stack import ROOT, Broker, Services, ThreadWatch, counted, start_broker, start_services, wait_quiet
from .stats import Report, median, ms, percentile

RESULTS = ROOT / "bench" / "results"
# Targets of the project (docs/performance.md).
TARGET_ACCEPT, TARGET_DELIVERED, TARGET_HANDBACK = 2, 6, 5
# Steady load offers this share of the throughput measured at saturation in the same run.
STEADY_SHARE = 0.5


@dataclass(frozen=True)
class Plan:
    """How much of everything one run does."""

    floor_rounds: int
    saturation_seconds: float
    idle_seconds: float
    sequential: int
    a2a: int
    load_clients: int
    load_seconds: float
    saturation_clients: int
    throughput_seconds: float
    storm_alerts: int
    storm_ids: int
    storm_clients: int
    burst_handoffs: int
    burst_clients: int
    cold_starts: int
    import_runs: int


FULL = Plan(150, 5.0, 30.0, 40, 10, 4, 20.0, 16, 20.0, 1000, 50, 8, 200, 8, 3, 5)
QUICK = Plan(30, 2.0, 4.0, 10, 3, 4, 5.0, 16, 5.0, 200, 50, 8, 50, 8, 1, 2)


def _p(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 99)


def _sum(*pairs: tuple[float, float]) -> tuple[float, float]:
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def report_floor(report: Report, data: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Print the floor; returns p50/p99 (seconds) per operation and the derived floors."""
    report.section("floor (SDK / httpx directly, same Azurite and agent)")
    names = {
        "tableInsert": "table insert",
        "batch4": "entity-group batch (4 entities)",
        "pointRead": "point read",
        "queueSend": "queue send",
        "receiveDelete": "queue receive + delete",
        "createThread": "create thread on the agent (HTTP)",
        "postMessage": "post message to a thread (HTTP)",
    }
    p = {key: _p(data["samples"][key]) for key in names}
    for key, name in names.items():
        n = len(data["samples"][key])
        report.add(f"floor {name} p50", p[key][0] * 1000, "ms", basis="floor", n=n)
        report.add(f"floor {name} p99", p[key][1] * 1000, "ms", basis="floor", n=n)
    saturation = data["saturation"]
    report.add(
        f"floor Azurite saturation ({saturation['threads']} threads inserting)",
        saturation["opsPerSecond"],
        "ops/s",
        basis="floor",
    )
    azurite_cpu = saturation.get("azuriteCpuSeconds")
    if azurite_cpu is not None:
        report.add("floor Azurite CPU at saturation", azurite_cpu / saturation["seconds"] * 100,
                   "% of a core", basis="floor")  # fmt: skip
        report.add("floor Azurite CPU per storage request", azurite_cpu * 1000 / saturation["operations"],
                   "ms", basis="floor")  # fmt: skip
    # What each path cannot do without (storage layout 2): an accept is one batch and one queue send; a
    # delivery adds the message's receive + delete, the two agent calls (B's thread, the link in A's) and
    # the batch that records them; a hand-back posts one message instead; an A2A hand-back is the batch
    # that records the partner's result and the message in A's thread.
    p["accept"] = _sum(p["batch4"], p["queueSend"])
    p["postToThread"] = _sum(
        p["accept"], p["receiveDelete"], p["createThread"], p["postMessage"], p["batch4"]
    )
    # The part of POST → thread after the queue wait (which holds the receive that found the message):
    # the accept, then the delivery's batch that takes the lease and the call that creates B's thread.
    p["ownPath"] = _sum(p["accept"], p["batch4"], p["createThread"])
    p["handback"] = _sum(p["accept"], p["receiveDelete"], p["postMessage"], p["batch4"])
    p["a2aHandback"] = _sum(p["batch4"], p["postMessage"])
    return p


@dataclass
class Background:
    """Storage requests per second with no traffic: the app's (timers, sweeper) and the trigger's polls."""

    app: float = 0.0
    trigger: float = 0.0


BACKGROUND = Background()


def report_counts(report: Report, name: str, per: dict[str, Any], target: float | None) -> None:
    """One transactions-per-item figure, with its split by kind printed below it.

    Requests of background functions (timers, the sweeper, status reads) in the same window are left
    out; printed with what the idle rate predicts for the window, as a check that nothing was missed.
    """
    basis = f"target ≤ {target}" if target is not None else "no target"
    report.add(name, per["total"], "requests", basis_value=target, basis=basis, n=per["items"])
    for function, kinds in per["byFunction"].items():
        split = ", ".join(f"{kind} {count:.2g}" for kind, count in kinds.items())
        print(f"    {function}: {split}")
    expected = BACKGROUND.app * per["seconds"] / per["items"]
    print(
        f"    left out: {per['background']:.2g} per item of timers, the sweeper and status reads "
        f"(the idle rate predicts {expected:.2g})"
    )
    if per["trigger"]:
        split = ", ".join(f"{kind} {count:.2g}" for kind, count in sorted(per["trigger"].items()))
        print(f"    queue trigger (the host's own, not counted above): {split}")


def idle_window(report: Report, seconds: float) -> dict[str, Any]:
    """Storage requests with nothing to do (timers, the sweeper, queue polling), per minute."""
    report.section(f"idle background ({seconds:.0f} s with no traffic)")
    with counted() as counts:
        time.sleep(seconds)
    BACKGROUND.app = sum(sum(kinds.values()) for kinds in counts["app"].values()) / counts["seconds"]
    BACKGROUND.trigger = sum(sum(kinds.values()) for kinds in counts["trigger"].values()) / counts["seconds"]
    app, trigger = BACKGROUND.app * 60, BACKGROUND.trigger * 60
    report.add("idle app storage requests", app, "per minute", basis="timers and sweeper; left out below")
    report.add("idle queue-trigger polls", trigger, "per minute", basis="the host's; left out below")
    return counts


def run(plan: Plan, quick: bool) -> Report:
    """Run every measurement of ``plan``; returns the report (figures and raw data)."""
    report = Report()
    report.data.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        quick=quick,
        plan=plan.__dict__,
        machine={"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
    )
    services = start_services()
    try:
        floor_data = floor.measure(services, plan.floor_rounds, plan.saturation_seconds)
        report.data["floor"] = {
            "samplesMs": {key: ms(values) for key, values in floor_data["samples"].items()},
            "saturation": floor_data["saturation"],
        }
        floors = report_floor(report, floor_data)
        report.data["broker"] = measure_broker(report, services, plan, floors, floor_data)
        report.data["coldStart"] = measure_cold_start(report, services, plan)
    finally:
        services.stop()
    return report


def report_queue_wait(
    report: Report, where: str, timings: flows.Timings, floors: dict[str, tuple[float, float]]
) -> None:
    """POST → thread split where the host starts ``deliver``: the wait for the queue trigger's next poll
    (the platform's, no floor) and the rest, the broker's own path, against its floor (accept, the lease
    batch, the thread's creation)."""
    report.latency(
        f"of which queue wait{where} (202 → deliver starts)", timings.queue_wait, None, "the host's polling"
    )
    own = f"POST → thread{where}, the queue wait left out"
    report.latency(own, timings.without_queue_wait, floors["ownPath"], "floor accept + batch + thread")
    if timings.unsplit:
        print(f"    {timings.unsplit} handoff(s) left out of the split: the host's start was not seen")


def report_cpu(
    report: Report,
    item: str,
    items_label: str,
    timings: flows.Timings,
    floor_rate: float,
    per_core_parts: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> dict[str, Any]:
    """CPU per ``item`` while the clients ran (Azurite's, and this process's: broker, simulated agents and
    clients), and the most items a second this machine's CPUs allow at that cost, against the
    floor-derived rate: Azurite is one Node process (one core at most) and the whole run shares the
    machine's cores. A target above that ceiling cannot be met here, however fast the broker's code."""
    use = timings.cpu
    if use is None or use.azurite is None:
        return {}
    items = max(1, timings.completed)
    azurite_ms, here_ms = use.azurite * 1000 / items, use.here * 1000 / items
    report.add(f"Azurite CPU per {item}", azurite_ms, "ms", basis="CPU")
    report.add(f"this process's CPU per {item} (broker, agents, clients)", here_ms, "ms", basis="CPU")
    cores = os.cpu_count() or 1
    most = min(ceiling(azurite_ms, 1), ceiling(azurite_ms + here_ms, cores))
    report.add(f"CPU ceiling on this machine ({cores} cores), {items_label}", most, "per s",
               basis_value=floor_rate, basis="floor-derived")  # fmt: skip
    # What a Functions worker process spends: the broker's functions, without the local host's HTTP
    # server and queue listener, the simulated agents and the clients that share this process here.
    by_function = {name: spent * 1000 / items for name, spent in sorted(use.functions.items()) if spent > 0}
    functions_ms = sum(by_function.values())
    report.add(f"of which in the broker's functions, per {item}", functions_ms, "ms", basis="CPU")
    print("    " + ", ".join(f"{name or 'other'} {spent:.3g} ms" for name, spent in by_function.items()))
    # With only some functions on a core (Flex Consumption scales HTTP functions and each queue
    # function on instances of their own), what a core could do of each part.
    for label, names in per_core_parts:
        spent = sum(by_function.get(name, 0.0) for name in names)
        report.add(f"one core running only {label}", ceiling(spent, 1), "per s",
                   basis_value=floor_rate, basis="floor-derived")  # fmt: skip
    return {"azuriteMs": azurite_ms, "processMs": here_ms, "functionsMs": by_function, "cores": cores,
            "ceiling": most, "wallSeconds": use.wall, "items": timings.completed}  # fmt: skip


@dataclass
class BrokerPhases:
    """The measurements made through the broker running in this process; each fills :attr:`data`."""

    report: Report
    services: Services
    broker: Broker
    plan: Plan
    floors: dict[str, tuple[float, float]]
    floor_ops_per_second: float
    data: dict[str, Any] = field(
        default_factory=lambda: {"transactions": {}, "latencyMs": {}, "throughput": {}, "cpu": {}}
    )

    def warm_up(self) -> None:
        """One handoff (builds the clients, opens connections), then the idle window."""
        warm = ThreadWatch(self.services.fakes.agents["checkout"]).start()
        source = self.services.fakes.agents["ops"].create_thread("Ops: warm-up")["id"]
        warm.wait(flows.post_handoff(self.broker.client, source)[0])
        warm.stop()
        wait_quiet(COUNTS, quiet=0.5)
        self.data["idle"] = idle_window(self.report, self.plan.idle_seconds)

    def sequential(self) -> None:
        """Handoffs and hand-backs one at a time: transactions and latencies."""
        report, floors = self.report, self.floors
        report.section(f"sequential: {self.plan.sequential} handoffs and hand-backs, one at a time")
        timings, per, delivered = flows.sequential(self.broker, self.services, self.plan.sequential)
        handback, handback_per = flows.hand_backs(self.broker, self.services, delivered)
        report_counts(report, "storage transactions per accepted handoff", per["accepted"], TARGET_ACCEPT)
        report_counts(
            report, "storage transactions per delivered handoff", per["delivered"], TARGET_DELIVERED
        )
        report_counts(report, "storage transactions per hand-back", handback_per, TARGET_HANDBACK)
        report.latency("accept (POST → 202)", timings.accept, floors["accept"], "floor batch + send")
        report.latency("POST → thread on B", timings.post_to_thread, floors["postToThread"], "floor path")
        report_queue_wait(report, "", timings, floors)
        report.latency("hand-back (POST → message in A)", handback, floors["handback"], "floor path")
        self.data["transactions"].update(
            accepted=per["accepted"], delivered=per["delivered"], handback=handback_per
        )
        self.data["latencyMs"].update(
            accept=ms(timings.accept),
            postToThread=ms(timings.post_to_thread),
            queueWait=ms(timings.queue_wait),
            withoutQueueWait=ms(timings.without_queue_wait),
            handback=ms(handback),
        )

    def a2a(self) -> None:
        """Handoffs to A2A partners: from a task completing to the message in A's thread, for a partner
        that pushes and for one the broker polls (adaptively, from 1 s towards the 30 s interval)."""
        self.report.section(f"A2A: {self.plan.a2a} handoffs to each partner, one at a time")
        for push, label, key in ((True, "pushes", "a2aPushHandback"), (False, "polled", "a2aHandback")):
            samples, per = flows.a2a_hand_backs(self.broker, self.services, self.plan.a2a, push=push)
            report_counts(self.report, f"storage transactions per A2A handoff, partner {label}", per, None)
            name = f"A2A hand-back, partner {label} (task done → message in A)"
            self.report.latency(name, samples, self.floors["a2aHandback"], "floor")
            self.data["transactions"]["a2aPush" if push else "a2a"] = per
            self.data["latencyMs"][key] = ms(samples)

    def load(self) -> None:
        """Steady load: arrivals at half the saturated throughput, none waiting for a delivery."""
        plan, floors, report = self.plan, self.floors, self.report
        rate = STEADY_SHARE * self.data["throughput"]["saturated"]
        report.section(
            f"steady load: {rate:.1f} handoffs/s (half the saturated throughput) from "
            f"{plan.load_clients} clients for {plan.load_seconds:.0f} s"
        )
        load, per = flows.open_loop(self.broker, self.services, rate, plan.load_seconds, plan.load_clients)
        report.latency("accept under load", load.accept, floors["accept"], "floor batch + send")
        report.latency("POST → thread under load", load.post_to_thread, floors["postToThread"], "floor path")
        report_queue_wait(report, " under load", load, floors)
        report.add("handoffs delivered under load", load.completed / load.seconds, "per s", basis="no floor")
        self.data["transactions"]["load"] = per
        self.data["latencyMs"].update(
            loadAccept=ms(load.accept),
            loadPostToThread=ms(load.post_to_thread),
            loadQueueWait=ms(load.queue_wait),
            loadWithoutQueueWait=ms(load.without_queue_wait),
        )
        self.data["throughput"].update(load=load.completed / load.seconds, loadOffered=rate)

    def saturation(self) -> None:
        """Many clients: handoffs delivered per second against the floor-derived rate."""
        plan, report = self.plan, self.report
        report.section(f"saturation: {plan.saturation_clients} clients for {plan.throughput_seconds:.0f} s")
        sat, per = flows.closed_loop(
            self.broker, self.services, plan.saturation_clients, plan.throughput_seconds
        )
        report_counts(report, "storage transactions per delivered handoff (saturated)", per, TARGET_DELIVERED)
        throughput = sat.completed / sat.seconds
        floor_rate = self.floor_ops_per_second / self.data["transactions"]["delivered"]["total"]
        report.add(
            "floor-derived throughput (floor ops/s ÷ transactions)", floor_rate, "per s", basis="floor"
        )
        report.add(
            "throughput at saturation", throughput, "per s", basis_value=floor_rate, basis="floor-derived"
        )
        report.latency(
            "POST → thread at saturation", sat.post_to_thread, self.floors["postToThread"], "floor path"
        )
        self.data["transactions"]["saturated"] = per
        both = (("the broker's functions (accept and delivery), delivered handoffs", WORK_FUNCTIONS),)
        self.data["cpu"]["saturated"] = report_cpu(
            report, "delivered handoff", "delivered handoffs", sat, floor_rate, both
        )
        self.data["latencyMs"].update(
            saturatedAccept=ms(sat.accept), saturatedPostToThread=ms(sat.post_to_thread)
        )
        self.data["throughput"].update(
            saturated=throughput, saturatedClients=plan.saturation_clients, floorDerived=floor_rate
        )

    def burst(self) -> None:
        """Many POSTs at once from a few clients, none waiting: accepts per second against the floor."""
        plan, report = self.plan, self.report
        report.section(f"accept burst: {plan.burst_handoffs} handoffs from {plan.burst_clients} clients")
        timings, per = flows.burst(self.broker, self.services, plan.burst_handoffs, plan.burst_clients)
        rate = timings.completed / timings.seconds
        floor_rate = self.floor_ops_per_second / self.data["transactions"]["accepted"]["total"]
        name = "floor-derived accepts (floor ops/s ÷ transactions per accept)"
        report.add(name, floor_rate, "per s", basis="floor")
        report.add(
            f"accepts in a burst from {plan.burst_clients} clients",
            rate,
            "per s",
            basis_value=floor_rate,
            basis="floor-derived",
        )
        report.latency("accept in a burst", timings.accept, self.floors["accept"], "floor batch + send")
        self.data["transactions"]["burst"] = per
        accepts = (("the accept function (an HTTP instance of its own), accepts", (ACCEPT_FUNCTION,)),)
        self.data["cpu"]["burst"] = report_cpu(
            report, "accept in the burst", "accepts in the burst", timings, floor_rate, accepts
        )
        self.data["latencyMs"]["burstAccept"] = ms(timings.accept)
        self.data["throughput"].update(
            burstAccepts=rate, burstClients=plan.burst_clients, burstFloorDerived=floor_rate
        )

    def alert_storm(self) -> None:
        """Many alerts over a few ids at once: time to quiet down, threads, transactions."""
        plan, report = self.plan, self.report
        report.section(
            f"alert storm: {plan.storm_alerts} alerts over {plan.storm_ids} ids, {plan.storm_clients} clients"
        )
        data = storm.alert_storm(
            self.broker, self.services, plan.storm_alerts, plan.storm_ids, plan.storm_clients
        )
        report.add("alert storm: time to quiesce", data["quiesceSeconds"], "s", basis="no floor")
        report.add("alert storm: threads created", data["threadsCreated"], "threads", basis="no floor")
        report.add(
            "alert storm: alerts accepted", data["alerts"] / data["postSeconds"], "per s", basis="no floor"
        )
        per_alert = data["storageRequests"] / data["alerts"]
        report.add("alert storm: storage transactions per alert", per_alert, "requests", basis="no floor")
        print(f"    answers: {data['statuses']}")
        self.data["alertStorm"] = {**data, "latencies": ms(data["latencies"])}


def measure_broker(
    report: Report, services: Services, plan: Plan, floors: dict[str, tuple[float, float]], floor_data: dict
) -> dict[str, Any]:
    """Everything measured through the broker running in this process."""
    broker = start_broker(services)
    ops_per_second = floor_data["saturation"]["opsPerSecond"]
    phases = BrokerPhases(report, services, broker, plan, floors, ops_per_second)
    try:
        phases.warm_up()
        phases.sequential()
        phases.a2a()
        phases.saturation()
        phases.load()
        phases.burst()
        phases.alert_storm()
    finally:
        broker.stop()
    phases.data["floorsMs"] = {key: [value[0] * 1000, value[1] * 1000] for key, value in floors.items()}
    return phases.data


def measure_cold_start(report: Report, services: Services, plan: Plan) -> dict[str, Any]:
    """Host start → first accepted handoff (new process), and import times."""
    report.section("cold start")
    data = cold_start.measure(services, plan.cold_starts, plan.import_runs)
    imports = data["importMedians"]
    declared = imports["declared dependencies (requirements.txt)"]
    first = median(data["firstAccepted"])
    report.add("host start → first accepted handoff", first * 1000, "ms", basis_value=declared * 1000,
               basis="import of declared deps", n=len(data["firstAccepted"]))  # fmt: skip
    for name, seconds in imports.items():
        report.add(f"import {name}", seconds * 1000, "ms", basis_value=declared * 1000,
                   basis="import of declared deps", n=plan.import_runs)  # fmt: skip
    return data


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the figures and write the results file."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (while developing)")
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/<date>.json)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(QUICK if args.quick else FULL, args.quick)
    report.data["seconds"] = time.perf_counter() - started
    default = RESULTS / f"{report.data['date']}{'-quick' if args.quick else ''}.json"
    out = args.out or default
    report.write(out)
    print(f"\n{len(report.figures)} figures in {report.data['seconds']:.0f} s; written to {out}")
    print(f"chart: python -m bench.chart {out}")


if __name__ == "__main__":
    main()
