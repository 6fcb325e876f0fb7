"""The handoff contract, ``handoffContext`` v1: JSON Schema (2020-12) documents of the wire models.

The documents are generated from :mod:`handoff.domain.models`, so the contract and the code that
validates requests cannot drift: ``python -m spec.generate`` writes them to
``spec/handoff-context/v1/`` and a unit test regenerates and compares. Each document has a stable
``$id`` under :data:`BASE_URI`; a document refers to another one by that ``$id`` (the request to the
context, the context to the evidence, the evidence to each kind), and keeps the small objects only it
uses (``SourceRef``, ``IncidentRef`` ...) in its own ``$defs``.

:func:`bundled` turns one document and the ones it refers to into a single self-contained schema,
for readers that resolve no ``$id`` (MCP clients validate tool arguments and results that way).

Pure: models in, JSON-ready dicts out; reading the checked-in files is the entrypoints' business.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from handoff.domain.models import (
    CONTRACT_SCHEMA_ID,
    CONTRACT_VERSION,
    AuditEvent,
    DataEvidence,
    Evidence,
    HandbackRequest,
    HandoffContext,
    HandoffRequest,
    HandoffView,
    KqlEvidence,
    LinkEvidence,
    NoteEvidence,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_URI = "https://schemas.handoff-broker.dev/handoff-context/v1/"
MEDIA_TYPE = "application/schema+json"
A2A_EXTENSION_URI = f"{BASE_URI}a2a-extension"
"""The A2A extension of the contract: a partner that lists it in the ``A2A-Extensions`` header sends and
reads the contract's documents as ``data`` parts tagged with it (:func:`extension_metadata`)."""
A2A_EXTENSION_DESCRIPTION = (
    f"handoffContext v{CONTRACT_VERSION}: a message's or artifact's data part whose metadata holds this URI "
    "is a document of the handoff contract (its schema named by metadata[uri].schema): a handoff-request "
    "to hand work off, a handback-request in an artifact to hand findings back. Activated by listing the "
    "URI in the A2A-Extensions header; data parts are then validated against the contract, with RFC 9457 "
    "problem details naming the fields."
)
COMMENT = (
    f"schemaId {CONTRACT_SCHEMA_ID}, schemaVersion {CONTRACT_VERSION}. Generated from the broker's models "
    "by python -m spec.generate; do not edit by hand."
)
EVIDENCE_TITLE = "Evidence"
EVIDENCE_DESCRIPTION = "One piece of evidence; its kind says which of the evidence schemas it follows."

_LOCAL = "#/$defs/"
# Keys that identify a document rather than describe a value: left out when it is bundled.
_IDENTITY = ("$schema", "$id", "$comment")
# Keywords whose value is a map of names to subschemas: a key there is a name, not a keyword.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
# Keywords whose value is data (a default, an example): copied as it is.
_DATA = frozenset({"default", "const", "enum", "examples"})


@dataclass(frozen=True)
class ContractDocument:
    """One schema of the contract: its file name (without ``.json``), the model it describes, and whether
    it describes what is sent to the broker (validation) or what the broker sends (serialization)."""

    name: str
    model: type[BaseModel] | None  # None: the evidence union, which is no model of its own
    mode: JsonSchemaMode = "validation"

    @property
    def uri(self) -> str:
        """The document's ``$id``."""
        return f"{BASE_URI}{self.name}.json"


DOCUMENTS: tuple[ContractDocument, ...] = (
    ContractDocument("handoff-request", HandoffRequest),
    ContractDocument("handoff-context", HandoffContext),
    ContractDocument("evidence", None),
    ContractDocument("evidence-kql", KqlEvidence),
    ContractDocument("evidence-link", LinkEvidence),
    ContractDocument("evidence-note", NoteEvidence),
    ContractDocument("evidence-data", DataEvidence),
    ContractDocument("handback-request", HandbackRequest),
    ContractDocument("handoff-status", HandoffView, "serialization"),
    ContractDocument("audit-event", AuditEvent, "serialization"),
)
SCHEMA_NAMES: frozenset[str] = frozenset(document.name for document in DOCUMENTS)
_BY_NAME = {document.name: document for document in DOCUMENTS}
_BY_MODEL = {document.model.__name__: document for document in DOCUMENTS if document.model is not None}
_EVIDENCE = _BY_NAME["evidence"]


def document(name: str) -> ContractDocument:
    """The contract document called ``name``; ``KeyError`` for a name that is not one."""
    return _BY_NAME[name]


def generate() -> dict[str, dict[str, Any]]:
    """Every document of the contract, by name, as generated from the models."""
    return {item.name: _generate(item) for item in DOCUMENTS}


def extension_metadata(name: str) -> dict[str, Any]:
    """The metadata that tags an A2A ``data`` part as the contract document ``name`` (a ``KeyError`` for
    a name the contract does not have): ``{A2A_EXTENSION_URI: {"schema": <the document's $id>}}``."""
    return {A2A_EXTENSION_URI: {"schema": document(name).uri}}


def tagged_document(metadata: Mapping[str, Any] | None) -> str | None:
    """The name of the contract document an A2A part's ``metadata`` tags it as; None for a part that is
    not tagged with the extension, or names a schema the contract does not have."""
    tag = (metadata or {}).get(A2A_EXTENSION_URI)
    schema = tag.get("schema") if isinstance(tag, Mapping) else None
    if not isinstance(schema, str) or not schema.startswith(BASE_URI) or not schema.endswith(".json"):
        return None
    name = schema.removeprefix(BASE_URI).removesuffix(".json")
    return name if name in SCHEMA_NAMES else None


def extension_params(served_at: str) -> dict[str, Any]:
    """The ``params`` of the extension in an agent card: the contract's id and version, and where each
    schema is, by ``$id`` and as served by this broker (``served_at``: the schemas' folder URL)."""
    base = served_at.rstrip("/")
    return {
        "schemaId": CONTRACT_SCHEMA_ID,
        "schemaVersion": CONTRACT_VERSION,
        "schemas": {item.name: item.uri for item in DOCUMENTS},
        "servedAt": {item.name: f"{base}/{item.name}.json" for item in DOCUMENTS},
    }


def render(schema: Mapping[str, Any]) -> str:
    """A document as it is written to its file (and served): indented JSON ending in a newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _generate(item: ContractDocument) -> dict[str, Any]:
    if item.model is None:
        raw = TypeAdapter(Evidence).json_schema(by_alias=True, ref_template=_LOCAL + "{model}")
        raw = {"title": EVIDENCE_TITLE, "description": EVIDENCE_DESCRIPTION, **raw}
    else:
        raw = item.model.model_json_schema(by_alias=True, mode=item.mode, ref_template=_LOCAL + "{model}")
    local_defs: dict[str, Any] = raw.pop("$defs", {})
    external = {name: _BY_MODEL[name] for name in local_defs if name in _BY_MODEL}
    for name, target in external.items():
        _check_same_in_both_modes(name, item.mode, target)
    body = _linked(raw, external)
    if item is not _EVIDENCE:
        body = _evidence_by_ref(body)
    defs = {name: _linked(value, external) for name, value in local_defs.items() if name not in external}
    defs = {name: _evidence_by_ref(value) for name, value in defs.items()}
    kept = _reachable(body, defs)
    head = {"$schema": DIALECT, "$id": item.uri, "$comment": COMMENT}
    order = ("title", "description", "type")
    schema = {**head, **{key: body[key] for key in order if key in body}}
    schema.update({key: value for key, value in body.items() if key not in order})
    if kept:
        schema["$defs"] = {name: defs[name] for name in local_defs if name in kept}
    return schema


def _check_same_in_both_modes(name: str, mode: JsonSchemaMode, target: ContractDocument) -> None:
    """A document that embeds another one by ``$ref`` must mean the same thing by it: the model's schema in
    this document's mode is the schema the referenced document was generated in."""
    model = target.model
    if model is None:  # pragma: no cover - only documents with a model are referenced by name
        return
    here = model.model_json_schema(by_alias=True, mode=mode)
    there = model.model_json_schema(by_alias=True, mode=target.mode)
    if here != there:
        raise ValueError(
            f"{name} reads differently in {mode} and {target.mode} mode: give it its own document"
        )


def _linked(node: Any, external: Mapping[str, ContractDocument]) -> Any:
    """``node`` with references to other documents' models made references by ``$id``, and without the
    OpenAPI-only ``discriminator`` keyword (each evidence kind fixes its ``kind`` by ``const``)."""
    return _walk(
        node, lambda ref: external[ref.removeprefix(_LOCAL)].uri if _is_local(ref, external) else ref
    )


def _is_local(ref: str, external: Mapping[str, ContractDocument]) -> bool:
    return ref.startswith(_LOCAL) and ref.removeprefix(_LOCAL) in external


def _walk(node: Any, ref: Callable[[str], str], in_name_map: bool = False) -> Any:
    """A copy of the schema ``node`` with each ``$ref`` mapped by ``ref`` and no ``discriminator``."""
    if isinstance(node, list):
        return [_walk(item, ref) for item in node]
    if not isinstance(node, dict):
        return node
    if in_name_map:
        return {key: _walk(value, ref) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "discriminator" and isinstance(value, dict):
            continue
        if key in _DATA:
            out[key] = copy.deepcopy(value)
        elif key == "$ref" and isinstance(value, str):
            out[key] = ref(value)
        else:
            out[key] = _walk(value, ref, in_name_map=key in _NAME_MAPS)
    return out


def _evidence_union() -> dict[str, Any]:
    """The evidence union as other documents spell it inline, once its kinds are references by ``$id``."""
    kinds = get_args(get_args(Evidence)[0])  # Annotated[KqlEvidence | LinkEvidence | ..., Field(...)]
    return {"oneOf": [{"$ref": _BY_MODEL[kind.__name__].uri} for kind in kinds]}


def _evidence_by_ref(node: Any, union: Mapping[str, Any] | None = None) -> Any:
    """``node`` with each inline evidence union replaced by a reference to the evidence document."""
    union = union or _evidence_union()
    if node == union:
        return {"$ref": _EVIDENCE.uri}
    if isinstance(node, list):
        return [_evidence_by_ref(item, union) for item in node]
    if isinstance(node, dict):
        return {key: _evidence_by_ref(value, union) for key, value in node.items()}
    return node


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value in ``node``, depth first."""
    if isinstance(node, list):
        for item in node:
            yield from refs(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)


def _reachable(body: Any, defs: Mapping[str, Any]) -> set[str]:
    """Names in ``defs`` that ``body`` refers to, directly or through other ``defs``."""
    seen: set[str] = set()
    pending = [body]
    while pending:
        for ref in refs(pending.pop()):
            name = ref.removeprefix(_LOCAL)
            if ref.startswith(_LOCAL) and name in defs and name not in seen:
                seen.add(name)
                pending.append(defs[name])
    return seen


# ---------------------------------------------------------------- bundling


def bundled(name: str, documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Document ``name`` with every document it refers to (by ``$id``, transitively) copied into its
    ``$defs`` under the referenced document's title, and the references made local: one schema that
    needs no resolver. The identity keywords (``$schema``, ``$id``, ``$comment``) are left out."""
    by_uri = {document(other).uri: other for other in documents}
    root = {key: value for key, value in documents[name].items() if key not in (*_IDENTITY, "$defs")}
    defs: dict[str, Any] = dict(documents[name].get("$defs", {}))
    local_name: dict[str, str] = {}
    pending = [uri for uri in refs(documents[name]) if uri in by_uri]
    while pending:
        uri = pending.pop()
        if uri in local_name:
            continue
        target = documents[by_uri[uri]]
        local_name[uri] = title = str(target["title"])
        body = {key: value for key, value in target.items() if key not in (*_IDENTITY, "$defs")}
        for def_name, value in {title: body, **target.get("$defs", {})}.items():
            if defs.setdefault(def_name, value) != value:
                raise ValueError(f"two different schemas are called {def_name} in the bundle of {name}")
        pending += [other for other in refs(target) if other in by_uri]

    def local(ref: str) -> str:
        return _LOCAL + local_name[ref] if ref in local_name else ref

    # _walk copies, so the documents passed in are never changed.
    result: dict[str, Any] = _walk(root, local)
    if defs:
        result["$defs"] = {key: _walk(defs[key], local) for key in sorted(defs)}
    return result
