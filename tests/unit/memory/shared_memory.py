"""In-memory ports for the shared-memory and human-entry use cases: write state and coordination,
recording writers per backend kind, the destination index and received entries, the history's notes,
and the few parts of the handoff service those use cases lean on (store, queues, agents, clock).

Each fake keeps what it was told in plain attributes the tests read; scripted failures are queued on
the fake and raised in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.domain.messages import is_marked
from handoff.domain.models import AuditEvent, HandbackRequest, HandoffRequest
from handoff.domain.records import AgentCallError, HandoffRecord, HandoffState, StoredHandback, StoredRequest
from handoff.domain.registry import AgentConfig, Registry
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.destinations import github_issue, jira_issue, pagerduty_incident
from handoff.domain.shared_memory.human_entries import HumanEntry
from handoff.domain.shared_memory.polling import PollCursor, PolledHandoff, PolledRecord
from handoff.domain.shared_memory.writes import Destination, WriteError, WriteJob, WriteRow
from handoff.services.context import ServiceContext
from handoff.settings import Settings

START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
AGENT_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/agents/{}"


# ---------------------------------------------------------------- time and queues


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move on ``seconds``; returns the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


class MemoryQueue:
    """A queue that keeps every message sent (with its delay) and every poisoned one."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], float]] = []
        self.poisoned: list[dict[str, Any]] = []
        self.fail_sends = 0  # the next this many sends raise

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionError("queue unreachable")
        self.sent.append((message, delay_seconds))

    def send_poison(self, message: dict[str, Any]) -> None:
        self.poisoned.append(message)

    def take(self) -> list[tuple[dict[str, Any], float]]:
        """The messages sent since the last take, oldest first."""
        taken, self.sent = self.sent, []
        return taken

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages sent and not taken yet."""
        return [message for message, _ in self.sent]


# ---------------------------------------------------------------- handoffs and agents


class MemoryHandoffStore:
    """The part of a handoff store these use cases read and write: records and the audit."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.records: dict[str, HandoffRecord] = {}
        self.audit: dict[str, list[AuditEvent]] = {}
        self.reads = 0

    def add(self, record: HandoffRecord) -> HandoffRecord:
        self.records[record.id] = record
        return record

    def get(self, handoff_id: str) -> HandoffRecord | None:
        self.reads += 1
        return self.records.get(handoff_id)

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        events = self.audit.setdefault(handoff_id, [])
        event = AuditEvent(seq=len(events) + 1, at=self.clock(), type=type, actor=actor, details=details)
        events.append(event)
        return event

    def list_audit(self, handoff_id: str, after: int = 0, limit: int | None = None) -> list[AuditEvent]:
        events = [e for e in self.audit.get(handoff_id, []) if e.seq > after]
        return events if limit is None else events[:limit]

    def types(self, handoff_id: str) -> list[str]:
        """The audit event types of a handoff, in order."""
        return [event.type for event in self.audit.get(handoff_id, [])]

    def events(self, handoff_id: str, type: str) -> list[AuditEvent]:
        """The audit events of one type."""
        return [event for event in self.audit.get(handoff_id, []) if event.type == type]


class MemoryAgents:
    """Agents' threads as lists of message texts (message ``m<n>`` is the n-th of its thread); scripted
    :class:`AgentCallError` s are raised by ``post_message`` in order."""

    def __init__(self) -> None:
        self.threads: dict[tuple[str, str], list[str]] = {}
        self.failures: list[AgentCallError] = []
        self.posts = 0

    def find_message(
        self, agent: AgentConfig, thread_id: str, needle: str, since: datetime | None = None
    ) -> dict[str, Any] | None:
        found = [
            {"id": f"m{n}", "text": text}
            for n, text in enumerate(self.threads.get((agent.name, thread_id), []), 1)
            if is_marked(text, needle)
        ]
        return found[-1] if found else None

    def post_message(self, agent: AgentConfig, thread_id: str, text: str) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        self.posts += 1
        messages = self.threads.setdefault((agent.name, thread_id), [])
        messages.append(text)
        return f"m{len(messages)}"

    def messages(self, agent: str, thread_id: str) -> list[str]:
        return self.threads.get((agent, thread_id), [])


@dataclass
class MemoryHandoffs:
    """The ports of the handoff use cases that the human-entry use cases use, and the
    :class:`ServiceContext` over them (``context``) those use cases are given."""

    settings: Settings
    registry: Registry
    store: MemoryHandoffStore
    queue: MemoryQueue
    agents: MemoryAgents
    clock: FakeClock
    context: ServiceContext = field(init=False)

    def __post_init__(self) -> None:
        self.context = ServiceContext.build(
            settings=self.settings,
            registry=self.registry,
            store=self.store,
            queue=self.queue,
            agents=self.agents,
            clock=self.clock,
        )


# ---------------------------------------------------------------- write state and coordination


class MemoryWriteState:
    """Write state rows, backend holds, content-write slots, chain issues and issue-number hints, as
    the table adapter keeps them (``None`` is stored as ``""``)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.holds: dict[str, datetime] = {}
        self.slots: dict[str, datetime] = {}
        self.chains: dict[str, dict[str, Any]] = {}
        self.hints: dict[str, int] = {}

    def get_write(self, handoff_id: str, key: str) -> WriteRow | None:
        row = self.rows.get((handoff_id, key))
        return dict(row) if row is not None else None

    def put_write(self, handoff_id: str, key: str, values: WriteRow) -> None:
        row = self.rows.setdefault((handoff_id, key), {"PartitionKey": f"w|{handoff_id}", "Key": key})
        row.update({name: "" if value is None else value for name, value in values.items()})

    def list_writes(self, handoff_id: str) -> list[WriteRow]:
        return [dict(row) for (owner, _), row in self.rows.items() if owner == handoff_id]

    def stale_writes(self, older_than: datetime) -> list[WriteRow]:
        return [
            dict(row)
            for row in self.rows.values()
            if row.get("Status") == "pending" and row.get("UpdatedAt") and row["UpdatedAt"] < older_than
        ]

    def blocked_until(self, key: str) -> datetime | None:
        return self.holds.get(key)

    def block(self, key: str, until: datetime) -> None:
        if key not in self.holds or self.holds[key] < until:
            self.holds[key] = until

    def reserve_slot(self, key: str, spacing: float, hourly_limit: int, now: datetime) -> float:
        next_slot = self.slots.get(key)
        if next_slot is not None and next_slot > now:
            return (next_slot - now).total_seconds()
        self.slots[key] = now + timedelta(seconds=spacing)
        return 0.0

    def claim_chain(self, key: str, now: datetime, lease_seconds: float) -> tuple[str, int | None, bool]:
        chain = self.chains.get(key)
        if chain is None:
            self.chains[key] = {"Status": "creating", "ClaimedAt": now}
            return "claimed", None, False
        if chain["Status"] == "created":
            return "created", int(chain["Number"]), False
        if now - chain["ClaimedAt"] < timedelta(seconds=lease_seconds):
            return "busy", None, False
        chain["ClaimedAt"] = now
        return "claimed", None, True

    def set_chain(self, key: str, number: int) -> None:
        self.chains[key] = {"Status": "created", "Number": number}

    def abandon_chain(self, key: str) -> None:
        self.chains.pop(key, None)

    def release_chain(self, key: str) -> None:
        self.chains[key] = {"Status": "creating", "ClaimedAt": datetime(1970, 1, 1, tzinfo=UTC)}

    def get_hint(self, key: str) -> int:
        return self.hints.get(key, 0)

    def set_hint(self, key: str, number: int) -> None:
        self.hints[key] = max(number, self.hints.get(key, 0))


# ---------------------------------------------------------------- writers


LOST_ANSWER = WriteError("connection reset after the request was sent", transient=True)


@dataclass
class Written:
    """One note a recording writer holds."""

    destination: str
    marker: str
    job: WriteJob
    url: str


class RecordingWriter:
    """A backend that keeps its notes in memory, found again by their markers like a vendor's.

    Destinations follow the domain's rules per backend kind (GitHub: the named or fixed issue, else
    the chain's issue #1; PagerDuty: the incident; Jira: the key; ServiceNow: the incident id).
    ``failures`` are raised by ``write`` in order; :data:`LOST_ANSWER` writes the note first (the
    vendor took it, the answer was lost). ``note_limit`` skips writes as PagerDuty's note cap does.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.notes: list[Written] = []
        self.failures: list[WriteError] = []
        self.find_failures: list[WriteError] = []
        self.note_limit: int | None = None
        self.finds = 0
        self.jobs: list[WriteJob] = []

    def destination(self, job: WriteJob) -> Destination | None:
        backend = self.backend
        if backend.type == "github":
            repo, number = github_issue(backend, job.record) or (backend.repo, 1)
            return Destination(f"{repo}#{number}", {"repo": repo, "number": number})
        if backend.type == "pagerduty":
            incident = pagerduty_incident(job.record, job.details)
            return Destination(f"incident {incident}", {"incident": incident}) if incident else None
        if backend.type == "jira":
            key = jira_issue(backend, job.record)
            return Destination(key, {"key": key}) if key else None
        reference = job.record.stored.request.context.incident
        if reference is None or (reference.platform or "").lower() != "servicenow":
            return None
        return Destination(f"incident/{reference.id}", {"sysId": reference.id, "number": None})

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        self.finds += 1
        if self.find_failures:
            raise self.find_failures.pop(0)
        found = [n for n in self.notes if n.destination == dest.label and n.marker == job.note.marker]
        return found[0].url if found else None

    def write(self, dest: Destination, job: WriteJob) -> str:
        self.jobs.append(job)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None and failure is not LOST_ANSWER:
            raise failure
        if self.note_limit is not None and len(self.at(dest.label)) >= self.note_limit:
            raise WriteError(f"{dest.label} has too many notes", transient=False, skip=True)
        url = f"{self.backend.name}:{dest.label}/{len(self.notes) + 1}"
        self.notes.append(Written(dest.label, job.note.marker, job, url))
        if failure is not None:
            raise failure
        return url

    def at(self, destination: str) -> list[Written]:
        """The notes on one destination."""
        return [note for note in self.notes if note.destination == destination]


class MemoryWriters:
    """Implements the ``Writers`` port: one recording writer per backend name."""

    def __init__(self) -> None:
        self.writers: dict[str, RecordingWriter] = {}

    def writer_for(self, backend: Backend) -> RecordingWriter:
        return self.writers.setdefault(backend.name, RecordingWriter(backend))

    def __getitem__(self, name: str) -> RecordingWriter:
        return self.writers[name]


# ---------------------------------------------------------------- humans in the loop


class MemoryInboundStore:
    """The destination index, the entries received (insert-if-absent) and the poll index (records of
    polling backends with the investigations on them, their poll state and cursor), as the table
    adapter keeps them."""

    def __init__(self, clock: Callable[[], datetime] = lambda: START) -> None:
        self.clock = clock
        self.index: dict[tuple[str, str], list[str]] = {}
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.released: list[tuple[str, str]] = []
        self.fail_index = False
        self.polled: dict[tuple[str, str], dict[str, datetime]] = {}
        self.states: dict[tuple[str, str], dict[str, Any]] = {}
        self.steal_next_claim = False  # another instance claims the next record first

    def index_destination(self, backend: str, destination: str, handoff_id: str, poll: bool = False) -> None:
        if self.fail_index:
            raise ConnectionError("storage unreachable")
        if poll:
            self.polled.setdefault((backend.lower(), destination), {}).setdefault(handoff_id, self.clock())
        ids = self.index.setdefault((backend.lower(), destination), [])
        if handoff_id not in ids:
            ids.append(handoff_id)

    def handoffs_at(self, backend: str, destination: str) -> list[str]:
        return list(self.index.get((backend.lower(), destination), []))

    def claim_entry(self, backend: str, entry_id: str, values: dict[str, Any]) -> bool:
        key = (backend.lower(), entry_id)
        if key in self.entries:
            return False
        self.entries[key] = dict(values)
        return True

    def release_entry(self, backend: str, entry_id: str) -> None:
        self.entries.pop((backend.lower(), entry_id), None)
        self.released.append((backend.lower(), entry_id))

    def polled_records(self, backend: str, limit: int) -> list[PolledRecord]:
        records = []
        for (owner, destination), handoffs in sorted(self.polled.items()):
            if owner != backend.lower() or not handoffs:
                continue
            state = self.states.get((owner, destination))
            found = tuple(PolledHandoff(h, at) for h, at in handoffs.items())
            if state is None:
                records.append(PolledRecord(destination, found))
            else:
                records.append(
                    PolledRecord(
                        destination, found, state["PolledAt"], state.get("Cursor"), str(state["Version"])
                    )
                )
        return records[:limit]

    def claim_poll(self, backend: str, record: PolledRecord, now: datetime) -> bool:
        key = (backend.lower(), record.destination)
        state = self.states.get(key)
        if self.steal_next_claim:
            self.steal_next_claim = False
            return False
        if (state is None) != (record.version == "") or (state and str(state["Version"]) != record.version):
            return False
        version = int(state["Version"]) + 1 if state else 1
        self.states[key] = {**(state or {}), "PolledAt": now, "Version": version}
        return True

    def save_cursor(self, backend: str, destination: str, cursor: PollCursor) -> None:
        state = self.states.setdefault((backend.lower(), destination), {"PolledAt": None, "Version": 0})
        state.update(Cursor=cursor, Version=int(state["Version"]) + 1)

    def forget(self, backend: str, destination: str, handoff_ids: list[str], *, whole: bool) -> None:
        handoffs = self.polled.get((backend.lower(), destination), {})
        for handoff_id in handoff_ids:
            handoffs.pop(handoff_id, None)
        if whole:
            self.states.pop((backend.lower(), destination), None)


class MemoryReaders:
    """The vendors' records as lists of entries, read back by time; scripted failures are raised in
    order."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[HumanEntry]] = {}
        self.failures: list[Exception] = []
        self.reads: list[tuple[str, str, datetime]] = []

    def add(self, entry: HumanEntry) -> HumanEntry:
        self.records.setdefault((entry.backend, entry.destination), []).append(entry)
        return entry

    def entries_since(self, backend: Backend, destination: str, since: datetime) -> list[HumanEntry]:
        self.reads.append((backend.name, destination, since))
        if self.failures:
            raise self.failures.pop(0)
        return [e for e in self.records.get((backend.name, destination), []) if e.at >= since]


class MemoryNotes:
    """The history's human notes per investigation."""

    def __init__(self) -> None:
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.fail = False

    def add_human_note(self, handoff_id: str, note: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("storage unreachable")
        self.notes.setdefault(handoff_id, []).append(note)


# ---------------------------------------------------------------- building records


def registry(backends: list[dict[str, Any]], **agent_memory: list[str]) -> Registry:
    """Agents ops and checkout (SRE Agents), peer (A2A) and the backends; ``checkout=[...]`` names the
    backends an agent's handoffs write to."""
    agents: list[dict[str, Any]] = [
        {"name": name, "resourceId": AGENT_ID.format(name), "sharedMemory": agent_memory.get(name, [])}
        for name in ("ops", "checkout")
    ]
    agents.append(
        {
            "name": "peer",
            "delivery": {"mode": "a2a", "url": "https://peer.example.com/a2a"},
            "sharedMemory": agent_memory.get("peer", []),
        }
    )
    return Registry.from_data({"agents": agents, "sharedMemory": {"backends": backends}})


def make_record(
    handoff_id: str,
    *,
    source: str = "ops",
    target: str = "checkout",
    source_thread: str | None = "ops-thread",
    target_thread: str | None = "checkout-thread",
    status: str = "delivered",
    incident: dict[str, str] | None = None,
    parent: str | None = None,
    evidence: list[dict[str, Any]] | None = None,
    shared_memory: tuple[str, ...] = (),
    handbacks: int = 0,
    title: str = "Checkout errors",
) -> HandoffRecord:
    """A stored handoff ``source`` -> ``target`` as the store reads it back."""
    body: dict[str, Any] = {
        "source": {"agent": source, **({"threadId": source_thread} if source_thread else {})},
        "target": {"agent": target},
        "intent": "investigate",
        "context": {
            "title": title,
            "summary": "5xx rate rose to 7% after the deploy",
            "severity": "Sev2",
            **({"incident": incident} if incident else {}),
            **({"evidence": evidence} if evidence else {}),
        },
        **({"parentHandoffId": parent} if parent else {}),
    }
    request = HandoffRequest.model_validate(body)
    stored = StoredRequest(
        id=handoff_id,
        request=request,
        source_agent=source,
        target_agent=target,
        root_id=parent or handoff_id,
        body_hash="0" * 64,
        created_at=START,
        caller="local",
        shared_memory=shared_memory,
    )
    state = HandoffState(updated_at=START, status=status, target_thread_id=target_thread)
    backs = [
        StoredHandback(
            seq=seq,
            received_at=START,
            agent=target,
            caller="local",
            request=HandbackRequest.model_validate(
                {
                    "agent": target,
                    "outcome": "rootCauseFound",
                    "summary": f"finding {seq}",
                    "rootCause": "pool",
                }
            ),
        )
        for seq in range(1, handbacks + 1)
    ]
    return HandoffRecord(stored=stored, state=state, handbacks=backs)
