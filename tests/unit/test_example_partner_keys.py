"""The example A2A partner sends the broker's key to the broker only, and takes it from the environment."""

from __future__ import annotations

import importlib.util
from types import ModuleType, SimpleNamespace

import pytest

from handoff.settings import APP_ROOT


def _partner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("a2a_partner", APP_ROOT / "examples/a2a_partner/partner.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _card(*urls: str) -> SimpleNamespace:
    return SimpleNamespace(supported_interfaces=[SimpleNamespace(url=url) for url in urls])


def test_a_card_on_the_broker_s_origin_is_used() -> None:
    partner = _partner()
    partner.check_card_origin(_card("https://broker.example.com/api/a2a"), "https://broker.example.com")
    partner.check_card_origin(_card("https://BROKER.example.com:443/api/a2a"), "https://broker.example.com/")


@pytest.mark.parametrize(
    "url",
    [
        "https://collector.example.net/api/a2a",
        "http://broker.example.com/api/a2a",  # the key in clear text
        "https://broker.example.com:8443/api/a2a",
    ],
)
def test_a_card_that_points_elsewhere_gets_no_key(url: str) -> None:
    partner = _partner()
    with pytest.raises(SystemExit, match=r"off https://broker\.example\.com"):
        partner.check_card_origin(
            _card("https://broker.example.com/api/a2a", url), "https://broker.example.com"
        )


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    partner = _partner()
    monkeypatch.setenv("HANDOFF_KEY", "from-the-environment")
    seen: dict[str, object] = {}

    async def hand_off(
        broker: str, request: object, headers: dict[str, str], timeout: float
    ) -> dict[str, object]:
        seen["headers"] = headers
        return {"id": "t1", "status": {"state": "TASK_STATE_COMPLETED"}}

    monkeypatch.setattr(partner, "hand_off", hand_off)
    assert partner.main(["--broker", "https://broker.example.com"]) == 0
    assert seen["headers"] == {"x-functions-key": "from-the-environment"}
