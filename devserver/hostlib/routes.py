"""HTTP route templates of the Functions host (ASP.NET-style) compiled to regular expressions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devserver.hostlib.config import HostConfigError

# Constraints the local host checks; any other constraint (min(), length(), regex(), ...) matches loosely.
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?",
    "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
}
_PARAM = re.compile(r"\{([^{}]+)\}")

# Precedence of a segment kind, lowest first, as ASP.NET orders competing templates.
_LITERAL, _CONSTRAINED, _PLAIN, _OPTIONAL, _CATCH_ALL = range(5)


@dataclass(frozen=True)
class RouteTemplate:
    """One compiled route template; :meth:`match` gives the route parameters or None."""

    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    defaults: tuple[tuple[str, str], ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters when ``path`` (no leading slash, percent-decoded) matches."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        params = dict(self.defaults)
        for index, name in enumerate(self.names):
            value = found.group(f"p{index}")
            if value is not None and value != "":
                params[name] = value
        return params


def _param_regex(spec: str, group: str) -> tuple[str, str, int, bool, str | None]:
    """(name, regex, kind, optional, default) for the inside of ``{...}``."""
    catch_all = spec.startswith("*")
    spec = spec.lstrip("*")
    default = None
    if "=" in spec:
        spec, default = spec.split("=", 1)
    optional = spec.endswith("?") or default is not None
    spec = spec.rstrip("?")
    name, *constraints = spec.split(":")
    if not name:
        raise HostConfigError(f"route parameter without a name: {{{spec}}}")
    if catch_all:
        return name, f"(?P<{group}>.*)", _CATCH_ALL, True, default
    pattern = "[^/]+"
    for constraint in constraints:
        key = constraint.split("(", 1)[0].lower()
        if key in _CONSTRAINTS:
            pattern = _CONSTRAINTS[key]
    kind = _OPTIONAL if optional else (_CONSTRAINED if constraints else _PLAIN)
    return name, f"(?P<{group}>{pattern})", kind, optional, default


def compile_route(template: str, prefix: str) -> RouteTemplate:
    """Compile ``prefix/template``; ``{name}``, ``{name:int}``, ``{name?}``, ``{*rest}`` are understood."""
    full = "/".join(part.strip("/") for part in (prefix, template) if part.strip("/"))
    names: list[str] = []
    defaults: list[tuple[str, str]] = []
    precedence: list[int] = []
    pieces: list[str] = []
    for index, segment in enumerate(full.split("/") if full else []):
        sep = "/" if index else ""
        whole = _PARAM.fullmatch(segment)
        if whole:
            group = f"p{len(names)}"
            name, regex, kind, optional, default = _param_regex(whole.group(1), group)
            names.append(name)
            if default is not None:
                defaults.append((name, default))
            precedence.append(kind)
            # An optional or catch-all parameter takes its separating slash with it.
            pieces.append(f"(?:{re.escape(sep)}{regex})?" if optional else re.escape(sep) + regex)
            continue
        # A segment mixing literal text and parameters, e.g. "{name}.{ext}".
        out = re.escape(sep)
        position = 0
        kinds = [_LITERAL]
        for found in _PARAM.finditer(segment):
            out += re.escape(segment[position : found.start()])
            group = f"p{len(names)}"
            name, regex, kind, _, _ = _param_regex(found.group(1), group)
            names.append(name)
            kinds.append(kind)
            out += regex
            position = found.end()
        out += re.escape(segment[position:])
        precedence.append(max(kinds) if len(kinds) > 1 else _LITERAL)
        pieces.append(out)
    if len(set(names)) != len(names):
        raise HostConfigError(f"route '{template}' repeats a parameter name")
    # ASP.NET matches literals case-insensitively and ignores one trailing slash.
    regex = re.compile("".join(pieces) + "/?", re.IGNORECASE)
    return RouteTemplate(full, regex, tuple(names), tuple(defaults), tuple(precedence))


def precedence_key(route: RouteTemplate) -> tuple[tuple[int, ...], int]:
    """Sort key: literal segments beat parameters, which beat optional and catch-all ones."""
    # Pad with a rank above catch-all so that a longer template wins over its own prefix.
    return (route.precedence + (9,) * (32 - len(route.precedence)), -len(route.precedence))
