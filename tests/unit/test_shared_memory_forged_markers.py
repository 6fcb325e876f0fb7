"""A person cannot stand in for the broker's shared-memory write by copying its marker: the writers
(GitHub, PagerDuty, Jira, ServiceNow, over simulated vendor APIs in their documented shapes) look for an
earlier write only on a retry, and take as one only the broker's own comment or note (``ownAccount``;
without it, one that ends with the marker line exactly as the broker writes it)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from handoff.adapters.vendor_writers import VendorWriters
from handoff.adapters.vendors import WriterContext
from handoff.domain.shared_memory.content import write_marker
from handoff.services.shared_memory.worker import SharedMemoryService
from tests.unit.memory.shared_memory import (
    FakeClock,
    MemoryHandoffStore,
    MemoryInboundStore,
    MemoryQueue,
    MemoryWriteState,
    make_record,
    registry,
)
from tests.unit.memory.shared_memory_world import H1, SETTINGS

SYS_ID = "0f" * 16
BROKER = {
    "github": "handoff-bot",
    "pagerduty": "PBROKER1",
    "jira": "5b10ac8d82e05b22cc7d4ef5",
    "sn": "handoff.bot",
}
BACKENDS = {
    "gh": {
        "name": "gh",
        "type": "github",
        "baseUrl": "https://api.github.com",
        "repo": "contoso/shop",
        "issue": 7,
        "secretSetting": "TOKEN",
        "ownAccount": BROKER["github"],
        "on": ["delivered", "handedBack"],
    },
    "pd": {
        "name": "pd",
        "type": "pagerduty",
        "baseUrl": "https://api.pagerduty.com",
        "fromEmail": "oncall@contoso.com",
        "secretSetting": "TOKEN",
        "ownAccount": BROKER["pagerduty"],
        "on": ["delivered", "handedBack"],
    },
    "jira": {
        "name": "jira",
        "type": "jira",
        "baseUrl": "https://contoso.atlassian.net",
        "issue": "OPS-1",
        "secretSetting": "TOKEN",
        "ownAccount": BROKER["jira"],
        "on": ["delivered", "handedBack"],
    },
    "sn": {
        "name": "sn",
        "type": "servicenow",
        "baseUrl": "https://contoso.service-now.com",
        "secretSetting": "TOKEN",
        "ownAccount": BROKER["sn"],
        "on": ["delivered", "handedBack"],
    },
}
INCIDENTS = {
    "gh": None,
    "pd": {"id": "PINC1", "platform": "pagerduty"},
    "jira": None,
    "sn": {"id": SYS_ID, "platform": "servicenow"},
}


class Vendors:
    """GitHub issue comments, PagerDuty incident notes, Jira comments and ServiceNow journal entries of
    one record each, as the vendors list and create them. What the broker writes is authored by its
    account; ``drop_next_write`` answers the next write 502 without taking it."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []  # oldest first, each {"by", "text", "id"}
        self.drop_next_write = False
        self.writes = 0

    def person(self, text: str, by: str = "mallory", name: str | None = None) -> None:
        """A person's entry; ``name``: the display name they gave themselves (PagerDuty, Jira)."""
        entry = {"by": by, "text": text, "id": f"{len(self.entries) + 1}"}
        self.entries.append(entry | ({"name": name} if name is not None else {}))

    def broker_texts(self) -> list[str]:
        return [e["text"] for e in self.entries if e["by"] == "broker"]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method in ("POST", "PATCH"):
            self.writes += 1
            if self.drop_next_write:
                self.drop_next_write = False
                return httpx.Response(502, json={"message": "bad gateway"})
            body = json.loads(request.content)
            text = body.get("body") or (body.get("note") or {}).get("content") or body.get("work_notes")
            self.entries.append({"by": "broker", "text": text, "id": f"{len(self.entries) + 1}"})
            return self._created(path, self.entries[-1])
        if path.endswith("/issues/7/comments"):
            return httpx.Response(200, json=[self._github(e) for e in self.entries])
        if path.endswith("/incidents/PINC1/notes"):
            return httpx.Response(200, json={"notes": [self._pagerduty(e) for e in self.entries]})
        if path.endswith("/issue/OPS-1/comment"):
            return httpx.Response(200, json={"comments": [self._jira(e) for e in reversed(self.entries)]})
        if path.endswith("/sys_journal_field"):
            needle = re.search(r"valueLIKE([^^]*)", request.url.params["sysparm_query"])
            rows = [self._servicenow(e) for e in self.entries if needle and needle[1] in str(e["text"])]
            return httpx.Response(200, json={"result": rows[: int(request.url.params["sysparm_limit"])]})
        return httpx.Response(404, json={"message": f"unexpected {request.method} {path}"})

    def _created(self, path: str, entry: dict[str, Any]) -> httpx.Response:
        if "/repos/" in path:
            return httpx.Response(201, json=self._github(entry))
        if "/incidents/" in path:
            return httpx.Response(201, json={"note": self._pagerduty(entry)})
        if "/rest/api/3/" in path:
            return httpx.Response(201, json=self._jira(entry))
        return httpx.Response(200, json={"result": {"sys_id": SYS_ID, "number": "INC0010001"}})

    @staticmethod
    def _author(entry: dict[str, Any], platform: str) -> str:
        return BROKER[platform] if entry["by"] == "broker" else entry["by"]

    def _github(self, e: dict[str, Any]) -> dict[str, Any]:
        login = self._author(e, "github")
        return {
            "id": int(e["id"]),
            "body": e["text"],
            "user": {"login": login, "id": 100 + len(login)},
            "created_at": "2026-12-01T03:00:00Z",
            "html_url": f"https://github.com/contoso/shop/issues/7#issuecomment-{e['id']}",
        }

    def _pagerduty(self, e: dict[str, Any]) -> dict[str, Any]:
        user = self._author(e, "pagerduty")
        return {
            "id": f"PN{e['id']}",
            "user": {"id": user, "type": "user_reference", "summary": e.get("name") or user.title()},
            "content": e["text"],
            "created_at": "2026-12-01T03:00:00Z",
        }

    def _jira(self, e: dict[str, Any]) -> dict[str, Any]:
        text = e["text"]
        if isinstance(text, dict):  # the broker's ADF
            body = text
        else:  # a person's comment: a paragraph a line
            lines = [line for line in text.split("\n") if line]
            paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": x}]} for x in lines]
            body = {"type": "doc", "version": 1, "content": paragraphs}
        return {
            "id": e["id"],
            "self": f"https://contoso.atlassian.net/rest/api/3/issue/OPS-1/comment/{e['id']}",
            "author": {"accountId": self._author(e, "jira"), "displayName": e.get("name") or e["by"]},
            "body": body,
            "created": "2026-12-01T03:00:00.000+0000",
        }

    def _servicenow(self, e: dict[str, Any]) -> dict[str, Any]:
        return {
            "sys_id": f"{int(e['id']):032x}",
            "element": "work_notes",
            "element_id": SYS_ID,
            "name": "incident",
            "value": e["text"],
            "sys_created_by": self._author(e, "sn"),
            "sys_created_on": "2026-12-01 03:00:00",
        }


class Retries:
    """The delivery queue run as the host runs it: each message after its delay."""

    def __init__(self, service: SharedMemoryService, queue: MemoryQueue, clock: FakeClock) -> None:
        self.service, self.queue, self.clock = service, queue, clock

    def run(self, limit: int = 10) -> None:
        while self.queue.sent and limit:
            message, delay = self.queue.sent.pop(0)
            self.clock.advance(delay)
            self.service.process(message)
            limit -= 1


def world(backend: str, *, own_account: bool = True) -> tuple[SharedMemoryService, Vendors, Retries]:
    clock = FakeClock()
    vendors = Vendors()
    config = dict(BACKENDS[backend])
    if not own_account:
        del config["ownAccount"]
    store, queue, state = MemoryHandoffStore(clock), MemoryQueue(), MemoryWriteState()
    ctx = WriterContext(
        http=httpx.Client(transport=httpx.MockTransport(vendors)),
        settings=SETTINGS,
        state=state,
        clock=clock,
        environ={"TOKEN": "user:secret"},
    )
    service = SharedMemoryService(
        settings=SETTINGS,
        registry=registry([config], checkout=[backend]),
        store=store,
        queue=queue,
        state=state,
        writers=VendorWriters(ctx),
        clock=clock,
        destinations=MemoryInboundStore(clock),
    )
    store.add(make_record(H1, incident=INCIDENTS[backend], handbacks=1))
    return service, vendors, Retries(service, queue, clock)


def message(backend: str, point: str, seq: int) -> dict[str, Any]:
    return {
        "handoffId": H1,
        "point": point,
        "seq": seq,
        "backend": backend,
        "attempt": 1,
        "firstAt": "2026-12-01T03:00:00+00:00",
        "details": {},
    }


def written(service: SharedMemoryService, backend: str) -> dict[str, Any]:
    return service.state.get_write(H1, f"handedBack:1|{backend}") or {}


@pytest.mark.attack("rendering")
def test_a_pagerduty_note_that_copies_the_next_marker_does_not_suppress_the_brokers_note():
    # A responder reads the marker off the broker's "delivered" note and writes the hand-back's into a
    # note of their own, before the hand-back is written.
    service, vendors, _ = world("pd")
    service.process(message("pd", "delivered", 0))
    assert f"[{write_marker(H1, 'delivered', 0, 'pd')}]" in vendors.broker_texts()[0]
    vendors.person(f"handoff-memory: {H1}/handedBack:1/pd")
    vendors.person(f"nothing to see\n\n[{write_marker(H1, 'handedBack', 1, 'pd')}]")
    service.process(message("pd", "handedBack", 1))
    [_, hand_back] = vendors.broker_texts()
    assert hand_back.endswith(f"[{write_marker(H1, 'handedBack', 1, 'pd')}]")
    row = written(service, "pd")
    assert (row["Status"], row["Url"]) == ("written", "incident PINC1 note PN4")


@pytest.mark.attack("rendering")
@pytest.mark.parametrize("backend", ["gh", "pd", "jira", "sn"])
def test_a_retry_passes_over_a_persons_copy_of_the_marker_and_writes(backend):
    # The first attempt did not land (502); meanwhile a person posts the write's marker line exactly as
    # the broker renders it. The retry must not take that for the broker's write.
    service, vendors, retries = world(backend)
    vendors.drop_next_write = True
    service.process(message(backend, "handedBack", 1))
    assert written(service, backend)["Status"] == "pending" and vendors.entries == []
    line = {
        "gh": f"<!-- {write_marker(H1, 'handedBack', 1, 'gh')} -->",
        "pd": f"[{write_marker(H1, 'handedBack', 1, 'pd')}]",
        "jira": write_marker(H1, "handedBack", 1, "jira"),
        "sn": f"[{write_marker(H1, 'handedBack', 1, 'sn')}]",
    }[backend]
    vendors.person(f"Handed back: all clear, close it\n\n{line}")
    retries.run()
    assert len(vendors.broker_texts()) == 1 and vendors.writes == 2
    row = written(service, backend)
    assert row["Status"] == "written" and "mallory" not in str(row["Url"])
    assert service.store.events(H1, "sharedMemoryWritten")[0].details["foundExisting"] is False


@pytest.mark.attack("rendering")
@pytest.mark.parametrize("backend", ["pd", "jira"])
def test_a_person_named_after_the_brokers_account_cannot_stand_in_for_its_write(backend):
    # PagerDuty's user.summary and Jira's displayName are names people give themselves. A person renames
    # themselves to the broker's ownAccount and posts the marker line of a write that did not land.
    service, vendors, retries = world(backend)
    vendors.drop_next_write = True
    service.process(message(backend, "handedBack", 1))
    marker = write_marker(H1, "handedBack", 1, backend)
    line = f"[{marker}]" if backend == "pd" else marker
    vendors.person(f"Handed back: all clear, close it\n\n{line}", name=BROKER[BACKENDS[backend]["type"]])
    retries.run()
    assert len(vendors.broker_texts()) == 1 and vendors.writes == 2
    row = written(service, backend)
    assert row["Status"] == "written" and str(row["Url"]).endswith("2")  # the broker's note, not entry 1
    assert service.store.events(H1, "sharedMemoryWritten")[0].details["foundExisting"] is False


@pytest.mark.parametrize("own_account", [True, False])
@pytest.mark.parametrize("backend", ["gh", "pd", "jira", "sn"])
def test_a_retry_still_finds_the_brokers_own_earlier_write(backend, own_account):
    # Without ownAccount the write is known by its last line, as each vendor's API answers it (Jira's
    # REST v3 in ADF: the marker's code-marked text node on its own line).
    service, vendors, _ = world(backend, own_account=own_account)
    service.process(message(backend, "handedBack", 1))
    service.state.put_write(H1, f"handedBack:1|{backend}", {"Status": "pending"})  # its answer was lost
    vendors.person(f"quoting it: {write_marker(H1, 'handedBack', 1, backend)}")
    service.process(message(backend, "handedBack", 1))
    assert len(vendors.broker_texts()) == 1 and vendors.writes == 1
    assert service.store.events(H1, "sharedMemoryWritten")[-1].details["foundExisting"] is True


@pytest.mark.attack("rendering")
@pytest.mark.parametrize("backend", ["gh", "pd", "jira", "sn"])
def test_without_own_account_a_marker_quoted_in_a_persons_note_is_not_the_brokers_write(backend):
    service, vendors, retries = world(backend, own_account=False)
    vendors.drop_next_write = True
    service.process(message(backend, "handedBack", 1))
    vendors.person(f"the broker wrote {write_marker(H1, 'handedBack', 1, backend)} somewhere; ignore it")
    retries.run()
    assert len(vendors.broker_texts()) == 1
    assert service.store.events(H1, "sharedMemoryWritten")[0].details["foundExisting"] is False
