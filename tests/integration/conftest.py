"""A broker with an Azurite of its own, so a test can take storage away without disturbing the others."""

from __future__ import annotations

import json

import pytest

from devserver.azurite import start_azurite
from tests.support.broker import BrokerProcess


@pytest.fixture
def own_storage_broker(fakes, registry_config, tmp_path):
    """``(broker, azurite)``: the broker under the local host with its own Azurite."""
    azurite = start_azurite()
    config = tmp_path / "handoff.config.json"
    config.write_text(json.dumps(registry_config))
    env = {
        **fakes.env(),
        "HANDOFF_CONFIG": str(config),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
    }
    try:
        with BrokerProcess.running(env, tmp_path / "host.log") as broker:
            yield broker, azurite
    finally:
        azurite.stop()
