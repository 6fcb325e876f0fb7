"""Azure Functions entry point: registers the broker's Blueprints. Logic lives in the handoff package."""

import azure.functions as func

from handoff.bootstrap import validate_startup
from handoff.domain.registry import ConfigError
from handoff.entrypoints import (
    a2a_api,
    alerts_api,
    history_api,
    http_api,
    human_poll,
    mcp_api,
    queue_triggers,
    shared_memory_worker,
    webhooks_api,
)

try:
    validate_startup()
except ConfigError as error:
    # The message names the file, the field and what to fix. Raised afresh from here, so the stack the
    # Functions host logs with it holds this one line of the app rather than the registry loader's
    # frames, and the local host prints the message alone (devserver/hostlib/startup.py).
    raise error.with_traceback(None) from None

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_api.bp)
app.register_functions(queue_triggers.bp)
app.register_functions(mcp_api.bp)
app.register_functions(a2a_api.bp)
app.register_functions(alerts_api.bp)
app.register_functions(shared_memory_worker.bp)
app.register_functions(history_api.bp)
app.register_functions(webhooks_api.bp)
app.register_functions(human_poll.bp)
