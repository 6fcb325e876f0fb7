"""Unit tests of the local host's parts: routes, schedules, settings and function discovery."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devserver.hostlib.config import (
    HostConfigError,
    HostSettings,
    QueueOptions,
    apply_local_settings,
    parse_timespan,
    resolve_setting_refs,
)
from devserver.hostlib.functions import (
    HttpFunction,
    QueueFunction,
    TimerFunction,
    discover,
    load_function_app,
)
from devserver.hostlib.routes import compile_route, precedence_key
from devserver.hostlib.schedule import Schedule

SAMPLE = Path(__file__).parent / "sample_app"


def test_route_parameters_constraints_optional_and_catch_all() -> None:
    route = compile_route("items/{id:int}/{*rest}", "api")
    assert route.match("api/items/42/a/b/c") == {"id": "42", "rest": "a/b/c"}
    assert route.match("api/items/42") == {"id": "42"}
    assert route.match("api/items/x/a") is None
    assert route.match("API/Items/7/") == {"id": "7"}

    optional = compile_route("hello/{name:alpha}/{greeting?}", "api")
    assert optional.match("api/hello/bob") == {"name": "bob"}
    assert optional.match("api/hello/bob/hi") == {"name": "bob", "greeting": "hi"}
    assert optional.match("api/hello/b0b") is None

    guid = compile_route("h/{id:guid}", "")
    assert guid.match("h/3f2504e0-4f89-11d3-9a0c-0305e82c3301") is not None
    assert guid.match("h/nope") is None

    mixed = compile_route("files/{name}.{ext}", "api")
    assert mixed.match("api/files/report.pdf") == {"name": "report", "ext": "pdf"}


def test_route_prefix_and_leading_slash() -> None:
    assert compile_route("/{*route}", "api").match("api/anything/here") == {"route": "anything/here"}
    assert compile_route("health", "").match("health") == {}
    assert compile_route("health", "").match("api/health") is None


def test_literal_routes_take_precedence_over_parameters() -> None:
    routes = [compile_route(t, "api") for t in ("things/{*rest}", "things/{id}", "things/special")]
    ordered = sorted(routes, key=precedence_key)
    assert [r.template for r in ordered] == ["api/things/special", "api/things/{id}", "api/things/{*rest}"]


def test_ncrontab_schedules() -> None:
    start = datetime(2024, 5, 1, 12, 0, 7, 500_000, tzinfo=UTC)
    assert Schedule.parse("*/10 * * * * *").next_after(start) == datetime(2024, 5, 1, 12, 0, 10, tzinfo=UTC)
    assert Schedule.parse("0 */5 * * * *").next_after(start) == datetime(2024, 5, 1, 12, 5, 0, tzinfo=UTC)
    # 2024-05-01 is a Wednesday; the next Monday 09:30 is 2024-05-06.
    assert Schedule.parse("0 30 9 * * MON").next_after(start) == datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
    assert Schedule.parse("0 0 0 1 1 *").next_after(start) == datetime(2025, 1, 1, tzinfo=UTC)
    assert Schedule.parse("0 * * * *").next_after(start) == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    assert Schedule.parse("00:00:30").next_after(start) == datetime(
        2024, 5, 1, 12, 0, 37, 500_000, tzinfo=UTC
    )
    with pytest.raises(HostConfigError, match="minute field"):
        Schedule.parse("0 61 * * * *")
    with pytest.raises(HostConfigError):
        Schedule.parse("every minute")


def test_host_json_queue_options_and_defaults(tmp_path: Path) -> None:
    assert parse_timespan("00:00:02") == 2.0
    assert parse_timespan("1.00:00:01.5") == 86401.5
    defaults = HostSettings.load(tmp_path)
    assert defaults.route_prefix == "api"
    assert defaults.queues == QueueOptions()
    (tmp_path / "host.json").write_text(
        '{"version": "2.0", "extensions": {"http": {"routePrefix": ""}, "queues": '
        '{"maxPollingInterval": "00:00:02", "visibilityTimeout": "00:00:05", "batchSize": 16, '
        '"newBatchThreshold": 8, "maxDequeueCount": 5, "messageEncoding": "none"}}}'
    )
    settings = HostSettings.load(tmp_path)
    assert settings.route_prefix == ""
    assert settings.queues == QueueOptions(2.0, 5.0, 16, 8, 5, "none")


def test_environment_wins_over_local_settings() -> None:
    environ = {"B": "from-env"}
    applied = apply_local_settings({"Values": {"A": "from-file", "B": "from-file", "C": True}}, environ)
    assert environ == {"A": "from-file", "B": "from-env", "C": "true"}
    assert sorted(applied) == ["A", "C"]
    assert resolve_setting_refs("%P%-in", {"P": "x"}, "q") == "x-in"
    with pytest.raises(HostConfigError, match="MISSING"):
        resolve_setting_refs("%MISSING%", {}, "q")


def test_registration_is_read_without_calling_functions() -> None:
    environ = {"DEVHOST_QUEUE_PREFIX": "unit", "DEVHOST_TIMER_SCHEDULE": "0 */5 * * * *"}
    app = load_function_app(SAMPLE)
    specs = {spec.name: spec for spec in discover(app, SAMPLE, "api", environ)}
    assert sys.modules["sample_calls"].CALLS == []

    items = specs["items"]
    assert isinstance(items, HttpFunction)
    assert items.route.template == "api/items/{id:int}/{*rest}"
    assert items.methods == {"GET"}
    assert items.auth_level == "function"
    assert specs["whoami"].is_async and specs["whoami"].wants_context
    assert not specs["items"].is_async and not specs["items"].wants_context
    record = specs["record"]
    assert isinstance(record, QueueFunction)
    assert (record.queue_name, record.connection, record.trigger_arg) == ("unit-in", "SampleStorage", "msg")
    # An empty connection means the host storage, AzureWebJobsStorage.
    assert specs["always_fails"].connection == "AzureWebJobsStorage"
    timer = specs["on_startup"]
    assert isinstance(timer, TimerFunction)
    assert timer.run_on_startup and timer.schedule.expression == "0 */5 * * * *"

    disabled = discover(
        load_function_app(SAMPLE), SAMPLE, "api", {**environ, "AzureWebJobs.disabled.Disabled": "true"}
    )
    assert "disabled" not in {spec.name for spec in disabled}


def _app(tmp_path: Path, body: str) -> Path:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\napp = func.FunctionApp()\n" + textwrap.dedent(body)
    )
    return tmp_path


def test_output_bindings_are_rejected_naming_the_function(tmp_path: Path) -> None:
    root = _app(
        tmp_path,
        """
        @app.function_name("sender")
        @app.route(route="send")
        @app.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
        def send(req, out):
            return "x"
        """,
    )
    with pytest.raises(HostConfigError, match=r"Function 'sender'.*binding 'queue'"):
        discover(load_function_app(root), root, "api", {})


def test_unsupported_triggers_are_rejected(tmp_path: Path) -> None:
    root = _app(
        tmp_path,
        """
        @app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")
        def on_blob(blob):
            pass
        """,
    )
    with pytest.raises(HostConfigError, match=r"Function 'on_blob': trigger 'blobTrigger'"):
        discover(load_function_app(root), root, "api", {})


def test_unbound_parameters_are_rejected(tmp_path: Path) -> None:
    root = _app(
        tmp_path,
        """
        @app.route(route="x")
        def x(req, extra):
            return "x"
        """,
    )
    with pytest.raises(HostConfigError, match=r"Function 'x': parameter 'extra'"):
        discover(load_function_app(root), root, "api", {})
