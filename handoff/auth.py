"""Caller identity and the one rule for who may act as which agent.

Every entrypoint turns its request into a :class:`Caller`; the service layer asks
:func:`authorize_as_agent` before doing anything on an agent's behalf. Nothing else decides this.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from handoff.errors import Forbidden, Unauthorized
from handoff.registry import AgentConfig

CallerKind = Literal["local", "functionKey", "principal", "system"]


@dataclass(frozen=True)
class Caller:
    """Who is calling.

    - ``local``: the local host, which like ``func start`` enforces no keys; trusted.
    - ``functionKey``: in Azure, a request the Functions host let through with a function key; trusted
      to act as any registered agent (the key is the broker's shared secret).
    - ``principal``: an Entra principal authenticated by App Service Authentication; may act only as
      agents whose ``callers`` list its object ID or application ID.
    - ``system``: the broker itself (queue workers, alerts).
    """

    kind: CallerKind
    principal_id: str | None = None
    app_id: str | None = None
    name: str | None = None

    @property
    def trusted(self) -> bool:
        """Callers that may act as any registered agent."""
        return self.kind in ("local", "functionKey", "system")

    def describe(self) -> str:
        """A short label for audit records (never a secret)."""
        if self.kind == "principal":
            return f"principal:{self.principal_id or self.app_id}"
        return self.kind


SYSTEM = Caller("system")


def authorize_as_agent(caller: Caller, agent: AgentConfig) -> None:
    """Raise :class:`Forbidden` unless ``caller`` may act as ``agent``."""
    if caller.trusted:
        return
    ids = {value.lower() for value in (caller.principal_id, caller.app_id) if value}
    if ids & {value.lower() for value in agent.callers}:
        return
    raise Forbidden(
        f"caller {caller.describe()} may not act as agent '{agent.name}'; "
        "add its object or application ID to that agent's callers in the registry"
    )


def caller_from_headers(headers: Mapping[str, str], *, in_azure: bool, keys_enforced: bool = True) -> Caller:
    """Build the caller from HTTP request headers.

    App Service Authentication strips client-supplied ``X-MS-CLIENT-PRINCIPAL*`` headers and sets them
    for authenticated requests, so their presence means an Entra principal. Otherwise, in Azure the
    request passed the Functions host's key check (``keys_enforced``: the function's auth level is
    ``function``); with anonymous functions behind App Service Authentication a request without a
    principal is refused. Locally nothing is enforced, as with ``func start``.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    encoded = lowered.get("x-ms-client-principal")
    principal_id = lowered.get("x-ms-client-principal-id")
    if encoded or principal_id:
        claims = _decode_principal(encoded) if encoded else {}
        app_id = claims.get("appid") or claims.get("azp")
        oid = claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier") or claims.get("oid")
        return Caller(
            "principal",
            principal_id=principal_id or oid,
            app_id=app_id,
            name=lowered.get("x-ms-client-principal-name"),
        )
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
    for claim in data.get("claims", []) if isinstance(data, dict) else []:
        if isinstance(claim, dict) and "typ" in claim and "val" in claim:
            claims.setdefault(str(claim["typ"]), str(claim["val"]))
    return claims
