"""The scenarios: each checks one rule of the contract (spec/handoff-context/v1/README.md) through the
broker's REST API, and returns a short note or raises :class:`~handoff_conformance.runner.Failure`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from handoff_conformance.runner import (
    PROBLEM_TYPE,
    Failure,
    Scenario,
    Session,
    check,
    describe,
    new_key,
    nonce,
    root_cause,
)

LIFECYCLE = ("accepted", "delivered", "handedBack")
SETTLED_READS = 4  # reads of a handed-back handoff that must all still say handedBack
MAX_HOPS = 12  # a chain longer than this was never refused: the limits are not enforced
THREADS = "/api/v1/threads"  # where the broker starts a thread on an SRE Agent


# ---------------------------------------------------------------- idempotency


def idempotent_replay(s: Session) -> str:
    body, key = s.handoff_body(nonce()), new_key()
    first = s.post("/api/handoffs", body, key)
    check(first.status_code == 202, f"a new handoff answered {describe(first)}, not 202")
    again = s.post("/api/handoffs", body, key)
    check(again.status_code in (200, 202), f"the replay answered {describe(again)}, not 200 or 202")
    check(
        again.json().get("id") == first.json().get("id"),
        f"the replay made another handoff: {first.json().get('id')} then {again.json().get('id')}",
    )
    return f"{first.status_code} then {again.status_code}, one id"


def idempotency_conflict(s: Session) -> str:
    key = new_key()
    s.create(s.handoff_body(nonce()), key)
    other = s.post("/api/handoffs", s.handoff_body(nonce()), key)
    check(other.status_code == 409, f"the same key with another body answered {describe(other)}, not 409")
    check_problem(other)
    return "409 problem"


# ---------------------------------------------------------------- bad input


def check_problem(response: Any, field: str | None = None) -> None:
    """An RFC 9457 problem, naming ``field`` (a JSON Pointer, or its start) among its errors when given."""
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    check(
        kind == PROBLEM_TYPE, f"the answer is {kind or 'untyped'}, not {PROBLEM_TYPE}: {describe(response)}"
    )
    problem = response.json()
    check(isinstance(problem, dict) and problem.get("status") == response.status_code, "no problem status")
    if field is not None:
        fields = [e.get("field", "") for e in problem.get("errors") or [] if isinstance(e, dict)]
        check(
            any(f == field or f.startswith(field + "/") for f in fields),
            f"the problem does not name {field}: errors {problem.get('errors')!r}",
        )


def bad_input(
    change: Callable[[dict[str, Any]], Any], field: str | None, statuses: tuple[int, ...]
) -> Scenario:
    """A scenario: the handoff body changed by ``change`` is refused with one of ``statuses`` and a
    problem naming ``field``; the change may return raw bytes to send instead of the body."""

    def scenario(s: Session) -> str:
        body = s.handoff_body(nonce())
        raw = change(body)
        response = s.post("/api/handoffs", raw if isinstance(raw, bytes) else body)
        check(response.status_code in statuses, f"answered {describe(response)}, not {statuses}")
        check_problem(response, field)
        return f"{response.status_code} naming {field or 'the body'}"

    return scenario


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = body
        for name in parents:
            node = node[name]
        node[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = body
        for name in parents:
            node = node[name]
        del node[last]

    return change


def _oversize_body(body: dict[str, Any]) -> bytes:
    body["context"]["hypotheses"] = ["x" * 60_000] * 6  # each within its own limit, the body over 256 KiB
    return json.dumps(body).encode()


# ---------------------------------------------------------------- lifecycle and hand-back


def _delivered(s: Session, n: str, seen: list[str] | None = None) -> tuple[dict[str, Any], str]:
    thread = s.source_thread()
    view = s.create(s.handoff_body(n, thread=thread))
    if seen is not None:
        seen.append(str(view["status"]))  # what the 202 answer says
    status = s.wait_status(view["id"], ("delivered", "failed"), seen)
    check(status == "delivered", f"handoff {view['id']} was not delivered: {status}")
    return view, thread


def status_lifecycle(s: Session) -> str:
    n, seen = nonce(), list[str]()
    view, _ = _delivered(s, n, seen)
    back = s.post(f"/api/handoffs/{view['id']}/handback", s.handback_body(s.target, n), new_key())
    check(back.status_code == 202, f"the target's hand-back answered {describe(back)}, not 202")
    s.wait_status(view["id"], ("handedBack",), seen)
    for _ in range(SETTLED_READS):  # handedBack stays handedBack
        status = s.get(view["id"])["status"]
        if status != seen[-1]:
            seen.append(status)
    check(all(status in LIFECYCLE for status in seen), f"statuses outside the lifecycle: {seen}")
    order = [LIFECYCLE.index(status) for status in seen]
    check(order == sorted(set(order)), f"statuses went back or repeated: {seen}")
    return " -> ".join(seen)


def illegal_transition(s: Session) -> str:
    n = nonce()
    # The target refuses this handoff's thread for good: the handoff fails and may not be handed back.
    fault = s.agents.target.inject("POST", THREADS, 400, times=None, body_contains=n)
    try:
        view = s.create(s.handoff_body(n, thread=s.source_thread()))
        status = s.wait_status(view["id"], ("failed", "delivered"))
        check(status == "failed", f"a delivery the target refused for good ended {status}, not failed")
    finally:
        fault.times = 0
    back = s.post(f"/api/handoffs/{view['id']}/handback", s.handback_body(s.target, n), new_key())
    check(back.status_code == 409, f"a hand-back on a failed handoff answered {describe(back)}, not 409")
    check_problem(back)
    after = s.get(view["id"])["status"]
    check(after == "failed", f"the refused hand-back moved the handoff to {after}")
    return "failed -> handedBack refused with 409"


def handback_only_target(s: Session) -> str:
    n = nonce()
    view, _ = _delivered(s, n)
    back = s.post(f"/api/handoffs/{view['id']}/handback", s.handback_body(s.source, n), new_key())
    check(back.status_code == 403, f"a hand-back by the source agent answered {describe(back)}, not 403")
    check_problem(back, "/agent")
    after = s.get(view["id"])
    check(
        after["status"] == "delivered" and not after.get("handbacks"), f"it was recorded: {after['status']}"
    )
    return "403 naming /agent"


def handback_into_source_thread(s: Session) -> str:
    n = nonce()
    view, thread = _delivered(s, n)
    back = s.post(f"/api/handoffs/{view['id']}/handback", s.handback_body(s.target, n), new_key())
    check(back.status_code == 202, f"the target's hand-back answered {describe(back)}, not 202")
    s.wait_status(view["id"], ("handedBack",))
    finding = root_cause(n)
    posted = s.agents.wait(lambda: s.agents.messages_with(s.source, thread, finding), s.options.timeout)
    check(len(posted) == 1, f"the source thread got {len(posted)} messages with the findings, not 1")
    target_thread = s.get(view["id"])["target"].get("threadId")
    if target_thread:
        stray = s.agents.messages_with(s.target, target_thread, finding)
        check(not stray, "the findings were posted into the target's thread")
    return f"posted once into {thread}"


# ---------------------------------------------------------------- chains and delivery


def chain_limits(s: Session) -> str:
    parent = s.create(s.handoff_body(nonce()))
    source, target = s.target, s.source
    for hop in range(1, MAX_HOPS + 1):
        body = s.handoff_body(nonce(), parentHandoffId=parent["id"])
        body["source"], body["target"] = {"agent": source}, {"agent": target}
        response = s.post("/api/handoffs", body, new_key())
        if response.status_code != 202:
            check(
                400 <= response.status_code < 500,
                f"hop {hop} of the chain answered {describe(response)}, not a 4xx refusal",
            )
            check_problem(response)
            fields = [e.get("field") for e in response.json().get("errors") or []]
            check(
                bool({"/target/agent", "/parentHandoffId"} & set(fields)),
                f"the refusal names {fields}, not /target/agent or /parentHandoffId",
            )
            return f"hop {hop} refused with {response.status_code} on {fields[0]}"
        parent = response.json()
        source, target = target, source
    raise Failure(f"{MAX_HOPS} hops between two agents were all accepted: no depth or ping-pong limit")


def delivery_exactly_once(s: Session) -> str:
    n = nonce()
    target = s.agents.target
    # The first try creates the thread but its answer is lost; the second meets a 503: the broker must
    # retry, find the thread it already made, and deliver exactly once.
    target.inject("POST", THREADS, perform=True, drop=True, body_contains=n)
    target.inject("POST", THREADS, 503, body_contains=n)
    view = s.create(s.handoff_body(n, thread=s.source_thread()))
    status = s.wait_status(view["id"], ("delivered", "failed"))
    check(status == "delivered", f"the handoff ended {status} after a lost answer and a 503")
    # Whatever the broker might still be retrying has had time to arrive.
    s.agents.wait(lambda: len(s.agents.threads_with(s.target, n)) > 1, 2.0)
    threads = s.agents.threads_with(s.target, n)
    check(len(threads) == 1, f"the target got {len(threads)} threads for one handoff")
    recorded = s.get(view["id"])["target"].get("threadId")
    check(
        recorded == threads[0]["id"],
        f"the handoff names thread {recorded}, the target has {threads[0]['id']}",
    )
    return "one thread after a lost answer and a 503"


SCENARIOS: dict[str, Scenario] = {
    "idempotent-replay": idempotent_replay,
    "idempotency-conflict": idempotency_conflict,
    "bad-input-missing-field": bad_input(_drop("context/title"), "/context/title", (422,)),
    "bad-input-wrong-type": bad_input(_set("context/title", 5), "/context/title", (422,)),
    "bad-input-unknown-evidence-kind": bad_input(
        _set("context/evidence", [{"kind": "trace", "content": "x"}]), "/context/evidence/0", (422,)
    ),
    "bad-input-bad-severity": bad_input(_set("context/severity", "urgent"), "/context/severity", (422,)),
    "bad-input-oversize-field": bad_input(_set("context/title", "x" * 301), "/context/title", (422,)),
    "bad-input-oversize-body": bad_input(_oversize_body, None, (413,)),
    "bad-input-not-json": bad_input(lambda _body: b'{"source": ', None, (400,)),
    "bad-input-unknown-agent": bad_input(_set("target/agent", "no-such-agent-x"), "/target/agent", (422,)),
    "status-lifecycle": status_lifecycle,
    "illegal-transition": illegal_transition,
    "handback-only-target": handback_only_target,
    "handback-into-source-thread": handback_into_source_thread,
    "chain-limits": chain_limits,
    "delivery-exactly-once": delivery_exactly_once,
}
"""Every scenario by name, in the order they run."""
