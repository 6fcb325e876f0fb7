"""``POST /api/webhooks/{backendName}``: what people write on the records the broker writes to.

Vendors cannot send the broker's headers (a function key, an agent key, an Entra token): GitHub,
PagerDuty and Jira's admin webhooks sign each delivery instead, and Jira Automation and ServiceNow's
business rule send the shared secret itself. So this function runs at ``anonymous`` auth level whatever
the deployment chose for the REST routes, and a delivery is authenticated by its signature (or token)
alone (the backend's ``webhookSecretSetting``); a missing or wrong one is 401 and a line in the
security log.
"""

from __future__ import annotations

import azure.functions as func

from handoff.bootstrap import get_human_inbound
from handoff.domain.auth import Caller
from handoff.entrypoints.responses import handle, json_response

bp = func.Blueprint()


@bp.route(route="webhooks/{backendName}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def receive_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """202 when the entry was queued for the agents of an investigation; 200 when it is a duplicate,
    the broker's own, of no active investigation or an event not read (``ping``)."""

    def action(_: Caller) -> func.HttpResponse:
        answer, status = get_human_inbound().receive(
            req.route_params.get("backendName", ""), dict(req.headers), req.get_body()
        )
        return json_response(answer, status)

    # No caller headers to check: the signature is the credential (checked by the service).
    return handle(req, action, public=True)
