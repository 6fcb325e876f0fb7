"""Write the handoff contract's JSON Schemas from the broker's models (``python -m spec.generate``).

``--check`` writes nothing and exits 1 when a checked-in schema differs from the generated one (the unit
test ``tests/unit/test_contract.py`` makes the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handoff.domain.contract import generate, render

SCHEMA_DIR = Path(__file__).resolve().parent / "handoff-context" / "v1"


def schema_path(name: str) -> Path:
    """Where the schema ``name`` is checked in."""
    return SCHEMA_DIR / f"{name}.json"


def stale() -> list[str]:
    """Names of the checked-in schemas that differ from the generated ones (or are missing)."""
    return [
        name
        for name, schema in generate().items()
        if not schema_path(name).is_file() or schema_path(name).read_text(encoding="utf-8") != render(schema)
    ]


def main(argv: list[str] | None = None) -> int:
    """Generate (or with ``--check`` compare) the schemas; the exit status says whether all were current."""
    parser = argparse.ArgumentParser(prog="python -m spec.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a schema is stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"stale: {schema_path(name)}", file=sys.stderr)
        return 1 if names else 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name, schema in generate().items():
        schema_path(name).write_text(render(schema), encoding="utf-8")
        print(schema_path(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
