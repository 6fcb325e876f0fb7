"""Intake: a handoff is validated, authorised, stored once and queued for delivery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handoff.domain.auth import Caller
from handoff.domain.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    Unprocessable,
)
from handoff.domain.markdown import strip_invisible
from handoff.domain.models import HandoffRequest
from handoff.ports import StorageUnavailable
from tests.data import secret_corpus
from tests.unit.conftest import OPERATOR, OPS, PAYMENTS, World, build_world, handoff_body

# ---------------------------------------------------------------- a new handoff


def test_a_new_handoff_is_stored_audited_and_queued(world: World) -> None:
    view, new = world.accept(handoff_body(world.source_thread()))
    assert new is True and view.status == "accepted"
    assert world.store.ids() == [view.id]
    assert world.events(view.id) == ["accepted"]
    accepted = world.event(view.id, "accepted")
    assert accepted["source"] == "ops" and accepted["target"] == "checkout"
    assert accepted["idempotencyKey"] is False
    assert world.queue.messages() == [{"op": "deliver", "handoffId": view.id, "attempt": 1}]
    assert world.queue.delays() == [0]


def test_the_answer_links_to_the_handoff_and_its_audit(world: World) -> None:
    view, _ = world.accept()
    assert view.links["self"] == f"https://broker.example.com/api/handoffs/{view.id}"
    assert view.links["audit"].endswith(f"/{view.id}/audit")
    assert view.root_handoff_id == view.id and view.depth == 0


def test_agents_are_stored_by_their_registered_name(world: World) -> None:
    view, _ = world.accept(handoff_body(source="OPS", target="Checkout"))
    record = world.store.get(view.id)
    assert record is not None
    assert (record.stored.source_agent, record.stored.target_agent) == ("ops", "checkout")
    assert record.stored.request.target.agent == "checkout"


def test_secrets_in_the_request_are_cut_before_it_is_stored(world: World) -> None:
    body = handoff_body()
    body["context"]["summary"] = "failing since the password=Sup3rS3cretValue!! was rotated"
    view, _ = world.accept(body)
    record = world.store.get(view.id)
    assert record is not None and "Sup3rS3cretValue" not in record.stored.request.context.summary
    assert world.event(view.id, "accepted")["redactions"]


# ---------------------------------------------------------------- idempotent replay


def test_same_key_and_body_gives_the_same_handoff_not_a_new_one(world: World) -> None:
    body = handoff_body()
    first, new_first = world.accept(body, key="incident-42")
    world.run()
    again, new_again = world.accept(body, key="incident-42")
    assert (new_first, new_again) == (True, False)
    assert again.id == first.id and again.status == "delivered"
    assert world.store.ids() == [first.id]
    assert world.events(first.id).count("accepted") == 1
    assert world.queue.messages() == []  # delivered already: nothing queued again


def test_a_replay_before_delivery_started_queues_the_delivery_again(world: World) -> None:
    body = handoff_body()
    first, _ = world.accept(body, key="k")
    world.queue.clear()  # the first request's enqueue is lost
    world.accept(body, key="k")
    assert world.queue.messages() == [{"op": "deliver", "handoffId": first.id, "attempt": 1}]


def test_same_key_with_another_body_is_409_naming_the_key(world: World) -> None:
    world.accept(handoff_body(), key="incident-42")
    other = handoff_body()
    other["context"]["title"] = "Another incident"
    with pytest.raises(Conflict) as info:
        world.accept(other, key="incident-42")
    assert info.value.status == 409
    assert [e.field for e in info.value.errors] == ["Idempotency-Key"]
    assert len(world.store.ids()) == 1


def test_the_key_is_per_source_agent(world: World) -> None:
    from_ops, _ = world.accept(handoff_body(), key="same")
    from_payments, new = world.accept(handoff_body(source="payments"), PAYMENTS, key="same")
    assert new is True and from_ops.id != from_payments.id


def test_the_id_of_a_key_cannot_be_computed_without_the_brokers_secret(world: World) -> None:
    view, _ = world.accept(handoff_body(), key="k")
    other = build_world()  # the same key at another broker (another secret) gives another id
    elsewhere, _ = other.accept(handoff_body(), key="k")
    assert view.id != elsewhere.id


@pytest.mark.parametrize("key", ["", "   ", "x" * 201, "tab\there"])
def test_an_unusable_key_is_400_naming_the_header(world: World, key: str) -> None:
    with pytest.raises(BadRequest) as info:
        world.accept(handoff_body(), key=key)
    assert [e.field for e in info.value.errors] == ["Idempotency-Key"]
    assert world.store.ids() == []


# ---------------------------------------------------------------- refused requests


def _refused(world: World, body: Any, caller: Caller = OPS) -> Problem:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(Problem) as info:
        world.intake.accept(raw, caller)
    assert world.store.ids() == [] and world.queue.sent == []
    return info.value


def test_a_body_that_is_not_json_is_400(world: World) -> None:
    assert isinstance(_refused(world, b"{not json"), BadRequest)


def test_a_body_that_is_not_an_object_is_422(world: World) -> None:
    problem = _refused(world, b"[1, 2]")
    assert isinstance(problem, Unprocessable) and problem.errors[0].field == "/"


def test_a_body_over_256_kib_is_413(world: World) -> None:
    body = handoff_body()
    body["context"]["summary"] = "x" * (300 * 1024)
    assert isinstance(_refused(world, body), PayloadTooLarge)


def test_a_schema_violation_is_422_naming_the_field(world: World) -> None:
    body = handoff_body()
    del body["context"]["title"]
    problem = _refused(world, body)
    assert isinstance(problem, Unprocessable)
    assert "/context/title" in [e.field for e in problem.errors]


def test_an_unknown_target_is_422_naming_the_field(world: World) -> None:
    problem = _refused(world, handoff_body(target="nobody"))
    assert isinstance(problem, Unprocessable) and problem.errors[0].field == "/target/agent"


def test_an_unknown_source_is_422_naming_the_field(world: World) -> None:
    problem = _refused(world, handoff_body(source="nobody"), OPERATOR)
    assert problem.errors[0].field == "/source/agent"


def test_an_agent_cannot_hand_off_to_itself(world: World) -> None:
    problem = _refused(world, handoff_body(target="ops"))
    assert isinstance(problem, Unprocessable) and problem.errors[0].field == "/target/agent"


def test_a_caller_may_hand_off_only_as_an_agent_it_is(world: World) -> None:
    problem = _refused(world, handoff_body(source="checkout", target="payments"), OPS)
    assert isinstance(problem, Forbidden)


def test_an_agent_may_hand_off_only_to_the_targets_it_names(world: World) -> None:
    problem = _refused(
        world, handoff_body(source="audit", target="checkout"), Caller("agentKey", name="audit")
    )
    assert isinstance(problem, Forbidden) and "mayHandOffTo" in problem.detail


def test_an_a2a_source_has_no_thread(world: World) -> None:
    body = handoff_body("some-thread", source="partner")
    problem = _refused(world, body, Caller("agentKey", name="partner"))
    assert problem.errors[0].field == "/source/threadId"


def test_the_operators_key_does_not_act_as_an_agent(world: World) -> None:
    assert isinstance(_refused(world, handoff_body(source="payments"), OPERATOR), Forbidden)


# ---------------------------------------------------------------- storage and queue failures


def test_storage_down_at_intake_raises_unavailable_and_keeps_no_chain_slot(world: World) -> None:
    world.store.faults.fail("create")
    with pytest.raises(StorageUnavailable):
        world.accept(handoff_body())
    view, _ = world.accept(handoff_body())
    assert world.chains.holders(view.id, "ops", "checkout") == {1: view.id}
    assert world.queue.messages() == [{"op": "deliver", "handoffId": view.id, "attempt": 1}]


def test_a_failed_enqueue_is_503_with_retry_after_and_the_replay_queues_it(world: World) -> None:
    world.queue.faults.fail("send")
    with pytest.raises(ServiceUnavailable) as info:
        world.accept(handoff_body(), key="k")
    assert info.value.status == 503 and info.value.headers == {"Retry-After": "5"}
    assert "Idempotency-Key" in info.value.detail
    (stored_id,) = world.store.ids()
    view, new = world.accept(handoff_body(), key="k")
    assert (view.id, new) == (stored_id, False)
    assert world.queue.messages() == [{"op": "deliver", "handoffId": stored_id, "attempt": 1}]


def test_the_sweeper_delivers_a_handoff_whose_enqueue_failed(world: World) -> None:
    world.queue.faults.fail("send")
    with pytest.raises(ServiceUnavailable):
        world.accept(handoff_body(world.source_thread()))
    (stored_id,) = world.store.ids()
    world.clock.advance(world.settings.sweep_after_seconds + 1)
    assert world.sweep().requeued == 1
    world.run()
    assert world.state(stored_id).status == "delivered"


# ---------------------------------------------------------------- handoffs the broker starts


def test_a_system_handoff_is_created_once_under_the_given_id(world: World) -> None:
    request = HandoffRequest.model_validate(handoff_body(source="azure-monitor"))
    handoff_id = "00000000-0000-4000-8000-000000000001"
    details = {"alertRule": "cpu-high", "sharedMemory": ["github"]}
    record, new = world.intake.accept_system(request, handoff_id, OPERATOR, details)
    assert new and record.stored.alert_rule == "cpu-high" and record.stored.shared_memory == ("github",)
    again, new_again = world.intake.accept_system(request, handoff_id, OPERATOR, details)
    assert not new_again and again.id == handoff_id
    assert world.events(handoff_id) == ["accepted"]
    assert world.event(handoff_id, "accepted")["alertRule"] == "cpu-high"
    assert world.queue.messages() == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]


def test_only_system_sources_start_system_handoffs(world: World) -> None:
    request = HandoffRequest.model_validate(handoff_body())
    with pytest.raises(ValueError, match="not a system source"):
        world.intake.accept_system(request, "00000000-0000-4000-8000-000000000002", OPERATOR)


# ---------------------------------------------------------------- secrets split by invisible characters


def _strings(value: Any) -> list[str]:
    """Every string (dict keys too) of a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (*_strings(key), *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@pytest.mark.attack("redaction")
def test_a_secret_split_by_invisible_characters_is_neither_stored_nor_delivered(world: World) -> None:
    github, key_id, jwt = secret_corpus.github(), secret_corpus.aws_key_id(), secret_corpus.jwt()
    sig = secret_corpus.sas_sig()
    body = handoff_body(world.source_thread())
    context = body["context"]
    context["title"] = f"Deploy failed with {key_id[:4]}\u00ad{key_id[4:]}"
    context["summary"] = f"The pipeline used {github[:10]}\u200b{github[10:]} and failed.\nSee the logs."
    context["hypotheses"] = [f"Bearer {jwt[:20]}\u2060{jwt[20:]} expired"]
    context["evidence"] = [
        {"kind": "note", "content": f"export GITHUB_TOKEN={github[:6]}\ufeff{github[6:]}"},
        {
            "kind": "data",
            "title": "request",
            "data": {"url": f"https://a.blob.core.windows.net/c?sig={sig[:5]}\u200d{sig[5:]}"},
        },
    ]
    body["correlationId"] = f"run {key_id[:8]}\U000e0020{key_id[8:]}"

    view, _ = world.accept(body)
    world.run()

    record = world.store.get(view.id)
    assert record is not None and world.state(view.id).status == "delivered"
    (thread,) = world.agents.threads_of("checkout")
    stored = "\n".join(_strings(record.stored.request.model_dump(mode="json")))
    answer = "\n".join(_strings(world.queries.get(view.id, OPS).model_dump(mode="json")))
    audit = "\n".join(s for e in world.store.events(view.id) for s in _strings(e.details))
    # B's thread (its start message first) and the cross-link posted into A's
    shown = "\n".join([thread.title, *thread.texts(), *world.agents.posted(body["source"]["threadId"])])
    for where, text in (("stored", stored), ("answer", answer), ("audit", audit), ("thread", shown)):
        read = strip_invisible(text)
        for secret in (github, key_id, jwt, sig):
            # nothing of it: neither whole once the invisible characters are gone, nor either half
            assert secret not in read and secret[:8] not in read and secret[-8:] not in read, (where, secret)
    assert "[redacted:github_token]" in shown and "[redacted:aws_access_key_id]" in shown
    redactions = world.event(view.id, "accepted")["redactions"]
    assert {"aws_access_key_id", "github_token", "jwt", "sas_signature"} <= set(redactions)
    assert sum(redactions.values()) == 6  # the note's token counts as the GITHUB_TOKEN value it is
