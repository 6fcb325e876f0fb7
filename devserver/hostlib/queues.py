"""The queue part of the local host: one listener per queue-triggered function, with host.json's rules."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueClient, QueueMessage

from devserver.hostlib.config import HostConfigError, QueueOptions, storage_connection_string
from devserver.hostlib.functions import QueueFunction
from devserver.hostlib.invocation import HostServices, InvocationError

log = logging.getLogger("Host.Function")

# The host never polls an idle queue faster than this and starts here after finding messages.
MIN_POLL_INTERVAL = 0.1
# A received message stays invisible this long while its function runs, renewed at half of it,
# as the host's queue listener does (10 minutes).
DEFAULT_QUEUE_LEASE = 600.0


class QueueListener:
    """Polls one queue for one function with the host's semantics.

    - receives up to ``batchSize`` messages, fetching again once no more than ``newBatchThreshold``
      are still running (so at most batchSize + newBatchThreshold run at once);
    - polls again at once after a non-empty batch, otherwise backs off exponentially from 100 ms
      to ``maxPollingInterval``;
    - success deletes the message; failure makes it visible again after ``visibilityTimeout``,
      unless it has been dequeued ``maxDequeueCount`` times: then it moves to ``<queue>-poison``;
    - a message received with a dequeue count above ``maxDequeueCount`` (its earlier runs crashed
      the process) and a message that is not valid base64 under ``messageEncoding: base64`` go to
      the poison queue without running the function.
    """

    def __init__(self, host: HostServices, spec: QueueFunction, options: QueueOptions) -> None:
        """Resolve the connection; raises :class:`HostConfigError` if it is not configured."""
        self.host = host
        self.spec = spec
        self.options = options
        self.queue = self._client(spec.queue_name)
        self.poison = self._client(f"{spec.queue_name}-poison")
        self._poison_ready = False
        self._active: set[asyncio.Task[Any]] = set()
        self._failing_since: float | None = None

    def _client(self, queue_name: str) -> QueueClient:
        # No encode/decode policy: the listener sees the stored text and decodes it itself, so that
        # one undecodable message cannot break a whole batch, and poison copies keep the exact text.
        name = self.spec.connection
        settings = os.environ
        client_options: dict[str, Any] = {"retry_total": 1, "connection_timeout": 5, "read_timeout": 30}
        if settings.get(name):
            return QueueClient.from_connection_string(
                storage_connection_string(settings[name]), queue_name, **client_options
            )
        service_uri = settings.get(f"{name}__queueServiceUri") or settings.get(f"{name}__serviceUri")
        account = settings.get(f"{name}__accountName")
        if not service_uri and account:
            service_uri = f"https://{account}.queue.core.windows.net"
        if service_uri:
            credential = _identity_credential(name, settings)
            return QueueClient(service_uri, queue_name, credential=credential, **client_options)
        raise HostConfigError(
            f"Function '{self.spec.name}': connection '{name}' is not configured: set the app setting "
            f"'{name}' to a connection string, or '{name}__queueServiceUri' for an identity-based connection"
        )

    async def prepare(self) -> None:
        """Create the queue if it is missing (a storage outage is logged; polling retries)."""
        try:
            await self.host.run_io(self._create, self.queue)
        except Exception as exc:
            log.warning(
                "Queue '%s' for '%s' not reachable yet: %s", self.spec.queue_name, self.spec.name, exc
            )

    @staticmethod
    def _create(client: QueueClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()

    async def run(self) -> None:
        """Poll until the host stops; then return without waiting for running invocations."""
        options = self.options
        delay = MIN_POLL_INTERVAL
        while not self.host.stopping():
            if len(self._active) > options.new_batch_threshold:
                await asyncio.wait(set(self._active), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await self.host.run_io(self._receive, options.batch_size)
            except ResourceNotFoundError:
                await self.prepare()
                messages = []
            except Exception as exc:
                self._report_outage(exc)
                await self.host.sleep_unless_stopping(options.max_polling_interval)
                continue
            if self._failing_since is not None:
                log.info("Queue '%s' is reachable again", self.spec.queue_name)
                self._failing_since = None
            if messages and not self.host.stopping():
                for message in messages:
                    task = asyncio.create_task(self._process_logged(message))
                    self._active.add(task)
                    task.add_done_callback(self._active.discard)
                    self.host.track(task)
                delay = MIN_POLL_INTERVAL
                continue
            await self.host.sleep_unless_stopping(delay)
            delay = min(delay * 2, options.max_polling_interval)

    def _report_outage(self, exc: Exception) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("Polling queue '%s' failed (will retry): %s", self.spec.queue_name, exc)

    def _receive(self, count: int) -> list[QueueMessage]:
        pages = self.queue.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=int(self.host.queue_lease)
        )
        return list(pages)

    def _decode(self, message: QueueMessage) -> bytes:
        text = message.content or ""
        if self.options.message_encoding == "base64":
            return base64.b64decode(text, validate=True)
        return text.encode("utf-8")

    async def _process_logged(self, message: QueueMessage) -> None:
        try:
            await self._process(message)
        except Exception:
            # A bug or storage error here must not vanish with the task; the lease brings it back.
            log.exception("Handling message %s on '%s' failed", message.id, self.spec.queue_name)

    async def _process(self, message: QueueMessage) -> None:
        lease = _Lease(message)
        options = self.options
        count = int(message.dequeue_count or 1)
        if count > options.max_dequeue_count:
            await self._to_poison(lease, f"dequeue count {count} is over maxDequeueCount")
            return
        try:
            body = self._decode(message)
        except (binascii.Error, ValueError) as exc:
            await self._to_poison(lease, f"the message is not valid base64 ({exc})")
            return
        trigger = FunctionQueueMessage(
            id=message.id,
            body=body,
            dequeue_count=count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        renewal = asyncio.create_task(self._renew(lease))
        try:
            await self.host.invoke(
                self.spec, trigger, f"New queue message detected on '{self.spec.queue_name}'."
            )
        except InvocationError:
            renewal.cancel()
            if count >= options.max_dequeue_count:
                await self._to_poison(
                    lease, f"the function failed on dequeue {count} of {options.max_dequeue_count}"
                )
            else:
                await self._settle(lease, "release", options.visibility_timeout)
            return
        renewal.cancel()
        await self._settle(lease, "delete", 0)

    async def _renew(self, lease: _Lease) -> None:
        # Long-running functions keep the message invisible so that no second copy starts meanwhile.
        interval = max(1.0, self.host.queue_lease / 2)
        while True:
            await asyncio.sleep(interval)
            async with lease.lock:
                try:
                    updated = await self.host.run_io(
                        self.queue.update_message,
                        lease.message_id,
                        lease.pop_receipt,
                        visibility_timeout=int(self.host.queue_lease),
                    )
                    lease.pop_receipt = updated.pop_receipt
                except Exception as exc:
                    log.warning("Renewing the lease of message %s failed: %s", lease.message_id, exc)

    async def _settle(self, lease: _Lease, action: str, visibility: float) -> None:
        async with lease.lock:
            try:
                if action == "delete":
                    await self.host.run_io(self.queue.delete_message, lease.message_id, lease.pop_receipt)
                else:
                    await self.host.run_io(
                        self.queue.update_message,
                        lease.message_id,
                        lease.pop_receipt,
                        visibility_timeout=round(visibility),
                    )
            except Exception as exc:
                # The lease runs out and the message comes back: at-least-once, as with the host.
                log.warning(
                    "Could not %s message %s on '%s': %s", action, lease.message_id, self.spec.queue_name, exc
                )

    async def _to_poison(self, lease: _Lease, why: str) -> None:
        poison_name = f"{self.spec.queue_name}-poison"
        log.warning(
            "Message %s on '%s' moved to '%s': %s", lease.message_id, self.spec.queue_name, poison_name, why
        )
        try:
            if not self._poison_ready:
                await self.host.run_io(self._create, self.poison)
                self._poison_ready = True
            await self.host.run_io(self.poison.send_message, lease.content)
        except Exception as exc:
            log.error("Could not write message %s to '%s': %s", lease.message_id, poison_name, exc)
            # Leave the original in place: it reappears and is poisoned on a later dequeue.
            await self._settle(lease, "release", self.options.visibility_timeout)
            return
        await self._settle(lease, "delete", 0)


class _Lease:
    """The current pop receipt of a received message (it changes on every visibility update)."""

    def __init__(self, message: QueueMessage) -> None:
        self.message_id: str = message.id
        self.pop_receipt: str = message.pop_receipt or ""
        self.content: str = message.content or ""
        self.lock = asyncio.Lock()


def _identity_credential(name: str, settings: Mapping[str, str]) -> Any:
    """Credential of an identity-based connection (``<name>__credential``, ``<name>__clientId``)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.get(f"{name}__clientId")
    if settings.get(f"{name}__credential", "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return (
        DefaultAzureCredential(managed_identity_client_id=client_id)
        if client_id
        else DefaultAzureCredential()
    )
