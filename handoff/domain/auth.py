"""Who is calling, and the one authorizer that decides what a caller may do.

Every entrypoint (REST, MCP, A2A) turns its request into a :class:`Caller`; the service asks the
:class:`Authorizer` before it acts on an agent's behalf *or* shows anything. Nothing else decides this.

The rules (docs/security.md):

- A caller may hand off only as an agent it is (``callers``, ``keySetting``) and only to targets that
  agent's ``mayHandOffTo`` names; it may hand back only on handoffs targeted at it.
- It may read a handoff (view, audit, links, shared-memory status) only if it is an agent of that
  handoff's chain, or an operator; it may attach a child only to a chain its source agent is part of.
- Replays and other steering are for operators only.
- Until the registry names any caller (``callers``, ``keySetting`` or ``operators``), every caller the
  platform let in (the local host, a function key) is an operator that may act as any agent: a local
  run stays as open as the walkthrough needs.

Refusals are problems (403, or 404 where existence must not leak) and lines in the security log
(logger ``handoff.security``), never events in the audit of the handoff that was attacked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from handoff.domain.errors import Forbidden, NotFound, Problem, TooManyRequests, Unauthorized
from handoff.domain.registry import AgentConfig, Registry, may_hand_off

ProblemT = TypeVar("ProblemT", bound=Problem)
CallerKind = Literal["local", "functionKey", "principal", "agentKey", "operatorKey", "system"]
AGENT_KEY_HEADER = "X-Handoff-Agent-Key"
# The owner of the operators' key in the key ring: not a valid agent name, so no agent can be it.
OPERATORS = "<operators>"

security_log = logging.getLogger("handoff.security")


@dataclass(frozen=True)
class Caller:
    """Who is calling (never a secret: a key is resolved to its owner at the door).

    - ``local``: the local host, which like ``func start`` enforces no keys.
    - ``functionKey``: in Azure, a request the Functions host let through with a function key. The
      Python worker is not told which key, so a function key says nothing about *who* calls.
    - ``principal``: an Entra principal authenticated by App Service Authentication.
    - ``agentKey``: a request carrying the ``X-Handoff-Agent-Key`` of one agent (``name``).
    - ``operatorKey``: a request carrying the operators' key.
    - ``system``: the broker itself (queue workers, alerts).
    """

    kind: CallerKind
    principal_id: str | None = None
    app_id: str | None = None
    name: str | None = None

    def describe(self) -> str:
        """A short label for audit records and the security log (never a secret)."""
        if self.kind == "principal":
            return f"principal:{self.principal_id or self.app_id}"
        if self.kind == "agentKey":
            return f"agentKey:{self.name}"
        return self.kind


SYSTEM = Caller("system")
# Whom requests with a key the broker does not know are counted against in the rate limit.
UNKNOWN_KEY = Caller("agentKey", name="<unknown key>")


@dataclass(frozen=True)
class Identity:
    """What a caller is: the agents it may act as (``None``: every agent) and whether it is an operator."""

    agents: frozenset[str] | None
    operator: bool

    def is_agent(self, name: str) -> bool:
        return self.agents is None or name in self.agents

    def is_any(self, names: Collection[str]) -> bool:
        return self.agents is None or not self.agents.isdisjoint(names)


class KeyRing:
    """The agents' and operators' own caller keys, read from the app settings the registry names.

    Only SHA-256 digests are kept, so a key never sits in memory longer than the request that brought it.
    """

    def __init__(self, registry: Registry, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.missing: list[str] = []
        self._owners: dict[bytes, str] = {}
        owners = [(agent.key_setting, agent.name) for agent in registry.agents if agent.key_setting]
        if registry.operators.key_setting:
            owners.append((registry.operators.key_setting, OPERATORS))
        for setting, owner in owners:
            value = environ.get(setting or "", "")
            if len(value) < 16:
                # An unset or short key would be guessable: nobody can use it (start-up logs an error).
                self.missing.append(str(setting))
                continue
            self._owners[_digest(value)] = owner

    def owner_of(self, presented: str) -> str | None:
        """The agent name (or ``operators``) whose key this is, or None."""
        return self._owners.get(_digest(presented))


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def caller_from_headers(
    headers: Mapping[str, str],
    *,
    in_azure: bool,
    keys_enforced: bool = True,
    easy_auth: bool = False,
    keys: KeyRing | None = None,
) -> Caller:
    """Build the caller from HTTP request headers.

    App Service Authentication (``easy_auth``) strips client-supplied ``X-MS-CLIENT-PRINCIPAL*``
    headers and sets them for authenticated requests, so only then do they name a principal; in Azure
    without it they could be forged by anyone holding a function key and are ignored. Locally they are
    how tests and people play a principal. An ``X-Handoff-Agent-Key`` must be a key the registry knows
    (401 otherwise). Otherwise, in Azure the request passed the Functions host's key check
    (``keys_enforced``); with anonymous functions behind App Service Authentication a request without
    a principal is refused. Locally nothing is enforced, as with ``func start``.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    encoded = lowered.get("x-ms-client-principal")
    principal_id = lowered.get("x-ms-client-principal-id")
    if (encoded or principal_id) and (easy_auth or not in_azure):
        claims = _decode_principal(encoded) if encoded else {}
        app_id = claims.get("appid") or claims.get("azp")
        oid = claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier") or claims.get("oid")
        return Caller(
            "principal",
            principal_id=principal_id or oid,
            app_id=app_id,
            name=lowered.get("x-ms-client-principal-name"),
        )
    presented = lowered.get(AGENT_KEY_HEADER.lower())
    if presented is not None:
        owner = keys.owner_of(presented) if keys is not None else None
        if owner is None:
            raise Unauthorized(f"{AGENT_KEY_HEADER} is not a key this broker knows")
        return Caller("operatorKey") if owner == OPERATORS else Caller("agentKey", name=owner)
    if not in_azure:
        return Caller("local")
    if keys_enforced:
        return Caller("functionKey")
    raise Unauthorized("an Entra token is required (App Service Authentication found none)")


def _decode_principal(encoded: str) -> dict[str, str]:
    try:
        data = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return {}
    claims: dict[str, str] = {}
    listed = data.get("claims") if isinstance(data, dict) else None
    for claim in listed if isinstance(listed, list) else []:
        if isinstance(claim, dict) and "typ" in claim and "val" in claim:
            claims.setdefault(str(claim["typ"]), str(claim["val"]))
    return claims


class Authorizer:
    """The one place that decides what a caller may do (see the module docstring for the rules)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.open = not registry.names_callers
        self._operator_ids = {value.lower() for value in registry.operators.callers}

    def identity(self, caller: Caller) -> Identity:
        """The agents ``caller`` may act as and whether it is an operator."""
        if caller.kind == "system":
            return Identity(None, True)
        if caller.kind in ("local", "functionKey"):
            return Identity(None, True) if self.open else Identity(frozenset(), False)
        if caller.kind == "operatorKey":
            return Identity(frozenset(), True)
        if caller.kind == "agentKey":
            return Identity(frozenset({caller.name or ""}), False)
        ids = {value.lower() for value in (caller.principal_id, caller.app_id) if value}
        agents = frozenset(
            agent.name for agent in self.registry.agents if ids & {value.lower() for value in agent.callers}
        )
        return Identity(agents, bool(ids & self._operator_ids))

    # ---------------------------------------------------------------- acting

    def act_as(self, caller: Caller, agent: AgentConfig, action: str = "act as") -> None:
        """403 unless ``caller`` may act as ``agent``."""
        if self.identity(caller).is_agent(agent.name):
            return
        raise self.refuse(
            caller,
            action,
            agent.name,
            Forbidden(
                f"caller {caller.describe()} may not {action} agent '{agent.name}'; "
                "add its principal to that agent's callers, or use that agent's own key"
            ),
        )

    def hand_off(self, caller: Caller, source: AgentConfig, target: AgentConfig) -> None:
        """403 unless ``caller`` may act as ``source`` and ``source`` may hand off to ``target``."""
        self.act_as(caller, source, "hand off as")
        if not may_hand_off(source, target):
            raise self.refuse(
                caller,
                "hand off to",
                target.name,
                Forbidden(
                    f"agent '{source.name}' may not hand off to '{target.name}' (its mayHandOffTo is "
                    f"{', '.join(source.may_hand_off_to)})"
                ),
            )

    def require_operator(self, caller: Caller, action: str, resource: str) -> None:
        """403 unless ``caller`` is an operator."""
        if self.identity(caller).operator:
            return
        raise self.refuse(caller, action, resource, Forbidden(f"only an operator may {action}"))

    # ---------------------------------------------------------------- reading

    def may_read(self, caller: Caller, agents: Collection[str]) -> bool:
        """Whether ``caller`` may read what belongs to ``agents`` (an operator may read everything)."""
        identity = self.identity(caller)
        return identity.operator or identity.is_any(agents)

    def not_found(self, caller: Caller, action: str, resource: str, what: str) -> NotFound:
        """The 404 for something the caller may not see: the same answer as for what does not exist."""
        return self.refuse(caller, action, resource, NotFound(what))

    # ---------------------------------------------------------------- the security log

    @staticmethod
    def refuse(caller: Caller, action: str, resource: str, problem: ProblemT) -> ProblemT:
        """Log a refusal in the security log and return the problem to raise."""
        security_log.warning(
            "refused: caller=%s action=%r resource=%r status=%d",
            caller.describe(),
            action,
            resource[:200],
            problem.status,
            extra={"caller": caller.describe(), "action": action, "status": problem.status},
        )
        return problem


class RateLimiter:
    """A token bucket per caller (in this process): ``per_minute`` sustained, ``burst`` at once.

    Each Functions instance keeps its own buckets, so the fleet-wide limit is this times the instances;
    the point is that no single caller can flood the broker (or an agent through it) from one instance.
    """

    MAX_BUCKETS = 10_000

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, caller: Caller, now: float | None = None) -> None:
        """Take one token for ``caller``; 429 with ``Retry-After`` when its bucket is empty."""
        if self.rate <= 0:
            return
        key = caller.describe()
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = max(1, int((1 - tokens) / self.rate + 0.999))
                raise Authorizer.refuse(
                    caller,
                    "call",
                    "rate limit",
                    TooManyRequests(
                        f"too many requests from {key}; retry in {wait} s", headers={"Retry-After": str(wait)}
                    ),
                )
            if len(self._buckets) >= self.MAX_BUCKETS and key not in self._buckets:
                self._buckets.pop(next(iter(self._buckets)))
            self._buckets[key] = (tokens - 1, now)
