"""The example partner agent (examples/a2a_partner) against the local broker, as a partner runs it: it
hands an investigation to an SRE Agent over A2A with the contract's extension and prints the
hand-back once the SRE Agent has handed back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.e2e.helpers import handback_body, threads_mentioning

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_partner_hands_off_and_receives_the_handback(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    title = f"p99 latency doubled on /pay {uuid.uuid4().hex[:8]}"
    partner = subprocess.Popen(
        [
            sys.executable, "examples/a2a_partner/partner.py", "--broker", broker.url,
            "--source", "partner", "--target", "checkout", "--title", title, "--timeout", "60",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not threads_mentioning(checkout, title) and time.monotonic() < deadline:
            assert partner.poll() is None, partner.communicate()
            time.sleep(0.1)
        (thread,) = threads_mentioning(checkout, title)
        handoff_id = thread["startMessage"]["text"].split("]", 1)[0].removeprefix("[Handoff ")
        view = broker.wait_for(handoff_id, lambda b: b["status"] == "delivered")
        assert view["context"]["hypotheses"] == ["The new TLS policy disables session resumption"]

        back = broker.client.post(
            f"/api/handoffs/{handoff_id}/handback", json=handback_body(thread_id=thread["id"])
        )
        assert back.status_code == 202, back.text
        out, err = partner.communicate(timeout=60)
    finally:
        if partner.poll() is None:
            partner.kill()
            partner.communicate()

    assert partner.returncode == 0, out + err
    result = json.loads(out)
    assert (result["taskId"], result["state"]) == (handoff_id, "TASK_STATE_COMPLETED")
    (handback,) = result["handbacks"]
    assert (handback["outcome"], handback["rootCause"]) == ("rootCauseFound", handback_body()["rootCause"])
