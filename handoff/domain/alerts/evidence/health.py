"""Evidence of service health and resource health alerts (activity log events of those categories)."""

from __future__ import annotations

import html
import re
from typing import Any

from handoff.domain.alerts.evidence.items import facts, note
from handoff.domain.alerts.reading import as_text, embedded_json, lookup


def _plain(text: str | None) -> str | None:
    """HTML communication text as plain text."""
    if not text:
        return None
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()) or None


def service_health_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The incident, the impacted services and regions, and the communication as plain text."""
    properties = lookup(ctx, "properties")
    properties = properties if isinstance(properties, dict) else {}
    impacted = embedded_json(lookup(properties, "impactedServices"))
    services, regions = [], []
    for entry in impacted if isinstance(impacted, list) else []:
        name = as_text(lookup(entry, "ServiceName"))
        if name and name not in services:
            services.append(name)
        for region in lookup(entry, "ImpactedRegions") or []:
            region_name = as_text(lookup(region, "RegionName"))
            if region_name and region_name not in regions:
                regions.append(region_name)
    return [
        note(
            "Service health",
            facts(
                [
                    ("title", lookup(properties, "title") or lookup(properties, "defaultLanguageTitle")),
                    ("type", lookup(properties, "incidentType")),
                    ("stage", lookup(properties, "stage")),
                    ("tracking id", lookup(properties, "trackingId")),
                    ("impact start", lookup(properties, "impactStartTime")),
                    ("impact mitigated", lookup(properties, "impactMitigationTime")),
                    ("service", lookup(properties, "service")),
                    ("region", lookup(properties, "region")),
                ]
            ),
        ),
        note("Impacted services", ", ".join(services)),
        note("Impacted regions", ", ".join(regions)),
        note(
            "Communication",
            _plain(
                as_text(lookup(properties, "communication"))
                or as_text(lookup(properties, "defaultLanguageContent"))
            ),
        ),
    ]


def resource_health_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The current and previous health, the cause, and the communication as plain text."""
    properties = lookup(ctx, "properties")
    properties = properties if isinstance(properties, dict) else {}
    return [
        note(
            "Resource health",
            facts(
                [
                    ("title", lookup(properties, "title")),
                    ("current", lookup(properties, "currentHealthStatus")),
                    ("previous", lookup(properties, "previousHealthStatus")),
                    ("type", lookup(properties, "type")),
                    ("cause", lookup(properties, "cause")),
                    ("details", lookup(properties, "details")),
                    ("status", lookup(ctx, "status")),
                    ("event time", lookup(ctx, "eventTimestamp")),
                ]
            ),
        ),
        note("Communication", _plain(as_text(lookup(properties, "communication")))),
    ]
