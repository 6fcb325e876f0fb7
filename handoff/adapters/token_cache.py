"""Entra tokens of the broker's managed identity, kept per scope (audience) until shortly before they
expire, so a poll every second does not ask the token endpoint every second.

One cache per gateway, shared by every thread of the worker: the cache is read under a lock, and a
token being fetched is fetched once per scope (other threads wanting the same scope wait for it, those
wanting another scope do not).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# A token is fetched anew this long before it expires (clock skew, and calls in flight at that moment).
REFRESH_BEFORE_SECONDS = 300.0


class TokenCache:
    """``credential.get_token(scope)`` per scope, reused until :data:`REFRESH_BEFORE_SECONDS` before its
    ``expires_on``. A token without ``expires_on`` is not kept."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        refresh_before_seconds: float = REFRESH_BEFORE_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.refresh_before_seconds = refresh_before_seconds
        self._now = now
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fetching: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, scope: str) -> str:
        """A token for ``scope``: the kept one while it is fresh, else a new one (raises whatever the
        credential raises)."""
        with self._lock:
            fresh = self._fresh(scope)
            if fresh is not None:
                return fresh
            fetching = self._fetching.setdefault(scope, threading.Lock())
        with fetching:
            with self._lock:
                fresh = self._fresh(scope)  # another thread fetched it while this one waited
            if fresh is not None:
                return fresh
            access = self.credential.get_token(scope)
            token = str(access.token)
            expires_on = getattr(access, "expires_on", None)
            if isinstance(expires_on, int | float) and not isinstance(expires_on, bool):
                with self._lock:
                    self._tokens[scope] = (token, float(expires_on))
            return token

    def forget(self, scope: str) -> None:
        """Drop the kept token of ``scope`` (the service refused it: the next call fetches a new one)."""
        with self._lock:
            self._tokens.pop(scope, None)

    def _fresh(self, scope: str) -> str | None:
        cached = self._tokens.get(scope)
        if cached is None or cached[1] - self.refresh_before_seconds <= self._now():
            return None
        return cached[0]
