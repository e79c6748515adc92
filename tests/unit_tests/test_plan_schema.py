from __future__ import annotations

import copy
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from graph.plan import MAX_STEPS
from graph.plan_schema import (
    MAX_NESTING_DEPTH,
    plan_json_schema,
    plan_response_format,
    strict_json_schema,
    strict_schema_problems,
)
from graph.prompts import FEW_SHOT_EXAMPLES
from tools.registry import ToolRegistry, build_registry
from tools.todo_store import TodoStore


@pytest.fixture
def registry(tmp_path: Path) -> ToolRegistry:
    return build_registry(TodoStore(tmp_path / "todos.sqlite"))


@pytest.fixture
def schema(registry: ToolRegistry) -> dict[str, Any]:
    return plan_json_schema(registry)


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/$defs/")
    target: dict[str, Any] = root["$defs"][ref.removeprefix("#/$defs/")]
    return target


def _objects(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema in the document, with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    found.extend(_objects(sub, f"{path}/{key}/{name}"))
            elif key == "items":
                found.extend(_objects(value, f"{path}/items"))
            elif key == "anyOf":
                for i, sub in enumerate(value):
                    found.extend(_objects(sub, f"{path}/anyOf/{i}"))
    return found


def _variants(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The step variants of a plan schema, by tool name."""
    variants = schema["properties"]["steps"]["items"]["anyOf"]
    by_tool = {}
    for variant in variants:
        (name,) = variant["properties"]["tool_name"]["enum"]
        by_tool[name] = variant
    return by_tool


def _closed(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


# --- the plan schema of the real registry ------------------------------------------------------


def test_real_registry_schema_is_strict(schema: dict[str, Any]) -> None:
    assert strict_schema_problems(schema) == []
    assert schema["type"] == "object"
    assert "anyOf" not in schema
    assert schema["required"] == ["steps", "final_goal"]
    steps = schema["properties"]["steps"]
    # no minItems: an empty plan is the model's way to decline a request no tool fits
    assert "minItems" not in steps and steps["maxItems"] == MAX_STEPS
    assert "{{step_N.field}}" in steps["description"]


def test_every_object_is_closed_and_requires_every_property(schema: dict[str, Any]) -> None:
    objects = _objects(schema)
    assert len(objects) >= 5  # root, two variants, two tool inputs
    for path, node in objects:
        assert node["additionalProperties"] is False, path
        assert node["required"] == list(node["properties"]), path


def test_no_default_or_inner_title_anywhere(schema: dict[str, Any]) -> None:
    def walk(node: Any, root: bool) -> None:
        if isinstance(node, dict):
            assert "default" not in node
            assert root or "title" not in node
            for key, value in node.items():
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        walk(sub, False)
                elif key in ("items",):
                    walk(value, False)
                elif key == "anyOf":
                    for sub in value:
                        walk(sub, False)

    walk(schema, True)


def test_each_variant_ties_the_tool_name_to_its_input(
    schema: dict[str, Any], registry: ToolRegistry
) -> None:
    variants = _variants(schema)
    assert sorted(variants) == registry.names == ["calculator", "todo_store"]
    for name, variant in variants.items():
        assert variant["properties"]["tool_name"] == {
            "description": "The name of the tool to call.",
            "type": "string",
            "enum": [name],
        }
        assert variant["properties"]["tool_input"] == {"$ref": f"#/$defs/{name}"}
        assert variant["required"] == ["step_number", "tool_name", "tool_input", "reasoning"]
        tool_input = _resolve(schema, variant["properties"]["tool_input"])
        visible = registry.visible_schema(name).model_fields
        assert list(tool_input["properties"]) == list(visible)


def test_calculator_input(schema: dict[str, Any]) -> None:
    calculator = schema["$defs"]["calculator"]
    assert calculator["required"] == ["expression"]
    expression = calculator["properties"]["expression"]
    assert expression["type"] == "string"
    assert "average(45, 67, 23)" in expression["description"]


def test_todo_input_keeps_the_action_enum_and_requires_nullable_fields(
    schema: dict[str, Any],
) -> None:
    todo = schema["$defs"]["todo_store"]
    assert "user_id" not in todo["properties"]  # injected, never the LLM's to choose
    assert todo["required"] == ["action", "text", "todo_id"]
    action = todo["properties"]["action"]
    assert action["type"] == "string"
    assert action["enum"] == ["add", "list", "get", "complete", "delete"]
    assert action["description"].startswith("What to do")
    for field in ("text", "todo_id"):
        prop = todo["properties"][field]
        assert prop["anyOf"] == [{"type": "string"}, {"type": "null"}]
        assert prop["description"]
        assert "default" not in prop


def test_few_shot_examples_match_their_tools_variant(schema: dict[str, Any]) -> None:
    variants = _variants(schema)
    plan_keys = set(schema["required"])
    for request, plan in FEW_SHOT_EXAMPLES:
        assert set(plan) == plan_keys, request
        for step in plan["steps"]:  # type: ignore[attr-defined]
            variant = variants[step["tool_name"]]
            assert set(step) == set(variant["required"]), request
            assert step["tool_name"] in variant["properties"]["tool_name"]["enum"]
            tool_input = _resolve(schema, variant["properties"]["tool_input"])
            assert set(step["tool_input"]) == set(tool_input["required"]), request
            for key, value in step["tool_input"].items():
                prop = tool_input["properties"][key]
                if "enum" in prop:
                    assert value in prop["enum"], request
                if value is None:
                    assert {"type": "null"} in prop.get("anyOf", []), (request, key)


def test_plan_schema_is_deterministic_and_already_strict(
    registry: ToolRegistry, schema: dict[str, Any]
) -> None:
    assert plan_json_schema(registry) == schema
    assert strict_json_schema(schema) == schema


def test_response_format(registry: ToolRegistry, schema: dict[str, Any]) -> None:
    response_format = plan_response_format(registry)
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "plan"
    assert response_format["json_schema"]["schema"] == schema


def test_chat_openai_sends_the_schema_unchanged(registry: ToolRegistry) -> None:
    from langchain_openai import ChatOpenAI

    response_format = plan_response_format(registry)
    expected = copy.deepcopy(response_format)
    model = ChatOpenAI(model="gpt-4o-mini", api_key="x")
    bound = model.bind(response_format=response_format)
    payload = model._get_request_payload([HumanMessage("hi")], **bound.kwargs)
    assert payload["response_format"] == expected
    assert payload["messages"] == [{"role": "user", "content": "hi"}]


def test_openai_sdk_passes_the_response_format_through(registry: ToolRegistry) -> None:
    # ChatOpenAI sends a response_format through `client.chat.completions.parse`, which turns
    # it into the request parameter with this function.
    parsing = pytest.importorskip("openai.lib._parsing._completions")
    response_format = plan_response_format(registry)
    assert parsing.type_to_response_format_param(response_format) == response_format


def test_a_tool_whose_input_cannot_be_strict_fails_with_its_name(
    registry: ToolRegistry,
) -> None:
    from langchain_core.tools import StructuredTool

    class Scores(BaseModel):
        scores: dict[str, int] = Field(description="Score per name.")

    def score(scores: dict[str, int]) -> int:
        return sum(scores.values())

    tool = StructuredTool.from_function(
        func=score, name="scorer", description="Add scores.", args_schema=Scores
    )
    bad = ToolRegistry([registry.get("calculator"), tool])
    with pytest.raises(ValueError, match=r"tool 'scorer'.*#/properties/scores"):
        plan_json_schema(bad)


def test_an_empty_registry_has_no_plan_schema() -> None:
    with pytest.raises(ValueError, match="at least one tool"):
        plan_json_schema(ToolRegistry([]))


# --- the checker ------------------------------------------------------------------------------


def test_checker_accepts_a_valid_schema() -> None:
    schema = _closed(
        name={"type": "string", "description": "A name.", "pattern": "^[a-z]+$"},
        tags={"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 3},
        when={"type": ["string", "null"], "format": "date-time"},
        child={"$ref": "#/$defs/Child"},
        maybe={"anyOf": [{"$ref": "#/$defs/Child"}, {"type": "null"}]},
        again={"$ref": "#"},
    )
    schema["title"] = "Root"
    schema["$defs"] = {"Child": _closed(n={"type": "integer", "minimum": 0, "maximum": 9})}
    assert strict_schema_problems(schema) == []


def test_checker_finds_an_open_object() -> None:
    schema = _closed(inner={"type": "object", "properties": {}, "required": []})
    assert strict_schema_problems(schema) == [
        "#/properties/inner: an object needs additionalProperties false"
    ]
    schema["properties"]["inner"]["additionalProperties"] = True
    assert strict_schema_problems(schema) == [
        "#/properties/inner: an object needs additionalProperties false"
    ]
    del schema["additionalProperties"]
    assert "#: an object needs additionalProperties false" in strict_schema_problems(schema)


def test_checker_finds_a_property_missing_from_required() -> None:
    schema = _closed(a={"type": "string"}, b={"type": "string"})
    schema["required"] = ["a", "c"]
    assert strict_schema_problems(schema) == [
        "#/required: missing 'b'",
        "#/required: names no property 'c'",
    ]
    del schema["required"]
    assert strict_schema_problems(schema) == [
        "#: an object needs 'required' listing every property"
    ]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("oneOf", [{"type": "string"}, {"type": "integer"}]),
        ("default", "x"),
        ("allOf", [{"type": "string"}]),
        ("patternProperties", {"^x": {"type": "string"}}),
        ("minLength", 1),
        ("not", {"type": "null"}),
    ],
)
def test_checker_finds_an_unsupported_keyword(keyword: str, value: Any) -> None:
    schema = _closed(a={"type": "string", keyword: value})
    assert f"#/properties/a: unsupported keyword {keyword!r}" in strict_schema_problems(schema)


def test_checker_finds_an_unsupported_format() -> None:
    schema = _closed(a={"type": "string", "format": "uri"})
    assert strict_schema_problems(schema) == [
        "#/properties/a/format: 'uri' is not a supported format"
    ]


def test_checker_finds_unresolved_and_non_local_refs() -> None:
    schema = _closed(
        a={"$ref": "#/$defs/Missing"},
        b={"$ref": "https://example.com/schema.json"},
        c={"$ref": "#/$defs/Child", "description": "beside the ref"},
    )
    schema["$defs"] = {"Child": _closed()}
    assert strict_schema_problems(schema) == [
        "#/properties/a/$ref: $ref '#/$defs/Missing' names no definition",
        "#/properties/b/$ref: $ref 'https://example.com/schema.json' is not a local "
        "'#/$defs/...' reference",
        "#/properties/c: no keywords may stand beside $ref (description)",
    ]


def test_checker_rejects_anyof_at_the_root() -> None:
    schema = {"anyOf": [_closed(a={"type": "string"}), _closed(b={"type": "string"})]}
    assert strict_schema_problems(schema) == ["#: the root must be an object, not anyOf"]
    assert strict_schema_problems({"type": "string"}) == [
        "#: the root must be an object schema (type 'object')"
    ]


def test_checker_limits_nesting_depth() -> None:
    def nested(levels: int) -> dict[str, Any]:
        schema = _closed(leaf={"type": "string"})
        for _ in range(levels - 1):
            schema = _closed(child=schema)
        return schema

    assert strict_schema_problems(nested(MAX_NESTING_DEPTH)) == []
    too_deep = strict_schema_problems(nested(MAX_NESTING_DEPTH + 1))
    assert too_deep == [
        f"#{'/properties/child' * MAX_NESTING_DEPTH}: objects nest 11 levels deep, more than 10"
    ]


def test_checker_counts_depth_through_refs_and_allows_recursion() -> None:
    schema = _closed(node={"$ref": "#/$defs/Node"})
    schema["$defs"] = {
        "Node": _closed(
            children={"type": "array", "items": {"$ref": "#/$defs/Node"}}, name={"type": "string"}
        )
    }
    assert strict_schema_problems(schema) == []
    chain = {f"D{i}": _closed(next={"$ref": f"#/$defs/D{i + 1}"}) for i in range(12)}
    chain["D12"] = _closed()
    deep = _closed(start={"$ref": "#/$defs/D0"})
    deep["$defs"] = chain
    assert strict_schema_problems(deep) == ["#/$defs/D9: objects nest 11 levels deep, more than 10"]


def test_checker_finds_untyped_schemas_and_open_arrays() -> None:
    schema = _closed(anything={"description": "any value"}, list_={"type": "array"})
    assert strict_schema_problems(schema) == [
        "#/properties/anything: the schema has no type",
        "#/properties/list_: an array needs 'items'",
    ]


def test_checker_limits_enum_values_and_properties() -> None:
    schema = _closed(
        a={"type": "string", "enum": [f"v{i}" for i in range(600)]},
        b={"type": "string", "enum": [f"w{i}" for i in range(600)]},
    )
    assert strict_schema_problems(schema) == ["#: 1200 enum values, more than 1000"]
    wide = _closed(**{f"p{i}": {"type": "string"} for i in range(5001)})
    assert strict_schema_problems(wide) == ["#: 5001 object properties, more than 5000"]


def test_checker_rejects_nested_defs() -> None:
    schema = _closed(a={"$ref": "#/$defs/A"})
    schema["$defs"] = {"A": {**_closed(), "$defs": {}}}
    assert strict_schema_problems(schema) == [
        "#/$defs/A/$defs: only the root schema may hold $defs"
    ]


# --- strict_json_schema on pydantic models ----------------------------------------------------


class Colour(Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    """Where someone lives."""

    city: str = Field(description="The city.")
    postcode: Optional[str] = Field(default=None, description="The postcode, if known.")


class Person(BaseModel):
    """A person."""

    name: str = Field(description="The full name.", min_length=1, max_length=80)
    nickname: Optional[str] = None
    age: int = Field(default=30, ge=0, le=150, description="Age in years.")
    colour: Colour = Field(description="Favourite colour.")
    role: Literal["admin", "user"] = "user"
    kind: Literal["person"]
    tags: list[str] = Field(default_factory=list, description="Free tags.")
    home: Address = Field(description="The home address.")
    work: Optional[Address] = None
    past: list[Address] = Field(description="Earlier addresses.")


@pytest.fixture
def person() -> dict[str, Any]:
    return strict_json_schema(Person.model_json_schema())


def test_strict_schema_of_a_pydantic_model_passes_the_checker(person: dict[str, Any]) -> None:
    assert strict_schema_problems(person) == []
    assert person["title"] == "Person"
    assert person["required"] == list(Person.model_fields)
    for path, node in _objects(person):
        assert node["additionalProperties"] is False, path
        assert node["required"] == list(node["properties"]), path


def test_optional_fields_become_nullable(person: dict[str, Any]) -> None:
    props = person["properties"]
    assert props["nickname"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    # Not nullable in the model: the description says what null stands for.
    assert props["age"]["anyOf"] == [
        {"type": "integer", "minimum": 0, "maximum": 150},
        {"type": "null"},
    ]
    assert props["age"]["description"] == "Age in years. Null means the default, 30."
    assert props["role"]["anyOf"] == [
        {"type": "string", "enum": ["admin", "user"]},
        {"type": "null"},
    ]
    assert props["tags"]["description"] == "Free tags. Null means not given."
    assert props["work"]["anyOf"] == [{"$ref": "#/$defs/Address"}, {"type": "null"}]
    address = person["$defs"]["Address"]
    assert address["required"] == ["city", "postcode"]
    assert address["properties"]["postcode"] == {
        "description": "The postcode, if known.",
        "anyOf": [{"type": "string"}, {"type": "null"}],
    }


def test_required_fields_stay_as_they_are(person: dict[str, Any]) -> None:
    props = person["properties"]
    assert props["kind"] == {"type": "string", "const": "person"}
    assert props["colour"] == {
        "description": "Favourite colour.",
        "type": "string",
        "enum": ["red", "green"],
    }
    assert props["past"] == {
        "description": "Earlier addresses.",
        "type": "array",
        "items": {"$ref": "#/$defs/Address"},
    }


def test_unsupported_constraints_move_into_the_description(person: dict[str, Any]) -> None:
    name = person["properties"]["name"]
    assert name == {
        "description": "The full name. At most 80 characters; at least 1 character.",
        "type": "string",
    }


def test_an_unsupported_format_moves_into_the_description() -> None:
    schema = _closed(site={"type": "string", "format": "uri", "description": "A web site"})
    assert strict_json_schema(schema)["properties"]["site"] == {
        "description": "A web site. Format: uri.",
        "type": "string",
    }
    schema["properties"]["site"]["format"] = "date"
    assert strict_json_schema(schema)["properties"]["site"]["format"] == "date"


def test_a_described_ref_is_inlined_keeping_the_description(person: dict[str, Any]) -> None:
    home = person["properties"]["home"]
    assert "$ref" not in home
    assert home["description"] == "The home address."
    assert home["required"] == ["city", "postcode"]
    assert home["additionalProperties"] is False


def test_an_allof_of_one_ref_is_unwrapped() -> None:
    # Older pydantic wrote a described reference this way.
    schema = {
        "type": "object",
        "properties": {
            "a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "an A"},
            "b": {"allOf": [{"$ref": "#/$defs/A"}]},
        },
        "required": ["a", "b"],
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}}},
    }
    strict = strict_json_schema(schema)
    assert strict["properties"]["a"]["description"] == "an A"
    assert strict["properties"]["a"]["properties"]["x"]["anyOf"][-1] == {"type": "null"}
    assert strict["properties"]["b"] == {"$ref": "#/$defs/A"}
    assert strict_schema_problems(strict) == []


def test_oneof_becomes_anyof_and_unused_defs_are_dropped() -> None:
    class Cat(BaseModel):
        kind: Literal["cat"]

    class Dog(BaseModel):
        kind: Literal["dog"]

    class Pet(BaseModel):
        pet: Cat | Dog = Field(discriminator="kind")

    raw = Pet.model_json_schema()
    assert "oneOf" in raw["properties"]["pet"]
    strict = strict_json_schema(raw)
    assert strict["properties"]["pet"] == {
        "anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]
    }
    assert strict_schema_problems(strict) == []


def test_is_idempotent_and_leaves_its_input_alone() -> None:
    raw = Person.model_json_schema()
    before = copy.deepcopy(raw)
    once = strict_json_schema(raw)
    assert raw == before
    assert strict_json_schema(once) == once
    twice_input = copy.deepcopy(once)
    strict_json_schema(once)
    assert once == twice_input


def test_a_recursive_model() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = Field(description="Sub-nodes.")

    strict = strict_json_schema(Node.model_json_schema())
    assert strict_schema_problems(strict) == []
    assert strict["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert strict_json_schema(strict) == strict


def test_a_mapping_cannot_be_strict() -> None:
    class Scores(BaseModel):
        scores: dict[str, int]

    with pytest.raises(ValueError, match=r"^#/properties/scores/additionalProperties: "):
        strict_json_schema(Scores.model_json_schema())


@pytest.mark.parametrize(
    ("annotation", "path"),
    [
        (tuple[int, str], "#/properties/value/prefixItems"),
        (Any, "#/properties/value"),
        (dict[str, Any], "#/properties/value/additionalProperties"),
    ],
)
def test_other_shapes_that_cannot_be_strict(annotation: Any, path: str) -> None:
    class Model(BaseModel):
        value: annotation

    with pytest.raises(ValueError, match=rf"^{path}: "):
        strict_json_schema(Model.model_json_schema())


def test_the_root_must_be_an_object() -> None:
    with pytest.raises(ValueError, match=r"^#: the root"):
        strict_json_schema({"type": "string"})
    with pytest.raises(ValueError, match=r"^#: the root"):
        strict_json_schema({"anyOf": [_closed(), {"type": "null"}]})
