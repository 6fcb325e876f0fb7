"""A broker with an Azurite of its own, so a test can take storage away without disturbing the others."""

from __future__ import annotations

import pytest

from devserver.azurite import start_azurite
from tests.support.broker import BrokerProcess, broker_settings


@pytest.fixture
def own_storage_broker(fakes, registry_config, tmp_path):
    """``(broker, azurite)``: the broker under the local host with its own Azurite."""
    azurite = start_azurite()
    env = broker_settings(fakes, registry_config, azurite.connection_string, tmp_path)
    try:
        with BrokerProcess.running(env, tmp_path / "host.log") as broker:
            yield broker, azurite
    finally:
        azurite.stop()
