"""The layout of ``handoff/`` as rules read from the source: layers, cycles, sizes, asserts, ignores.

Every module under ``handoff/`` is parsed with :mod:`ast`; every import counts, at module level, inside a
function or under ``TYPE_CHECKING`` (an import anywhere is a dependency). Each rule is a checker that takes
a package directory and returns what breaks it, one line per offence naming the module, so a failure says
where to look. The self-tests at the end feed each checker a small tree that breaks its rule, which shows
the checker can fail.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from handoff.settings import APP_ROOT

PACKAGE_DIR = APP_ROOT / "handoff"

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 100

# Third-party packages the inner layers may use besides the standard library.
PURE_THIRD_PARTY = frozenset({"pydantic", "pydantic_core"})
# Layer -> the layers of the package it may import (itself included); only these layers are restricted.
ALLOWED_LAYERS = {
    "domain": frozenset({"domain"}),
    "services": frozenset({"domain", "ports", "settings", "services"}),
    "ports": frozenset({"domain", "ports"}),
}
# Layer -> layers of the package it must not import.
FORBIDDEN_LAYERS = {"adapters": frozenset({"services", "entrypoints"})}
# The only modules that may sit directly in the package; everything else belongs to a layer.
TOP_LEVEL_MODULES = frozenset({"__init__", "settings", "bootstrap", "ports"})

TYPE_IGNORE = re.compile(r"type:\s*ignore")
# ``# type: ignore[code, code]  # why``: one or more error codes, then a comment that says why.
TYPE_IGNORE_WITH_REASON = re.compile(r"type:\s*ignore\[[a-z0-9_-]+(?:\s*,\s*[a-z0-9_-]+)*\]\s*#\s*\S")


@dataclass
class Module:
    """One parsed source file of the package."""

    name: str
    path: Path
    source: str
    tree: ast.Module
    imports: list[str] = field(default_factory=list)

    @property
    def layer(self) -> str:
        """The second part of the dotted name (``domain``, ``services``, ``settings`` ...)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else "__init__"

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def load_package(package_dir: Path) -> dict[str, Module]:
    """Every module of the package in ``package_dir``, by dotted name, with its imports resolved."""
    modules: dict[str, Module] = {}
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        source = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        modules[name] = Module(name, path, source, ast.parse(source, filename=str(path)))
    for module in modules.values():
        module.imports = sorted(set(_imports(module, modules)))
    return modules


def _imports(module: Module, modules: dict[str, Module]) -> Iterator[str]:
    """Dotted names ``module`` imports: the most specific module of the package where the name is one."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield submodule if submodule in modules else target
        elif (
            isinstance(node, ast.Call)
            and _called_name(node.func) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _layer_of(name: str, package: str) -> str | None:
    """The layer of an imported dotted name of ``package``; None for a name outside it."""
    parts = name.split(".")
    if parts[0] != package:
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


# ---------------------------------------------------------------- checkers


def layer_violations(package_dir: Path) -> list[str]:
    """Imports that cross a layer boundary: domain, services and ports may import only the layers (and the
    standard library and pydantic) allowed to them; adapters no use case and no entrypoint."""
    package = package_dir.name
    offences = []
    for module in load_package(package_dir).values():
        allowed, forbidden = ALLOWED_LAYERS.get(module.layer), FORBIDDEN_LAYERS.get(module.layer, frozenset())
        for imported in module.imports:
            layer = _layer_of(imported, package)
            if layer is None:
                if allowed is None or _is_stdlib(imported) or imported.split(".")[0] in PURE_THIRD_PARTY:
                    continue
            elif (allowed is None or layer in allowed) and layer not in forbidden:
                continue
            offences.append(f"{module.name} ({module.layer}) imports {imported}")
    return offences


def import_cycles(package_dir: Path) -> list[str]:
    """Groups of the package's modules that import each other, directly or through others (Tarjan)."""
    modules = load_package(package_dir)
    graph = {name: [i for i in module.imports if i in modules] for name, module in modules.items()}
    return [" -> ".join(sorted(component)) for component in _cycles(graph)]


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or one node importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(component)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def oversized(package_dir: Path) -> list[str]:
    """Modules, classes and functions (methods and nested ones too) longer than their limits."""
    offences = []
    for module in load_package(package_dir).values():
        lines = len(module.source.splitlines())
        if lines > MAX_MODULE_LINES:
            offences.append(f"{module.name}: module of {lines} lines (most {MAX_MODULE_LINES})")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                kind, limit = "class", MAX_CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                kind, limit = "function", MAX_FUNCTION_LINES
            else:
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                offences.append(
                    f"{module.name}:{node.lineno}: {kind} {node.name} of {length} lines (most {limit})"
                )
    return offences


def assert_statements(package_dir: Path) -> list[str]:
    """``assert`` statements: they vanish under ``python -O``, so they cannot guard production code."""
    return [
        f"{module.name}:{node.lineno}: assert"
        for module in load_package(package_dir).values()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Assert)
    ]


def bare_type_ignores(package_dir: Path) -> list[str]:
    """``# type: ignore`` comments without an error code, or without a comment after it saying why."""
    offences = []
    for module in load_package(package_dir).values():
        tokens = tokenize.generate_tokens(io.StringIO(module.source).readline)
        for token in tokens:
            if token.type != tokenize.COMMENT or not TYPE_IGNORE.search(token.string):
                continue
            if not TYPE_IGNORE_WITH_REASON.search(token.string):
                offences.append(f"{module.name}:{token.start[0]}: {token.string.strip()}")
    return offences


def stray_top_level_modules(package_dir: Path) -> list[str]:
    """Modules directly in the package other than ``__init__``, ``settings``, ``bootstrap`` and ``ports``."""
    return [
        f"{package_dir.name}.{path.stem}"
        for path in sorted(package_dir.glob("*.py"))
        if path.stem not in TOP_LEVEL_MODULES
    ]


CHECKERS: dict[str, Callable[[Path], list[str]]] = {
    "layers": layer_violations,
    "cycles": import_cycles,
    "sizes": oversized,
    "asserts": assert_statements,
    "type-ignores": bare_type_ignores,
    "top-level": stray_top_level_modules,
}


# ---------------------------------------------------------------- the package


@pytest.mark.parametrize("rule", list(CHECKERS))
def test_the_package_keeps_the_rule(rule):
    offences = CHECKERS[rule](PACKAGE_DIR)
    for offence in offences:
        print(f"{rule}: {offence}")
    assert offences == [], f"{len(offences)} offences against the {rule} rule:\n" + "\n".join(offences)


# ---------------------------------------------------------------- the checkers can fail


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A package ``handoff`` under ``root`` with the given modules (paths relative to the package)."""
    package_dir = root / "handoff"
    for relative, source in files.items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(package_dir).parents:
            (package_dir / parent / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return package_dir


def test_layer_checker_names_each_crossing(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "domain/good.py": "import re\nfrom pydantic import BaseModel\nfrom handoff.domain import other\n",
            "domain/other.py": "",
            "domain/bad.py": "def f():\n    from handoff.services import use\n",
            "domain/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import httpx\n",
            "services/use.py": "from handoff import settings, ports\nfrom handoff.domain.other import x\n",
            "services/sdk.py": "def f():\n    import azure.data.tables\n",
            "services/adapter.py": "from ..adapters import store\n",
            "ports.py": "from handoff.adapters.store import Store\n",
            "settings.py": "",
            "adapters/store.py": "import httpx\nfrom handoff.domain import other\n",
            "adapters/bad.py": "from handoff.entrypoints.api import x\nfrom handoff.services.use import y\n",
            "entrypoints/api.py": "from handoff.services.use import y\nimport azure.functions\n",
        },
    )
    assert sorted(layer_violations(package_dir)) == [
        "handoff.adapters.bad (adapters) imports handoff.entrypoints.api",
        "handoff.adapters.bad (adapters) imports handoff.services.use",
        "handoff.domain.bad (domain) imports handoff.services.use",
        "handoff.domain.typed (domain) imports httpx",
        "handoff.ports (ports) imports handoff.adapters.store",
        "handoff.services.adapter (services) imports handoff.adapters.store",
        "handoff.services.sdk (services) imports azure.data.tables",
    ]


def test_cycle_checker_finds_cycles_through_deferred_imports(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "a.py": "from handoff import b\n",
            "b.py": "def f():\n    from handoff.c import x\n",
            "c.py": "import handoff.a\n",
            "d.py": "from handoff import a\n",
            "e.py": "from . import e\n",
        },
    )
    assert sorted(import_cycles(package_dir)) == ["handoff.a -> handoff.b -> handoff.c", "handoff.e"]
    acyclic = write_tree(tmp_path / "acyclic", {"a.py": "from handoff import b\n", "b.py": ""})
    assert import_cycles(acyclic) == []


def test_size_checker_names_long_modules_classes_and_functions(tmp_path):
    long_function = "def long():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    long_class = "class Long:\n" + "    x = 1\n" * MAX_CLASS_LINES
    package_dir = write_tree(
        tmp_path,
        {
            "fine.py": "def short():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1),
            "function.py": long_function,
            "method.py": "class C:\n" + "".join(f"    {line}\n" for line in long_function.splitlines()),
            "klass.py": long_class,
            "module.py": "x = 1\n" * (MAX_MODULE_LINES + 1),
        },
    )
    assert sorted(oversized(package_dir)) == [
        f"handoff.function:1: function long of {MAX_FUNCTION_LINES + 1} lines (most {MAX_FUNCTION_LINES})",
        f"handoff.klass:1: class Long of {MAX_CLASS_LINES + 1} lines (most {MAX_CLASS_LINES})",
        f"handoff.method:2: function long of {MAX_FUNCTION_LINES + 1} lines (most {MAX_FUNCTION_LINES})",
        f"handoff.module: module of {MAX_MODULE_LINES + 1} lines (most {MAX_MODULE_LINES})",
    ]


def test_assert_checker_names_each_assert(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {"clean.py": "x = 1\n", "guard.py": "def f(x):\n    assert x is not None\n    return x\n"},
    )
    assert assert_statements(package_dir) == ["handoff.guard:2: assert"]


def test_type_ignore_checker_wants_a_code_and_a_reason(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "good.py": "x: int = f()  # type: ignore[no-any-return]  # the SDK returns Any\n"
            "y = g()  # type: ignore[arg-type, union-attr]  # untyped stream\n"
            's = "# type: ignore"\n',
            "bare.py": "x = f()  # type: ignore\n",
            "no_reason.py": "x = f()  # type: ignore[arg-type]\n",
        },
    )
    assert sorted(bare_type_ignores(package_dir)) == [
        "handoff.bare:1: # type: ignore",
        "handoff.no_reason:1: # type: ignore[arg-type]",
    ]


def test_top_level_checker_names_modules_outside_the_layers(tmp_path):
    package_dir = write_tree(
        tmp_path,
        {
            "settings.py": "",
            "bootstrap.py": "",
            "ports.py": "",
            "helpers.py": "",
            "domain/models.py": "",
        },
    )
    assert stray_top_level_modules(package_dir) == ["handoff.helpers"]
