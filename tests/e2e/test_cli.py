"""The ``handoff`` command line against the running broker: the real command in a subprocess
(``python -m handoff.entrypoints.cli``, what the console script runs), talking HTTP to the local host.

Sends from JSON and YAML files, follows handoffs until delivered, reads audits, timelines (Mermaid, SVG,
PNG) and links, replays a failed handoff, and checks the exit codes: 1 for an unknown id or a failed
handoff, 2 for a bad flag, 3 when the broker cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from devserver.azurite import free_port
from tests.e2e.helpers import aimed_handoff_body, handback_body, handoff_body
from tests.support.broker import ROOT

WATCH = ("--interval", "0.2", "--max-wait", "40")


def handoff_cli(broker, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``handoff ARGS`` against ``broker`` (or ``url``) and wait for it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HANDOFF_")}
    env.update({"HANDOFF_URL": url or broker.url, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"})
    return subprocess.run(
        [sys.executable, "-m", "handoff.entrypoints.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_send_from_json_and_yaml_files_and_watch_until_delivered(broker, clean_fakes, tmp_path: Path) -> None:
    source = clean_fakes.agents["ops"].create_thread("Ops: checkout 5xx")["id"]
    as_json = tmp_path / "handoff.json"
    as_json.write_text(json.dumps(handoff_body(source)))
    accepted = json.loads(ok(handoff_cli(broker, "send", str(as_json), "--json")))
    assert accepted["status"] == "accepted" and accepted["source"]["threadId"] == source
    followed = json.loads(ok(handoff_cli(broker, "status", accepted["id"], "--watch", *WATCH, "--json")))
    assert followed["status"] == "delivered" and followed["target"]["threadId"]

    as_yaml = tmp_path / "handoff.yaml"
    as_yaml.write_text(yaml.safe_dump(handoff_body(None)))
    printed = ok(handoff_cli(broker, "send", str(as_yaml), "--watch", *WATCH))
    assert printed.startswith("Accepted handoff ")
    handoff_id = printed.split()[2].rstrip(";")
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["status"] == "delivered"
    lines = printed.splitlines()
    assert any(" accepted " in line for line in lines) and any(" delivered " in line for line in lines)
    assert "Status" in printed and "delivered" in printed  # the handoff, once it stopped


def test_the_example_file_of_the_docs_is_sent_and_delivered(broker, clean_fakes) -> None:
    # docs/cli.md starts with `handoff send examples/handoff.json --watch` against `make run`'s agents.
    example = Path(__file__).resolve().parents[2] / "examples" / "handoff.json"
    printed = json.loads(ok(handoff_cli(broker, "send", str(example), "--watch", *WATCH, "--json")))
    assert printed["status"] == "delivered", printed
    assert (printed["source"]["agent"], printed["target"]["agent"]) == ("ops", "checkout")
    assert printed["warnings"] == []


def _chain(broker, clean_fakes) -> tuple[str, str, str]:
    """ops → checkout, then checkout → triage continuing it and handed back; (source thread, root, child)."""
    source = clean_fakes.agents["ops"].create_thread("Ops: timeline")["id"]
    root = broker.client.post("/api/handoffs", json=handoff_body(source)).json()["id"]
    thread = broker.wait_status(root, "delivered", timeout=20)["target"]["threadId"]
    body = handoff_body(thread, source="checkout", target="triage", parentHandoffId=root)
    child = broker.client.post("/api/handoffs", json=body).json()["id"]
    child_thread = broker.wait_status(child, "delivered", timeout=20)["target"]["threadId"]
    back = broker.client.post(
        f"/api/handoffs/{child}/handback",
        json=handback_body("triage", child_thread, summary="Pool <b>exhausted</b>"),
    )
    assert back.status_code == 202, back.text
    broker.wait_status(child, "handedBack", timeout=20)
    return source, root, child


def test_audit_timeline_and_links_of_a_chain(broker, clean_fakes, tmp_path: Path) -> None:
    source, root, child = _chain(broker, clean_fakes)

    table = ok(handoff_cli(broker, "audit", root))
    assert all(kind in table for kind in ("accepted", "deliveryAttempt", "delivered", "crossLinked"))
    events = json.loads(ok(handoff_cli(broker, "audit", root, "--json")))["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    mermaid = ok(handoff_cli(broker, "timeline", child))
    lines = mermaid.splitlines()
    assert lines[:5] == [
        "sequenceDiagram",
        "    participant A1 as ops",
        "    participant B as Broker",
        "    participant A2 as checkout",
        "    participant A3 as triage",
    ]
    assert any(line.startswith("    A1->>B: ") and f"handoff {root[:8]}" in line for line in lines)
    assert any(f"handoff {child[:8]}" in line and f"continues {root[:8]}" in line for line in lines)
    assert any(
        line.startswith("    A3->>B: ") and "hand-back 1 (rootCauseFound): Pool b exhausted /b" in line
        for line in lines
    )

    svg_path = tmp_path / "chain.svg"
    assert ok(handoff_cli(broker, "timeline", child, "--svg", str(svg_path))).strip() == f"Wrote {svg_path}"
    texts = [t.text for t in ET.parse(svg_path).iter("{http://www.w3.org/2000/svg}text")]
    assert "Broker" in texts and "triage" in texts
    answer = json.loads(ok(handoff_cli(broker, "timeline", root, "--json")))
    assert [h["id"] for h in answer["handoffs"]] == [root, child]
    assert answer["mermaid"] == mermaid.rstrip("\n")

    pytest.importorskip("matplotlib")
    png = tmp_path / "chain.png"
    ok(handoff_cli(broker, "timeline", child, "--png", str(png)))
    assert png.read_bytes().startswith(b"\x89PNG")

    tree = ok(handoff_cli(broker, "links", "ops", source)).splitlines()
    assert tree[0] == f"ops / {source}"
    # Each link hangs under the thread it was reached from, its thread URL on the line below.
    to_checkout = next(i for i, line in enumerate(tree) if "handedOffTo checkout" in line)
    to_triage = next(i for i, line in enumerate(tree) if "handedOffTo triage" in line)
    assert to_triage > to_checkout and tree[to_triage].index("handedOffTo") > tree[to_checkout].index(
        "handedOffTo"
    )
    assert "/views/thread/" in tree[to_checkout + 1]
    linked = json.loads(ok(handoff_cli(broker, "links", "ops", source, "--json")))
    assert {link["handoffId"] for link in linked["links"]} == {root, child}


def test_a_failed_handoff_exits_1_and_is_replayed(broker, clean_fakes) -> None:
    # B opens the thread but answers 400: a permanent failure.
    body, marker = aimed_handoff_body(None)
    clean_fakes.agents["checkout"].inject("POST", "/api/v1/threads", 400, perform=True, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "failed", timeout=20)
    failed = handoff_cli(broker, "status", handoff_id)
    assert failed.returncode == 1 and f"handoff {handoff_id} is failed" in failed.stderr
    assert "400" in failed.stdout  # the last error

    assert "Queued again: delivery" in ok(handoff_cli(broker, "replay", handoff_id))
    delivered = json.loads(ok(handoff_cli(broker, "status", handoff_id, "--watch", *WATCH, "--json")))
    assert delivered["status"] == "delivered"
    assert "Nothing had failed" in ok(handoff_cli(broker, "replay", handoff_id))
    again = json.loads(ok(handoff_cli(broker, "replay", handoff_id, "--json")))
    assert again == {"handoffId": handoff_id, "status": "delivered", "retried": []}


def test_exit_codes_for_an_unknown_id_a_bad_flag_and_no_broker(broker) -> None:
    unknown = str(uuid.uuid4())
    missing = handoff_cli(broker, "status", unknown)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"Not found: no handoff with id '{unknown}'"
    problem = json.loads(handoff_cli(broker, "audit", unknown, "--json").stdout)
    assert problem["status"] == 404

    bad_flag = handoff_cli(broker, "status", unknown, "--no-such-flag")
    assert bad_flag.returncode == 2 and "No such option" in bad_flag.stderr

    nowhere = handoff_cli(broker, "agents", url=f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == 3 and "cannot reach the broker" in nowhere.stderr


def test_agents_history_and_lists_print_parseable_json(broker) -> None:
    agents = json.loads(ok(handoff_cli(broker, "agents", "--json")))["agents"]
    assert {"ops", "checkout", "partner"} <= {agent["name"] for agent in agents}
    assert "checkout test agent" in ok(handoff_cli(broker, "agents"))
    history = json.loads(ok(handoff_cli(broker, "history", "--agent", "checkout", "--json")))
    assert isinstance(history["items"], list)

    listed = json.loads(ok(handoff_cli(broker, "list", "--since", "1h", "--json")))
    assert isinstance(listed["items"], list) and "continuationToken" in listed


def test_list_and_failed_show_the_handoffs_with_that_status(broker, clean_fakes) -> None:
    delivered = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    broker.wait_status(delivered, "delivered", timeout=20)
    body, marker = aimed_handoff_body(None)
    clean_fakes.agents["checkout"].inject("POST", "/api/v1/threads", 400, body_contains=marker)
    failed_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(failed_id, "failed", timeout=20)

    listed = json.loads(ok(handoff_cli(broker, "list", "--status", "delivered", "--since", "1h", "--json")))
    statuses = {item["id"]: item["status"] for item in listed["items"]}
    assert statuses.get(delivered) == "delivered" and failed_id not in statuses
    assert set(statuses.values()) == {"delivered"}
    failed = json.loads(ok(handoff_cli(broker, "failed", "--target", "checkout", "--all", "--json")))
    assert failed_id in [item["id"] for item in failed["items"]]
    assert {item["status"] for item in failed["items"]} == {"failed"}
    assert failed["continuationToken"] is None

    table = ok(handoff_cli(broker, "failed", "--since", "1h", "--top", "100"))
    assert "Failed handoffs" in table and failed_id in table and delivered not in table
    page = json.loads(ok(handoff_cli(broker, "list", "--top", "1", "--json")))
    assert len(page["items"]) == 1 and page["continuationToken"]
    token = page["continuationToken"]
    following = handoff_cli(broker, "list", "--top", "1", "--continuation-token", token, "--json")
    assert json.loads(ok(following))["items"][0]["id"] != page["items"][0]["id"]
    forged = handoff_cli(broker, "list", "--continuation-token", token[:-3] + "xyz")
    assert forged.returncode == 1 and "continuationToken" in forged.stderr


def test_the_installed_console_script_answers_help() -> None:
    script = Path(sys.executable).with_name("handoff")
    if not script.exists():
        pytest.skip("the project is not installed in this virtualenv (make install does it)")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "Usage: handoff" in result.stdout
