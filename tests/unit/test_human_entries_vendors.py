"""Jira and ServiceNow people's entries (webhooks through in-memory ports: refused, ignored, taken once),
the vendors' objects read as entries, the readers of the polling fallback against each vendor's API
shape, the ``inbound`` configuration, and overrides first in "Seen before"."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from handoff.adapters.vendor_readers import VendorReaders
from handoff.adapters.vendors import WriterContext
from handoff.domain.errors import NotFound, Unauthorized, Unprocessable
from handoff.domain.messages import seen_before_section
from handoff.domain.registry import Registry
from handoff.domain.seen_before import MAX_NOTES, ordered_notes
from handoff.domain.shared_memory.config import SharedMemoryConfig
from handoff.domain.shared_memory.content import ChainStep, Note, adf, write_marker
from handoff.domain.shared_memory.destinations import known_destination
from handoff.domain.shared_memory.human_entries import own_marker
from handoff.domain.shared_memory.polling import PollCursor, poll_schedule, poll_tick_seconds
from handoff.domain.shared_memory.vendor_entries import adf_plain
from handoff.domain.shared_memory.writes import WriteError
from handoff.services.human_entries.inbound import HumanInbound
from handoff.settings import Settings
from tests.unit.memory.shared_memory import (
    START,
    FakeClock,
    MemoryAgents,
    MemoryHandoffs,
    MemoryHandoffStore,
    MemoryInboundStore,
    MemoryNotes,
    MemoryQueue,
    MemoryWriteState,
    make_record,
    registry,
)

SECRET = "jira-and-snow-secret"
JIRA = {
    "name": "jira",
    "type": "jira",
    "baseUrl": "https://contoso.atlassian.net",
    "project": "OPS",
    "issue": "OPS-1",
    "secretSetting": "JIRA_TOKEN",
    "webhookSecretSetting": "HOOK",
    "ownAccount": "5b10ac8d82e05b22cc7d4ef5",
}
JIRA_SIGNED = {**JIRA, "name": "jira-signed", "webhookAuth": ["signature"], "webhookSignatureHeader": "X-Sig"}
JIRA_TOKEN = {**JIRA, "name": "jira-token", "webhookAuth": ["token"]}
JIRA_UNOWNED = {k: v for k, v in JIRA.items() if k != "ownAccount"} | {"name": "jira-unowned"}
SNOW = {
    "name": "snow",
    "type": "servicenow",
    "baseUrl": "https://contoso.service-now.com",
    "secretSetting": "SNOW_CREDENTIALS",
    "webhookSecretSetting": "HOOK",
    "ownAccount": "handoff.bot",
}
GH = {
    "name": "gh",
    "type": "github",
    "baseUrl": "https://api.github.com",
    "repo": "contoso/shop",
    "secretSetting": "GH_TOKEN",
    "inbound": "poll",
}
PD = {
    "name": "pd",
    "type": "pagerduty",
    "baseUrl": "https://api.pagerduty.com",
    "secretSetting": "PD_TOKEN",
    "fromEmail": "oncall@contoso.com",
    "inbound": "poll",
}
H1 = "0b7e4c1e-0000-4000-8000-000000000001"
H2 = "0b7e4c1e-0000-4000-8000-000000000002"
SYS_ID = "a" * 32


def _brokers_comment(handoff_id: str, backend: str) -> dict[str, Any]:
    """The ADF of the broker's hand-back comment on Jira, as the writer renders it."""
    note = Note(
        marker=write_marker(handoff_id, "handedBack", 1, backend),
        headline="checkout handed back: resolved — Checkout 5xx",
        what="checkout finished its investigation and handed its findings back to ops.",
        who='ops handed "Checkout 5xx" (investigate, sev2) to checkout',
        outcome="resolved",
        summary="Pool exhausted\nraised from 10 to 50",
        root_cause="A leak in the retry path",
        actions=("Watch the pool", "Fix the leak"),
        links=(("Handoff", f"https://broker.example.com/api/handoffs/{handoff_id}"),),
        chain=(ChainStep(handoff_id, "ops", "checkout", "investigate", "Checkout 5xx", "resolved"),),
    )
    return adf(note)


def _wiki(node: Any) -> str:
    """An ADF document in Jira's wiki markup, as Jira's webhooks, its Automation rules'
    ``{{comment.body}}`` and REST v2 carry a comment: ``h3.``, ``*strong*``, ``{{code}}``,
    ``[text|url]``, ``{quote}``, ``#``/``*`` list items, ``{code:lang}``; blocks apart by a blank line."""
    kind, content = node.get("type"), node.get("content", [])
    if kind == "text":
        text = node["text"]
        for mark in node.get("marks", []):
            if mark["type"] == "strong":
                text = f"*{text}*"
            elif mark["type"] == "code":
                text = "{{" + text + "}}"
            elif mark["type"] == "link":
                text = f"[{text}|{mark['attrs']['href']}]"
        return text
    if kind == "hardBreak":
        return "\n"
    inner = "".join(_wiki(child) for child in content)
    if kind == "heading":
        return f"h{node['attrs']['level']}. {inner}"
    if kind == "blockquote":
        return "{quote}" + "\n".join(_wiki(c) for c in content) + "{quote}"
    if kind in ("orderedList", "bulletList"):
        bullet = "#" if kind == "orderedList" else "*"
        return "\n".join(f"{bullet} " + "".join(_wiki(p) for p in item["content"]) for item in content)
    if kind == "codeBlock":
        return "{code:" + node["attrs"]["language"] + "}\n" + inner + "\n{code}"
    if kind == "doc":
        return "\n\n".join(_wiki(child) for child in content)
    return inner


def _hmac(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def _adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


@dataclass
class World:
    handoffs: MemoryHandoffs
    inbound: MemoryInboundStore
    humans: HumanInbound

    def investigation(self, handoff_id: str, backend: str, destination: str, **kw: Any) -> None:
        self.handoffs.store.add(make_record(handoff_id, **kw))
        self.inbound.index_destination(backend, destination, handoff_id)

    def jira(
        self,
        text: str = "Customer impact is EU only",
        *,
        backend: str = "jira",
        key: str = "OPS-7",
        comment_id: str = "10001",
        account: str = "712020:alice",
        display_name: str = "Alice Oncall",
        auth: str = "signature",
        header: str = "X-Hub-Signature",
        event: str = "comment_created",
        value: str | None = None,
        body: object = None,
    ) -> tuple[dict, int]:
        data = {
            "webhookEvent": event,
            "comment": {
                "id": comment_id,
                "body": _adf(text) if body is None else body,
                "author": {"accountId": account, "displayName": display_name},
                "created": "2026-12-01T03:52:00.000+0000",
            },
            "issue": {"id": "20001", "key": key},
        }
        raw = json.dumps(data).encode()
        headers = {"X-Atlassian-Webhook-Identifier": "d-1"}
        if auth == "signature":
            headers[header] = value if value is not None else "sha256=" + _hmac(raw)
        else:
            headers["X-Handoff-Webhook-Token"] = value if value is not None else SECRET
        return self.humans.receive(backend, headers, raw)

    def snow(
        self, value: str = "Failover is running", *, token: str = SECRET, **fields: Any
    ) -> tuple[dict, int]:
        data = {
            "sys_id": "b" * 32,
            "element": "work_notes",
            "element_id": SYS_ID,
            "name": "incident",
            "number": "INC0010001",
            "value": value,
            "sys_created_by": "alice.oncall",
            "sys_created_on": "2026-12-01 03:52:00",
            **fields,
        }
        return self.humans.receive("snow", {"X-Handoff-Webhook-Token": token}, json.dumps(data).encode())


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    handoffs = MemoryHandoffs(
        settings=Settings(public_base_url="https://broker.example.com"),
        registry=registry([JIRA, JIRA_SIGNED, JIRA_TOKEN, JIRA_UNOWNED, SNOW, GH]),
        store=MemoryHandoffStore(clock),
        queue=MemoryQueue(),
        agents=MemoryAgents(),
        clock=clock,
    )
    inbound = MemoryInboundStore(clock)
    return World(
        handoffs, inbound, HumanInbound(handoffs.context, inbound, MemoryNotes(), environ={"HOOK": SECRET})
    )


# ---------------------------------------------------------------- Jira webhooks


@pytest.mark.parametrize("auth", ["signature", "token"])
def test_a_jira_comment_reaches_the_investigation_of_its_issue(world, auth):
    world.investigation(H1, "jira", "OPS-7")
    assert world.jira(auth=auth) == ({"status": "queued", "investigations": 1, "override": False}, 202)
    entry = world.handoffs.queue.messages[0]["entry"]
    assert entry["platform"] == "jira" and entry["entryId"] == "10001" and entry["author"] == "Alice Oncall"
    assert entry["text"] == "Customer impact is EU only"
    assert entry["url"] == "https://contoso.atlassian.net/browse/OPS-7?focusedCommentId=10001"
    assert entry["at"] == "2026-12-01T03:52:00+00:00"
    assert world.inbound.entries[("jira", "10001")]["DeliveryId"] == "d-1"


@pytest.mark.parametrize(
    ("backend", "auth", "header", "value"),
    [
        ("jira", "signature", "X-Hub-Signature", "sha256=" + "0" * 64),
        ("jira", "signature", "X-Hub-Signature", ""),
        ("jira", "token", "", "not-the-secret"),
        ("jira-signed", "token", "", None),  # tokens refused where only signatures are taken
        ("jira-signed", "signature", "X-Hub-Signature", None),  # signed in the wrong header
        ("jira-token", "signature", "X-Hub-Signature", None),
    ],
)
def test_a_jira_delivery_without_what_its_backend_takes_is_401(world, backend, auth, header, value):
    world.investigation(H1, backend, "OPS-7")
    with pytest.raises(Unauthorized):
        world.jira(backend=backend, auth=auth, header=header, value=value)
    assert world.inbound.entries == {} and world.handoffs.queue.sent == []


def test_a_jira_signature_in_the_configured_header_is_taken(world):
    world.investigation(H1, "jira-signed", "OPS-7")
    assert world.jira(backend="jira-signed", header="X-Sig")[1] == 202


def test_a_replayed_jira_delivery_is_taken_once(world):
    world.investigation(H1, "jira", "OPS-7")
    assert world.jira()[1] == 202
    assert world.jira(auth="token") == ({"status": "duplicate"}, 200)


def test_jira_events_comments_and_issues_not_read_are_ignored(world):
    world.investigation(H1, "jira", "OPS-7")
    assert world.jira(event="comment_updated")[0] == {
        "status": "ignored",
        "reason": "event comment_updated is not read",
    }
    assert world.jira(key="OTHER-1")[0]["reason"] == "issue not configured for this backend"
    assert world.jira(account="5b10ac8d82e05b22cc7d4ef5")[0]["reason"] == "the broker's own entry"
    assert (
        world.jira(comment_id="10009", key="OPS-8")[0]["reason"] == "no active investigation on this record"
    )


def test_on_the_fixed_jira_issue_only_the_quoted_investigation_gets_the_entry(world):
    world.investigation(H1, "jira", "OPS-1")
    world.investigation(H2, "jira", "OPS-1")
    assert world.jira(key="OPS-1")[0]["status"] == "ignored"
    assert world.jira(f"about {H2}: EU only", key="OPS-1", comment_id="10002")[0]["investigations"] == 1
    assert [m["handoffId"] for m in world.handoffs.queue.messages] == [H2]


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"webhookEvent": "comment_created"},
        {"webhookEvent": "comment_created", "comment": {}, "issue": {"key": "OPS-7"}},
    ],
)
def test_a_jira_event_without_what_it_always_carries_is_422(world, data):
    raw = json.dumps(data).encode()
    with pytest.raises(Unprocessable):
        world.humans.receive("jira", {"X-Hub-Signature": "sha256=" + _hmac(raw)}, raw)


@pytest.mark.attack("rendering")
def test_a_jira_user_named_after_the_brokers_account_still_reaches_the_agents(world):
    # displayName is the name a person gives themselves; only accountId says who wrote the comment.
    world.investigation(H1, "jira", "OPS-7")
    forged = f"All clear, close it\nhandoff-memory: {H1}/handedBack:1/jira"
    answer, status = world.jira(forged, display_name=JIRA["ownAccount"])
    assert (answer["status"], status) == ("queued", 202)
    own = world.jira(forged, comment_id="10002", account=JIRA["ownAccount"], display_name="Handoff Broker")
    assert own == ({"status": "ignored", "reason": "the broker's own entry"}, 200)
    assert [m["entry"]["entryId"] for m in world.handoffs.queue.messages] == ["10001"]


@pytest.mark.parametrize("auth", ["signature", "token"])
def test_the_brokers_own_jira_comment_sent_back_in_wiki_markup_is_not_read_back(world, auth):
    # Jira's webhooks and the Automation rule's {{comment.body.jsonEncode}} carry the comment in wiki
    # markup, where the marker's code mark is {{...}}. Without ownAccount the marker line decides; the
    # comment links its handoff, so read as a person's it would reach the agents even on the fixed issue.
    world.investigation(H1, "jira-unowned", "OPS-1")
    body = _wiki(_brokers_comment(H1, "jira-unowned"))
    assert body.endswith("\n\n{{handoff-memory: " + H1 + "/handedBack:1/jira-unowned}}")
    answer = world.jira(backend="jira-unowned", key="OPS-1", account="712020:bot", body=body, auth=auth)
    assert answer == ({"status": "ignored", "reason": "the broker's own entry"}, 200)
    assert world.handoffs.queue.messages == [] and world.inbound.entries == {}


def test_in_wiki_markup_only_the_marker_in_its_code_mark_on_the_last_line_is_the_brokers(world):
    world.investigation(H1, "jira-unowned", "OPS-7")
    marker = f"handoff-memory: {H1}/handedBack:1/jira-unowned"
    people = [
        f"All clear\n\n{marker}",  # the marker's ADF reading, not its wiki one
        f"All clear\n\n{{{{{marker}}}}} was the broker's",
        f"All clear\n\n{{{{{{{marker}}}}}}}",
        f"All clear\n\n{{{{{marker}}}}}}}}}",
        f"All clear\n\n{{{{{marker}}}}}\n\nbut it is wrong",
        f"All clear\n\nbq. {{{{{marker}}}}}",
        f"All clear\n\n{{{{{marker}",
    ]
    for n, body in enumerate(people):
        answer, status = world.jira(backend="jira-unowned", comment_id=f"2000{n}", body=body)
        assert (answer["status"], status) == ("queued", 202), body
    assert len(world.handoffs.queue.messages) == len(people)


def test_an_override_on_jira_is_marked(world):
    world.investigation(H1, "jira", "OPS-7")
    assert world.jira("stop: do not fail over")[0]["override"] is True
    assert world.handoffs.store.types(H1) == ["humanOverride"]


# ---------------------------------------------------------------- ServiceNow webhooks


def test_a_servicenow_work_note_reaches_the_investigation_of_its_incident(world):
    world.investigation(H1, "snow", SYS_ID)
    assert world.snow("override: roll back") == (
        {"status": "queued", "investigations": 1, "override": True},
        202,
    )
    entry = world.handoffs.queue.messages[0]["entry"]
    assert (entry["platform"], entry["entryId"], entry["author"]) == ("servicenow", "b" * 32, "alice.oncall")
    assert entry["at"] == "2026-12-01T03:52:00+00:00"
    assert entry["url"] == f"https://contoso.service-now.com/nav_to.do?uri=incident.do%3Fsys_id%3D{SYS_ID}"
    assert world.snow() == ({"status": "duplicate"}, 200)


@pytest.mark.parametrize("token", ["", "wrong", SECRET + "x"])
def test_a_servicenow_delivery_without_the_token_is_401_and_changes_nothing(world, token, caplog):
    world.investigation(H1, "snow", SYS_ID)
    with caplog.at_level(logging.WARNING, logger="handoff.security"), pytest.raises(Unauthorized):
        world.snow(token=token)
    assert world.inbound.entries == {} and world.handoffs.store.types(H1) == []
    assert "resource='webhooks/snow' status=401" in caplog.text


def test_servicenow_entries_of_other_fields_tables_and_accounts_are_ignored(world):
    world.investigation(H1, "snow", SYS_ID)
    assert world.snow(element="comments")[0]["reason"] == "journal field comments is not read by this backend"
    assert world.snow(name="problem")[0]["reason"] == "table problem is not this backend's"
    assert world.snow(sys_created_by="handoff.bot")[0]["reason"] == "the broker's own entry"


@pytest.mark.parametrize("data", [[1], {"sys_id": "x"}, {"element_id": SYS_ID}])
def test_a_journal_entry_without_its_ids_is_422(world, data):
    with pytest.raises(Unprocessable):
        world.humans.receive("snow", {"x-handoff-webhook-token": SECRET}, json.dumps(data).encode())


def test_a_backend_that_polls_takes_no_webhook(world):
    with pytest.raises(NotFound):
        world.humans.receive("gh", {}, b"{}")


# ---------------------------------------------------------------- vendor objects


def test_adf_reads_as_a_person_wrote_it():
    doc = {
        "type": "doc",
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Please "},
                    {"type": "text", "text": "don't", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " restart"},
                    {"type": "hardBreak"},
                    {"type": "mention", "attrs": {"text": "@Bob"}},
                    {"type": "emoji", "attrs": {"shortName": ":fire:"}},
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}],
                    }
                ],
            },
            7,
        ],
    }
    assert adf_plain(doc) == "Please don't restart\n@Bob:fire:\none\n"
    assert adf_plain("plain text") == "plain text"
    deep: dict[str, Any] = {"type": "text", "text": "bottom"}
    for _ in range(100):
        deep = {"type": "blockquote", "content": [deep]}
    assert adf_plain(deep).strip() == ""


def test_a_servicenow_incident_named_by_sys_id_is_known_before_any_write():
    config = registry([SNOW]).shared_memory.find("snow")
    assert (
        known_destination(config, make_record(H1, incident={"id": SYS_ID, "platform": "servicenow"}), {})
        == SYS_ID
    )
    assert (
        known_destination(
            config, make_record(H1, incident={"id": "INC0010001", "platform": "servicenow"}), {}
        )
        is None
    )


# ---------------------------------------------------------------- configuration


def test_inbound_defaults_follow_the_webhook_secret():
    config = SharedMemoryConfig.model_validate({"backends": [JIRA, GH, {**PD, "inbound": None}]})
    jira, gh, pd = config.backends
    assert (jira.inbound_mode, jira.takes_webhooks, jira.polls) == ("webhook", True, False)
    assert (gh.inbound_mode, gh.takes_webhooks, gh.polls, gh.reads_entries) == ("poll", False, True, True)
    assert (pd.inbound_mode, pd.reads_entries) == ("off", False)
    both = SharedMemoryConfig.model_validate({"backends": [{**JIRA, "inbound": "both"}]}).backends[0]
    assert both.takes_webhooks and both.polls


@pytest.mark.parametrize("inbound", ["webhook", "both"])
def test_a_webhook_without_a_secret_is_a_config_error(inbound):
    with pytest.raises(ValidationError, match="needs webhookSecretSetting"):
        SharedMemoryConfig.model_validate({"backends": [{**GH, "inbound": inbound}]})


@pytest.mark.parametrize(("seconds", "tick"), [(1, 1), (5, 1), (8, 2), (20, 5), (60, 15), (3600, 15)])
def test_the_poll_timer_ticks_about_four_times_an_interval(seconds, tick):
    assert poll_tick_seconds(seconds) == tick
    assert poll_schedule(seconds) == f"*/{tick} * * * * *"
    assert Settings(human_poll_seconds=seconds).human_poll_schedule == poll_schedule(seconds)


# ---------------------------------------------------------------- readers (the vendors' APIs)


class Vendor:
    """One vendor API answering from canned JSON; records the requests."""

    def __init__(self, answers: list[httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def _readers(answers: list[httpx.Response], backends: list[dict]) -> tuple[VendorReaders, Vendor, Registry]:
    vendor = Vendor(answers)
    ctx = WriterContext(
        http=httpx.Client(transport=httpx.MockTransport(vendor)),
        settings=Settings(),
        state=MemoryWriteState(),
        clock=FakeClock(),
        environ={"GH_TOKEN": "t", "PD_TOKEN": "k", "JIRA_TOKEN": "a@b.c:tok", "SNOW_CREDENTIALS": "u:p"},
    )
    return VendorReaders(ctx), vendor, registry(backends)


SINCE = datetime(2026, 12, 1, 3, 50, tzinfo=UTC)


def test_github_comments_are_read_since_the_cursor_created_after_it():
    old = {
        "id": 1,
        "body": "edited since",
        "user": {"login": "bob", "id": 7},
        "created_at": "2026-12-01T03:00:00Z",
    }
    new = {"id": 2, "body": "new", "user": {"login": "amy", "id": 8}, "created_at": "2026-12-01T03:51:00Z",
           "html_url": "https://github.com/contoso/shop/issues/7#issuecomment-2"}  # fmt: skip
    readers, vendor, reg = _readers([httpx.Response(200, json=[old, new])], [GH])
    [entry] = readers.entries_since(reg.shared_memory.find("gh"), "contoso/shop#7", SINCE)
    assert (entry.entry_id, entry.author, entry.destination) == ("2", "amy", "contoso/shop#7")
    request = vendor.requests[0]
    assert request.url.path == "/repos/contoso/shop/issues/7/comments"
    assert request.url.params["since"] == "2026-12-01T03:50:00Z" and request.url.params["per_page"] == "100"
    assert request.headers["Authorization"] == "Bearer t"


def test_github_pages_are_followed_while_full():
    page = [{"id": n, "body": "x", "created_at": "2026-12-01T03:51:00Z"} for n in range(100)]
    readers, vendor, reg = _readers([httpx.Response(200, json=page), httpx.Response(200, json=[])], [GH])
    assert len(readers.entries_since(reg.shared_memory.find("gh"), "contoso/shop#7", SINCE)) == 100
    assert [r.url.params["page"] for r in vendor.requests] == ["1", "2"]


def test_a_record_key_that_is_not_an_issue_is_a_permanent_failure():
    readers, _, reg = _readers([], [GH])
    with pytest.raises(WriteError) as failure:
        readers.entries_since(reg.shared_memory.find("gh"), "../x", SINCE)
    assert failure.value.transient is False


def test_pagerduty_notes_are_read_and_older_ones_left_out():
    notes = [
        {"id": "PN1", "content": "old", "created_at": "2026-12-01T03:00:00Z", "user": {"id": "PU1"}},
        {
            "id": "PN2",
            "content": "stop: now",
            "created_at": "2026-12-01T03:55:00Z",
            "user": {"id": "PU2", "summary": "Pat"},
        },
    ]
    readers, vendor, reg = _readers([httpx.Response(200, json={"notes": notes})], [PD])
    [entry] = readers.entries_since(reg.shared_memory.find("pd"), "PINC1", SINCE)
    assert (entry.entry_id, entry.author, entry.text) == ("PN2", "Pat", "stop: now")
    assert vendor.requests[0].url.path == "/incidents/PINC1/notes"
    assert vendor.requests[0].headers["Authorization"] == "Token token=k"


def test_jira_comments_are_read_newest_first_down_to_the_cursor():
    def comment(n: int, minute: int) -> dict:
        return {
            "id": str(n),
            "body": _adf(f"c{n}"),
            "author": {"accountId": "x"},
            "created": f"2026-12-01T03:{minute:02d}:00.000+0000",
        }

    full = [comment(n, 55) for n in range(100)]
    readers, vendor, reg = _readers(
        [
            httpx.Response(200, json={"comments": full}),
            httpx.Response(200, json={"comments": [comment(200, 51), comment(201, 40)]}),
        ],
        [JIRA],
    )
    found = readers.entries_since(reg.shared_memory.find("jira"), "OPS-7", SINCE)
    assert len(found) == 101 and found[-1].entry_id == "200"
    assert [(r.url.params["orderBy"], r.url.params["startAt"]) for r in vendor.requests] == [
        ("-created", "0"),
        ("-created", "100"),
    ]
    with pytest.raises(WriteError):
        readers.entries_since(reg.shared_memory.find("jira"), "OTHER-1", SINCE)


def test_polled_jira_comments_in_adf_own_only_the_brokers_last_line_marker():
    # REST v3 answers ADF: the broker's comment's code-marked marker reads as its own last line; the
    # wiki form of it in a person's ADF text is a person's.
    marker = f"handoff-memory: {H1}/handedBack:1/jira-unowned"
    comments = [
        {"id": "1", "body": _brokers_comment(H1, "jira-unowned")},
        {"id": "2", "body": _adf("{{" + marker + "}}")},
        {"id": "3", "body": _adf(f"see {marker}")},
    ]
    for comment in comments:
        comment |= {"author": {"accountId": "712020:x"}, "created": "2026-12-01T03:55:00.000+0000"}
    readers, _, reg = _readers([httpx.Response(200, json={"comments": comments})], [JIRA_UNOWNED])
    backend = reg.shared_memory.find("jira-unowned")
    assert backend is not None
    found = readers.entries_since(backend, "OPS-1", SINCE)
    assert [(e.entry_id, own_marker(backend, e)) for e in found] == [("1", marker), ("2", None), ("3", None)]


def test_servicenow_journal_entries_are_queried_since_the_cursor():
    rows = [
        {
            "sys_id": "c" * 32,
            "element_id": SYS_ID,
            "value": "note",
            "sys_created_by": "amy",
            "sys_created_on": "2026-12-01 03:50:00",
        }
    ]
    readers, vendor, reg = _readers([httpx.Response(200, json={"result": rows})], [SNOW])
    [entry] = readers.entries_since(reg.shared_memory.find("snow"), SYS_ID, SINCE + timedelta(microseconds=5))
    assert (entry.entry_id, entry.destination, entry.author) == ("c" * 32, SYS_ID, "amy")
    query = vendor.requests[0].url.params["sysparm_query"]
    assert query.split("^") == [
        f"element_id={SYS_ID}",
        "element=work_notes",
        "name=incident",
        "sys_created_on>=2026-12-01 03:50:00",
        "ORDERBYsys_created_on",
    ]
    with pytest.raises(WriteError):
        readers.entries_since(reg.shared_memory.find("snow"), "x^element=comments", SINCE)


def test_a_vendor_rate_limit_is_read_as_backend_wide():
    readers, _, reg = _readers([httpx.Response(429, headers={"Retry-After": "30"}, json={})], [PD])
    with pytest.raises(WriteError) as failure:
        readers.entries_since(reg.shared_memory.find("pd"), "PINC1", SINCE)
    assert failure.value.backend_wide and failure.value.retry_after == 30


# ---------------------------------------------------------------- cursor


def test_a_cursor_skips_what_it_saw_at_its_own_second():
    from handoff.domain.shared_memory.human_entries import HumanEntry

    def entry(entry_id: str, seconds: int) -> HumanEntry:
        return HumanEntry(
            "gh", "github", entry_id, "r", "a", "a", START + timedelta(seconds=seconds), "t", None, ""
        )

    cursor = PollCursor(START + timedelta(seconds=10), ("a",))
    fresh = cursor.news([entry("c", 20), entry("a", 10), entry("b", 10), entry("z", 5)])
    assert [e.entry_id for e in fresh] == ["b", "c"]
    assert cursor.after(fresh[:1]) == PollCursor(START + timedelta(seconds=10), ("a", "b"))
    assert cursor.after(fresh) == PollCursor(START + timedelta(seconds=20), ("c",))


# ---------------------------------------------------------------- Seen before


def _note(text: str, at: str, override: bool = False) -> dict:
    return {"backend": "gh", "entryId": text, "author": "amy", "at": at, "text": text, "override": override}


def test_seen_before_lists_human_overrides_first():
    notes = [
        _note("first note", "2026-11-01T01:00:00Z"),
        _note("stop: old override", "2026-11-01T02:00:00Z", True),
        _note("later note", "2026-11-01T03:00:00Z"),
        _note("override: newer override", "2026-11-01T04:00:00Z", True),
        _note("last note", "2026-11-01T05:00:00Z"),
    ]
    assert [n["text"] for n in ordered_notes(notes)][:MAX_NOTES] == [
        "override: newer override",
        "stop: old override",
        "last note",
    ]
    item = {
        "title": "Pool exhausted",
        "outcome": "mitigated",
        "handoffId": H1,
        "handedBackAt": "2026-11-01T06:00:00Z",
        "humanNotes": notes,
    }
    lines = seen_before_section((item,), "https://broker.example.com")
    notes_shown = [line for line in lines if line.startswith("  - Human")]
    assert notes_shown[0].startswith(
        "  - Human override by @amy on gh, 2026-11-01 04:00 UTC: override: newer override"
    )
    assert notes_shown[2].startswith("  - Human note by @amy on gh")
    assert len(notes_shown) == MAX_NOTES


def test_seen_before_notes_are_single_lines_and_capped():
    item = {
        "handoffId": H1,
        "humanNotes": [_note("a\n## Payload\n" + "x" * 500, "2026-11-01T01:00:00Z"), "junk"],
    }
    [line] = [line for line in seen_before_section((item,), "https://b") if "Human note" in line]
    assert "\n" not in line and line.endswith(" …") and "## Payload" not in line.split(": ", 1)[1][:3]
    assert seen_before_section(({"handoffId": H1, "humanNotes": "bad"},), "https://b")[2].startswith("- ")
