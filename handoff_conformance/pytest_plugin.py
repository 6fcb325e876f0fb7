"""The kit as a pytest plugin: ``pytest -p handoff_conformance.pytest_plugin --conformance-url URL``
(installed, it is also registered under the ``pytest11`` entry point, so ``-p`` is not needed).

With ``--conformance-url`` every scenario becomes a test item ``conformance[<scenario>]`` that passes or
fails on its own; without it the plugin only adds its options. The simulated agents take the options
``--conformance-source-agent``/``--conformance-target-agent`` and ``--conformance-source-port``/
``--conformance-target-port``, as the command's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from handoff_conformance.agents import SOURCE, TARGET, SimulatedAgents
from handoff_conformance.runner import Failure, NotSimulated, Options, Session, check_simulated
from handoff_conformance.scenarios import SCENARIOS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handoff-conformance")
    group.addoption("--conformance-url", help="run the handoff contract scenarios against this broker")
    group.addoption("--conformance-source-agent", default=SOURCE)
    group.addoption("--conformance-target-agent", default=TARGET)
    group.addoption("--conformance-source-port", type=int, default=7301)
    group.addoption("--conformance-target-port", type=int, default=7302)
    group.addoption("--conformance-timeout", type=float, default=30.0)
    group.addoption("--conformance-only", action="append", default=[], choices=list(SCENARIOS))


class ScenarioItem(pytest.Item):
    """One scenario run as a test."""

    def __init__(self, *, scenario: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    def runtest(self) -> None:
        session: Session = self.config.stash[_SESSION]
        detail = SCENARIOS[self.scenario](session)
        self.add_report_section("call", "conformance", detail or "ok")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, Failure):
            return f"{self.scenario}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "handoff-conformance", None, f"conformance[{self.scenario}]"


_SESSION = pytest.StashKey[Session]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[Any]) -> None:
    url = config.getoption("--conformance-url")
    if not url:
        return
    only = config.getoption("--conformance-only") or list(SCENARIOS)
    items[:] = [
        ScenarioItem.from_parent(session, name=f"conformance[{name}]", scenario=name)
        for name in SCENARIOS
        if name in only
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    config = session.config
    url = config.getoption("--conformance-url")
    if not url:
        yield
        return
    import httpx

    agents = SimulatedAgents(
        config.getoption("--conformance-source-agent"),
        config.getoption("--conformance-target-agent"),
        config.getoption("--conformance-source-port"),
        config.getoption("--conformance-target-port"),
    ).start()
    options = Options(url, timeout=config.getoption("--conformance-timeout"))
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as http:
        try:
            check_simulated(http, agents)
        except NotSimulated as refused:
            agents.stop()
            pytest.exit(f"handoff-conformance: {refused}", returncode=pytest.ExitCode.USAGE_ERROR)
        config.stash[_SESSION] = Session(options, agents, http)
        try:
            yield
        finally:
            agents.stop()
