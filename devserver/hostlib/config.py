"""host.json and local.settings.json handling, with the Functions host's rules."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The Azurite endpoints that `UseDevelopmentStorage=true` stands for; the Python storage SDK does not
# understand that shorthand, the Functions host does.
_DEV_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


class HostConfigError(Exception):
    """The app or its configuration cannot be hosted; the message says what to fix."""


def parse_timespan(value: str | float | int, what: str = "value") -> float:
    """Seconds in a .NET TimeSpan string (``[d.]hh:mm:ss[.fff]``) as used in host.json."""
    if isinstance(value, int | float):
        return float(value)
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise HostConfigError(f"host.json: {what} {value!r} is not a TimeSpan like '00:00:05'")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues`` with the Functions host's defaults."""

    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any]) -> QueueOptions:
        """Read ``extensions.queues``; unknown keys are ignored as the host does."""
        raw = host_json.get("extensions", {}).get("queues", {}) or {}
        # host.json keys are case-insensitive for the host.
        raw = {str(k).lower(): v for k, v in raw.items()}
        batch_size = int(raw.get("batchsize", 16))
        if not 1 <= batch_size <= 32:
            raise HostConfigError(f"host.json: queues.batchSize must be 1..32, not {batch_size}")
        # The host's default threshold is half the batch size (per core; the local host counts one).
        threshold = int(raw.get("newbatchthreshold", batch_size // 2))
        encoding = str(raw.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise HostConfigError(
                f"host.json: queues.messageEncoding must be base64 or none, not {encoding!r}"
            )
        max_poll = parse_timespan(raw.get("maxpollinginterval", "00:01:00"), "queues.maxPollingInterval")
        return cls(
            # The host never polls faster than every 100 ms, whatever the setting says.
            max_polling_interval=max(0.1, max_poll),
            visibility_timeout=parse_timespan(raw.get("visibilitytimeout", 0), "queues.visibilityTimeout"),
            batch_size=batch_size,
            new_batch_threshold=max(0, threshold),
            max_dequeue_count=max(1, int(raw.get("maxdequeuecount", 5))),
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostSettings:
    """What the local host reads from host.json."""

    route_prefix: str
    queues: QueueOptions
    raw: Mapping[str, Any]

    @classmethod
    def load(cls, app_root: Path) -> HostSettings:
        """Read ``app_root/host.json`` (missing file: the host's defaults)."""
        path = app_root / "host.json"
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as exc:
                raise HostConfigError(f"{path}: invalid JSON: {exc}") from exc
        http = data.get("extensions", {}).get("http", {}) or {}
        prefix = http.get("routePrefix", "api")
        return cls(route_prefix=str(prefix).strip("/"), queues=QueueOptions.from_host_json(data), raw=data)


def read_local_settings(app_root: Path) -> dict[str, Any]:
    """Parsed ``local.settings.json`` of the app, or an empty dict when there is none."""
    path = app_root / "local.settings.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HostConfigError(f"{path}: expected a JSON object")
    return data


def _as_setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def apply_local_settings(settings: Mapping[str, Any], environ: MutableMapping[str, str]) -> list[str]:
    """Put ``Values`` into ``environ`` unless already set (the environment wins, as with ``func``).

    Returns the names that were set.
    """
    values = settings.get("Values") or {}
    applied = []
    for key, value in values.items():
        if key not in environ:
            environ[key] = _as_setting(value)
            applied.append(key)
    return applied


_SETTING_REF = re.compile(r"%([^%]+)%")


def resolve_setting_refs(value: str, environ: Mapping[str, str], what: str) -> str:
    """Replace ``%NAME%`` app-setting references in a binding property, as the host does."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise HostConfigError(f"{what}: app setting '{name}' referenced as %{name}% is not set")
        return environ[name]

    return _SETTING_REF.sub(lookup, value)


def storage_connection_string(value: str) -> str:
    """A connection string the storage SDK accepts (expands ``UseDevelopmentStorage=true``)."""
    if value.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return _DEV_STORAGE
    return value


def function_disabled(name: str, environ: Mapping[str, str]) -> bool:
    """True when the app setting ``AzureWebJobs.<name>.Disabled`` is true (the host's switch)."""
    value = environ.get(f"AzureWebJobs.{name}.Disabled", "")
    return value.strip().lower() in ("true", "1")
