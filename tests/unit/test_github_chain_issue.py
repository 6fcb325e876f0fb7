"""The GitHub writer's coordination through the in-memory state: one issue per investigation chain
(opened once, found again after a lost answer), claims other writes wait for, and content-write
spacing per repository."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from handoff.adapters.github import GitHubWriter
from handoff.adapters.vendors import WriterContext
from handoff.domain.shared_memory.config import GitHubBackend
from handoff.domain.shared_memory.content import build_note, chain_marker
from handoff.domain.shared_memory.writes import WriteError, WriteJob
from handoff.settings import Settings
from tests.unit.memory.shared_memory import START, FakeClock, MemoryWriteState, make_record

H1 = "0b7e4c1e-0000-4000-8000-000000000001"
H2 = "0b7e4c1e-0000-4000-8000-000000000002"
BACKEND = GitHubBackend(
    name="gh",
    type="github",
    base_url="https://api.github.com",
    repo="contoso/shop",
    secret_setting="GH_TOKEN",
)
ISSUE = re.compile(r"^/repos/contoso/shop/issues/(\d+)$")


class FakeIssues:
    """GitHub's issues of one repository: opening one, reading one; ``lose_next_answer`` opens the
    issue and then drops the connection."""

    def __init__(self) -> None:
        self.issues: dict[int, dict] = {}
        self.comments: list[str] = []
        self.opened = 0
        self.lose_next_answer = False
        self.refuse_next = False  # the next issue is not opened, and the answer is lost

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer token"
        if request.method == "POST" and request.url.path == "/repos/contoso/shop/issues":
            if self.refuse_next:
                self.refuse_next = False
                raise httpx.ReadError("connection reset", request=request)
            self.opened += 1
            number = len(self.issues) + 1
            self.issues[number] = {
                "number": number,
                "user": {"login": "handoff-bot", "id": 1},
                **json.loads(request.content),
            }
            if self.lose_next_answer:
                self.lose_next_answer = False
                raise httpx.ReadError("connection reset", request=request)
            return httpx.Response(201, json={"number": number})
        if request.method == "POST" and request.url.path.endswith("/comments"):
            self.comments.append(json.loads(request.content)["body"])
            return httpx.Response(201, json={"html_url": f"https://github.com/c/{len(self.comments)}"})
        found = ISSUE.match(request.url.path)
        if request.method == "GET" and found:
            issue = self.issues.get(int(found[1]))
            return httpx.Response(200, json=issue) if issue else httpx.Response(404, json={})
        return httpx.Response(500, json={"message": f"unexpected {request.method} {request.url.path}"})


def _job(handoff_id: str, parent: str | None = None) -> WriteJob:
    record = make_record(handoff_id, parent=parent, handbacks=1)
    note = build_note(
        record,
        "handedBack",
        1,
        "gh",
        base_url="https://broker",
        source_label="ops",
        target_label="checkout",
        source_thread_url=None,
        target_thread_url=None,
        chain=(),
        details={},
    )
    return WriteJob(record, "handedBack", 1, BACKEND, note, {}, START, "Root title", "Root summary")


@pytest.fixture
def github():
    issues, state, clock = FakeIssues(), MemoryWriteState(), FakeClock()
    ctx = WriterContext(
        http=httpx.Client(transport=httpx.MockTransport(issues)),
        settings=Settings(shared_memory_github_spacing_seconds=1.0),
        state=state,
        clock=clock,
        environ={"GH_TOKEN": "token"},
    )
    return GitHubWriter(BACKEND, ctx), issues, state, clock


def test_a_chain_opens_its_issue_once(github):
    writer, issues, state, clock = github
    first = writer.destination(_job(H1))
    clock.advance(5)
    second = writer.destination(_job(H2, parent=H1))
    assert first is not None and second is not None
    assert first.data == second.data == {"repo": "contoso/shop", "number": 1, "chainIssue": True}
    assert issues.opened == 1
    assert issues.issues[1]["body"].endswith(f"<!-- {chain_marker(H1, 'gh')} -->")
    assert state.get_hint(writer.content_gate("contoso/shop")) == 1


def test_a_write_waits_while_another_opens_the_chains_issue(github):
    writer, issues, state, clock = github
    state.claim_chain(f"gh|{H1}", clock(), 60)
    with pytest.raises(WriteError) as error:
        writer.destination(_job(H1))
    assert error.value.deferral and error.value.retry_after == 5
    assert issues.opened == 0


def test_a_lost_answer_is_found_by_the_chains_marker_instead_of_opened_twice(github):
    writer, issues, _, clock = github
    issues.lose_next_answer = True
    with pytest.raises(WriteError) as error:
        writer.destination(_job(H1))
    assert error.value.transient
    clock.advance(2)
    dest = writer.destination(_job(H1))
    assert dest is not None and dest.number("number") == 1
    assert issues.opened == 1


def test_an_issue_a_person_opened_with_the_chains_marker_is_not_taken_for_the_chains(github):
    writer, issues, _, clock = github
    writer.backend = BACKEND.model_copy(update={"own_account": "handoff-bot"})
    issues.refuse_next = True
    with pytest.raises(WriteError):
        writer.destination(_job(H1))
    # Meanwhile someone opens an issue whose body ends with the chain's marker line, as the broker's does.
    issues.issues[1] = {
        "number": 1,
        "user": {"login": "mallory", "id": 666},
        "body": f"Investigation notes go here\n\n<!-- {chain_marker(H1, 'gh')} -->",
    }
    clock.advance(2)
    dest = writer.destination(_job(H1))
    assert dest is not None and dest.number("number") == 2
    assert issues.opened == 1 and issues.issues[2]["user"]["login"] == "handoff-bot"


def test_content_writes_to_a_repository_are_spaced(github):
    writer, issues, _, clock = github
    job = _job(H1)
    dest = writer.destination(job)  # opening the issue took the repository's slot
    assert dest is not None
    with pytest.raises(WriteError) as error:
        writer.write(dest, job)
    assert error.value.deferral and error.value.retry_after == pytest.approx(1.0)
    assert issues.comments == []
    clock.advance(1)
    assert writer.write(dest, job) == "https://github.com/c/1"
    assert job.note.marker in issues.comments[0]
