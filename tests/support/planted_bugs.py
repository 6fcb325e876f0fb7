"""A broker with a planted bug: an HTTP proxy in front of the real one that breaks one rule of the
handoff contract, so the conformance kit can be shown to catch each (tests/e2e/test_conformance.py)."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HANDOFFS = "/api/handoffs"

# Each planted bug, and the scenarios that must fail because of it.
BUGS: dict[str, tuple[str, ...]] = {
    "ignore-idempotency": ("idempotent-replay",),
    "conflict-as-200": ("idempotency-conflict",),
    "problems-without-fields": (
        "bad-input-missing-field",
        "bad-input-wrong-type",
        "bad-input-unknown-evidence-kind",
        "bad-input-bad-severity",
        "bad-input-oversize-field",
        "bad-input-unknown-agent",
    ),
    "problems-as-plain-json": ("bad-input-not-json", "bad-input-oversize-body"),
    "status-out-of-order": ("status-lifecycle",),
    "illegal-transition": ("illegal-transition",),
    "non-target-handback": ("handback-only-target",),
    "handback-elsewhere": ("handback-into-source-thread",),
    "no-chain-limits": ("chain-limits",),
    "deliver-twice": ("delivery-exactly-once",),
}


class BuggyBroker:
    """Forwards every call to ``upstream``, breaking the rule ``bug`` names (one of :data:`BUGS`)."""

    def __init__(self, upstream: str, bug: str) -> None:
        if bug not in BUGS:
            raise ValueError(bug)
        self.bug = bug
        self.client = httpx.Client(base_url=upstream, timeout=60)
        self.lock = threading.Lock()
        self.reads = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.serve(self, "GET")

            def do_POST(self) -> None:
                proxy.serve(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    # ---------------------------------------------------------------- forwarding

    def serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
        status, out_headers, content = self.call(method, handler.path, headers, body)
        handler.send_response(status)
        for name, value in out_headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return self.client.request(method, path, headers=headers, content=body)

    def call(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        bug = self.bug
        creating = method == "POST" and path == HANDOFFS
        handing_back = method == "POST" and path.endswith("/handback")
        if creating and bug == "ignore-idempotency":
            headers = {k: v for k, v in headers.items() if k.lower() != "idempotency-key"}
        if creating and bug in ("no-chain-limits", "handback-elsewhere"):
            body = _edited(body, _without_parent if bug == "no-chain-limits" else _without_thread)
        if handing_back and bug == "non-target-handback":
            target = self.client.get(path.removesuffix("/handback")).json()["target"]["agent"]
            body = _edited(body, lambda data: data.update(agent=target))
        if creating and bug == "deliver-twice":
            again = {k: v for k, v in headers.items() if k.lower() != "idempotency-key"}
            self.forward(method, path, {**again, "Idempotency-Key": f"again-{uuid.uuid4()}"}, body)
        response = self.forward(method, path, headers, body)
        status, out, content = response.status_code, dict(response.headers), response.content
        problem = out.get("content-type", "").startswith("application/problem+json")
        if bug == "conflict-as-200" and creating and status == 409:
            status = 200
        elif bug == "problems-without-fields" and problem:
            content = _edited(content, lambda data: data.pop("errors", None))
        elif bug == "problems-as-plain-json" and problem:
            out["content-type"] = "application/json"
        elif bug == "illegal-transition" and handing_back and status == 409:
            view = self.client.get(path.removesuffix("/handback")).json()
            status, content = 202, json.dumps({**view, "status": "handedBack"}).encode()
        elif bug == "status-out-of-order" and method == "GET" and path.startswith(HANDOFFS) and status == 200:
            with self.lock:
                self.reads += 1
                odd = self.reads % 2 == 1
            if odd:  # every other read of a handed-back handoff says it is delivered again
                content = _edited(content, _handed_back_as_delivered)
        return status, out, content


def _edited(raw: bytes, change: Any) -> bytes:
    data = json.loads(raw)
    if isinstance(data, dict):
        change(data)
    return json.dumps(data).encode()


def _without_parent(data: dict) -> None:
    data.pop("parentHandoffId", None)


def _without_thread(data: dict) -> None:
    if isinstance(data.get("source"), dict):
        data["source"].pop("threadId", None)


def _handed_back_as_delivered(data: dict) -> None:
    if data.get("status") == "handedBack":
        data["status"] = "delivered"
