"""What a started telemetry holds (see :mod:`handoff.adapters.telemetry.setup`), and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# name -> (instrument, unit, description). The only metrics the broker records.
METRICS: dict[str, tuple[Literal["counter", "histogram"], str, str]] = {
    "handoff.accepted": ("counter", "{handoff}", "Handoffs accepted, by target agent and surface"),
    "handoff.delivered": ("counter", "{handoff}", "Handoffs delivered to their target, by target agent"),
    "handoff.failed": ("counter", "{handoff}", "Handoffs that failed for good, by target agent"),
    "handoff.delivery.duration": ("histogram", "s", "Seconds from accepting a handoff to its delivery"),
    "handoff.queue.age": ("histogram", "s", "Seconds a work message waited in its queue (retry delays too)"),
    "handoff.poison": ("counter", "{message}", "Messages parked on a poison queue, by queue and op"),
}


@dataclass
class Runtime:
    """What :mod:`.setup` started: the tracer, the meter and the instruments. The SDK flushes and stops
    its providers at exit; the local host flushes them when it stops (``devserver/host.py``)."""

    exporters: tuple[str, ...]
    tracer: Any
    meter: Any
    propagator: Any
    trace_api: Any
    instruments: dict[str, Any] = field(default_factory=dict)

    def instrument(self, name: str) -> Any:
        """The counter or histogram ``name`` (one of :data:`METRICS`), made on first use."""
        found = self.instruments.get(name)
        if found is None:
            kind, unit, description = METRICS[name]
            make = self.meter.create_counter if kind == "counter" else self.meter.create_histogram
            found = self.instruments[name] = make(name, unit=unit, description=description)
        return found
