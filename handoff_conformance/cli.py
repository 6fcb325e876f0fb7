"""``handoff-conformance URL``: run the scenarios against a broker, print a pass/fail table, exit 1 when
one fails (2 for a usage error)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from handoff_conformance.agents import SOURCE, TARGET, SimulatedAgents
from handoff_conformance.runner import NotSimulated, Options, run, table
from handoff_conformance.scenarios import SCENARIOS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handoff-conformance",
        description="Check that a broker honours the handoff contract (handoffContext v1) over REST.",
        epilog=(
            "The kit plays both agents with simulated SRE Agents on 127.0.0.1:SOURCE_PORT and TARGET_PORT; "
            "the broker's registry must name them (--print-registry shows the entries) and the broker must "
            "get its tokens from the local token endpoint whose FAKE_IDENTITY_SECRET the kit is given. "
            "A function key in HANDOFF_KEY is sent as x-functions-key and an agent's or the operators' key "
            "in HANDOFF_AGENT_KEY as X-Handoff-Agent-Key (unless -H sets that header): keys in the "
            "environment are not shown in the process list or the shell's history."
        ),
    )
    p.add_argument("url", nargs="?", help="the broker's base URL, e.g. http://127.0.0.1:7071")
    p.add_argument("--source-agent", default=SOURCE, help=f"the source agent's registry name ({SOURCE})")
    p.add_argument("--target-agent", default=TARGET, help=f"the target agent's registry name ({TARGET})")
    p.add_argument("--source-port", type=int, default=7301, help="port of the simulated source agent")
    p.add_argument("--target-port", type=int, default=7302, help="port of the simulated target agent")
    p.add_argument("--token-secret", help="FAKE_IDENTITY_SECRET of the broker's token endpoint (or the env)")
    p.add_argument(
        "-H", "--header", action="append", default=[], metavar="NAME: VALUE", help="a header for every call"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery or hand-back")
    p.add_argument("--only", action="append", default=[], choices=list(SCENARIOS), help="run this scenario")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--print-registry", action="store_true", help="print the registry entries and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    agents = SimulatedAgents(
        args.source_agent, args.target_agent, args.source_port, args.target_port, args.token_secret
    )
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if args.print_registry:
        print(json.dumps({"agents": agents.registry_entries()}, indent=2))
        return 0
    if not args.url:
        parser().error("the broker's URL is required")
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            parser().error(f"--header wants 'Name: value', not {header!r}")
        headers[name.strip()] = value.strip()
    for name, variable in (("x-functions-key", "HANDOFF_KEY"), ("X-Handoff-Agent-Key", "HANDOFF_AGENT_KEY")):
        if os.environ.get(variable) and name.lower() not in {header.lower() for header in headers}:
            headers[name] = os.environ[variable]
    options = Options(args.url, headers, args.timeout, tuple(args.only))
    try:
        results = run(
            options, agents, on_result=lambda r: print(f"{'PASS' if r.passed else 'FAIL'} {r.name}")
        )
    except NotSimulated as refused:
        print(f"handoff-conformance: {refused}", file=sys.stderr)
        return 2
    finally:
        agents.stop()
    print()
    print(table(results))
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
