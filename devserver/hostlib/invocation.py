"""Calling a function as the Functions host does, and what the trigger parts need of the host."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from devserver.hostlib.functions import FunctionSpec, InvocationContext

log = logging.getLogger("Host.Function")


class InvocationError(Exception):
    """A function invocation raised; the cause is the function's exception."""


class HostServices(Protocol):
    """What the HTTP, queue and timer parts use of the host that runs them (see ``LocalHost``)."""

    queue_lease: float

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Any:
        """Run a function; raises :class:`InvocationError` when it raises."""
        ...

    def track(self, task: asyncio.Task[Any]) -> None:
        """Remember a background invocation so that shutdown waits for it."""
        ...

    async def run_io(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking storage call off the event loop."""
        ...

    def stopping(self) -> bool:
        """True once stop was requested."""
        ...

    async def sleep_unless_stopping(self, seconds: float) -> None:
        """Sleep, but return early when the host is asked to stop."""
        ...


def trace_parent() -> str:
    """A fresh W3C ``traceparent`` for one invocation."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


async def invoke_function(
    spec: FunctionSpec, trigger_value: Any, reason: str, pool: ThreadPoolExecutor | None
) -> Any:
    """Call a function like the host: log it, bind trigger and ``context``, run sync code in ``pool``.

    Raises :class:`InvocationError` (after logging the traceback) when the function raises.
    """
    invocation_id = str(uuid.uuid4())
    context = InvocationContext(invocation_id, spec.name, str(spec.app_root), trace_parent())
    kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value}
    if spec.wants_context:
        kwargs["context"] = context
    log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
    started = time.monotonic()
    try:
        if spec.is_async:
            result = await spec.user_function(**kwargs)
        else:
            assert pool is not None
            call: Callable[[], Any] = functools.partial(spec.user_function, **kwargs)
            # Copying the context keeps contextvars set by the caller visible to sync functions.
            result = await asyncio.get_running_loop().run_in_executor(
                pool, contextvars.copy_context().run, call
            )
    except Exception as exc:
        duration = (time.monotonic() - started) * 1000
        log.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
            spec.name,
            invocation_id,
            duration,
            exc_info=exc,
        )
        raise InvocationError(f"{spec.name} failed: {exc!r}") from exc
    duration = (time.monotonic() - started) * 1000
    log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id, duration)
    return result
