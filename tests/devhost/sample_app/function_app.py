"""A small v2-model app exercising what the local host supports."""

from __future__ import annotations

import contextlib
import json
import os

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from sample_calls import record_call
from sample_routes import bp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Function keys are required in Azure; the local host, like `func start`, does not check them.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)


def _report(event: dict[str, object]) -> None:
    """Write an event to <prefix>-out so that tests can observe invocations."""
    prefix = os.environ["DEVHOST_QUEUE_PREFIX"]
    # "SampleStorage" is a Functions connection name, not a conventional environment variable.
    connection = os.environ["SampleStorage"]  # noqa: SIM112
    client = QueueClient.from_connection_string(connection, f"{prefix}-out")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    client.send_message(json.dumps(event))


@app.route(route="whoami", methods=["GET"])
async def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """An async function that reads its invocation context."""
    record_call("whoami")
    payload = {
        "function_name": context.function_name,
        "invocation_id": context.invocation_id,
        "tls_invocation_id": context.thread_local_storage.invocation_id,
        "trace_parent": context.trace_context.trace_parent,
        "retry_count": context.retry_context.retry_count,
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


async def _asgi_info(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "q": request.query_params.get("q")})


_asgi_app = Starlette(routes=[Route("/api/asgi/{rest:path}", _asgi_info)])


@app.route(route="asgi/{*path}", methods=["GET"])
async def asgi(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Delegate to an ASGI app, which needs the invocation context."""
    return await func.AsgiMiddleware(_asgi_app).handle_async(req, context)


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    """Always raises."""
    record_call("boom")
    raise RuntimeError("boom on purpose")


@app.route(route="settings", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    """Show a few app settings, to check local.settings.json and environment precedence."""
    names = ("SAMPLE_FROM_SETTINGS", "SAMPLE_OVERRIDDEN", "SAMPLE_UNSET")
    return func.HttpResponse(json.dumps({n: os.environ.get(n) for n in names}), mimetype="application/json")


@app.route(route="disabled")
def disabled(req: func.HttpRequest) -> func.HttpResponse:
    """Disabled by the AzureWebJobs.disabled.Disabled app setting in tests."""
    return func.HttpResponse("should not run")


@app.queue_trigger(arg_name="msg", queue_name="%DEVHOST_QUEUE_PREFIX%-in", connection="SampleStorage")
def record(msg: func.QueueMessage) -> None:
    """Report each message body and its dequeue count."""
    record_call("record")
    _report(
        {"fn": "record", "body": msg.get_body().decode(), "dequeue_count": msg.dequeue_count, "id": msg.id}
    )


@app.queue_trigger(arg_name="msg", queue_name="%DEVHOST_QUEUE_PREFIX%-fail", connection="")
async def always_fails(msg: func.QueueMessage) -> None:
    """Report the attempt, then fail, so that the message ends in the poison queue."""
    record_call("always_fails")
    _report({"fn": "always_fails", "body": msg.get_body().decode(), "dequeue_count": msg.dequeue_count})
    raise ValueError("always fails")


@app.timer_trigger(
    schedule="%DEVHOST_TIMER_SCHEDULE%", arg_name="timer", run_on_startup=True, use_monitor=False
)
def on_startup(timer: func.TimerRequest) -> None:
    """Runs once when the host starts."""
    record_call("on_startup")
    _report({"fn": "on_startup", "past_due": timer.past_due})
