"""The storage layout of table ``handoffs`` and the check that storage holds no data of another layout.

Layout 2: one partition per handoff (partition key = handoff id) holds all of it, so each step of a
handoff is one entity-group transaction:

- ``request``: the accepted request (written once; ``Doc0..DocN``);
- ``state``: status, thread ids, flags, lease (ETag-updated), and the audit's tail (``AuditSeq``, the last
  event's number, and ``AuditHash``, its hash), so events are appended in the same transaction as the
  state change they record, without reading the audit;
- ``handback|NNNNN``: each hand-back (written once, with its delivery's pending mark in the state);
- ``claim|<claim>``: a hand-back's Idempotency-Key claim (written with the hand-back);
- ``a|NNNNNNNNNN``: one audit event per row (only ever inserted);
- ``chain|member|<handoff id>`` and ``chain|pair|<source>|<target>|NNN``: the chain index, in the
  partition of the chain's root.

The record (request, state, hand-backs) is the row-key range ``handback|`` .. ``state`` of the partition:
one query reads it without the audit and chain rows, which sort before it. Partition ``~broker`` holds
the broker's own rows: its secrets and the ``layout`` row with the layout's number.

Layout 1 (before this one) kept audit events in table ``handoffaudit`` and the chain index in table
``handoffchains``. A broker never mixes layouts: on storage holding layout-1 data every storage call
raises :class:`~handoff.ports.StorageLayoutMismatch` saying what to do, and the log says it once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from handoff.adapters.azure_storage.clients import StorageClients, encode_key, storage_errors
from handoff.ports import StorageLayoutMismatch
from handoff.settings import HANDOFF_TABLE

log = logging.getLogger("handoff")

LAYOUT_VERSION = 2
# The broker's own rows: a partition no handoff id can have, never listed by the API.
BROKER_PARTITION = "~broker"
LAYOUT_ROW = "layout"
REQUEST_ROW = "request"
STATE_ROW = "state"
HANDBACK_PREFIX = "handback|"
CLAIM_PREFIX = "claim|"
AUDIT_PREFIX = "a|"
AUDIT_END = "a}"  # "}" sorts right after "|": every audit row key is below this
CHAIN_MEMBER_PREFIX = "chain|member|"
CHAIN_PAIR_PREFIX = "chain|pair|"
# Tables of layout 1 that layout 2 no longer has (their data is what the check looks for).
LAYOUT_1_TABLES = ("handoffaudit", "handoffchains")
LAYOUT_1_MESSAGE = (
    "the storage account holds handoff data of storage layout 1 (written by an earlier release of the "
    "broker), and this broker reads and writes storage layout 2 (see CHANGELOG.md); it does not mix them. "
    "Drain the earlier broker (stop sending it work and let its delivery queue empty), then point "
    "HANDOFF_STORAGE at a new storage account, or delete the tables handoffs, handoffaudit, handoffchains "
    "and handofflinks, and restart the broker"
)


def audit_row(seq: int) -> str:
    """Row key of audit event ``seq``."""
    return f"{AUDIT_PREFIX}{seq:010d}"


def handback_row(seq: int) -> str:
    """Row key of hand-back ``seq``."""
    return f"{HANDBACK_PREFIX}{seq:05d}"


def claim_row(claim: str) -> str:
    """Row key of a hand-back's Idempotency-Key claim."""
    return f"{CLAIM_PREFIX}{encode_key(claim)}"


def member_row(handoff_id: str) -> str:
    """Row key of a handoff's chain member record (in the partition of its chain's root)."""
    return f"{CHAIN_MEMBER_PREFIX}{handoff_id}"


def pair_prefix(source: str, target: str) -> str:
    """Row-key prefix of the slots of the ordered agent pair ``source`` → ``target`` in a chain."""
    return f"{CHAIN_PAIR_PREFIX}{encode_key(source)}|{encode_key(target)}|"


def pair_row(source: str, target: str, slot: int) -> str:
    """Row key of one slot of an ordered agent pair."""
    return f"{pair_prefix(source, target)}{slot:03d}"


# What this process found, by table endpoint: None once the layout is this one, else the message.
_checked: dict[str, str | None] = {}
_UNCHECKED = "unchecked"
_check_lock = threading.Lock()


class LayoutCheck:
    """Checks once per process (and storage endpoint) that storage holds this layout or nothing: marks
    empty storage as this layout, and refuses storage with data of layout 1."""

    def __init__(self, clients: StorageClients) -> None:
        self.clients = clients
        self.table = clients.table(HANDOFF_TABLE)
        self._key = self.table.url

    def ensure(self) -> None:
        """Return when storage holds this layout; raise :class:`StorageLayoutMismatch` otherwise (every
        time). A storage that cannot be reached raises as usual and is checked again on the next call."""
        if _checked.get(self._key, _UNCHECKED) is None:
            return  # the common case, without taking the lock
        with _check_lock:
            if self._key not in _checked:
                found = self._check()
                if found is not None:
                    log.error("storage layout: %s", found)
                _checked[self._key] = found
            mismatch = _checked[self._key]
        if mismatch is not None:
            raise StorageLayoutMismatch(mismatch)

    def _check(self) -> str | None:
        with storage_errors():
            version = self._version()
            if version is None:
                if self._layout_1_data():
                    return LAYOUT_1_MESSAGE
                row = {"PartitionKey": BROKER_PARTITION, "RowKey": LAYOUT_ROW, "Version": LAYOUT_VERSION}
                try:
                    self.table.create_entity(row)
                    return None
                except ResourceExistsError:
                    version = self._version()  # another instance marked it meanwhile
        if version == LAYOUT_VERSION:
            return None
        return (
            f"the storage account holds handoff data of storage layout {version}, and this broker reads "
            f"and writes storage layout {LAYOUT_VERSION}; it does not mix them: run a broker of that "
            "layout, or point HANDOFF_STORAGE at a new storage account"
        )

    def _version(self) -> int | None:
        try:
            row = self.table.get_entity(BROKER_PARTITION, LAYOUT_ROW)
        except ResourceNotFoundError:
            return None
        return int(row.get("Version") or 0)

    def _layout_1_data(self) -> bool:
        """Whether any table holds rows a layout-1 broker wrote: a handoff's rows without the layout
        row, or rows in a table layout 2 no longer has."""
        if _first(self.table.query_entities(f"PartitionKey ne '{BROKER_PARTITION}'", results_per_page=1)):
            return True
        return any(_any_row(self.clients.table(name)) for name in LAYOUT_1_TABLES)


def _any_row(table: TableClient) -> bool:
    try:
        return _first(table.list_entities(results_per_page=1, select=["PartitionKey"]))
    except ResourceNotFoundError:
        return False  # the table does not exist: nothing of layout 1 there


def _first(rows: Iterable[Any]) -> bool:
    return next(iter(rows), None) is not None


def forget_checks() -> None:
    """Check again on next use (for tests that change what a storage account holds)."""
    with _check_lock:
        _checked.clear()
