"""Identifiers and idempotency: the shape of a handoff id, the ``Idempotency-Key`` header, the ids and
claims derived from it, and the canonical hash that tells a replay from a different request."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid

from pydantic import BaseModel

from handoff.domain.errors import BadRequest, single_field

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200
# A UUID as it appears in free text (a human's comment quoting a handoff id).
UUID_IN_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(value: object) -> bool:
    """Whether ``value`` can be a handoff id (any form :class:`uuid.UUID` reads); storage is asked about
    nothing else."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def uuids_in(text: str) -> set[str]:
    """The UUIDs quoted in ``text``, lower case."""
    return {found.lower() for found in UUID_IN_TEXT.findall(text)}


def check_idempotency_key(value: str) -> str:
    """The ``Idempotency-Key`` header, stripped; 400 unless it is 1-200 printable characters."""
    key = value.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise single_field(
            BadRequest, IDEMPOTENCY_KEY_HEADER, f"must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return key


def idempotent_id(secret: bytes, source: str, key: str) -> str:
    """The handoff id for (source agent, Idempotency-Key) under the broker's secret: HMAC-SHA256, shaped as
    a version-4 UUID, so equal keys meet in storage's insert-if-absent yet nobody can compute the id."""
    digest = hmac.new(secret, f"{source.lower()}\n{key}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def handback_claim(agent: str, key: str) -> str:
    """The claim a hand-back with an Idempotency-Key takes on its handoff (one per agent and key)."""
    return hashlib.sha256(f"{agent.lower()}\n{key}".encode()).hexdigest()[:40]


def canonical_hash(model: BaseModel) -> str:
    """Hash of a parsed request (sorted keys, defaults filled), so equal bodies hash equal."""
    data = model.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
