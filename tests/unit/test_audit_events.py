"""Audit event names and the broker's own actors are spelled once, in :mod:`handoff.domain.audit_events`.

Every ``append_audit(...)`` call in ``handoff/`` names its event type (and its actor, when it is not a
caller's label) through :class:`EventType` / :class:`Actor`, and so does every ``NewEvent(...)`` (an
event written with a state change) and every alert-log ``log(...)`` call; the scan reads the source
with :mod:`ast`, so a bare string literal anywhere fails it. The self-tests at the end show the scan
can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from handoff.domain.audit_events import Actor, EventType
from handoff.settings import APP_ROOT

PACKAGE_DIR = APP_ROOT / "handoff"
CAMEL_CASE = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)*")
# Call -> {argument name: position} of the arguments that must not be string literals.
CHECKED_ARGUMENTS = {"append_audit": {"type": 1, "actor": 2}, "log": {"type": 1}}
# Constructor -> the same, for audit events made before they are written.
CHECKED_CONSTRUCTORS = {"NewEvent": {"type": 0, "actor": 1}}


def _argument(call: ast.Call, name: str, position: int) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_literal(node: ast.expr | None) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _checked(call: ast.Call) -> dict[str, int]:
    """The arguments to check of ``call``: an audit append, or an alert store's ``log`` (a logger's
    ``log`` is something else: only a receiver named ``...store`` counts)."""
    func = call.func
    if isinstance(func, ast.Name):
        return CHECKED_CONSTRUCTORS.get(func.id, {})
    if not isinstance(func, ast.Attribute):
        return {}
    if func.attr == "log":
        receiver = func.value
        name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
        if not name.endswith("store"):
            return {}
    return CHECKED_ARGUMENTS.get(func.attr, {})


def literal_audit_names(package_dir: Path) -> list[str]:
    """Audit appends and alert-log entries whose type or actor is a bare string literal."""
    offences = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for name, position in _checked(node).items():
                if _is_literal(_argument(node, name, position)):
                    func = node.func
                    call = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "?")
                    offences.append(f"{relative}:{node.lineno}: {call}(...) with a literal {name}")
    return offences


# ---------------------------------------------------------------- the names


def test_every_event_type_is_a_distinct_camel_case_name():
    values = [member.value for member in EventType.__members__.values()]  # aliases included
    assert len(values) == len(set(values))
    assert [v for v in values if not CAMEL_CASE.fullmatch(v)] == []


def test_every_actor_is_a_distinct_lower_case_word():
    values = [member.value for member in Actor.__members__.values()]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z]+", v) for v in values)


def test_the_package_names_audit_events_and_actors_through_the_enums():
    offences = literal_audit_names(PACKAGE_DIR)
    assert offences == [], "\n".join(offences)


# ---------------------------------------------------------------- the scan can fail


def _tree(root: Path, files: dict[str, str]) -> Path:
    package_dir = root / "handoff"
    for relative, source in files.items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package_dir


def test_the_scan_names_each_literal_type_and_actor(tmp_path):
    package_dir = _tree(
        tmp_path,
        {
            "services/good.py": (
                "store.append_audit(h, EventType.ACCEPTED, caller.describe(), {})\n"
                "self.store.log(p, EventType.ALERT_UNROUTED, {})\n"
                "log.log(20, 'a logger is not the alert log')\n"
            ),
            "services/bad.py": (
                "store.append_audit(h, 'accepted', Actor.BROKER, {})\n"
                "store.append_audit(h, EventType.ACCEPTED, 'broker', {})\n"
                "store.append_audit(h, type=f'{x}Done', actor=Actor.SYSTEM, details={})\n"
                "self.store.log(p, 'unrouted', {})\n"
            ),
            "services/human_entries/posting.py": "store.append_audit(h, 'humanNote', 'broker', {})\n",
        },
    )
    assert literal_audit_names(package_dir) == [
        "handoff/services/bad.py:1: append_audit(...) with a literal type",
        "handoff/services/bad.py:2: append_audit(...) with a literal actor",
        "handoff/services/bad.py:3: append_audit(...) with a literal type",
        "handoff/services/bad.py:4: log(...) with a literal type",
        "handoff/services/human_entries/posting.py:1: append_audit(...) with a literal type",
        "handoff/services/human_entries/posting.py:1: append_audit(...) with a literal actor",
    ]


def test_the_scan_names_literal_types_and_actors_of_events_made_before_they_are_written(tmp_path):
    package_dir = _tree(
        tmp_path,
        {
            "services/good.py": "NewEvent(EventType.DELIVERED, Actor.BROKER, {})\n",
            "services/bad.py": (
                "NewEvent('delivered', Actor.BROKER, {})\n"
                "NewEvent(EventType.DELIVERED, actor='broker', details={})\n"
            ),
        },
    )
    assert literal_audit_names(package_dir) == [
        "handoff/services/bad.py:1: NewEvent(...) with a literal type",
        "handoff/services/bad.py:2: NewEvent(...) with a literal actor",
    ]
