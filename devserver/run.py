"""``make run``: the broker on http://127.0.0.1:7071 with everything it needs on this machine.

Starts Azurite (data in ``.run/azurite``), a local managed-identity token endpoint and two simulated
SRE Agents (``ops`` and ``checkout``) wired by a generated registry, then the app under the local
Functions host. Thread links (``threadUrl``, the links posted into threads) open the simulated agents'
pages in a browser (``HANDOFF_PORTAL_URL``, devserver/fakes/portal.py). Settings already in the
environment win: with ``HANDOFF_CONFIG`` set no simulated agents start (your registry is used as is),
with ``IDENTITY_ENDPOINT`` set no token endpoint starts, and with both ``HANDOFF_STORAGE`` and
``AzureWebJobsStorage`` set no Azurite starts. ``HANDOFF_LOCAL_PORT`` moves the app off 7071.
A taken port or an invalid registry ends the command with one line and exit code 1.
Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from devserver.azurite import Azurite, free_port, start_azurite
from devserver.fakes.stack import FakeStack, start_fake_stack
from devserver.host import LocalHost, PortInUse, configure_logging
from devserver.hostlib.startup import port_in_use, refusal_message

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
STORAGE_SETTINGS = ("HANDOFF_STORAGE", "AzureWebJobsStorage")


def _local_port() -> int:
    value = os.environ.get("HANDOFF_LOCAL_PORT", "7071")
    if not value.isdigit() or not 0 < int(value) < 65536:
        sys.exit(f"HANDOFF_LOCAL_PORT must be a TCP port number, got {value!r}")
    return int(value)


PORT = _local_port()
PORT_IN_USE = f"port {PORT} is in use; set HANDOFF_LOCAL_PORT to another port"


def _port_or_free(preferred: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def _start_storage() -> Azurite:
    # The standard ports let Azure Storage Explorer attach; another Azurite may hold them already.
    return start_azurite(
        RUN_DIR / "azurite",
        blob_port=_port_or_free(10000),
        queue_port=_port_or_free(10001),
        table_port=_port_or_free(10002),
    )


def _write_registry(stack: FakeStack) -> Path:
    config = stack.registry_config()
    descriptions = {
        "ops": "Simulated central operations agent (the one that hands off).",
        "checkout": "Simulated checkout product agent (receives handoffs, replies after a moment).",
    }
    for agent in config["agents"]:
        agent["description"] = descriptions.get(agent["name"], "Simulated agent")
    path = RUN_DIR / "handoff.config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _example(stack: FakeStack | None, base: str) -> str:
    if stack is None:
        return f"  curl -s {base}/api/health\n"
    ops = stack.agents["ops"]
    thread = ops.create_thread("Ops investigation: exception burst in checkout-api", display_name="On-call")
    body: dict[str, Any] = {
        "source": {"agent": "ops", "threadId": thread["id"]},
        "target": {"agent": "checkout"},
        "intent": "investigate",
        "context": {
            "title": "Exception burst in checkout-api",
            "summary": "5xx rate rose from 0.1% to 7% at 02:10 UTC after deployment 2026.11.21.3",
            "severity": "Sev2",
            "resources": [
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/shop"
                "/providers/Microsoft.Web/sites/checkout-api"
            ],
            "evidence": [
                {"kind": "kql", "title": "Top exceptions", "query": "exceptions | summarize count() by type",
                 "columns": ["type", "count_"], "rows": [["SqlException", 412], ["TimeoutException", 97]]}
            ],
            "hypotheses": ["Connection pool exhaustion after deploy"],
        },
    }  # fmt: skip
    checkout = stack.agents["checkout"]
    return (
        "Hand an investigation from ops to checkout:\n\n"
        f"  curl -s -X POST {base}/api/handoffs -H 'Content-Type: application/json' \\\n"
        f"    -d '{json.dumps(body)}'\n\n"
        "Then follow it (use the id from the answer; its threadUrl opens checkout's new thread):\n"
        f"  curl -s {base}/api/handoffs/<id>\n"
        f"  curl -s {base}/api/handoffs/<id>/audit\n\n"
        "Watch the simulated agents' threads in a browser (checkout gets a new thread; ops gets the "
        "cross-link and, later, the hand-back):\n"
        f"  ops's thread:        {stack.portal.thread_link(ops, thread['id'])}\n"
        f"  ops's threads:       {ops.endpoint}/\n"
        f"  checkout's threads:  {checkout.endpoint}/\n\n"
        "Hand back from checkout:\n"
        f"  curl -s -X POST {base}/api/handoffs/<id>/handback -H 'Content-Type: application/json' \\\n"
        '    -d \'{"agent": "checkout", "outcome": "rootCauseFound", "summary": "Pool exhausted",'
        ' "rootCause": "Max Pool Size 10", "recommendedActions": ["Roll back"]}\'\n'
    )


def _environment(azurite: Azurite | None) -> tuple[dict[str, str], FakeStack | None]:
    """The settings the host gets on top of the environment, and the simulated agents (if started)."""
    env: dict[str, str] = {}
    stack: FakeStack | None = None
    if azurite is not None:
        for name in STORAGE_SETTINGS:
            if name not in os.environ:
                env[name] = azurite.connection_string
    if "HANDOFF_CONFIG" not in os.environ:
        stack = start_fake_stack(("ops", "checkout"), agent_options={"checkout": {"auto_reply": True}})
        env["HANDOFF_CONFIG"] = str(_write_registry(stack))
        env["HANDOFF_ARM_ENDPOINT"] = stack.arm_url
        if "HANDOFF_PORTAL_URL" not in os.environ:
            env["HANDOFF_PORTAL_URL"] = stack.portal_url
    if "IDENTITY_ENDPOINT" not in os.environ and stack is not None:
        env.update(stack.env())
    env.setdefault("HANDOFF_PUBLIC_URL", os.environ.get("HANDOFF_PUBLIC_URL", f"http://127.0.0.1:{PORT}"))
    return env, stack


def _start_host(host: LocalHost) -> str | None:
    """Start the host; a one-line reason when it cannot (port taken, an app that refuses to start)."""
    try:
        host.start()
    except PortInUse:
        return PORT_IN_USE
    except Exception as exc:
        refusal = refusal_message(exc, ROOT)
        if refusal is None:
            raise
        return refusal
    return None


def _print_banner(base: str, started: float, azurite: Azurite | None, env: dict[str, str]) -> None:
    print(f"\nHandoff Broker is running at {base} (ready in {time.monotonic() - started:.1f}s)")
    if azurite is not None:
        ports = f"tables {azurite.table_port}, queues {azurite.queue_port}"
        print(f"Storage: Azurite at {RUN_DIR / 'azurite'} ({ports})")
    print(f"Registry: {env.get('HANDOFF_CONFIG', os.environ.get('HANDOFF_CONFIG'))}")
    print(f"MCP server (Streamable HTTP, for MCP clients and agent connectors): {base}/api/mcp\n")


def main() -> int:
    """Run until Ctrl-C; 1 at once when the port is taken or the app refuses to start."""
    if port_in_use("127.0.0.1", PORT):
        print(PORT_IN_USE, file=sys.stderr)
        return 1
    configure_logging()
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    RUN_DIR.mkdir(exist_ok=True)
    started = time.monotonic()
    # Storage settings already in the environment win; Azurite runs only for those that are missing.
    azurite = None if all(name in os.environ for name in STORAGE_SETTINGS) else _start_storage()
    env, stack = _environment(azurite)
    host = LocalHost(ROOT, port=PORT, env=env)
    try:
        failure = _start_host(host)
    except BaseException:
        _stop(None, stack, azurite)
        raise
    if failure is not None:
        print(failure, file=sys.stderr)
        _stop(None, stack, azurite)
        return 1
    base = f"http://127.0.0.1:{PORT}"
    _print_banner(base, started, azurite, env)
    print(_example(stack, base))
    print("Ctrl-C stops everything.", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.is_set() and host.running:
        done.wait(0.5)
    print("Stopping...", flush=True)
    _stop(host, stack, azurite)
    return 0


def _stop(host: LocalHost | None, stack: FakeStack | None, azurite: Azurite | None) -> None:
    if host is not None:
        host.stop()
    if stack is not None:
        stack.stop()
    if azurite is not None:
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
