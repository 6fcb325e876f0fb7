"""`make run` and the local host end a failed start with one line: a port already taken, an invalid
registry. A bug in the app still shows its traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver.azurite import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).parent / "sample_app"
BROKEN_REGISTRY = '{"agents": [{"name": "ops"'


def _env(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HANDOFF_", "IDENTITY_", "AzureWebJobs", "SAMPLE_", "DEVHOST_"))
    }
    env.update(values)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (here: a listening socket) holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _storage() -> dict[str, str]:
    # Set, so that `make run` starts no Azurite; never reached, the start fails before.
    return {
        "HANDOFF_STORAGE": "UseDevelopmentStorage=true",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }


def test_make_run_with_the_port_taken_says_so_in_one_line(taken_port: int) -> None:
    done = _run(["-m", "devserver.run"], _env(HANDOFF_LOCAL_PORT=str(taken_port)))
    assert done.returncode == 1
    assert done.stderr == f"port {taken_port} is in use; set HANDOFF_LOCAL_PORT to another port\n"
    assert done.stdout == ""


def test_local_host_with_the_port_taken_says_so_in_one_line(taken_port: int) -> None:
    done = _run(["-m", "devserver.host", "--app-root", str(SAMPLE), "--port", str(taken_port)], _env())
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        f"Cannot start the host: port {taken_port} is in use; choose another with --port"
    )


def test_local_host_with_an_invalid_registry_prints_its_message_alone(tmp_path: Path) -> None:
    registry = tmp_path / "handoff.config.json"
    registry.write_text(BROKEN_REGISTRY)
    env = _env(HANDOFF_CONFIG=str(registry), **_storage())
    done = _run(["-m", "devserver.host", "--app-root", str(ROOT), "--port", str(free_port())], env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"Cannot start the host: {registry} is not valid JSON: line 1 column 27: Expecting ',' delimiter"
        )
    )


def test_make_run_with_an_invalid_registry_prints_its_message_alone(tmp_path: Path) -> None:
    registry = tmp_path / "handoff.config.json"
    registry.write_text(BROKEN_REGISTRY)
    env = _env(
        HANDOFF_CONFIG=str(registry),
        HANDOFF_LOCAL_PORT=str(free_port()),
        IDENTITY_ENDPOINT="http://127.0.0.1:9/token",
        **_storage(),
    )
    done = _run(["-m", "devserver.run"], env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"{registry} is not valid JSON: line 1 column 27: Expecting ',' delimiter"
    )


def test_a_bug_in_the_app_still_shows_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("def setup():\n    raise ValueError('not a refusal')\n")
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\nimport helper\nhelper.setup()\napp = func.FunctionApp()\n"
    )
    done = _run(["-m", "devserver.host", "--app-root", str(tmp_path), "--port", str(free_port())], _env())
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert "ValueError: not a refusal" in done.stderr
