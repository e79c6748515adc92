import pytest

from graph.guard import canonical_number, find_slots, instantiate, normalize, read_request
from graph.plan import Plan


def calc(*expressions):
    return Plan(
        steps=[
            {
                "step_number": i,
                "tool_name": "calculator",
                "tool_input": {"expression": e},
                "reasoning": "r 15",
            }
            for i, e in enumerate(expressions, 1)
        ],
        final_goal="Compute 15% of 200.",
    )


def todo(action, text=None, todo_id=None):
    return Plan(
        steps=[
            {
                "step_number": 1,
                "tool_name": "todo_store",
                "tool_input": {"action": action, "text": text, "todo_id": todo_id},
                "reasoning": "",
            }
        ],
        final_goal="g",
    )


def reuse(plan, cached, new):
    return instantiate(plan, read_request(cached), read_request(new))


def inputs(plan):
    return [s.tool_input for s in plan.steps] if plan is not None else None


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("1,000", "1000"), ("1000.0", "1000"), (".5", "0.5"), ("2.50", "2.5"), ("007", "7")],
)
def test_canonical_number(raw, canonical):
    assert canonical_number(raw) == canonical


def test_slots_are_numbers_in_digits_and_words_and_quotes_in_order():
    slots = find_slots("add 'buy 2 apples' and what is twenty-one plus 1,500 and 15%")
    assert [(s.kind, s.surface, s.value) for s in slots] == [
        ("quote", "buy 2 apples", "buy 2 apples"),
        ("number", "twenty-one", "21"),
        ("number", "1,500", "1500"),
        ("number", "15", "15"),
    ]


def test_apostrophes_are_not_quotes():
    assert find_slots("don't forget what's on mom's list") == []


def test_digits_inside_words_are_not_slots():
    assert find_slots("buy an mp3 player and 3x4") == []


def test_template_masks_values_but_keeps_words_and_symbols():
    a, b = read_request("what is 15% of 200?"), read_request("what is fifteen% of 3")
    assert a.template == b.template
    assert read_request("what is 15 percent of 200").template != a.template


def test_normalize_keeps_what_a_plan_could_copy():
    assert normalize("  what is   5!  ?? ") == "what is 5!"
    assert normalize("Buy Milk.") == "Buy Milk."


def test_template_reinstantiates_every_traced_value():
    plan = reuse(calc("15% * 200"), "what is 15% of 200", "what is 20% of 1,000")
    assert inputs(plan) == [{"expression": "20% * 1000"}]
    # Nothing of the old request survives, not even in the descriptions.
    assert "15" not in plan.model_dump_json() and "200" not in plan.model_dump_json()
    assert plan.final_goal == "what is 20% of 1,000"


def test_template_maps_number_words_to_digits_in_expressions_and_keeps_words_in_text():
    assert inputs(reuse(calc("5 + 3"), "what is five plus 3", "what is seven plus 4")) == [
        {"expression": "7 + 4"}
    ]
    plan = reuse(
        todo("add", "call five friends"),
        "remind me to call five friends",
        "remind me to call seven friends",
    )
    assert inputs(plan) == [{"action": "add", "text": "call seven friends", "todo_id": None}]


def test_template_swapped_operands_follow_their_slots():
    assert inputs(reuse(calc("10 - 3"), "what is 10 minus 3", "what is 3 minus 10")) == [
        {"expression": "3 - 10"}
    ]


def test_template_replaces_quoted_text_and_todo_ids():
    plan = reuse(todo("add", "buy milk"), "add 'buy milk' to my list", "add 'call mom' to my list")
    assert inputs(plan) == [{"action": "add", "text": "call mom", "todo_id": None}]
    # The quote marks are part of the template: another style is another request.
    assert (
        reuse(todo("add", "buy milk"), "add 'buy milk' to my list", 'add "call mom" to my list')
        is None
    )
    assert inputs(reuse(todo("get", todo_id="3"), "show me todo 3", "show me todo 12")) == [
        {"action": "get", "text": None, "todo_id": "12"}
    ]


def test_step_references_and_function_names_are_not_values():
    plan = calc("12 * 7", "sqrt({{step_1.result}}) + log10(100)")
    new = reuse(
        plan,
        "multiply 12 by 7, take the root, add log of 100",
        "multiply 2 by 9, take the root, add log of 1000",
    )
    assert inputs(new) == [
        {"expression": "2 * 9"},
        {"expression": "sqrt({{step_1.result}}) + log10(1000)"},
    ]


@pytest.mark.parametrize(
    ("plan", "cached", "new", "why"),
    [
        (calc("2 ** 2"), "2 squared", "3 squared", "one slot, two literals"),
        (calc("7 ** 2"), "7 squared", "8 squared", "a literal from no slot"),
        (calc("2 + 2"), "what is 2 plus 2", "what is 2 plus 3", "a literal from two slots"),
        (calc("0.15 * 200"), "what is 15% of 200", "what is 20% of 200", "a value rewritten"),
        (calc("200"), "what is 15% of 200", "what is 20% of 200", "a slot never used"),
        (calc("1e3 + 5"), "what is 1000 plus 5", "what is 2000 plus 5", "a digit inside a word"),
        (
            todo("add", "buy milk"),
            "add 'milk' and buy milk",
            "add 'eggs' and buy milk",
            "quote also unquoted",
        ),
        (
            todo("add", "call 5 friends"),
            "remind me to call five friends",
            "remind me to call six friends",
            "digits for words in text",
        ),
        (calc("15% * 200"), "what is 15% of 200", "what is 15% of 200 and 3", "other template"),
    ],
)
def test_untraceable_plans_are_no_template_hit(plan, cached, new, why):
    assert reuse(plan, cached, new) is None, why


def test_bare_numbers_in_tool_input_are_not_traced():
    plan = Plan.model_construct(
        steps=[calc("5").steps[0].model_copy(update={"tool_input": {"expression": 5}})],
        final_goal="",
    )
    assert reuse(plan, "what is 5", "what is 6") is None


def same(a, b):
    return read_request(a).params == read_request(b).params


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("what is 15% of 200", "calculate 15 percent of 200?"),
        ("What is 5 plus 3", "what's 5 + 3"),
        ("mark buy milk as done", "complete buy milk"),
        ("please delete the dentist todo", "remove the dentist task"),
        ("what's the average of 4, 5 and 6", "can you tell me the mean of 4, 5 and 6"),
        ("what is 2 to the power of 10", "2 ^ 10"),
        ("what is fifteen plus 3", "what is 15 plus 3"),
    ],
)
def test_same_parameters_for_paraphrases(a, b):
    assert same(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("what is 15% of 200", "what is 15% of 300"),
        ("what is 15% of 200", "what is 15 of 200"),
        ("what is 10 minus 3", "what is 3 minus 10"),
        ("call the dentist", "call the plumber"),
        ("complete todo 3", "delete todo 3"),
        ("add buy milk", "add Buy milk"),
        ("mark buy milk as done", "mark buy milk as not done"),
        ("add a todo to call mom", "don't add a todo to call mom"),
        ("what is 5 plus 3", "what is 5 minus 3"),
        ("what is 5!", "what is 5"),
        ("add 'milk'", "add 'bread'"),
        ("show todo 3", "show my todos"),
        ("add 5 to my list", "add 5"),
    ],
)
def test_different_parameters_for_near_misses(a, b):
    assert not same(a, b)


def test_private_use_marks_in_a_request_cannot_forge_a_slot():
    shape = read_request("what is \ue000 plus 2")
    assert len(shape.slots) == 1
    assert shape.template != read_request("what is 1 plus 2").template
