"""The strict JSON schema of a plan for OpenAI Structured Outputs, and a checker of strict mode.

Each step of the schema is an ``anyOf`` with one variant per tool, so a step's ``tool_name``
and its ``tool_input`` always belong together. Notes for whoever feeds the output to a tool:

- Step references: a string value ``"{{step_N.field}}"`` in a tool input stands for an earlier
  step's output (see `graph.plan.STEP_REFERENCE`). The schema admits references in string
  fields only, because the validator checks the unresolved input against the tool's own
  model: a reference in a numeric field would be decoded, then rejected. Today's tools take
  only strings, enums and nullable strings, so every field that may refer to a step can.
- Strict mode makes every property required, so an optional property becomes nullable. Where
  the tool itself does not admit null, the description says null means "not given" (or the
  default), and such a null must be dropped before the tool validates the input.
- Constraints strict mode does not support (``minLength``, ``maxLength``, ``uniqueItems``,
  unsupported ``format`` values) move into the description; the tool's own validation still
  enforces them after decoding.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel

from graph.plan import MAX_STEPS, Plan, PlanStep

if TYPE_CHECKING:
    from tools.registry import ToolRegistry

__all__ = [
    "MAX_ENUM_VALUES",
    "MAX_NESTING_DEPTH",
    "MAX_OBJECT_PROPERTIES",
    "MAX_SCHEMA_STRING_LENGTH",
    "SUPPORTED_FORMATS",
    "plan_json_schema",
    "plan_response_format",
    "strict_json_schema",
    "strict_schema_problems",
]

MAX_NESTING_DEPTH: Final = 10
"""Most levels of nested objects OpenAI accepts; the root object is level 1."""

MAX_OBJECT_PROPERTIES: Final = 5000
"""Most object properties OpenAI accepts in one schema, summed over every object."""

MAX_ENUM_VALUES: Final = 1000
"""Most enum values OpenAI accepts in one schema, summed over every enum."""

MAX_SCHEMA_STRING_LENGTH: Final = 120_000
"""Most characters of property names, definition names, enum and const values together."""

_LARGE_ENUM: Final = 250
_LARGE_ENUM_CHARACTERS: Final = 15_000
# OpenAI: an enum of more than 250 strings may hold at most 15,000 characters in all.

SUPPORTED_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
"""The string ``format`` values OpenAI's strict mode supports."""

_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})

_SUPPORTED_KEYWORDS: Final = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "description",
        "title",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
"""Every keyword the checker accepts; anything else breaks strict mode (or is ignored by it)."""

_ANNOTATIONS: Final = frozenset(
    {"default", "examples", "$comment", "readOnly", "writeOnly", "deprecated", "$schema"}
    # pydantic's OpenAPI hint beside a discriminated union's oneOf, which becomes anyOf
    | {"discriminator"}
)
"""Keywords that never change what a value may be; strict mode rejects or ignores them."""

_NOTED: Final[dict[str, Callable[[Any], str]]] = {
    "minLength": lambda n: f"at least {n} character{'' if n == 1 else 's'}",
    "maxLength": lambda n: f"at most {n} character{'' if n == 1 else 's'}",
    "uniqueItems": lambda _: "no duplicates",
}
"""Unsupported size constraints, moved into the description so the model still sees them."""

_INEXPRESSIBLE: Final = frozenset(
    {"not", "if", "then", "else", "dependentRequired", "dependentSchemas"}
    | {"patternProperties", "propertyNames", "unevaluatedProperties"}
    | {"prefixItems", "contains", "minContains", "maxContains", "unevaluatedItems"}
)
"""Keywords tying values to other schemas; dropping them would silently change the input."""

# The key order of every generated schema: annotations first, then shape, then constraints.
_KEY_ORDER: Final = (
    "title",
    "description",
    "type",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "$defs",
)
_RANK: Final = {key: rank for rank, key in enumerate(_KEY_ORDER)}

_NULL: Final = {"type": "null"}
_DEFS_PREFIX: Final = "#/$defs/"
_MISSING: Final = object()


def _escape(token: str) -> str:
    """Escape one JSON-pointer segment."""
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    """Undo `_escape`."""
    return token.replace("~1", "/").replace("~0", "~")


def _types(schema: Mapping[str, Any]) -> list[str]:
    """Return the names in a schema's ``type`` keyword."""
    value = schema.get("type")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for t in value if isinstance(t, str)]
    return []


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    """Return `schema` with its keys in `_KEY_ORDER`, so output is stable and readable."""
    return dict(sorted(schema.items(), key=lambda item: _RANK.get(item[0], len(_RANK))))


def _with_note(schema: dict[str, Any], notes: list[str]) -> None:
    """Append `notes` to the schema's description as one sentence, creating it if needed."""
    if not notes:
        return
    text = "; ".join(notes)
    sentence = f"{text[0].upper()}{text[1:]}."
    description = str(schema.get("description") or "").rstrip()
    if description and not description.endswith((".", "!", "?")):
        description += "."
    schema["description"] = f"{description} {sentence}".lstrip()


class _Strictifier:
    """Rewrites the schemas of one document, resolving its ``$defs``."""

    def __init__(self, defs: Mapping[str, Any]):
        self._defs = defs
        self._inlining: list[str] = []  # definitions being inlined, to catch a cycle

    def def_name(self, ref: Any, path: str) -> str | None:
        """Return the definition `ref` names, None for the root ("#").

        Raises:
            ValueError: `ref` is not local or names no definition.
        """
        if ref == "#":
            return None
        if not (isinstance(ref, str) and ref.startswith(_DEFS_PREFIX)):
            raise ValueError(f"{path}: only local '#/$defs/...' references are supported: {ref!r}")
        name = _unescape(ref[len(_DEFS_PREFIX) :])
        if name not in self._defs:
            raise ValueError(f"{path}: {ref!r} names no definition")
        return name

    def admits_null(self, schema: Any, seen: frozenset[str] = frozenset()) -> bool:
        """Return whether `schema` accepts null (following references)."""
        if not isinstance(schema, Mapping):
            return schema is True
        if "null" in _types(schema) or schema.get("const", _MISSING) is None:
            return True
        enum = schema.get("enum")
        if isinstance(enum, list) and None in enum:
            return True
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and any(self.admits_null(b, seen) for b in branches):
                return True
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            name = _unescape(ref[len(_DEFS_PREFIX) :])
            if name not in seen and name in self._defs:
                return self.admits_null(self._defs[name], seen | {name})
        return False

    def convert(self, schema: Any, path: str, *, root: bool = False) -> dict[str, Any]:
        """Return a strict copy of `schema`, found at `path`.

        Raises:
            ValueError: naming the path of the first part that cannot be made strict.
        """
        if not isinstance(schema, Mapping):
            raise ValueError(f"{path}: a schema must be a JSON object, not {schema!r}")
        node = dict(schema)
        if "allOf" in node:
            # pydantic wraps a described `$ref` as `allOf: [{$ref}]`; a single entry merges in.
            parts = node.pop("allOf")
            if not (isinstance(parts, list) and len(parts) == 1 and isinstance(parts[0], Mapping)):
                raise ValueError(f"{path}/allOf: only an allOf of one schema can be made strict")
            for key, value in parts[0].items():
                if key in node and node[key] != value:
                    raise ValueError(f"{path}/allOf/0: {key!r} conflicts with the schema around it")
                node[key] = value
        if "oneOf" in node:
            if "anyOf" in node:
                raise ValueError(f"{path}: oneOf beside anyOf cannot be made strict")
            # anyOf admits at least what oneOf does; the tool's own validation stays exact.
            node["anyOf"] = node.pop("oneOf")
        if "$ref" in node:
            return self._convert_ref(node, path, root=root)

        out: dict[str, Any] = {}
        notes: list[str] = []
        for key, value in node.items():
            where = f"{path}/{_escape(key)}"
            if key in _ANNOTATIONS or (key == "title" and not root):
                continue  # a title inside the schema is noise; the root's names the schema
            if key in _INEXPRESSIBLE:
                raise ValueError(f"{where}: strict mode cannot express {key!r}")
            if key in ("minProperties", "maxProperties", "required", "properties"):
                continue  # every property is always present; objects are rebuilt below
            if key == "$defs":
                if not root:
                    raise ValueError(f"{where}: only the root schema may hold $defs")
                continue  # converted by `strict_json_schema`
            if key in _NOTED:
                if value is not False:
                    notes.append(_NOTED[key](value))
            elif key == "format" and value not in SUPPORTED_FORMATS:
                notes.append(f"format: {value}")
            elif key == "items":
                out[key] = self.convert(value, where)
            elif key == "anyOf":
                if not (isinstance(value, list) and value):
                    raise ValueError(f"{where}: anyOf must be a non-empty list of schemas")
                out[key] = [self.convert(v, f"{where}/{i}") for i, v in enumerate(value)]
            elif key == "additionalProperties":
                if value is not False:
                    raise ValueError(
                        f"{where}: an object with free-form keys (a mapping) cannot be strict; "
                        "use a model with named fields"
                    )
            elif key in _SUPPORTED_KEYWORDS:
                out[key] = copy.deepcopy(value)
            else:
                raise ValueError(f"{where}: unknown keyword {key!r}")

        types = _types(node)
        if "object" in types or "properties" in node or "additionalProperties" in node:
            out.update(self._convert_object(node, path))
            out.setdefault("type", "object")
        if "array" in types and "items" not in node:
            raise ValueError(
                f"{path}: an array without 'items' admits anything; strict needs items"
            )
        if not types and not any(k in node for k in ("enum", "const", "anyOf", "properties")):
            raise ValueError(
                f"{path}: a schema without a type admits any value, which strict mode cannot express"
            )
        _with_note(out, notes)
        return _ordered(out)

    def _convert_ref(self, node: dict[str, Any], path: str, *, root: bool) -> dict[str, Any]:
        """Return a strict `$ref` schema, inlining the definition if keywords sit beside it."""
        ref = node["$ref"]
        name = self.def_name(ref, f"{path}/$ref")
        siblings = {
            key: value
            for key, value in node.items()
            if key != "$ref" and key not in _ANNOTATIONS and (key != "title" or root)
        }
        if not siblings and not root:
            return {"$ref": ref}
        # Strict mode rejects keywords beside $ref (e.g. a field's description), and the root
        # must be an object, so the definition is inlined, the keywords beside it winning.
        if name is None or name in self._inlining:
            raise ValueError(f"{path}: a recursive $ref with keywords beside it cannot be inlined")
        self._inlining.append(name)
        try:
            return self.convert({**self._defs[name], **siblings}, path, root=root)
        finally:
            self._inlining.pop()

    def _convert_object(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        """Return the properties, required and additionalProperties of a strict object."""
        properties = node.get("properties")
        if properties is None:
            if node.get("additionalProperties") is not False:
                raise ValueError(
                    f"{path}: an object without 'properties' admits any keys, "
                    "which strict mode cannot express"
                )
            properties = {}
        if not isinstance(properties, Mapping):
            raise ValueError(f"{path}/properties: must map names to schemas")
        required = node.get("required", [])
        if not (isinstance(required, list) and set(required) <= set(properties)):
            raise ValueError(f"{path}/required: must list names of properties")
        converted: dict[str, Any] = {}
        for name, prop in properties.items():
            where = f"{path}/properties/{_escape(name)}"
            strict = self.convert(prop, where)
            if name not in required and not self.admits_null(strict):
                strict = _nullable(strict, prop.get("default", _MISSING))
            converted[name] = strict
        return {
            "properties": converted,
            "required": list(converted),
            "additionalProperties": False,
        }


def _nullable(schema: dict[str, Any], default: Any) -> dict[str, Any]:
    """Return `schema` also admitting null, the stand-in for an omitted optional property."""
    outer: dict[str, Any] = {k: schema[k] for k in ("title", "description") if k in schema}
    inner = {k: v for k, v in schema.items() if k not in outer}
    branches = [*inner["anyOf"], _NULL] if set(inner) == {"anyOf"} else [inner, _NULL]
    outer["anyOf"] = copy.deepcopy(branches)
    if default is _MISSING:
        _with_note(outer, ["null means not given"])
    elif default is not None:
        _with_note(outer, [f"null means the default, {json.dumps(default)}"])
    return _ordered(outer)


def _schema_refs(schema: Any) -> Iterator[str]:
    """Yield every `$ref` inside `schema`, not following them."""
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield ref
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for prop in properties.values():
                yield from _schema_refs(prop)
        yield from _schema_refs(schema.get("items"))
        branches = schema.get("anyOf")
        if isinstance(branches, list):
            for branch in branches:
                yield from _schema_refs(branch)


def _used_defs(body: Mapping[str, Any], defs: Mapping[str, Any]) -> set[str]:
    """Return the names of the definitions reachable from `body`."""
    used: set[str] = set()
    pending = list(_schema_refs(body))
    while pending:
        ref = pending.pop()
        if not ref.startswith(_DEFS_PREFIX):
            continue
        name = _unescape(ref[len(_DEFS_PREFIX) :])
        if name in defs and name not in used:
            used.add(name)
            pending.extend(_schema_refs(defs[name]))
    return used


def strict_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a pydantic/JSON schema made valid for OpenAI strict mode.

    Every object gets ``additionalProperties: false`` and lists every property as required;
    an optional property becomes nullable unless it already admits null. Annotations strict
    mode rejects or ignores (``default``, ``examples``, inner ``title``) are dropped, and
    unsupported size constraints move into the description. ``oneOf`` becomes ``anyOf``, an
    ``allOf`` of one schema merges into its parent, a ``$ref`` with keywords beside it is
    inlined, and definitions nothing uses are dropped. Applying it twice changes nothing.

    Args:
        schema: a JSON schema whose root is an object, e.g. ``Model.model_json_schema()``.

    Returns:
        A new schema; `schema` is left untouched.

    Raises:
        ValueError: some part cannot be made strict (a mapping, a tuple, ``not``, a schema
            without a type...); the message starts with that part's JSON path.
    """
    if not isinstance(schema, Mapping):
        raise ValueError(f"#: a schema must be a JSON object, not {schema!r}")
    defs = schema.get("$defs", {})
    if not isinstance(defs, Mapping):
        raise ValueError("#/$defs: must map names to schemas")
    strictifier = _Strictifier(defs)
    body = strictifier.convert(schema, "#", root=True)
    if _types(body) != ["object"]:
        raise ValueError("#: the root of a strict schema must be an object (type 'object')")
    converted = {
        name: strictifier.convert(definition, f"#/$defs/{_escape(name)}")
        for name, definition in defs.items()
    }
    used = _used_defs(body, converted)
    if used:
        body["$defs"] = {name: d for name, d in converted.items() if name in used}
    return body


# ---------------------------------------------------------------------------------------------
# The plan schema.
# ---------------------------------------------------------------------------------------------


def _description(model: type[BaseModel], field: str) -> str:
    """Return a model field's description, so the schema and the model never disagree."""
    return model.model_fields[field].description or ""


def _rename_refs(schema: Any, renames: Mapping[str, str]) -> Any:
    """Return a copy of a strict schema with its `$ref` targets renamed."""
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    if isinstance(out.get("$ref"), str):
        out["$ref"] = renames.get(out["$ref"], out["$ref"])
    if isinstance(out.get("properties"), Mapping):
        out["properties"] = {k: _rename_refs(v, renames) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = _rename_refs(out["items"], renames)
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [_rename_refs(v, renames) for v in out["anyOf"]]
    return out


def _tool_defs(tool: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Return a tool's strict input schema and its definitions as root `$defs` entries.

    The input is ``$defs[tool]`` and its own definitions become ``$defs[tool__Name]``, so two
    tools' models of the same name never collide.
    """
    body = dict(schema)
    own: dict[str, Any] = body.pop("$defs", {})
    body.pop("title", None)  # the definition's name already says which tool it is
    renames = {"#": f"{_DEFS_PREFIX}{_escape(tool)}"}
    renames.update(
        {f"{_DEFS_PREFIX}{_escape(n)}": f"{_DEFS_PREFIX}{_escape(f'{tool}__{n}')}" for n in own}
    )
    defs = {tool: _rename_refs(body, renames)}
    defs.update({f"{tool}__{n}": _rename_refs(d, renames) for n, d in own.items()})
    return defs


def _step_variant(tool: str) -> dict[str, Any]:
    """Return the schema of a step calling `tool`: its name and input tied together."""
    return {
        "description": f"A call of the {tool} tool.",
        "type": "object",
        "properties": {
            "step_number": {
                "description": _description(PlanStep, "step_number"),
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_STEPS,
            },
            "tool_name": {
                "description": _description(PlanStep, "tool_name"),
                "type": "string",
                "enum": [tool],
            },
            # A bare $ref: strict mode allows no keywords beside it, so the tool_input
            # description (how step references work) sits on `steps` instead.
            "tool_input": {"$ref": f"{_DEFS_PREFIX}{_escape(tool)}"},
            "reasoning": {"description": _description(PlanStep, "reasoning"), "type": "string"},
        },
        "required": ["step_number", "tool_name", "tool_input", "reasoning"],
        "additionalProperties": False,
    }


def plan_json_schema(tools: ToolRegistry) -> dict[str, Any]:
    """Return the strict JSON schema of a plan whose steps are a union of the registry's tools.

    Each tool's input schema is a root definition named after the tool, referenced by its step
    variant: one copy per tool, and a tool's own nested definitions have to be root ones anyway,
    since strict mode resolves only ``#/$defs/...``.

    Raises:
        ValueError: the registry is empty, a tool's input schema cannot be made strict (the
            message names the tool), or the plan breaks strict mode's limits.
    """
    if not tools.names:
        raise ValueError("a plan schema needs at least one tool")
    defs: dict[str, Any] = {}
    for name in tools.names:
        try:
            strict = strict_json_schema(tools.visible_schema(name).model_json_schema())
        except ValueError as exc:
            raise ValueError(
                f"tool {name!r}: its input schema cannot be made strict: {exc}"
            ) from exc
        for def_name, definition in _tool_defs(name, strict).items():
            if def_name in defs:
                raise ValueError(f"tool {name!r}: definition {def_name!r} is already taken")
            defs[def_name] = definition
    steps_description = (
        f"{_description(Plan, 'steps')} In a tool_input, a string value '{{{{step_N.field}}}}' "
        "is replaced by `field` of step N's output before that step runs."
    )
    schema: dict[str, Any] = {
        "title": "Plan",
        "description": Plan.model_json_schema()["description"],
        "type": "object",
        "properties": {
            "steps": {
                "description": steps_description,
                "type": "array",
                "items": {"anyOf": [_step_variant(name) for name in tools.names]},
                # No minItems: an empty plan is how the model says no tool fits the request
                # (the planner prompt asks for it), which skips repairs and escalation.
                "maxItems": MAX_STEPS,
            },
            "final_goal": {"description": _description(Plan, "final_goal"), "type": "string"},
        },
        "required": ["steps", "final_goal"],
        "additionalProperties": False,
        "$defs": defs,
    }
    problems = strict_schema_problems(schema)
    if problems:
        raise ValueError("the plan schema breaks OpenAI's strict mode: " + "; ".join(problems))
    return schema


def plan_response_format(tools: ToolRegistry) -> dict[str, Any]:
    """Return the `response_format` argument for OpenAI-compatible chat completions (strict)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "plan", "strict": True, "schema": plan_json_schema(tools)},
    }


# ---------------------------------------------------------------------------------------------
# The checker.
# ---------------------------------------------------------------------------------------------


class _Checker:
    """Collects the strict-mode problems of one schema document."""

    def __init__(self, root: Mapping[str, Any]):
        self.root = root
        defs = root.get("$defs")
        self.defs: Mapping[str, Any] = defs if isinstance(defs, Mapping) else {}
        self.problems: list[str] = []
        self.properties = 0
        self.enum_values = 0
        self.characters = 0

    def target(self, ref: Any, path: str) -> tuple[str, Any] | None:
        """Return the path and schema `ref` points to, or None (reporting why)."""
        if ref == "#":
            return "#", self.root
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            name = _unescape(ref[len(_DEFS_PREFIX) :])
            if name in self.defs:
                return ref, self.defs[name]
            self.problems.append(f"{path}: $ref {ref!r} names no definition")
        else:
            self.problems.append(f"{path}: $ref {ref!r} is not a local '#/$defs/...' reference")
        return None

    def check(self, schema: Any, path: str, *, root: bool = False) -> None:
        """Record the problems of `schema` (found at `path`) and of everything inside it."""
        report = self.problems.append
        if not isinstance(schema, Mapping):
            report(f"{path}: a schema must be a JSON object, not {schema!r}")
            return
        for key in schema:
            if key not in _SUPPORTED_KEYWORDS:
                report(f"{path}: unsupported keyword {key!r}")
        for key in ("description", "title"):
            if key in schema and not isinstance(schema[key], str):
                report(f"{path}/{key}: must be a string")
        if "$defs" in schema:
            self._check_defs(schema["$defs"], path, root=root)
        if "$ref" in schema:
            others = sorted(k for k in schema if k not in ("$ref", "$defs"))
            if others:
                report(f"{path}: no keywords may stand beside $ref ({', '.join(others)})")
            self.target(schema["$ref"], f"{path}/$ref")
            return

        types = self._check_type(schema, path)
        if not types and not any(k in schema for k in ("enum", "const", "anyOf")):
            report(f"{path}: the schema has no type")
        if "object" in types or "properties" in schema or "additionalProperties" in schema:
            self._check_object(schema, path)
        if "array" in types or "items" in schema:
            if "items" in schema:
                self.check(schema["items"], f"{path}/items")
            else:
                report(f"{path}: an array needs 'items'")
        if "anyOf" in schema:
            branches = schema["anyOf"]
            if isinstance(branches, list) and branches:
                for i, branch in enumerate(branches):
                    self.check(branch, f"{path}/anyOf/{i}")
            else:
                report(f"{path}/anyOf: must be a non-empty list of schemas")
        if "enum" in schema:
            self._check_enum(schema["enum"], f"{path}/enum")
        if isinstance(schema.get("const"), str):
            self.characters += len(schema["const"])
        if "format" in schema and schema["format"] not in SUPPORTED_FORMATS:
            report(f"{path}/format: {schema['format']!r} is not a supported format")

    def _check_defs(self, defs: Any, path: str, *, root: bool) -> None:
        """Check the definitions of the root schema."""
        if not root:
            self.problems.append(f"{path}/$defs: only the root schema may hold $defs")
        elif not isinstance(defs, Mapping):
            self.problems.append(f"{path}/$defs: must map names to schemas")
        else:
            for name, definition in defs.items():
                self.characters += len(name)
                self.check(definition, f"#/$defs/{_escape(name)}")

    def _check_type(self, schema: Mapping[str, Any], path: str) -> list[str]:
        """Report a malformed ``type`` and return the type names."""
        if "type" not in schema:
            return []
        value = schema["type"]
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(t, str) and t in _TYPES for t in names):
            self.problems.append(f"{path}/type: {value!r} is not a JSON type or list of them")
        elif len(set(names)) != len(names):
            self.problems.append(f"{path}/type: {value!r} repeats a type")
        return _types(schema)

    def _check_object(self, schema: Mapping[str, Any], path: str) -> None:
        """Check that an object schema is closed and requires every property."""
        report = self.problems.append
        if schema.get("additionalProperties") is not False:
            report(f"{path}: an object needs additionalProperties false")
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            report(f"{path}: an object needs 'properties'")
            return
        required = schema.get("required")
        if not isinstance(required, list):
            report(f"{path}: an object needs 'required' listing every property")
        else:
            missing = [name for name in properties if name not in required]
            unknown = [name for name in required if name not in properties]
            if missing:
                report(f"{path}/required: missing {', '.join(map(repr, missing))}")
            if unknown:
                report(f"{path}/required: names no property {', '.join(map(repr, unknown))}")
            if len(set(required)) != len(required):
                report(f"{path}/required: lists a property twice")
        self.properties += len(properties)
        for name, prop in properties.items():
            self.characters += len(name)
            self.check(prop, f"{path}/properties/{_escape(name)}")

    def _check_enum(self, values: Any, path: str) -> None:
        """Check an enum's values and count them towards the schema's limits."""
        if not (isinstance(values, list) and values):
            self.problems.append(f"{path}: must be a non-empty list")
            return
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
            self.problems.append(f"{path}: values must be strings, numbers, booleans or null")
        self.enum_values += len(values)
        length = sum(len(v) for v in values if isinstance(v, str))
        self.characters += length
        if len(values) > _LARGE_ENUM and length > _LARGE_ENUM_CHARACTERS:
            self.problems.append(
                f"{path}: an enum of more than {_LARGE_ENUM} values may hold at most "
                f"{_LARGE_ENUM_CHARACTERS} characters, this one holds {length}"
            )

    def check_depth(self, schema: Any, path: str, depth: int, inside: frozenset[str]) -> None:
        """Report objects nested deeper than strict mode allows, following references."""
        if not isinstance(schema, Mapping):
            return
        ref = schema.get("$ref")
        if ref is not None:
            target = self.target(ref, f"{path}/$ref")
            # A recursive schema is allowed; its depth is that of one pass through the cycle.
            if target is not None and target[0] not in inside:
                self.check_depth(target[1], target[0], depth, inside | {target[0]})
            return
        if "object" in _types(schema) or "properties" in schema:
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                self.problems.append(
                    f"{path}: objects nest {depth} levels deep, more than {MAX_NESTING_DEPTH}"
                )
                return
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for name, prop in properties.items():
                self.check_depth(prop, f"{path}/properties/{_escape(name)}", depth, inside)
        self.check_depth(schema.get("items"), f"{path}/items", depth, inside)
        branches = schema.get("anyOf")
        if isinstance(branches, list):
            for i, branch in enumerate(branches):
                self.check_depth(branch, f"{path}/anyOf/{i}", depth, inside)


def strict_schema_problems(schema: dict[str, Any]) -> list[str]:
    """Return every way `schema` breaks OpenAI's strict-mode rules; empty when it is valid.

    The rules: the root is an object (not ``anyOf``); every object is closed
    (``additionalProperties: false``) and requires every property; only the keywords strict
    mode supports appear (no ``default``, ``oneOf``, ``allOf``...), with a supported
    ``format``; every ``$ref`` stands alone and resolves to a root ``$defs`` entry (or ``#``);
    objects nest at most 10 levels deep; a schema holds at most 5000 properties, 1000 enum
    values and 120,000 characters of names and enum/const values.

    Returns:
        One sentence per problem, each starting with the JSON path (``#/properties/...``).
    """
    if not isinstance(schema, Mapping):
        return [f"#: a schema must be a JSON object, not {schema!r}"]
    checker = _Checker(schema)
    if "anyOf" in schema:
        checker.problems.append("#: the root must be an object, not anyOf")
    elif "$ref" in schema or _types(schema) != ["object"]:
        checker.problems.append("#: the root must be an object schema (type 'object')")
    checker.check(schema, "#", root=True)
    checker.check_depth(schema, "#", 0, frozenset({"#"}))
    if checker.properties > MAX_OBJECT_PROPERTIES:
        checker.problems.append(
            f"#: {checker.properties} object properties, more than {MAX_OBJECT_PROPERTIES}"
        )
    if checker.enum_values > MAX_ENUM_VALUES:
        checker.problems.append(
            f"#: {checker.enum_values} enum values, more than {MAX_ENUM_VALUES}"
        )
    if checker.characters > MAX_SCHEMA_STRING_LENGTH:
        checker.problems.append(
            f"#: {checker.characters} characters of names and enum/const values, "
            f"more than {MAX_SCHEMA_STRING_LENGTH}"
        )
    return list(dict.fromkeys(checker.problems))
