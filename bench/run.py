"""Run every benchmark in this folder (``make bench``): each module with a ``main()`` prints its figures."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    """Run the benchmarks one after another."""
    folder = Path(__file__).parent
    for module in sorted(m.name for m in pkgutil.iter_modules([str(folder)])):
        if module in ("run", "__init__"):
            continue
        bench = importlib.import_module(f"bench.{module}")
        if hasattr(bench, "main"):
            print(f"\n== {module} ==", flush=True)
            bench.main()


if __name__ == "__main__":
    main()
