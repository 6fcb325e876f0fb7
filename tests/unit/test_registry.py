import json

import pytest

from handoff.domain.registry import ConfigError, Registry

RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.App/agents/{}"
)


def agent(name, **extra):
    return {"name": name, "resourceId": RID.format(name), **extra}


def test_lookup_by_name_or_resource_id_case_insensitive():
    registry = Registry.from_data({"agents": [agent("ops"), agent("checkout")]})
    assert registry.find("CHECKOUT").name == "checkout"
    assert registry.find(RID.format("checkout").upper()).name == "checkout"
    assert registry.find("nobody") is None
    assert registry.by_name("ops").resource_name == "ops"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (agent("a", endpoint="https://evil.example.com"), "agents[0]"),
        (agent("a", endpoint="http://x--1.eastus2.azuresre.ai"), "https"),
        (agent("a", endpoint="http://127.0.0.1:9000"), "allowInsecureLocal"),
        (agent("a", endpoint="http://10.0.0.5:9000", allowInsecureLocal=True), "azuresre.ai"),
        ({"name": "a", "resourceId": "/subscriptions/x/resourceGroups/y"}, "agents[0].resourceId"),
        (agent("a", delivery={"mode": "httpTrigger"}), "agents[0].delivery.triggerUrl"),
        (agent("a", delivery={"mode": "carrierPigeon"}), "agents[0].delivery"),
        (agent("bad name!"), "agents[0].name"),
        (agent("a", colour="red"), "agents[0].colour"),
    ],
)
def test_invalid_entries_name_the_field(entry, expected):
    with pytest.raises(ConfigError) as info:
        Registry.from_data({"agents": [entry]})
    assert expected in str(info.value)


def test_loopback_allowed_only_when_opted_in():
    registry = Registry.from_data(
        {"agents": [agent("a", endpoint="http://127.0.0.1:9000", allowInsecureLocal=True)]}
    )
    assert registry.by_name("a").endpoint == "http://127.0.0.1:9000"


def test_duplicates_are_refused():
    with pytest.raises(ConfigError, match="repeats"):
        Registry.from_data({"agents": [agent("a"), agent("A")]})


def test_load_names_the_file_and_line(tmp_path):
    path = tmp_path / "handoff.config.json"
    path.write_text('{"agents": [\n  {"name": }\n]}')
    with pytest.raises(ConfigError, match=r"line 2"):
        Registry.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        Registry.load(tmp_path / "missing.json")


def test_sample_config_is_valid():
    from handoff.settings import APP_ROOT

    registry = Registry.load(APP_ROOT / "handoff.config.sample.json")
    assert [a.name for a in registry.agents] == ["ops", "checkout"]
    assert json.loads((APP_ROOT / "handoff.config.sample.json").read_text())
