"""A minimal partner agent that hands an investigation to an Azure SRE Agent through the Handoff Broker
over A2A, speaking the handoff contract's A2A extension, and waits for the hand-back.

    python examples/a2a_partner/partner.py --broker http://127.0.0.1:7071 --source ops --target checkout

Built on a2a-sdk only (no code of the broker): it reads the broker's agent card, checks that the card
declares the contract's extension, sends ``SendMessage`` with ``A2A-Extensions: <extension URI>`` and
the handoff request as a data part tagged with the extension, then follows the task with ``GetTask``
until it completes and prints the hand-back (the artifact's data part) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from a2a.client import A2ACardResolver, ClientCallContext, ClientConfig, ClientFactory
from a2a.client.service_parameters import ServiceParametersFactory, with_a2a_extensions
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

SCHEMAS = "https://schemas.handoff-broker.dev/handoff-context/v1/"
EXTENSION = f"{SCHEMAS}a2a-extension"
DONE = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_REJECTED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_INPUT_REQUIRED,
}


def handoff_request(source: str, target: str, title: str) -> dict[str, Any]:
    """A handoff request per the contract's handoff-request.json."""
    return {
        "schemaId": "handoffContext",
        "schemaVersion": "1.0",
        "source": {"agent": source},
        "target": {"agent": target},
        "intent": "investigate",
        "context": {
            "title": title,
            "summary": "p99 latency of /pay doubled at 09:40 UTC; the time goes to TLS handshakes.",
            "severity": "Sev3",
            "evidence": [
                {"kind": "link", "title": "Trace view", "url": "https://apm.example.com/traces?service=pay"},
                {"kind": "note", "content": "Started right after the gateway's certificate rotation."},
            ],
            "hypotheses": ["The new TLS policy disables session resumption"],
        },
    }


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url`` (the default port spelled out)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def check_card_origin(card: Any, broker: str) -> None:
    """Stop unless every interface the card names is on the broker's own origin: the client sends the
    broker's key with every call, so a card pointing elsewhere must not get it."""
    elsewhere = [i.url for i in card.supported_interfaces if origin(i.url) != origin(broker)]
    if elsewhere:
        raise SystemExit(
            f"the agent card names interfaces off {broker}: {', '.join(elsewhere)}; not calling them"
        )


def tagged_part(document: dict[str, Any], schema: str) -> Part:
    """A data part holding ``document``, tagged with the extension as the contract document ``schema``."""
    value = struct_pb2.Value()
    value.struct_value.update(document)
    part = Part(data=value, media_type="application/json")
    part.metadata.update({EXTENSION: {"schema": f"{SCHEMAS}{schema}.json"}})
    return part


async def hand_off(
    broker: str, request: dict[str, Any], headers: dict[str, str], timeout: float = 600.0
) -> dict[str, Any]:
    """Send the handoff and follow the task until it ends: the task as JSON (its artifacts hold the
    hand-back)."""
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        card = await A2ACardResolver(http, f"{broker.rstrip('/')}/api/a2a").get_agent_card()
        if not any(extension.uri == EXTENSION for extension in card.capabilities.extensions):
            raise SystemExit(f"{card.name} does not declare the handoff contract's A2A extension")
        check_card_origin(card, broker)
        client = ClientFactory(ClientConfig(streaming=False, polling=True, httpx_client=http)).create(card)
        # The extension is activated on every call: A2A-Extensions: <EXTENSION>.
        context = ClientCallContext(
            service_parameters=ServiceParametersFactory.create([with_a2a_extensions([EXTENSION])])
        )
        message = Message(
            message_id=str(uuid.uuid4()),  # the broker's idempotency key: reuse it to retry safely
            role=Role.ROLE_USER,
            parts=[Part(text=request["context"]["title"]), tagged_part(request, "handoff-request")],
        )
        task = None
        async for event in client.send_message(SendMessageRequest(message=message), context=context):
            task = event.task
            break
        if task is None:
            raise SystemExit("the broker answered without a task")
        print(
            f"handoff {task.id} accepted; waiting for {request['target']['agent']} to hand back",
            file=sys.stderr,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while task.status.state not in DONE and loop.time() < deadline:
            await asyncio.sleep(1.0)
            task = await client.get_task(GetTaskRequest(id=task.id), context=context)
        result: dict[str, Any] = MessageToDict(task)
        return result


def handbacks(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The hand-backs in a task's artifacts (their data parts)."""
    return [
        part["data"] for artifact in task.get("artifacts", []) for part in artifact["parts"] if "data" in part
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", default="http://127.0.0.1:7071", help="the broker's base URL")
    parser.add_argument(
        "--source", default="apm-partner", help="this partner's name in the broker's registry"
    )
    parser.add_argument("--target", default="checkout", help="the SRE Agent to hand the investigation to")
    parser.add_argument("--title", default="p99 latency doubled on /pay", help="the investigation's title")
    parser.add_argument(
        "--key",
        default=os.environ.get("HANDOFF_KEY"),
        help="the broker's function key (x-functions-key), in Azure; better set HANDOFF_KEY, which is not "
        "shown in the process list or the shell's history",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the hand-back")
    args = parser.parse_args(argv)
    headers = {"x-functions-key": args.key} if args.key else {}
    request = handoff_request(args.source, args.target, args.title)
    task = asyncio.run(hand_off(args.broker, request, headers, args.timeout))
    state = task.get("status", {}).get("state")
    print(json.dumps({"taskId": task.get("id"), "state": state, "handbacks": handbacks(task)}, indent=2))
    return 0 if state == "TASK_STATE_COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
