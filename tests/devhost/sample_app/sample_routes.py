"""HTTP functions of the sample app, registered through a Blueprint."""

from __future__ import annotations

import json
import time

import azure.functions as func
from sample_calls import record_call

bp = func.Blueprint()


@bp.route(route="items/{id:int}/{*rest}", methods=["GET"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    """Echo route parameters and the query string."""
    record_call("items")
    payload = {"route": dict(req.route_params), "query": dict(req.params), "url": req.url}
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@bp.route(route="hello/{name:alpha}/{greeting?}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    """Optional route parameter with a default text."""
    record_call("hello")
    greeting = req.route_params.get("greeting", "hello")
    return func.HttpResponse(f"{greeting}, {req.route_params['name']}")


@bp.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    """Return the request body unchanged, with its content type and a few facts as headers."""
    record_call("echo")
    body = req.get_body()
    return func.HttpResponse(
        body,
        status_code=201,
        headers={
            "x-body-length": str(len(body)),
            "x-method": req.method,
            "x-custom": req.headers.get("x-custom", ""),
        },
        mimetype=req.headers.get("content-type", "application/octet-stream"),
    )


@bp.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    """Sleep for ?ms= milliseconds (for the graceful shutdown test)."""
    record_call("slow")
    time.sleep(int(req.params.get("ms", "1000")) / 1000)
    return func.HttpResponse("done")
