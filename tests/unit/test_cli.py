"""The ``handoff`` command line: what it prints and sends, its exit codes, and that it is only an HTTP
client of the broker. The broker here is an ``httpx.MockTransport`` answering from a table (the real broker
is exercised in tests/e2e/test_cli.py)."""

from __future__ import annotations

import ast
import json
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from handoff.entrypoints import cli as cli_package
from handoff.entrypoints.cli import session as session_module
from handoff.entrypoints.cli import watch as watch_module
from handoff.entrypoints.cli.client import BrokerClient
from handoff.entrypoints.cli.group import since_value
from handoff.settings import APP_ROOT

ID = "3f2c9a7e-4b1d-4c55-9d1e-0c6a5e2b7f10"
CHILD = "9a1b2c3d-0000-4000-8000-000000000001"
Answer = tuple[int, Any] | Callable[[httpx.Request], httpx.Response]


def view(status: str = "delivered", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ID,
        "status": status,
        "intent": "investigate",
        "source": {"agent": "ops", "threadId": "t-1"},
        "target": {"agent": "checkout", "threadId": "t-2", "threadUrl": "https://sre.azure.com/t-2"},
        "context": {"title": "Exception burst", "summary": "5xx", "severity": "Sev2"},
        "rootHandoffId": ID,
        "createdAt": "2026-11-21T02:10:00Z",
        "updatedAt": "2026-11-21T02:10:05Z",
        "attempts": 1,
        "handbacks": [],
        "links": {},
    }
    body.update(extra)
    return body


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "https://x/p", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


class Broker:
    """Answers by (method, path): a fixed (status, JSON or text) or a function of the request; a list of
    answers is used one after the other (the last one repeats)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *answers: Answer) -> Broker:
        self.routes[(method, path)] = list(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, text="Not Found")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(answer):
            return answer(request)
        status, body = answer
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/plain"})
        kind = "application/problem+json" if status >= 400 else "application/json"
        return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": kind})


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker()

    def client(url: str, headers: dict[str, str], *, timeout: float) -> BrokerClient:
        return BrokerClient(url, headers, timeout=timeout, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(session_module, "BrokerClient", client)
    monkeypatch.setattr(watch_module.time, "sleep", lambda _seconds: None)
    return fake


def run(*args: str, stdin: str | None = None) -> Result:
    env = {"COLUMNS": "200", "HANDOFF_URL": "http://broker.test", "HANDOFF_KEY": "", "HANDOFF_AGENT_KEY": ""}
    return CliRunner().invoke(cli_package.cli, list(args), env=env, input=stdin)


# ---------------------------------------------------------------- reading a handoff


def test_status_shows_the_handoff_and_a_failed_one_exits_1(broker: Broker) -> None:
    broker.on("GET", f"/api/handoffs/{ID}", (200, view()), (200, view("failed", lastError="400 from agent")))
    shown = run("status", ID)
    assert shown.exit_code == 0, shown.output
    assert "delivered" in shown.stdout and "checkout  thread t-2" in shown.stdout
    failed = run("status", ID)
    assert failed.exit_code == 1
    assert "400 from agent" in failed.stdout and f"handoff {ID} is failed" in failed.stderr


def test_an_unknown_handoff_prints_the_problem_and_exits_1(broker: Broker) -> None:
    broker.on("GET", f"/api/handoffs/{ID}", (404, problem(404, "Not found", f"no handoff with id '{ID}'")))
    result = run("status", ID)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Not found: no handoff with id '{ID}'"
    assert result.stdout == ""


def test_field_errors_are_listed_under_the_problem(broker: Broker) -> None:
    errors = [{"field": "/context/severity", "message": "Input should be 'Sev0', 'Sev1'"}]
    broker.on(
        "POST", "/api/handoffs", (422, problem(422, "Unprocessable", "the body breaks the schema", errors))
    )
    result = run("send", "--source-agent", "ops", "--target-agent", "checkout", "--summary", "x")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Unprocessable: the body breaks the schema",
        "  /context/severity: Input should be 'Sev0', 'Sev1'",
    ]
    with_json = run("send", "--source-agent", "ops", "--target-agent", "checkout", "--summary", "x", "--json")
    assert json.loads(with_json.stdout)["status"] == 422


def test_caller_text_is_printed_as_text_never_as_markup_or_terminal_control(broker: Broker) -> None:
    hostile = "[link=https://evil.example]click[/link] \x1b]0;owned\x07 \x1b[2J \u202eevil"
    broker.on("GET", f"/api/handoffs/{ID}", (200, view(context={"title": hostile, "severity": "Sev2"})))
    result = run("status", ID)
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "[link=https://evil.example]click[/link]" in result.stdout
    as_json = run("status", ID, "--json")
    assert "\x1b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert json.loads(as_json.stdout)["context"]["title"] == hostile  # the same data, escaped


def test_json_prints_the_apis_json(broker: Broker) -> None:
    broker.on("GET", f"/api/handoffs/{ID}", (200, view()))
    result = run("status", ID, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == view()


def test_watch_prints_each_new_audit_event_until_delivered(broker: Broker) -> None:
    events = [
        {"seq": 1, "at": "2026-11-21T02:10:00Z", "type": "accepted", "actor": "local", "details": {}},
        {
            "seq": 2,
            "at": "2026-11-21T02:10:01Z",
            "type": "delivered",
            "actor": "broker",
            "details": {"threadId": "t-2"},
        },
    ]
    broker.on("GET", f"/api/handoffs/{ID}", (200, view("accepted")), (200, view("delivered")))
    broker.on(
        "GET",
        f"/api/handoffs/{ID}/audit",
        (200, {"handoffId": ID, "events": events[:1]}),
        (200, {"handoffId": ID, "events": events[1:]}),
        (200, {"handoffId": ID, "events": []}),
    )
    result = run("status", ID, "--watch", "--interval", "0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2026-11-21 02:10:00  accepted")
    assert lines[1] == "2026-11-21 02:10:01  delivered  threadId=t-2"
    audit_calls = [r for r in broker.requests if r.url.path.endswith("/audit")]
    # Each poll asks only for the events after the last one seen.
    assert [r.url.params.get("continuationToken") for r in audit_calls] == [None, "1"]


def test_watch_stops_with_1_when_the_handoff_fails_or_the_wait_runs_out(broker: Broker) -> None:
    broker.on("GET", f"/api/handoffs/{ID}/audit", (200, {"handoffId": ID, "events": []}))
    broker.on("GET", f"/api/handoffs/{ID}", (200, view("failed")))
    assert run("status", ID, "--watch", "--interval", "0").exit_code == 1
    broker.on("GET", f"/api/handoffs/{ID}", (200, view("accepted")))
    waited = run("status", ID, "--watch", "--interval", "0", "--max-wait", "0")
    assert waited.exit_code == 1 and "still accepted after 0 s" in waited.stderr


def test_audit_follows_every_page_into_one_table(broker: Broker) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("continuationToken", "0"))
        events = [
            {
                "seq": after + 1,
                "at": "2026-11-21T02:10:00Z",
                "type": f"type{after + 1}",
                "actor": "broker",
                "details": {"attempt": 1},
            }
        ]
        body = {
            "handoffId": ID,
            "events": events,
            **({"continuationToken": str(after + 1)} if after < 2 else {}),
        }
        return httpx.Response(200, json=body)

    broker.on("GET", f"/api/handoffs/{ID}/audit", page)
    result = run("audit", ID)
    assert result.exit_code == 0
    assert all(f"type{n}" in result.stdout for n in (1, 2, 3)) and "attempt=1" in result.stdout
    as_json = json.loads(run("audit", ID, "--json").stdout)
    assert [e["seq"] for e in as_json["events"]] == [1, 2, 3]


def test_links_are_a_tree_from_the_thread_asked_about(broker: Broker) -> None:
    def endpoint(agent: str, thread: str) -> dict[str, str]:
        return {"agent": agent, "threadId": thread}

    answer = {
        "agent": "ops",
        "threadId": "t-1",
        "links": [
            {
                "handoffId": ID,
                "relation": "handedOffTo",
                "thread": endpoint("ops", "t-1"),
                "peer": endpoint("checkout", "t-2"),
                "hops": 1,
            },
            {
                "handoffId": CHILD,
                "relation": "handedOffTo",
                "thread": endpoint("checkout", "t-2"),
                "peer": endpoint("payments", "t-3"),
                "hops": 2,
            },
        ],
    }
    broker.on("GET", "/api/threads/ops/t-1/links", (200, answer))
    result = run("links", "ops", "t-1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "ops / t-1"
    assert "handedOffTo checkout / t-2  (handoff 3f2c9a7e)" in lines[1]
    assert "handedOffTo payments / t-3  (handoff 9a1b2c3d)" in lines[2] and lines[2].index("handed") > lines[
        1
    ].index("handed")
    resource = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/agents/ops"
    broker.on("GET", "/api/links", (200, answer))
    assert run("links", resource, "t-1").exit_code == 0
    assert broker.requests[-1].url.params["agent"] == resource


# ---------------------------------------------------------------- lists


def test_list_sends_the_filters_and_points_at_the_next_page(broker: Broker) -> None:
    page = {"items": [view()], "continuationToken": "next-1"}
    broker.on("GET", "/api/handoffs", (200, page))
    result = run(
        "list", "--status", "delivered", "--target", "checkout", "--alert-rule", "High CPU", "--top", "5"
    )
    assert result.exit_code == 0, result.output
    assert ID in result.stdout and "ops → checkout" in result.stdout
    assert "--continuation-token next-1" in result.stdout
    params = broker.requests[-1].url.params
    assert dict(params) == {"status": "delivered", "target": "checkout", "alertRule": "High CPU", "top": "5"}
    assert broker.requests[-1].method == "GET"


def test_failed_lists_with_status_failed_and_all_follows_every_page(broker: Broker) -> None:
    broker.on(
        "GET",
        "/api/handoffs",
        (200, {"items": [view("failed")], "continuationToken": "p2"}),
        (200, {"items": [view("failed", id=CHILD)]}),
    )
    result = run("failed", "--all", "--json")
    assert result.exit_code == 0
    assert [item["id"] for item in json.loads(result.stdout)["items"]] == [ID, CHILD]
    assert [r.url.params.get("continuationToken") for r in broker.requests] == [None, "p2"]
    assert all(r.url.params["status"] == "failed" for r in broker.requests)


def test_list_says_so_when_the_broker_cannot_list_handoffs(broker: Broker) -> None:
    broker.on("GET", "/api/handoffs", (405, "Method Not Allowed"))
    result = run("list")
    assert result.exit_code == 1
    assert (
        "this broker does not list handoffs (GET /api/handoffs answered 405 Method Not Allowed)"
        in result.stderr
    )


def test_history_and_agents(broker: Broker) -> None:
    item = {
        "handoffId": ID,
        "title": "Pool exhausted",
        "source": "ops",
        "target": "checkout",
        "outcome": "rootCauseFound",
        "rootCause": "Max Pool Size 10",
        "handedBackAt": "2026-11-21T03:00:00Z",
    }
    broker.on("GET", "/api/history", (200, {"items": [item]}))
    result = run("history", "--resource", "/subscriptions/s", "--outcome", "rootCauseFound", "--text", "pool")
    assert result.exit_code == 0 and "Max Pool Size 10" in result.stdout
    assert dict(broker.requests[-1].url.params) == {
        "resource": "/subscriptions/s",
        "outcome": "rootCauseFound",
        "q": "pool",
        "top": "20",
    }
    agents = {"agents": [{"name": "checkout", "delivery": "thread", "description": "Checkout SRE"}]}
    broker.on("GET", "/api/agents", (200, agents))
    listed = run("agents")
    assert listed.exit_code == 0 and "Checkout SRE" in listed.stdout
    assert json.loads(run("agents", "--json").stdout) == agents


# ---------------------------------------------------------------- acting


def test_send_from_flags_builds_the_request(broker: Broker) -> None:
    broker.on("POST", "/api/handoffs", (202, view("accepted")))
    result = run(
        "send", "--source-agent", "ops", "--source-thread", "t-1", "--target-agent", "checkout",
        "--summary", "5xx at 7%\nsince the deploy", "--resource", "/subscriptions/s/resourceGroups/rg",
        "--idempotency-key", "k-1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Accepted: handoff {ID}" in result.stdout
    sent = broker.requests[-1]
    assert sent.headers["Idempotency-Key"] == "k-1"
    assert json.loads(sent.content) == {
        "source": {"agent": "ops", "threadId": "t-1"},
        "target": {"agent": "checkout"},
        "intent": "investigate",
        "context": {
            "summary": "5xx at 7%\nsince the deploy",
            "severity": "Sev3",
            "title": "5xx at 7%",
            "resources": ["/subscriptions/s/resourceGroups/rg"],
        },
    }


def test_send_reads_json_and_yaml_files_and_flags_override_them(broker: Broker, tmp_path: Path) -> None:
    broker.on("POST", "/api/handoffs", (202, view("accepted")))
    body = {
        "source": {"agent": "ops"},
        "target": {"agent": "checkout"},
        "context": {"title": "t", "summary": "s", "severity": "Sev2"},
    }
    (tmp_path / "h.json").write_text(json.dumps(body))
    assert run("send", str(tmp_path / "h.json"), "--target-agent", "payments").exit_code == 0
    assert json.loads(broker.requests[-1].content) == {**body, "target": {"agent": "payments"}}
    (tmp_path / "h.yaml").write_text(
        "source: {agent: ops}\ntarget: {agent: checkout}\n"
        "context:\n  title: Deploy 2026-11-21\n  summary: since 2026-11-21T02:10:00Z\n  severity: Sev2\n"
        "  actionsTaken: [2026-11-21]\n"
    )
    assert run("send", str(tmp_path / "h.yaml")).exit_code == 0
    context = json.loads(broker.requests[-1].content)["context"]
    assert context["actionsTaken"] == ["2026-11-21"]  # an unquoted date stays the text it was
    assert run("send", "-", stdin=json.dumps(body)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send"], "give a FILE, or --source-agent, --target-agent, --summary"),
        (["send", "missing.json"], "does not exist"),
        (["status"], "Missing argument 'ID'"),
        (["status", ID, "--bogus"], "No such option"),
        (
            ["send", "--source-agent", "a", "--target-agent", "b", "--summary", "s", "--severity", "Sev9"],
            "Sev9",
        ),
        (["agents", "--entra"], "--entra needs --scope or HANDOFF_SCOPE"),
    ],
)
def test_usage_errors_exit_2(broker: Broker, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2 and message in result.stderr
    assert broker.requests == []


def test_a_bad_file_is_a_usage_error(broker: Broker, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("source: [unclosed\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "is not YAML" in run("send", str(tmp_path / "bad.yaml")).stderr
    assert run("send", str(tmp_path / "list.json")).exit_code == 2


def test_replay_says_what_was_queued_again(broker: Broker) -> None:
    queued = {
        "handoffId": ID,
        "status": "failed",
        "retried": [{"step": "delivery"}, {"step": "handBack", "seq": 2}],
    }
    nothing = {"handoffId": ID, "status": "delivered", "retried": []}
    broker.on("POST", f"/api/handoffs/{ID}/retry", (202, queued), (200, nothing))
    first = run("replay", ID)
    assert first.exit_code == 0 and "Queued again: delivery, handBack 2 (handoff is failed)" in first.stdout
    assert "Nothing had failed; nothing was queued." in run("replay", ID).stdout


def test_an_id_cannot_add_path_segments(broker: Broker) -> None:
    run("status", "../../admin?x=1")
    assert broker.requests[-1].url.raw_path == b"/api/handoffs/..%2F..%2Fadmin%3Fx%3D1"


# ---------------------------------------------------------------- timeline


def test_timeline_prints_mermaid_and_writes_svg(broker: Broker, tmp_path: Path) -> None:
    def timeline(request: httpx.Request) -> httpx.Response:
        form = request.url.params.get("format")
        if form == "svg":
            return httpx.Response(200, text="<svg/>", headers={"content-type": "image/svg+xml"})
        return httpx.Response(200, text="sequenceDiagram\n", headers={"content-type": "text/vnd.mermaid"})

    broker.on("GET", f"/api/handoffs/{ID}/timeline", timeline)
    assert run("timeline", ID).stdout == "sequenceDiagram\n"
    written = run("timeline", ID, "--svg", str(tmp_path / "t.svg"))
    assert written.exit_code == 0 and (tmp_path / "t.svg").read_text() == "<svg/>"


def _chain_answers(broker: Broker) -> None:
    handoffs = [
        {
            "id": ID,
            "source": "ops",
            "target": "checkout",
            "status": "delivered",
            "createdAt": "2026-11-21T02:10:00Z",
        }
    ]
    answer = {"handoffId": ID, "rootHandoffId": ID, "handoffs": handoffs, "mermaid": "sequenceDiagram"}
    broker.on("GET", f"/api/handoffs/{ID}/timeline", (200, answer))
    events = [
        {"seq": 1, "at": "2026-11-21T02:10:00Z", "type": "accepted", "actor": "x", "details": {}},
        {"seq": 2, "at": "2026-11-21T02:10:03Z", "type": "deliveryFailed", "actor": "x", "details": {}},
    ]
    broker.on("GET", f"/api/handoffs/{ID}/audit", (200, {"handoffId": ID, "events": events}))


def test_timeline_png_is_drawn_from_the_audit_events(broker: Broker, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _chain_answers(broker)
    result = run("timeline", ID, "--png", str(tmp_path / "t.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")


def test_timeline_png_without_matplotlib_says_how_to_install_it(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _chain_answers(broker)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as when missing
    result = run("timeline", ID, "--png", str(tmp_path / "t.png"))
    assert result.exit_code == 1
    assert "pip install -r requirements-bench.txt" in result.stderr


# ---------------------------------------------------------------- connection and credentials


def test_no_answer_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def client(url: str, headers: dict[str, str], *, timeout: float) -> BrokerClient:
        return BrokerClient(url, headers, timeout=timeout, transport=httpx.MockTransport(refuse))

    monkeypatch.setattr(session_module, "BrokerClient", client)
    result = run("agents")
    assert result.exit_code == 3
    assert result.stderr.strip() == "cannot reach the broker at http://broker.test: connection refused"


def test_keys_and_entra_tokens_are_sent_as_headers(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    broker.on("GET", "/api/agents", (200, {"agents": []}))
    scopes: list[str] = []
    monkeypatch.setattr(session_module, "entra_token", lambda scope: scopes.append(scope) or "tok-1")
    result = run("agents", "--key", "fk", "--agent-key", "ak", "--entra", "--scope", "api://broker/.default")
    assert result.exit_code == 0
    headers = broker.requests[-1].headers
    assert (headers["x-functions-key"], headers["X-Handoff-Agent-Key"]) == ("fk", "ak")
    assert headers["Authorization"] == "Bearer tok-1" and scopes == ["api://broker/.default"]


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://h:7071/", "http://h:7071"),
        ("http://h:7071/api", "http://h:7071"),
        ("https://h/api/", "https://h"),
    ],
)
def test_the_url_may_name_the_api_root(url: str, base: str) -> None:
    assert BrokerClient(url).url == base


def test_since_takes_iso_times_or_how_long_ago() -> None:
    assert since_value("2026-11-21T02:00:00Z") == "2026-11-21T02:00:00Z"
    two_hours = datetime.fromisoformat(str(since_value("2h")).replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - two_hours).total_seconds() - 7200) < 60
    assert since_value(None) is None


# ---------------------------------------------------------------- packaging and boundaries

CLI_DIR = APP_ROOT / "handoff" / "entrypoints" / "cli"
# What the command line may import: itself, the standard library and its own third-party packages.
CLI_THIRD_PARTY = {"click", "rich", "httpx", "yaml", "azure", "matplotlib"}


def test_the_command_line_imports_nothing_of_the_broker() -> None:
    offences = []
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ours = name.startswith("handoff.entrypoints.cli") or name == "handoff.entrypoints.cli"
                allowed = (
                    ours if top == "handoff" else top in CLI_THIRD_PARTY or top in sys.stdlib_module_names
                )
                if not allowed:
                    offences.append(f"{path.name}: {name}")
    assert offences == []


def test_the_console_script_handoff_runs_the_command_line() -> None:
    project = tomllib.loads((APP_ROOT / "pyproject.toml").read_text())
    target = project["project"]["scripts"]["handoff"]
    module, _, name = target.partition(":")
    assert (module, name) == ("handoff.entrypoints.cli", "main")
    assert getattr(cli_package, name) is cli_package.main
    assert "handoff*" in project["tool"]["setuptools"]["packages"]["find"]["include"]


def test_every_command_has_help_with_an_example() -> None:
    commands = cli_package.cli.commands
    assert set(commands) == {
        "send", "status", "list", "failed", "audit", "links", "history", "agents", "replay", "timeline",
    }  # fmt: skip
    for name in commands:
        result = CliRunner().invoke(cli_package.cli, [name, "--help"])
        assert result.exit_code == 0 and "Example" in result.stdout, name
        for option in ("--url", "--key", "--entra", "--scope", "--json"):
            assert option in result.stdout, (name, option)
