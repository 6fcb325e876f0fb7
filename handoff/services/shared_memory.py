"""Shared-memory use cases: enqueue writes at lifecycle points, perform them from their own queue with
their own retries, and replay the ones that failed.

Investigate first, persist second: :class:`SharedMemoryPublisher` (the service's lifecycle listener)
only enqueues one message per (handoff, point, backend); :class:`SharedMemoryService` performs it.
A backend that is down or rate-limited delays only its own writes: other backends' messages and the
delivery queue never wait for it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from handoff.adapters.vendor_writers import make_writer
from handoff.adapters.vendors import WriterContext
from handoff.domain.auth import SYSTEM
from handoff.domain.errors import NotFound, Unprocessable, single_field
from handoff.domain.messages import thread_url
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.content import ChainStep, build_note
from handoff.domain.shared_memory.writes import WriteError, WriteJob
from handoff.ports import CoordinationState, DeliveryQueue, DestinationIndex, HandoffStore
from handoff.services.context import utcnow
from handoff.services.human_entries import destination_key, index_record, known_destination
from handoff.services.policy import GIVE_UP_AFTER, MAX_SWEEPS, SweepReport, backoff_seconds
from handoff.settings import Settings

log = logging.getLogger("handoff")
MAX_CHAIN = 20
# Only these event details travel in queue messages and audit records (secret-free by construction).
DETAIL_KEYS = ("reason", "pagerdutyIncidentId", "threadId")


class WriteStateStore(CoordinationState, Protocol):
    """Per-write state and backend-wide holds, in storage."""

    def get_write(self, handoff_id: str, key: str) -> dict[str, Any] | None:
        """The state of one write (``Status``, ``Attempted``, ``Attempts``, ...), or None."""

    def put_write(self, handoff_id: str, key: str, values: dict[str, Any]) -> None:
        """Merge ``values`` into the state of one write."""

    def list_writes(self, handoff_id: str) -> list[dict[str, Any]]:
        """Every write of a handoff (each with ``Key``)."""

    def blocked_until(self, key: str) -> datetime | None:
        """Until when every write to a backend waits (a rate limit it reported), if at all."""

    def block(self, key: str, until: datetime) -> None:
        """Hold every write to a backend until ``until``."""

    def stale_writes(self, older_than: datetime) -> list[dict[str, Any]]:
        """Writes still ``pending`` with no change since ``older_than`` (each with ``PartitionKey``)."""


def write_key(point: str, seq: int, backend: str) -> str:
    """Row key of one write's state."""
    return f"{point}:{seq}|{backend}"


def destinations(
    registry: Registry, record: HandoffRecord, point: str, extra: Sequence[str] = ()
) -> list[str]:
    """Backends to write for ``point`` of ``record``: the target agent's ``sharedMemory`` plus ``extra``
    (for example the names on the alert route that opened the handoff), those whose ``on`` includes
    ``point``, each once."""
    agent = registry.find(record.stored.target_agent)
    names = list(agent.shared_memory if agent else ()) + list(record.stored.shared_memory) + list(extra)
    result: list[str] = []
    for name in names:
        backend = registry.shared_memory.find(name)
        if backend is None:
            log.warning("shared-memory backend %r is not configured; skipped", name)
            continue
        if point in backend.on and backend.name not in result:
            result.append(backend.name)
    return result


class SharedMemoryPublisher:
    """The lifecycle listener: enqueues one write per configured backend (never performs one)."""

    def __init__(
        self,
        registry: Registry,
        queue: DeliveryQueue,
        store: HandoffStore,
        clock: Callable[[], datetime] = utcnow,
        destinations: DestinationIndex | None = None,
    ) -> None:
        self.registry = registry
        self.queue = queue
        self.store = store
        self.clock = clock
        self.destinations = destinations

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        """Queue the writes of ``point``; ``details["sharedMemory"]`` adds backend names."""
        extra = [str(name) for name in details.get("sharedMemory") or ()]
        if point == "delivered" and self.destinations is not None:
            self._index_named_records(record, details, extra)
        names = destinations(self.registry, record, point, extra)
        if not names:
            return
        seq = int(details.get("seq") or 0)
        kept = {key: details[key] for key in DETAIL_KEYS if details.get(key) is not None}
        first_at = self.clock().isoformat()
        for name in names:
            self.queue.send(
                {
                    "handoffId": record.id,
                    "point": point,
                    "seq": seq,
                    "backend": name,
                    "attempt": 1,
                    "firstAt": first_at,
                    "details": kept,
                }
            )
        self.store.append_audit(
            record.id, "sharedMemoryQueued", "broker", {"point": point, "seq": seq, "backends": names}
        )

    def _index_named_records(self, record: HandoffRecord, details: dict[str, Any], extra: list[str]) -> None:
        """Humans in the loop: index the records the handoff names on its backends (whatever ``on``
        says), so what people write there while the investigation runs reaches its agents."""
        agent = self.registry.find(record.stored.target_agent)
        names = list(agent.shared_memory if agent else ()) + list(record.stored.shared_memory) + extra
        for name in dict.fromkeys(names):
            backend = self.registry.shared_memory.find(name)
            if backend is not None and backend.webhook_secret_setting:
                index_record(
                    self.destinations, backend, known_destination(backend, record, details), record.id
                )


class SharedMemoryService:
    """Performs shared-memory writes from their queue; exactly-once in effect by markers."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        store: HandoffStore,
        queue: DeliveryQueue,
        state: WriteStateStore,
        http: Any,
        clock: Callable[[], datetime] = utcnow,
        environ: Any = None,
        destinations: DestinationIndex | None = None,
    ) -> None:
        self.destinations = destinations
        self.settings = settings
        self.registry = registry
        self.store = store
        self.queue = queue
        self.state = state
        self.clock = clock
        self.ctx = WriterContext(http=http, settings=settings, state=state, clock=clock)
        if environ is not None:
            self.ctx.environ = environ

    # -------------------------------------------------------------- queue work

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Run one write message. Failures reschedule through the queue with backoff until the
        write's age passes ``HANDOFF_SHARED_MEMORY_MAX_AGE_SECONDS``; then it is ``failed``.

        Whatever else raises is re-raised for the host to retry; on the last dequeue the write is
        marked failed first (its state row and an audit event, nothing read), with the exception's type
        as the reason."""
        try:
            self._process(message, dequeue_count)
        except Exception as exc:
            if dequeue_count >= self.settings.max_dequeue_count:
                self._fail_poisoned(message, exc)
            raise

    def _fail_poisoned(self, message: dict[str, Any], exc: Exception) -> None:
        try:
            handoff_id = str(message["handoffId"])
            uuid.UUID(handoff_id)
            point, backend, seq = str(message["point"]), str(message["backend"]), int(message["seq"])
        except (KeyError, TypeError, ValueError):
            log.error("poisoned shared-memory message names no write (%s): %s", type(exc).__name__, message)
            return
        reason = f"unexpected error: {type(exc).__name__}"
        try:
            found = self.registry.shared_memory.find(backend)
            backend = found.name if found is not None else backend
            self._fail(handoff_id, backend, point, seq, write_key(point, seq, backend), message, reason)
        except Exception:
            log.exception("could not mark shared-memory write %s failed before poisoning", message)

    def _process(self, message: dict[str, Any], dequeue_count: int) -> None:
        handoff_id = str(message.get("handoffId", ""))
        point, backend_name = str(message.get("point", "")), str(message.get("backend", ""))
        seq, attempt = int(message.get("seq", 0)), int(message.get("attempt", 1))
        record = self.record_of(handoff_id)
        backend = self.registry.shared_memory.find(backend_name)
        if record is None or backend is None:
            log.warning("dropping shared-memory message for unknown handoff or backend: %s", message)
            return
        key = write_key(point, seq, backend.name)
        current = self.state.get_write(handoff_id, key) or {}
        if current.get("Status") in ("written", "skipped", "failed"):
            return  # a duplicate message: this write is settled (replay resets failed writes first)
        now = self.clock()
        blocked = self.state.blocked_until(f"backend|{backend.name}")
        if blocked and blocked > now:
            # The backend asked us to wait: not an attempt, just later.
            delay = (blocked - now).total_seconds() + 0.5
            self._later(record.id, key, current, delay)
            self.queue.send(message, delay)
            return
        try:
            self._attempt(record, backend, point, seq, key, current, message, attempt)
        except WriteError as exc:
            self._after_error(record, backend, point, seq, key, message, attempt, exc)

    def record_of(self, handoff_id: str) -> HandoffRecord | None:
        """The handoff, or None when the id is not one (or unknown)."""
        try:
            uuid.UUID(handoff_id)
        except ValueError:
            return None
        return self.store.get(handoff_id)

    def _attempt(
        self,
        record: HandoffRecord,
        backend: Any,
        point: str,
        seq: int,
        key: str,
        current: dict[str, Any],
        message: dict[str, Any],
        attempt: int,
    ) -> None:
        first_at = _parse_time(message.get("firstAt")) or self.clock()
        job = self._job(record, backend, point, seq, dict(message.get("details") or {}), first_at)
        writer = make_writer(backend, self.ctx)
        dest = writer.destination(job)
        base = {"backend": backend.name, "point": point, "seq": seq}
        if dest is None:
            self.state.put_write(record.id, key, {"Status": "skipped", "UpdatedAt": self.clock()})
            self.store.append_audit(
                record.id,
                "sharedMemorySkipped",
                "broker",
                {**base, "reason": f"nothing to write to on {backend.type} for this handoff"},
            )
            return
        index_record(self.destinations, backend, destination_key(backend.type, dest.data), record.id)
        existing = writer.find(dest, job) if current.get("Attempted") else None
        if existing is None:
            attempts = int(current.get("Attempts") or 0) + 1
            self.state.put_write(
                record.id,
                key,
                {
                    "Status": "pending",
                    "Attempted": True,
                    "Attempts": attempts,
                    "Destination": dest.label,
                    "UpdatedAt": self.clock(),
                    # What the sweeper queues again should this worker die before the write settles.
                    "Message": json.dumps({k: v for k, v in message.items() if k != "attempt"}),
                },
            )
            self.store.append_audit(
                record.id,
                "sharedMemoryAttempt",
                "broker",
                {**base, "attempt": attempt, "destination": dest.label, "marker": job.note.marker},
            )
            result = writer.write(dest, job)
            recovered = False
        else:
            result, recovered = existing, True
        self.state.put_write(
            record.id,
            key,
            {"Status": "written", "Url": result, "Destination": dest.label, "UpdatedAt": self.clock()},
        )
        self.store.append_audit(
            record.id,
            "sharedMemoryWritten",
            "broker",
            {
                **base,
                "destination": dest.label,
                "url": result,
                "foundExisting": recovered,
                "marker": job.note.marker,
            },
        )

    def _after_error(
        self,
        record: HandoffRecord,
        backend: Any,
        point: str,
        seq: int,
        key: str,
        message: dict[str, Any],
        attempt: int,
        exc: WriteError,
    ) -> None:
        now = self.clock()
        base = {"backend": backend.name, "point": point, "seq": seq}
        if exc.deferral:
            delay = max(0.5, exc.retry_after or 1.0)
            self._later(record.id, key, self.state.get_write(record.id, key) or {}, delay)
            self.queue.send(message, delay)
            return
        if exc.skip:
            self.state.put_write(record.id, key, {"Status": "skipped", "Error": exc.reason, "UpdatedAt": now})
            self.store.append_audit(
                record.id, "sharedMemoryWarning", "broker", {**base, "reason": exc.reason}
            )
            return
        if exc.backend_wide and exc.retry_after:
            self.state.block(f"backend|{backend.name}", now + timedelta(seconds=exc.retry_after))
        first_at = _parse_time(message.get("firstAt")) or now
        deadline = first_at + timedelta(seconds=self.settings.shared_memory_max_age_seconds)
        if exc.transient:
            delay = backoff_seconds(
                attempt,
                exc.retry_after,
                self.settings.shared_memory_retry_base_seconds,
                self.settings.shared_memory_retry_max_seconds,
            )
            if now + timedelta(seconds=delay) <= deadline:
                retry_at = now + timedelta(seconds=delay)
                values = {"Error": exc.reason, "UpdatedAt": now, "RetryAt": retry_at}
                self.state.put_write(record.id, key, values)
                self.store.append_audit(
                    record.id,
                    "sharedMemoryRetryScheduled",
                    "broker",
                    {
                        **base,
                        "attempt": attempt,
                        "reason": exc.reason,
                        "delaySeconds": round(delay, 1),
                        "rateLimited": exc.backend_wide,
                    },
                )
                self.queue.send({**message, "attempt": attempt + 1}, delay)
                return
            reason = f"{exc.reason} (gave up after {attempt} attempts)"
        else:
            reason = exc.reason
        self._fail(record.id, backend.name, point, seq, key, message, reason)

    def _fail(
        self,
        handoff_id: str,
        backend: str,
        point: str,
        seq: int,
        key: str,
        message: dict[str, Any],
        reason: str,
    ) -> None:
        self.state.put_write(
            handoff_id, key, {"Status": "failed", "Error": reason, "UpdatedAt": self.clock()}
        )
        self.store.append_audit(
            handoff_id,
            "sharedMemoryFailed",
            "broker",
            {
                "backend": backend,
                "point": point,
                "seq": seq,
                "reason": reason,
                "replay": f"POST /api/handoffs/{handoff_id}/shared-memory/replay",
            },
        )
        self.queue.send_poison({**message, "reason": reason})

    def _later(self, handoff_id: str, key: str, current: dict[str, Any], delay: float) -> None:
        """Note that a write already under way waits ``delay`` seconds on purpose (the sweeper leaves
        it alone until then); a write not yet tried has nothing to note."""
        if current.get("Status") == "pending":
            self.state.put_write(handoff_id, key, {"RetryAt": self.clock() + timedelta(seconds=delay)})

    # -------------------------------------------------------------- sweeper

    def sweep(self) -> SweepReport:
        """Queue again the writes a worker started and then left (it crashed mid-write): ``pending``,
        tried, with no change for ``sweep_after_seconds`` and no retry due within it. The worker that
        takes the message looks for the earlier attempt's note before writing (``writer.find``).
        A write swept :data:`~handoff.services.handoffs.MAX_SWEEPS` times with no change in between is failed
        (and replayable), as the delivery sweeper does."""
        now = self.clock()
        cutoff = now - timedelta(seconds=self.settings.sweep_after_seconds)
        report = SweepReport()
        for write in self.state.stale_writes(cutoff):
            try:
                self._sweep_one(write, now, cutoff, report)
            except Exception:
                report.errors += 1
                log.exception("sweeper: could not sweep shared-memory write %s", write.get("Key"))
        return report

    def _sweep_one(self, write: dict[str, Any], now: datetime, cutoff: datetime, report: SweepReport) -> None:
        handoff_id = str(write.get("PartitionKey", "")).removeprefix("w|")
        key = str(write.get("Key") or "")
        retry_at, swept_at = _parse_time(write.get("RetryAt")), _parse_time(write.get("SweptAt"))
        if not write.get("Attempted") or not write.get("Message"):
            return  # not started, or started before writes kept their message: the queue brings it back
        if (retry_at and retry_at > cutoff) or (swept_at and swept_at > cutoff):
            return
        message = json.loads(str(write["Message"]))
        updated = _parse_time(write.get("UpdatedAt"))
        mark = updated.isoformat() if updated else ""
        sweeps = int(write.get("Sweeps") or 0) + 1 if write.get("SweepMark") == mark else 1
        if sweeps > MAX_SWEEPS and updated is not None and now - updated >= GIVE_UP_AFTER:
            reason = f"no progress after {MAX_SWEEPS} re-queues by the sweeper"
            point_seq, backend = key.rsplit("|", 1)
            point, seq = point_seq.split(":", 1)
            self._fail(handoff_id, backend, point, int(seq), key, message, reason)
            report.gave_up += 1
            return
        self.state.put_write(handoff_id, key, {"SweptAt": now, "Sweeps": sweeps, "SweepMark": mark})
        self.queue.send({**message, "attempt": int(write.get("Attempts") or 1) + 1})
        self.store.append_audit(
            handoff_id,
            "sharedMemoryRequeued",
            SYSTEM.describe(),
            {
                "backend": message.get("backend"),
                "point": message.get("point"),
                "seq": message.get("seq"),
                "reason": "no activity",
                "sweep": sweeps,
            },
        )
        report.requeued += 1

    # -------------------------------------------------------------- content

    def _job(
        self,
        record: HandoffRecord,
        backend: Any,
        point: str,
        seq: int,
        details: dict[str, Any],
        first_at: datetime,
    ) -> WriteJob:
        chain = self._chain(record)
        root = chain[0][1] if chain else record
        source = self.registry.find(record.stored.source_agent)
        target = self.registry.find(record.stored.target_agent)
        note = build_note(
            record,
            point,
            seq,
            backend.name,
            base_url=self.settings.base_url,
            source_label=source.label if source else record.stored.source_agent,
            target_label=target.label if target else record.stored.target_agent,
            source_thread_url=thread_url(
                source.resource_id if source else None, record.stored.request.source.thread_id
            ),
            target_thread_url=thread_url(
                target.resource_id if target else None, record.state.target_thread_id
            ),
            chain=tuple(step for step, _ in chain),
            details=details,
        )
        context = root.stored.request.context
        return WriteJob(
            record=record,
            point=point,
            seq=seq,
            backend=backend,
            note=note,
            details=details,
            first_at=first_at,
            root_title=context.title,
            root_summary=context.summary,
        )

    def _chain(self, record: HandoffRecord) -> list[tuple[ChainStep, HandoffRecord]]:
        """The handoff and its ancestors, root first (for the sequence diagram)."""
        items: list[HandoffRecord] = [record]
        while len(items) < MAX_CHAIN and items[-1].stored.request.parent_handoff_id:
            parent = self.store.get(items[-1].stored.request.parent_handoff_id or "")
            if parent is None:
                break
            items.append(parent)
        steps = []
        for item in reversed(items):
            last = item.handbacks[-1] if item.handbacks else None
            steps.append(
                (
                    ChainStep(
                        handoff_id=item.id,
                        source=item.stored.source_agent,
                        target=item.stored.target_agent,
                        intent=item.stored.request.intent,
                        title=item.stored.request.context.title,
                        outcome=last.request.outcome if last else None,
                    ),
                    item,
                )
            )
        return steps

    # -------------------------------------------------------------- replay

    def replay(self, handoff_id: str, backend: str | None = None, actor: str = "broker") -> dict[str, Any]:
        """Re-queue the handoff's failed writes (optionally of one backend) with a fresh 24-hour budget."""
        record = self.record_of(handoff_id)
        if record is None:
            raise NotFound(f"no handoff with id {handoff_id}")
        if backend is not None and self.registry.shared_memory.find(backend) is None:
            raise single_field(Unprocessable, "/backend", f"'{backend}' is not a configured backend")
        replayed = []
        now = self.clock()
        for write in self.state.list_writes(handoff_id):
            if write.get("Status") != "failed":
                continue
            point_seq, name = write["Key"].rsplit("|", 1)
            point, seq = point_seq.split(":", 1)
            if backend is not None and name.lower() != backend.lower():
                continue
            self.state.put_write(
                handoff_id, write["Key"], {"Status": "pending", "Error": None, "UpdatedAt": now}
            )
            self.queue.send(
                {
                    "handoffId": handoff_id,
                    "point": point,
                    "seq": int(seq),
                    "backend": name,
                    "attempt": 1,
                    "firstAt": now.isoformat(),
                    "details": {},
                    "replay": True,
                }
            )
            replayed.append({"backend": name, "point": point, "seq": int(seq)})
        if replayed:
            self.store.append_audit(handoff_id, "sharedMemoryReplayScheduled", actor, {"writes": replayed})
        return {"handoffId": handoff_id, "replayed": replayed}

    def writes(self, handoff_id: str) -> list[dict[str, Any]]:
        """The state of every shared-memory write of a handoff (for people and tests)."""
        result = []
        for write in self.state.list_writes(handoff_id):
            point_seq, name = write["Key"].rsplit("|", 1)
            point, seq = point_seq.split(":", 1)
            result.append(
                {
                    "backend": name,
                    "point": point,
                    "seq": int(seq),
                    "status": write.get("Status"),
                    "destination": write.get("Destination"),
                    "url": write.get("Url"),
                    "attempts": write.get("Attempts") or 0,
                    "error": write.get("Error"),
                }
            )
        return result


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
