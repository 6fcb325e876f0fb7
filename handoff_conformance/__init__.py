"""``handoff-conformance``: checks that a broker honours the handoff contract (``handoffContext`` v1).

It drives a broker only through its public REST surface (``/api/handoffs`` ...) and plays both agents
itself with two simulated SRE Agents it starts on loopback (:mod:`handoff_conformance.agents`): the
broker under test must name them in its registry (``handoff-conformance --print-registry``). Each
scenario (:mod:`handoff_conformance.scenarios`) passes or fails on its own; the command prints a table
and exits non-zero when one fails. The same scenarios run under pytest with
``-p handoff_conformance.pytest_plugin --conformance-url URL`` (:mod:`handoff_conformance.pytest_plugin`).
"""

from handoff_conformance.agents import SimulatedAgents
from handoff_conformance.runner import Options, Result, run
from handoff_conformance.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "Options", "Result", "SimulatedAgents", "run"]
