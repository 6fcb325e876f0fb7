"""Run the real broker (function_app under the local host) as a subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from devserver.azurite import PORT_TRIES, free_port

ROOT = Path(__file__).resolve().parents[2]


def broker_settings(
    fakes: Any, registry_config: dict[str, Any], storage: str, workdir: Path, **more: str
) -> dict[str, str]:
    """App settings of a broker of the test's own: the simulated services, ``registry_config`` written to
    a file in ``workdir``, the storage connection string ``storage`` (for the app and the host), and
    ``more`` on top."""
    config = workdir / "handoff.config.json"
    config.write_text(json.dumps(registry_config))
    return {
        **fakes.env(),
        "HANDOFF_CONFIG": str(config),
        "HANDOFF_STORAGE": storage,
        "AzureWebJobsStorage": storage,
        **more,
    }


class BrokerProcess:
    """``python -m devserver.host`` serving this repository's function_app on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log_start = log_path.stat().st_size if log_path.exists() else 0  # this run's lines follow
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HANDOFF_", "IDENTITY_"))}
        full_env.update(env)
        full_env.setdefault("HANDOFF_PUBLIC_URL", self.url)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devserver.host", "--app-root", str(ROOT), "--port", str(self.port)],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @classmethod
    @contextlib.contextmanager
    def running(cls, env: dict[str, str], log_path: Path) -> Iterator[BrokerProcess]:
        """A broker started with ``env`` and healthy, stopped when the block ends (however it ends)."""
        process = cls.started(env, log_path)
        try:
            yield process
        finally:
            process.stop()

    @classmethod
    def started(cls, env: dict[str, str], log_path: Path) -> BrokerProcess:
        """A broker started with ``env`` on a free port and healthy. A port picked free can be taken by
        another process before the host binds it (parallel test workers): the host then exits saying
        so, and the broker is started again on another port."""
        for attempt in range(1, PORT_TRIES + 1):
            process = cls(env, log_path)
            try:
                process.wait_healthy()
                return process
            except RuntimeError:
                process.stop()
                if attempt == PORT_TRIES or "is in use" not in process.own_logs():
                    raise
        raise RuntimeError("the broker did not start")  # only reached with PORT_TRIES < 1

    def own_logs(self) -> str:
        """What this run of the host printed (the log file may hold an earlier run's lines first)."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def wait_healthy(self, timeout: float = 60) -> None:
        """Wait until ``/api/health`` answers 200 and this process says it serves the port (another
        process answering on it does not count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.logs()[-4000:]}")
            try:
                if (
                    self.client.get("/api/health").status_code == 200
                    and f"Host started: {self.url}" in self.own_logs()
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"broker not healthy within {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        """Everything the host printed so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the host: no shutdown, nothing finished, queue messages left in flight (a crash)."""
        self.process.kill()
        self.process.wait(timeout=20)
        self.client.close()
        self._log.close()

    def stop(self) -> None:
        """Stop the host (SIGTERM, then kill)."""
        self.client.close()
        if self._log.closed:
            return  # killed already
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    # ------------------------------------------------------------- helpers for tests

    def wait_for(self, handoff_id: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
        """Poll ``GET /api/handoffs/{id}`` until ``predicate(body)`` holds; returns the body. The default
        wait is generous: on a 2-core CI machine a step can take seconds, and a pass returns at once."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.client.get(f"/api/handoffs/{handoff_id}")
            if response.status_code == 200:
                body = response.json()
                if predicate(body):
                    return body
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s; last: {json.dumps(body)[:2000]}")

    def wait_status(self, handoff_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        """Poll until the handoff has ``status``."""
        return self.wait_for(handoff_id, lambda body: body["status"] == status, timeout)

    def audit_types(self, handoff_id: str) -> list[str]:
        """The audit event types in order."""
        return [
            event["type"] for event in self.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
        ]
