from handoff.settings import APP_ROOT, Settings


def test_every_setting_is_documented():
    text = (APP_ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.env_names() if name not in text]
    assert missing == []


def test_readme_starts_with_the_two_commands():
    text = (APP_ROOT / "README.md").read_text()
    assert text.index("make run") < text.index("make test") < text.index("curl")


def _section(text: str, heading: str) -> str:
    """The text under a ``## heading`` (or ``###``), up to the next heading of the same or a higher level
    (lines in fenced code blocks are not headings)."""
    lines, level, fenced, found = [], 0, False, False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        marks = len(line) - len(line.lstrip("#")) if not fenced and line.startswith("#") else 0
        if found and marks and marks <= level:
            break
        if found:
            lines.append(line)
        elif marks and line[marks:].strip() == heading:
            found, level = True, marks
    assert found, f"no heading {heading!r}"
    return "".join(lines)


def test_the_readme_deploy_snippet_names_the_agents_before_azd_up():
    """The broker's identity gets its role on the agents listed in SRE_AGENT_RESOURCE_IDS at deployment;
    a broker deployed without them fails every delivery with 403."""
    section = _section((APP_ROOT / "README.md").read_text(), "Deploying to Azure")
    snippet = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in snippet.splitlines()]
    commands = [command for command in commands if command]
    assert "azd up" in commands
    setting = [
        i for i, command in enumerate(commands) if command.startswith("azd env set SRE_AGENT_RESOURCE_IDS ")
    ]
    assert setting and setting[0] < commands.index("azd up")


def test_the_local_port_is_documented():
    readme = _section((APP_ROOT / "README.md").read_text(), "Running locally")
    local = _section((APP_ROOT / "docs" / "configuration.md").read_text(), "Local development")
    assert "HANDOFF_LOCAL_PORT" in readme
    assert "| `HANDOFF_LOCAL_PORT` | `7071` |" in local


# One count of the MCP tools everywhere: what handoff/entrypoints/mcp_tools.py serves.
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
# "<number> tools" / "<number>-tool"; the SRE Agent's own budget of 80 tools is not a count of the broker's.
TOOL_COUNT = r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")[ -](?:MCP |handoff )?tools?\b"
SRE_AGENT_TOOL_BUDGET = 80


def _docs() -> list:
    return [APP_ROOT / "README.md", *sorted((APP_ROOT / "docs").glob("*.md"))]


def test_every_stated_count_of_the_mcp_tools_is_the_number_served_and_names_them_all():
    import re

    from handoff.entrypoints.mcp_tools import TOOLS

    names = [spec.name for spec in TOOLS]
    stating = []
    for path in _docs():
        text = path.read_text()
        counts = [
            int(word) if word.isdigit() else NUMBER_WORDS.index(word.lower())
            for word in re.findall(TOOL_COUNT, text, re.IGNORECASE)
        ]
        counts = [count for count in counts if count != SRE_AGENT_TOOL_BUDGET]
        if counts:
            stating.append(path.name)
            assert set(counts) == {len(TOOLS)}, (path.name, counts)
            assert [name for name in names if name not in text] == [], path.name
    assert {"README.md", "mcp.md"} <= set(stating)


def _anonymous_routes() -> set[str]:
    """``METHOD /api/route`` of every HTTP function registered at the anonymous auth level."""
    import importlib
    import pkgutil

    import azure.functions as func
    from azure.functions.decorators.http import HttpTrigger

    import handoff.entrypoints

    app = func.FunctionApp()
    for module in pkgutil.iter_modules(handoff.entrypoints.__path__):
        blueprint = getattr(importlib.import_module(f"handoff.entrypoints.{module.name}"), "bp", None)
        if blueprint is not None:
            app.register_functions(blueprint)
    routes = set()
    for function in app.get_functions():
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger) and trigger.auth_level == func.AuthLevel.ANONYMOUS:
            routes |= {f"{method.value} /api/{trigger.route}" for method in trigger.methods or ()}
    return routes


def test_the_endpoints_security_md_lists_as_open_are_the_anonymous_ones():
    import re

    routes = _anonymous_routes()
    assert "GET /api/health" in routes  # the enumeration sees the blueprints
    section = _section((APP_ROOT / "docs" / "security.md").read_text(), "Endpoints without a function key")
    listed = set(re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /api/[^`]+)`", section))
    assert listed == routes
    readme = (APP_ROOT / "README.md").read_text()
    assert [route for route in routes if route.split(" ", 1)[1] not in readme] == []


def test_every_path_in_the_architecture_tables_exists():
    """docs/architecture.md's layer and "where does X live" tables name real files and folders."""
    import re

    text = (APP_ROOT / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`((?:handoff|tests|devserver)/[\w/.]*|function_app\.py)`", text))
    assert len(paths) > 30
    missing = sorted(p for p in paths if not (APP_ROOT / p).exists())
    assert missing == []


def test_every_service_module_is_placed_in_the_where_table():
    """A new use-case module is added to the "where does X live" table (or its package is)."""
    text = (APP_ROOT / "docs" / "architecture.md").read_text()
    services = APP_ROOT / "handoff" / "services"
    unplaced = [
        p.name
        for p in services.iterdir()
        if p.name not in ("__init__.py", "__pycache__")
        and f"handoff/services/{p.name}" not in text
        and f"handoff/services/{p.name}/" not in text
    ]
    assert unplaced == []


# docs/scaling.md quotes the newest benchmark run and derives limits and monthly volumes from it.

# Figures docs/scaling.md quotes by the name the results file gives them.
SCALING_FIGURES = (
    "storage transactions per accepted handoff",
    "storage transactions per delivered handoff",
    "storage transactions per hand-back",
    "storage transactions per A2A handoff, partner polled",
    "storage transactions per delivered handoff (saturated)",
    "alert storm: storage transactions per alert",
    "idle app storage requests",
    "idle queue-trigger polls",
    "accept (POST → 202) p50",
    "POST → thread on B p50",
    "POST → thread, the queue wait left out p50",
    "host start → first accepted handoff",
)
TABLE_WRITES = ("tableInsert", "update", "batch", "delete")


def _newest_bench_results():
    import json

    files = sorted((APP_ROOT / "bench" / "results").glob("*.json"))
    assert files, "bench/results holds no results file"
    return files[-1], json.loads(files[-1].read_text())


def _shown(value: float) -> str:
    """A figure as docs/scaling.md writes it: whole numbers with thousands separators, else 3 digits."""
    if abs(value - round(value)) < 1e-9 or abs(value) >= 100:
        return f"{round(value):,}"
    return f"{value:.3g}"


def _by_kind(item: dict) -> dict[str, float]:
    counts: dict[str, float] = {}
    for kinds in item["byFunction"].values():
        for kind, count in kinds.items():
            counts[kind] = counts.get(kind, 0) + count
    return counts


def _kind_row(label: str, item: dict) -> str:
    kinds = _by_kind(item)
    writes = sum(kinds.get(kind, 0) for kind in TABLE_WRITES)
    reads = kinds.get("pointRead", 0)
    queries = kinds.get("partitionQuery", 0) + kinds.get("scanQuery", 0)
    sends = kinds.get("queueSend", 0)
    assert writes + reads + queries + sends + kinds.get("other", 0) == item["total"]
    cells = [_shown(x) for x in (writes, reads, queries, sends, item["total"])]
    return f"| {label} | " + " | ".join(cells) + " |"


def test_scaling_doc_quotes_the_newest_bench_results():
    path, results = _newest_bench_results()
    text = (APP_ROOT / "docs" / "scaling.md").read_text()
    assert f"bench/results/{path.name}" in text
    assert f"As measured in bench/results/{path.name}" in text

    figures = {figure["name"]: figure["value"] for figure in results["figures"]}
    missing = [
        f"| {name} | {_shown(figures[name])} |"
        for name in SCALING_FIGURES
        if f"| {name} | {_shown(figures[name])} |" not in text
    ]
    assert missing == []

    transactions = results["broker"]["transactions"]
    assert _kind_row("delivered handoff (accept + delivery + cross-link)", transactions["delivered"]) in text
    assert _kind_row("hand-back (accept + posting into A)", transactions["handback"]) in text

    low = transactions["saturated"]["trigger"]["queueReceive"]
    high = transactions["delivered"]["trigger"]["queueReceive"]
    assert f"between {_shown(low)} (saturated" in text
    assert f"and {_shown(high)} (sequential" in text
    per_item = {key: transactions[key]["trigger"]["queueDelete"] for key in ("delivered", "handback", "a2a")}
    assert (
        f"{_shown(per_item['delivered'])} per delivered handoff, {_shown(per_item['handback'])} per "
        f"hand-back, {_shown(per_item['a2a'])} per A2A handoff" in text
    )


def test_scaling_doc_limits_and_volumes_follow_from_the_bench_results():
    """The derived rows: account and queue caps, and a million handoffs' monthly volumes."""
    _, results = _newest_bench_results()
    text = (APP_ROOT / "docs" / "scaling.md").read_text()
    transactions = results["broker"]["transactions"]
    delivered, handback = transactions["delivered"], transactions["handback"]
    n, both = delivered["total"], delivered["total"] + handback["total"]

    assert f"| {_shown(n)}; {_shown(both)} | 6; 11 |" in text
    for rate in (20_000, 40_000):
        assert f"| {_shown(rate / n)} handoffs/s; {_shown(rate / both)} with a hand-back |" in text
        assert f"| {_shown(rate / 6)} handoffs/s; {_shown(rate / 11)} with a hand-back |" in text
    messages = delivered["trigger"]["queueDelete"] + handback["trigger"]["queueDelete"]
    a2a_messages = transactions["a2a"]["trigger"]["queueDelete"]
    assert (
        f"| {_shown(2000 / delivered['trigger']['queueDelete'])} handoffs/s; {_shown(2000 / messages)} "
        f"with a hand-back; {_shown(2000 / a2a_messages)} A2A handoffs/s |" in text
    )

    million = 1_000_000
    kinds = _by_kind(delivered)
    for kind, count in _by_kind(handback).items():
        kinds[kind] = kinds.get(kind, 0) + count
    sends = kinds.get("queueSend", 0)
    table = both - sends
    assert f"never reached: {_shown(table)} table requests over the handoff's whole life" in text
    assert f"| Transactions per handoff with its hand-back | {_shown(both)} | 11 |" in text
    assert f"| App table transactions | {_shown(table * million)} | 9,000,000 |" in text
    assert f"| App queue sends | {_shown(sends * million)} |" in text
    assert f"| Host queue deletes | {_shown(messages * million)} |" in text
    low = transactions["saturated"]["trigger"]["queueReceive"] * messages * million
    high = delivered["trigger"]["queueReceive"] * messages * million
    assert f"| Host queue receives | {_shown(low)} to {_shown(high)} |" in text
    assert f"| Table transactions, in units of 10,000 | {_shown(table * million / 10_000)} | 900 |" in text
    queue_ops = (sends + messages) * million
    units = f"{_shown((queue_ops + low) / 10_000)} to {_shown((queue_ops + high) / 10_000)}"
    assert f"| Queue operations, in units of 10,000 | {units} | {units} |" in text
    times = "\u00d7"  # the multiplication sign the formula uses
    assert f"{_shown(table * million / 10_000)} {times} P_table + ({units}) {times} P_queue" in text
