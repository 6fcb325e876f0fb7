"""Loading a v2-model ``function_app`` and turning its registrations into what the host runs."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.functions import _abc as func_abc
from azure.functions.decorators.core import Trigger
from azure.functions.decorators.function_app import Function, FunctionRegister

from devserver.hostlib.config import HostConfigError, function_disabled, resolve_setting_refs
from devserver.hostlib.routes import RouteTemplate, compile_route
from devserver.hostlib.schedule import Schedule

ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})
SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")
# What the last load_function_app added to sys.modules and sys.path.
_LOADED_MODULES: set[str] = set()
_LOADED_ROOTS: set[str] = set()


@dataclass(frozen=True)
class FunctionSpec:
    """A registered function and how its parameters are bound."""

    name: str
    user_function: Callable[..., Any]
    trigger_type: str
    trigger_arg: str
    wants_context: bool
    is_async: bool
    app_root: Path


@dataclass(frozen=True)
class HttpFunction(FunctionSpec):
    """An HTTP-triggered function."""

    route: RouteTemplate = field(kw_only=True)
    methods: frozenset[str] = field(kw_only=True)
    auth_level: str = field(kw_only=True)


@dataclass(frozen=True)
class QueueFunction(FunctionSpec):
    """A queue-triggered function."""

    queue_name: str = field(kw_only=True)
    connection: str = field(kw_only=True)


@dataclass(frozen=True)
class TimerFunction(FunctionSpec):
    """A timer-triggered function."""

    schedule: Schedule = field(kw_only=True)
    run_on_startup: bool = field(kw_only=True)


def load_function_app(app_root: Path) -> FunctionRegister:
    """Import ``app_root/function_app.py`` (as module ``function_app``) and return its FunctionApp.

    The app root goes first on ``sys.path`` so that the app's own packages import as they would
    under the Functions host; the environment must already hold the app settings.
    """
    path = app_root / "function_app.py"
    if not path.exists():
        raise HostConfigError(f"{path} does not exist: nothing to host")
    _forget_loaded_app()
    root = str(app_root)
    sys.path.insert(0, root)
    _LOADED_ROOTS.add(root)
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location("function_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before executing, as a normal import would, so that the app can import itself.
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        _LOADED_MODULES.update(
            name
            for name in set(sys.modules) - before
            if _under(getattr(sys.modules[name], "__file__", None), app_root)
        )
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    # A Blueprint is not a FunctionRegister, so only app objects are found here.
    if not apps:
        raise HostConfigError(f"{path} defines no FunctionApp (e.g. `app = func.FunctionApp()`)")
    if len({id(app) for app in apps}) > 1:
        raise HostConfigError(f"{path} defines more than one FunctionApp")
    return apps[0]


def _forget_loaded_app() -> None:
    """Drop the modules and path entry that the previous in-process load added.

    A second in-process load (tests, restarts) must execute the app's modules afresh: a cached
    Blueprint module would register the same function objects into the new app. Only modules that
    the previous load imported from its app root are dropped, never the host's own.
    """
    for name in _LOADED_MODULES:
        sys.modules.pop(name, None)
    for root in _LOADED_ROOTS:
        while root in sys.path:
            sys.path.remove(root)
    _LOADED_MODULES.clear()
    _LOADED_ROOTS.clear()


def _under(file: str | None, root: Path) -> bool:
    return bool(file) and Path(str(file)).resolve().is_relative_to(root.resolve())


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _parameters(function: Function, name: str, trigger_arg: str) -> tuple[bool, bool]:
    """(wants_context, is_async) after checking every parameter can be bound."""
    user = function.get_user_function()
    signature = inspect.signature(user)
    wants_context = False
    for param in signature.parameters.values():
        if param.name == trigger_arg:
            continue
        if param.name == "context":
            wants_context = True
            continue
        if param.default is inspect.Parameter.empty and param.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise HostConfigError(
                f"Function '{name}': parameter '{param.name}' has no binding "
                f"(only the trigger '{trigger_arg}' and 'context' are bound by this host)"
            )
    if trigger_arg not in signature.parameters:
        raise HostConfigError(f"Function '{name}': the trigger argument '{trigger_arg}' is not a parameter")
    return wants_context, inspect.iscoroutinefunction(user)


def _supported_trigger(function: Function, name: str | None) -> Trigger:
    """The function's trigger; :class:`HostConfigError` unless the local host runs it as registered."""
    trigger = function.get_trigger()
    if trigger is None:
        raise HostConfigError(f"Function '{name}' has no trigger")
    if trigger.type not in SUPPORTED_TRIGGERS:
        raise HostConfigError(
            f"Function '{name}': trigger '{trigger.type}' is not supported by the local host "
            f"(supported: {', '.join(SUPPORTED_TRIGGERS)})"
        )
    for binding in function.get_bindings():
        if binding is trigger:
            continue
        # The implicit HTTP response binding of an HTTP function is the only other binding allowed.
        if trigger.type == "httpTrigger" and binding.type == "http" and binding.name == "$return":
            continue
        direction = _enum_text(binding.direction).lower()
        raise HostConfigError(
            f"Function '{name}': {direction} binding '{binding.type}' (argument '{binding.name}') is "
            "not supported by the local host; use an SDK client instead"
        )
    return trigger


def discover(
    app: FunctionRegister, app_root: Path, route_prefix: str, environ: Mapping[str, str]
) -> list[FunctionSpec]:
    """The app's functions as host specs, without calling any of them.

    Raises :class:`HostConfigError` naming the function for a trigger or binding the local host
    does not run (the app is expected to use SDK clients rather than output bindings).
    Functions disabled with ``AzureWebJobs.<name>.Disabled`` are left out.
    """
    specs: list[FunctionSpec] = []
    for function in app.get_functions():
        name = function.get_function_name()
        trigger = _supported_trigger(function, name)
        if function_disabled(name, environ):
            continue
        wants_context, is_async = _parameters(function, name, trigger.name)
        common = {
            "name": name,
            "user_function": function.get_user_function(),
            "trigger_type": trigger.type,
            "trigger_arg": trigger.name,
            "wants_context": wants_context,
            "is_async": is_async,
            "app_root": app_root,
        }
        if trigger.type == "httpTrigger":
            template = trigger.route if trigger.route is not None else name
            methods = trigger.methods
            specs.append(
                HttpFunction(
                    **common,
                    route=compile_route(
                        resolve_setting_refs(template, environ, f"Function '{name}'"), route_prefix
                    ),
                    methods=frozenset(_enum_text(m).upper() for m in methods) if methods else ALL_METHODS,
                    auth_level=_enum_text(trigger.auth_level or "function").lower(),
                )
            )
        elif trigger.type == "queueTrigger":
            queue = resolve_setting_refs(trigger.queue_name, environ, f"Function '{name}'").lower()
            specs.append(
                QueueFunction(
                    **common, queue_name=queue, connection=trigger.connection or "AzureWebJobsStorage"
                )
            )
        else:
            expression = resolve_setting_refs(trigger.schedule, environ, f"Function '{name}'")
            try:
                schedule = Schedule.parse(expression)
            except HostConfigError as exc:
                raise HostConfigError(f"Function '{name}': {exc}") from exc
            specs.append(
                TimerFunction(**common, schedule=schedule, run_on_startup=bool(trigger.run_on_startup))
            )
    return specs


class TraceContext(func_abc.TraceContext):
    """W3C trace context handed to functions (a fresh trace per invocation)."""

    def __init__(
        self, trace_parent: str, trace_state: str = "", attributes: dict[str, str] | None = None
    ) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state
        self._attributes = attributes or {}

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes


class RetryContext(func_abc.RetryContext):
    """Retry information; queue triggers retry through the queue, so this is always the first try."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func_abc.Context):
    """The ``context`` argument: same attributes as the Python worker's context."""

    def __init__(
        self, invocation_id: str, function_name: str, function_directory: str, trace_parent: str
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = TraceContext(trace_parent)
        self._retry_context = RetryContext()
        self._thread_local_storage = threading.local()
        self._thread_local_storage.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return self._retry_context

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local_storage
