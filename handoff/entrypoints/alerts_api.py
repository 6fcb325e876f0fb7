"""``POST /api/alerts``: Azure Monitor Action Groups post alerts (common alert schema) here."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import azure.functions as func

from handoff.adapters.telemetry import span
from handoff.adapters.telemetry.wiring import alert_received
from handoff.bootstrap import get_alert_service
from handoff.domain.auth import Caller
from handoff.entrypoints.responses import REST_AUTH_LEVEL, handle, json_response
from handoff.settings import get_settings

if TYPE_CHECKING:
    from handoff.adapters.entra_token import SecureWebhookValidator

bp = func.Blueprint()


@lru_cache(maxsize=1)
def get_webhook_validator() -> SecureWebhookValidator:
    """The secure-webhook token validator (built on the first secured request; caches signing keys)."""
    from handoff.adapters.egress import EgressPolicy
    from handoff.adapters.entra_token import SecureWebhookValidator
    from handoff.adapters.http import make_http_client
    from handoff.domain.net import is_loopback

    settings = get_settings()
    client = make_http_client(
        min(10.0, settings.http_timeout_seconds),
        EgressPolicy.from_settings(settings),
        # HANDOFF_ALERTS_AUTHORITY is a setting: plain http only when it names a loopback fake.
        allow_insecure_local=is_loopback(urlsplit(settings.alerts_authority).hostname or ""),
    )
    return SecureWebhookValidator(settings, client)


@bp.route(route="alerts", methods=["POST"], auth_level=REST_AUTH_LEVEL)
def receive_alert(req: func.HttpRequest) -> func.HttpResponse:
    """202 with the handoffs created or updated; 200 with ``routed: []`` when no route matches (or a
    ``Resolved`` arrives for an alert never seen firing); 400 unless it is the common alert schema."""

    def action(caller: Caller) -> func.HttpResponse:
        if get_settings().secure_webhook:
            get_webhook_validator().validate(req.headers.get("Authorization"))
        with span("handoff.alert") as current:
            receipt, routed = get_alert_service().receive(req.get_body(), caller)
            alert_received(current, receipt)
        return json_response(receipt, 202 if routed else 200)

    # Alert storms are folded into storm handoffs by the service, not refused per caller.
    return handle(req, action, rate_limited=False)
