"""Failures on demand for the in-memory ports.

:class:`StorageFaults`: a whole outage, or the next calls of one storage operation. Every storage method
of the in-memory ports calls :meth:`StorageFaults.check` with its operation's name before it reads or
writes anything, so a failure leaves storage as the real adapters would leave it (``storage_errors``
turns an unreachable service into :class:`~handoff.ports.StorageUnavailable` before the write happens).

:class:`AgentFaults`: the next calls to an agent fail with :class:`~handoff.domain.records.AgentCallError`
as the HTTP adapters classify an answer (408, 429 and 5xx transient with their ``Retry-After``, other
4xx permanent; no status is a transport failure, transient), before the call has any effect or, with
``lost_answer``, after it took effect (the answer was lost on the way back).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from handoff.domain.records import AgentCallError
from handoff.ports import StorageUnavailable

ANY = "*"


@dataclass
class _StorageRule:
    op: str
    skip: int
    remaining: int
    make: Callable[[str], Exception]


class StorageFaults:
    """The failure plan of one in-memory store."""

    def __init__(self) -> None:
        self.down = False
        self._rules: list[_StorageRule] = []
        self.calls: list[str] = []

    def outage(self, down: bool = True) -> None:
        """Make every operation raise :class:`StorageUnavailable` (until ``outage(False)``)."""
        self.down = down

    def fail(
        self,
        op: str = ANY,
        times: int = 1,
        error: Callable[[str], Exception] | None = None,
        *,
        after: int = 0,
    ) -> None:
        """Make ``times`` calls of ``op`` (every operation with ``"*"``) raise ``error(op)``
        (:class:`StorageUnavailable` by default), once ``after`` more calls of it have gone through."""
        make = error or (lambda name: StorageUnavailable(f"{name}: injected"))
        self._rules.append(_StorageRule(op, after, times, make))

    def check(self, op: str) -> None:
        """Called by each storage operation before it acts."""
        self.calls.append(op)
        if self.down:
            raise StorageUnavailable(f"{op}: storage is down")
        for rule in self._rules:
            if rule.remaining > 0 and rule.op in (ANY, op):
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.remaining -= 1
                raise rule.make(op)

    def count(self, op: str) -> int:
        """How many times ``op`` was called (failed calls included)."""
        return self.calls.count(op)


@dataclass
class _AgentRule:
    ops: frozenset[str] | None
    remaining: int
    status: int | None
    retry_after: float | None
    transient: bool
    reason: str | None
    lost_answer: bool


class AgentFaults:
    """The failure plan of one in-memory agent gateway."""

    def __init__(self) -> None:
        self._rules: list[_AgentRule] = []

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int | None = 503,
        retry_after: float | None = None,
        ops: Collection[str] | None = None,
        transient: bool | None = None,
        reason: str | None = None,
        lost_answer: bool = False,
    ) -> None:
        """Make the next ``times`` calls (of ``ops``, else of any operation) fail."""
        if transient is None:
            transient = status is None or status in (408, 429) or status >= 500
        self._rules.append(
            _AgentRule(
                frozenset(ops) if ops is not None else None,
                times,
                status,
                retry_after if transient else None,
                transient,
                reason,
                lost_answer,
            )
        )

    def before(self, op: str) -> None:
        """Called before an operation acts: raise if a rule fails it outright."""
        rule = self._match(op, lost_answer=False)
        if rule is not None:
            raise self._error(rule, op)

    def after(self, op: str) -> None:
        """Called once an operation took effect: raise if a rule loses its answer."""
        rule = self._match(op, lost_answer=True)
        if rule is not None:
            raise self._error(rule, op)

    def _match(self, op: str, *, lost_answer: bool) -> _AgentRule | None:
        for rule in self._rules:
            if (
                rule.remaining > 0
                and rule.lost_answer == lost_answer
                and (rule.ops is None or op in rule.ops)
            ):
                rule.remaining -= 1
                return rule
        return None

    @staticmethod
    def _error(rule: _AgentRule, op: str) -> AgentCallError:
        if rule.reason is not None:
            reason = rule.reason
        elif rule.status is None:
            reason = f"{op} failed: ReadTimeout"
        else:
            reason = f"{op} answered {rule.status}"
        return AgentCallError(
            reason, transient=rule.transient, status=rule.status, retry_after=rule.retry_after
        )
