"""History search: earlier investigations by resource (or resource-group / subscription prefix),
alert rule, agent, outcome, time and free text."""

from __future__ import annotations

import azure.functions as func

from handoff.bootstrap import get_handoffs
from handoff.domain.auth import Caller
from handoff.domain.history import parse_history_query
from handoff.entrypoints.responses import REST_AUTH_LEVEL, handle, json_response

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure.functions ships no type hints here


@bp.route(route="history", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def history(req: func.HttpRequest) -> func.HttpResponse:
    """One page of earlier investigations, newest first, with a ``continuationToken`` for the next."""

    def action(caller: Caller) -> func.HttpResponse:
        query = parse_history_query(dict(req.params))
        return json_response(get_handoffs().queries.search_history(query, caller))

    return handle(req, action)
