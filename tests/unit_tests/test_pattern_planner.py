"""Tests for the offline rule-based planner: phrasings, chains, refusals, confidence, hostile input."""

from __future__ import annotations

import random
from typing import Any

import pytest

from graph.pattern_planner import (
    CAPABILITIES,
    MAX_PROMPT_CHARS,
    PatternResult,
    plan_request,
)
from graph.plan import STEP_REFERENCE, Plan
from tools.calculator import evaluate, parse_expression

Step = tuple[str, Any]


def calc(value: float) -> Step:
    """A calculator step, identified by the answer its expression evaluates to."""
    return ("calculator", value)


def todo(action: str, text: str | None = None, todo_id: str | None = None) -> Step:
    return ("todo_store", {"action": action, "text": text, "todo_id": todo_id})


def run(plan: Plan) -> list[Step]:
    """Evaluate calculator steps (substituting earlier results); keep todo inputs as they are."""
    results: dict[int, int | float] = {}
    steps: list[Step] = []
    for step in plan.steps:
        if step.tool_name == "calculator":
            assert set(step.tool_input) == {"expression"}
            expression = step.tool_input["expression"]
            for number, field in {(int(m[1]), m[2]) for m in STEP_REFERENCE.finditer(expression)}:
                assert field == "result" and number in results, expression
            value = evaluate(STEP_REFERENCE.sub(lambda m: f"({results[int(m[1])]})", expression))
            results[step.step_number] = value
            steps.append(("calculator", value))
        else:
            assert step.tool_name == "todo_store"
            assert set(step.tool_input) == {"action", "text", "todo_id"}
            steps.append(("todo_store", step.tool_input))
    return steps


def assert_plan(result: PatternResult, expected: list[Step]) -> None:
    assert result.plan is not None, result.reason
    assert result.reason is None
    plan = result.plan
    assert [s.step_number for s in plan.steps] == list(range(1, len(plan.steps) + 1))
    assert all(s.reasoning.endswith(".") for s in plan.steps)
    assert plan.final_goal.endswith(".") and plan.final_goal[0].isupper()
    got = run(plan)
    assert [kind for kind, _ in got] == [kind for kind, _ in expected], plan
    for (kind, value), (_, want) in zip(got, expected, strict=True):
        if kind == "calculator":
            assert value == pytest.approx(want), plan
        else:
            assert value == want, plan


CASES: list[tuple[str, list[Step]]] = [
    # Percentages.
    ("8% of 50", [calc(4)]),
    ("what's 15 percent of 200", [calc(30)]),
    ("What is 15 per cent of 200?", [calc(30)]),
    ("raise 80 by 10 percent", [calc(88)]),
    ("increase 80 by 10%", [calc(88)]),
    ("80 increased by 10%", [calc(88)]),
    ("decrease 200 by 25%", [calc(150)]),
    ("reduce 200 by 25%", [calc(150)]),
    ("lower 200 by 25 percent", [calc(150)]),
    ("15% off 80", [calc(68)]),
    ("80 + 10%", [calc(88)]),
    ("add 10% to 80", [calc(88)]),
    ("what percent is 30 of 120", [calc(25)]),
    ("what percentage of 120 is 30", [calc(25)]),
    ("30 is what percent of 120", [calc(25)]),
    ("8% * 50", [calc(4)]),
    # Operator words.
    ("9 times 6", [calc(54)]),
    ("9 multiplied by 6", [calc(54)]),
    ("9 x 6", [calc(54)]),
    ("60 divided by 4", [calc(15)]),
    ("divide 60 by 4", [calc(15)]),
    ("take 5 away from 12", [calc(7)]),
    ("subtract 5 from 12", [calc(7)]),
    ("12 minus 5", [calc(7)]),
    ("5 plus 7", [calc(12)]),
    ("add 3 and 4", [calc(7)]),
    ("add 3 to 4", [calc(7)]),
    ("the sum of 3 and 4", [calc(7)]),
    ("multiply 6 by 7", [calc(42)]),
    ("product of 3, 4 and 5", [calc(60)]),
    ("difference between 10 and 4", [calc(6)]),
    ("the difference between 4 and 10", [calc(6)]),
    ("10 mod 3", [calc(1)]),
    ("10 % 3", [calc(1)]),
    ("remainder of 10 divided by 3", [calc(1)]),
    ("5 less than 12", [calc(7)]),
    ("what is 5 more than 10", [calc(15)]),
    # Lists.
    ("average of 12, 30 and 48", [calc(30)]),
    ("what's the average of 12, 30, and 48?", [calc(30)]),
    ("mean of 2, 4 and 9", [calc(5)]),
    ("the median of 3, 1 and 2", [calc(2)]),
    ("add up 1, 2, 3 and 4", [calc(10)]),
    ("total of 5, 10 and 15", [calc(30)]),
    ("max of 3, 9 and 4", [calc(9)]),
    ("average of 1,000, 2,000 and 3,000", [calc(2000)]),
    # Powers and roots.
    ("2 to the power of 10", [calc(1024)]),
    ("2 raised to 10", [calc(1024)]),
    ("raise 2 to the power of 10", [calc(1024)]),
    ("2 to the 10th power", [calc(1024)]),
    ("5 squared", [calc(25)]),
    ("3 cubed", [calc(27)]),
    ("what's the square of 12", [calc(144)]),
    ("square 9", [calc(81)]),
    ("square root of 144", [calc(12)]),
    ("sqrt 2", [calc(2**0.5)]),
    ("√16", [calc(4)]),
    ("cube root of 27", [calc(3)]),
    ("4th root of 16", [calc(2)]),
    # Halves and multiples.
    ("half of 90", [calc(45)]),
    ("halve 90", [calc(45)]),
    ("double 21", [calc(42)]),
    ("triple 7", [calc(21)]),
    ("quadruple 5", [calc(20)]),
    ("twice 8", [calc(16)]),
    ("a third of 90", [calc(30)]),
    ("three quarters of 80", [calc(60)]),
    ("two thirds of 90", [calc(60)]),
    # Bare expressions and question forms.
    ("2+2", [calc(4)]),
    ("(3 + 4) * 5", [calc(35)]),
    ("what is 7*6?", [calc(42)]),
    ("calculate 2^8", [calc(256)]),
    ("compute 100/7", [calc(100 / 7)]),
    ("12 / 4 = ?", [calc(3)]),
    ("how much is 9 times 6", [calc(54)]),
    ("what does 5 plus 3 equal", [calc(8)]),
    ("tell me what 5 plus 3 is", [calc(8)]),
    ("hey, what's (2+3)*4?", [calc(20)]),
    ("calculate 2 + 2 for me", [calc(4)]),
    ("3 × 4 ÷ 2", [calc(6)]),
    # Number words, negatives, decimals, thousands.
    ("nine times six", [calc(54)]),
    ("twenty-five percent of eighty", [calc(20)]),
    ("a hundred divided by four", [calc(25)]),
    ("what is one million", [calc(1_000_000)]),
    ("one million divided by four", [calc(250_000)]),
    ("one hundred and five plus 2", [calc(107)]),
    ("three point five times two", [calc(7)]),
    ("minus 3 plus 5", [calc(2)]),
    ("negative 3 times 4", [calc(-12)]),
    ("what is 3.5 times 2", [calc(7)]),
    ("1,000 plus 1", [calc(1001)]),
    # Functions.
    ("factorial of 5", [calc(120)]),
    ("5!", [calc(120)]),
    ("what is 5!?", [calc(120)]),
    ("what is 5!, thanks", [calc(120)]),
    ("what is 5! thanks", [calc(120)]),
    ("5 factorial", [calc(120)]),
    ("absolute value of -5", [calc(5)]),
    ("round 3.7", [calc(4)]),
    ("round 3.14159 to 2 decimal places", [calc(3.14)]),
    ("what is 1/3 of 90", [calc(30)]),
    ("what is (-5) squared", [calc(25)]),
    ("(-3) squared", [calc(9)]),
    ("square of -3", [calc(9)]),
    ("10 minus 5 squared", [calc(-15)]),
    ("show me the average of 3 and 4", [calc(3.5)]),
    ("take 5 from 12", [calc(7)]),
    # Grouping: postfix powers apply left to right; explicit brackets are read as written.
    ("what is 2 cubed squared", [calc(64)]),
    ("3 squared cubed", [calc(729)]),
    ("3 squared factorial", [calc(362880)]),
    ("what is 5! squared", [calc(14400)]),
    ("2 squared to the power of 3", [calc(64)]),
    ("(2^3)^2", [calc(64)]),
    ("2^(3^2)", [calc(512)]),
    ("square root of (3 squared plus 4 squared)", [calc(5)]),
    ("half of (3 plus 4)", [calc(3.5)]),
    ("double (3 plus 4)", [calc(14)]),
    ("difference between 10 plus 2 and 4", [calc(8)]),
    ("5 squared plus 3", [calc(28)]),
    ("2 times 3 squared", [calc(18)]),
    ("√16 + 9", [calc(13)]),
    ("sqrt(16) + 9", [calc(13)]),
    # Percentages with other operators, where the reading is clear.
    ("80 minus 10 percent", [calc(72)]),
    ("-80 + 10%", [calc(-88)]),
    ("5 plus 10% of 200", [calc(25)]),
    ("10% of 50%", [calc(0.05)]),
    ("100 - 10% * 50", [calc(95)]),
    ("average of 10% and 20%", [calc(0.15)]),
    ("increase 50 by 10", [calc(60)]),
    ("increase 50 plus 5 by 10%", [calc(60.5)]),
    ("what's 80, then add 10%", [calc(80), calc(88)]),
    ("what is 80 then subtract 10%", [calc(80), calc(72)]),
    ("what is 80 then it + 10%", [calc(80), calc(88)]),
    # Numbers.
    ("sum of 1,000 and 2,000", [calc(3000)]),
    ("1,500 plus 1", [calc(1501)]),
    ("what is 10x3", [calc(30)]),
    ("what is 0 x 5", [calc(0)]),
    ("one hundred and five plus two hundred", [calc(305)]),
    ("add one hundred and five to 3", [calc(108)]),
    ("100-10%", [calc(90)]),
    # "Raise" is a power only with "power" or "the Nth".
    ("raise 2 to the 10th", [calc(1024)]),
    ("raise 2 to the 3rd power", [calc(8)]),
    # After "then", a clause starting with an operator carries on from the previous result.
    ("what is 10, then -5", [calc(10), calc(5)]),
    ("what is 10 then minus 5", [calc(10), calc(5)]),
    ("what is 10 then times 2", [calc(10), calc(20)]),
    ("what is 200 then what is 10%", [calc(200), calc(0.1)]),
    # "I need to ..." a calculation is the calculation, not a todo.
    ("I need to calculate 15% of 80", [calc(12)]),
    ("i need to know what 15% of 80 is", [calc(12)]),
    ("I have to work out 20% of 50", [calc(10)]),
    ("I need to double 21", [calc(42)]),
    # Adding todos.
    ("add a todo to call the dentist", [todo("add", "call the dentist")]),
    ("add 'buy milk' to my todo list", [todo("add", "buy milk")]),
    ('Add "Call Bob" to my to-do list.', [todo("add", "Call Bob")]),
    ("remind me to renew my passport", [todo("add", "renew my passport")]),
    ("Remind me to call Mom at 5pm", [todo("add", "call Mom at 5pm")]),
    ("remind me about the meeting", [todo("add", "the meeting")]),
    ("put pick up laundry on my list", [todo("add", "pick up laundry")]),
    ("new task: file taxes", [todo("add", "file taxes")]),
    ("todo: water plants", [todo("add", "water plants")]),
    ("add a task: buy stamps", [todo("add", "buy stamps")]),
    ("create a todo called buy stamps", [todo("add", "buy stamps")]),
    ("add call grandma as a task", [todo("add", "call grandma")]),
    ("note to self: buy stamps", [todo("add", "buy stamps")]),
    ("add 5 apples to my list", [todo("add", "5 apples")]),
    ("add milk to my shopping list", [todo("add", "milk")]),
    ("note: buy eggs", [todo("add", "buy eggs")]),
    ("I've got to pay the rent", [todo("add", "pay the rent")]),
    ("I need to book flights", [todo("add", "book flights")]),
    ("I have to water the plants", [todo("add", "water the plants")]),
    ("don't let me forget to call mom", [todo("add", "call mom")]),
    ("don't forget to feed the cat", [todo("add", "feed the cat")]),
    ("remind me to buy bread and milk", [todo("add", "buy bread and milk")]),
    ("remind me to buy 🍕 and 🍺", [todo("add", "buy 🍕 and 🍺")]),
    # "and" + delete/remove inside a todo text is not a second, destructive command.
    (
        "remind me to back up my phone and delete old photos",
        [todo("add", "back up my phone and delete old photos")],
    ),
    (
        "remind me to clean the fridge and remove the old food",
        [todo("add", "clean the fridge and remove the old food")],
    ),
    (
        "remind me to download the app and delete it",
        [todo("add", "download the app and delete it")],
    ),
    (
        "remind me to read the book and complete it",
        [todo("add", "read the book and complete it")],
    ),
    ("remind me to buy milk, check off eggs", [todo("add", "buy milk, check off eggs")]),
    (
        "I need to back up my phone and delete old photos",
        [todo("add", "back up my phone and delete old photos")],
    ),
    ("I need to delete old photos", [todo("add", "delete old photos")]),
    # ... unless it names a todo.
    (
        "remind me to back up my phone and delete the photos todo",
        [todo("add", "back up my phone"), todo("delete", "photos")],
    ),
    (
        "remind me to back up my phone and remove old photos from my list",
        [todo("add", "back up my phone"), todo("delete", "old photos")],
    ),
    (
        "remind me to back up my phone and delete todo 3",
        [todo("add", "back up my phone"), todo("delete", todo_id="3")],
    ),
    ("show my list and delete buy milk", [todo("list"), todo("delete", "buy milk")]),
    ("what's 2+2 and delete buy milk", [calc(4), todo("delete", "buy milk")]),
    # Filler words that end a todo's text are kept; after a comma they are filler.
    ("remind me to say thank you", [todo("add", "say thank you")]),
    ("remind me to say please", [todo("add", "say please")]),
    ("remind me to send Sarah a thank you", [todo("add", "send Sarah a thank you")]),
    ("add a todo to thank you", [todo("add", "thank you")]),
    ("remind me to buy cheers", [todo("add", "buy cheers")]),
    ("remind me to call mom, please", [todo("add", "call mom")]),
    ("remind me to call mom. Thanks!", [todo("add", "call mom")]),
    ("please remind me to call mom", [todo("add", "call mom")]),
    ("add call mom to my list please", [todo("add", "call mom")]),
    ("I need to add milk to my list", [todo("add", "milk")]),
    ("Hey Crane, can you add 'Buy Milk' to my todo list please?", [todo("add", "Buy Milk")]),
    # Listing.
    ("what do I have to do?", [todo("list")]),
    ("what do I need to do today", [todo("list")]),
    ("show me my tasks", [todo("list")]),
    ("list my todos", [todo("list")]),
    ("what's on my list", [todo("list")]),
    ("show my todo list", [todo("list")]),
    ("what are my tasks", [todo("list")]),
    ("what tasks do I have?", [todo("list")]),
    ("do I have any todos?", [todo("list")]),
    ("display my to-do list", [todo("list")]),
    ("Crane, please list my todos. Thanks!", [todo("list")]),
    ("my todos", [todo("list")]),
    ("show me what I have to do", [todo("list")]),
    ("whats next on my list", [todo("list")]),
    ("what's on my to do list", [todo("list")]),
    # Completing.
    ("I finished buying milk", [todo("complete", "buying milk")]),
    ("mark the dentist todo as done", [todo("complete", "dentist")]),
    ("complete todo 3", [todo("complete", todo_id="3")]),
    ("complete todo three", [todo("complete", todo_id="3")]),
    ("mark todo 3 as complete", [todo("complete", todo_id="3")]),
    ("check off call mom", [todo("complete", "call mom")]),
    ("cross call mom off my list", [todo("complete", "call mom")]),
    ("tick todo 2 off", [todo("complete", todo_id="2")]),
    ("done with laundry", [todo("complete", "laundry")]),
    ("I've done the taxes", [todo("complete", "taxes")]),
    ("the laundry is done", [todo("complete", "laundry")]),
    ("finish task 4", [todo("complete", todo_id="4")]),
    ("complete the buy milk todo", [todo("complete", "buy milk")]),
    # Deleting.
    ("get rid of the laundry todo", [todo("delete", "laundry")]),
    ("delete task 2", [todo("delete", todo_id="2")]),
    ("remove buy milk from my list", [todo("delete", "buy milk")]),
    ("cancel the dentist appointment todo", [todo("delete", "dentist appointment")]),
    ("erase todo #4", [todo("delete", todo_id="4")]),
    ("delete the dentist todo please", [todo("delete", "dentist")]),
    ("delete todo 3 please", [todo("delete", todo_id="3")]),
    ("remove buy milk from my list thanks", [todo("delete", "buy milk")]),
    ("mark call mom as done please", [todo("complete", "call mom")]),
    ("check off todo 3 as done", [todo("complete", todo_id="3")]),
    ("what is todo 3 please", [todo("get", todo_id="3")]),
    ("delete three please", [todo("delete", todo_id="3")]),
    ("delete say thank you", [todo("delete", "say thank you")]),
    ("remove todo number 2", [todo("delete", todo_id="2")]),
    ("forget the dentist todo", [todo("delete", "dentist")]),
    ("take 5 off my list", [todo("delete", todo_id="5")]),
    ("remove first aid kit from my list", [todo("delete", "first aid kit")]),
    ("delete call mom first", [todo("delete", "call mom first")]),
    # Showing one.
    ("show todo 2", [todo("get", todo_id="2")]),
    ("what is todo 2", [todo("get", todo_id="2")]),
    ("show the dentist todo", [todo("get", "dentist")]),
    # Chains.
    (
        "add a todo to call the plumber and then show me my tasks",
        [todo("add", "call the plumber"), todo("list")],
    ),
    (
        "add buy eggs to my list, then mark it done",
        [todo("add", "buy eggs"), todo("complete", todo_id="{{step_1.id}}")],
    ),
    (
        "add buy eggs to my list and mark it as done",
        [todo("add", "buy eggs"), todo("complete", todo_id="{{step_1.id}}")],
    ),
    ("what is 8% of 50 and then double it", [calc(4), calc(8)]),
    ("square root of 144, then double it", [calc(12), calc(24)]),
    ("compute 5 squared and then half of that", [calc(25), calc(12.5)]),
    ("what is 3 + 4 then multiply it by 10", [calc(7), calc(70)]),
    ("what is 3 + 4 and then add 10 to it", [calc(7), calc(17)]),
    ("what's 5 plus 3, then divide by 2", [calc(8), calc(4)]),
    ("what is 10 divided by 4 then square it", [calc(2.5), calc(6.25)]),
    ("add a todo to call mom; show my list", [todo("add", "call mom"), todo("list")]),
    ("remind me to call mom and show me my list", [todo("add", "call mom"), todo("list")]),
    ("remind me to call mom. Then show my list", [todo("add", "call mom"), todo("list")]),
    ("what's 5 plus 3 and add a todo to call mom", [calc(8), todo("add", "call mom")]),
    ("what's 2 plus 2, also remind me to buy eggs", [calc(4), todo("add", "buy eggs")]),
    ("what's 12 times 3 after that show my tasks", [calc(36), todo("list")]),
    (
        "remind me to call mom, then show me my tasks, then mark it done",
        [todo("add", "call mom"), todo("list"), todo("complete", todo_id="{{step_1.id}}")],
    ),
    (
        "add a todo to pay rent and then delete it",
        [todo("add", "pay rent"), todo("delete", todo_id="{{step_1.id}}")],
    ),
    ("what's 6 times 7 then add 3 and 4", [calc(42), calc(7)]),
    ("what's 3 plus 3 then what is 10% of that", [calc(6), calc(0.6)]),
    (
        "what's 3 plus 3 then double it then add 1",
        [calc(6), calc(12), calc(13)],
    ),
    (
        "add a todo to buy milk and eggs and then show it",
        [todo("add", "buy milk and eggs"), todo("get", todo_id="{{step_1.id}}")],
    ),
    (
        "remind me to call mom, remind me to call dad, and show my list",
        [todo("add", "call mom"), todo("add", "call dad"), todo("list")],
    ),
    (
        "remind me to call mom and dad and show my list",
        [todo("add", "call mom and dad"), todo("list")],
    ),
]


@pytest.mark.parametrize(("prompt", "expected"), CASES, ids=[p for p, _ in CASES])
def test_phrasings_plan_the_expected_steps(prompt: str, expected: list[Step]) -> None:
    assert_plan(plan_request(prompt), expected)


def test_table_is_large_and_distinct() -> None:
    prompts = [p for p, _ in CASES]
    assert len(prompts) >= 100
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("prompt", [p for p, _ in CASES])
def test_is_case_insensitive_for_calculations(prompt: str) -> None:
    """Shouting the request plans the same calculations (todo texts keep their casing)."""
    lower, upper = plan_request(prompt), plan_request(prompt.upper())
    assert lower.plan is not None and upper.plan is not None, upper.reason
    assert [s.tool_name for s in lower.plan.steps] == [s.tool_name for s in upper.plan.steps]
    for a, b in zip(lower.plan.steps, upper.plan.steps, strict=True):
        if a.tool_name == "calculator":
            assert a.tool_input == b.tool_input
        else:
            assert a.tool_input["action"] == b.tool_input["action"]
            assert a.tool_input["todo_id"] == b.tool_input["todo_id"]


def test_average_is_a_function_call_not_a_wrong_precedence_sum() -> None:
    result = plan_request("average of 12, 30 and 48")
    assert result.plan is not None
    assert result.plan.steps[0].tool_input == {"expression": "average(12, 30, 48)"}


def test_chained_calculation_references_the_previous_result() -> None:
    result = plan_request("what is 8% of 50 and then double it")
    assert result.plan is not None
    assert "{{step_1.result}}" in result.plan.steps[1].tool_input["expression"]


def test_plan_text_restates_the_request() -> None:
    result = plan_request("add a todo to call the plumber and then show me my tasks")
    assert result.plan is not None
    assert result.plan.final_goal == (
        'Add "call the plumber" to the todo list, then show the todo list.'
    )
    assert result.plan.steps[0].reasoning == 'Add "call the plumber" to the todo list.'


REFUSALS = [
    "compose a sonnet about autumn",
    "what's the weather",
    "translate hello to French",
    "",
    "   ",
    "asdfgh",
    "add",
    "what is",
    "divide 5",
    "book a flight to Paris and tell me the weather",
    "tell me a joke",
    "who is the president of France?",
    "send an email to Bob",
    "play some music",
    "delete all my todos",
    "clear my list",
    "double it",
    "mark it done",
    "show it",
    "sum of 5",
    "what is 5 plus",
    "remind me",
    "remind me to",
    "add milk",
    "nineteen ninety",
    "hello",
    "🎉🎉",
    "what's 2 plus 2 and tell me the weather",
    "add a todo to a, then show my list, then add 3 and 4, then double it",
    "remind me to x " * 200,
    "delete todo 2 and 3",
    "remove 5 from 12",
    "half of 3 plus 4",
    "cancel that",
    # Bulk actions: the store acts on one todo at a time.
    "delete my todos",
    "delete my items",
    "delete my reminders",
    "delete my tasks",
    "delete my todo",
    "mark my tasks as done",
    "complete all tasks",
    "mark everything as done",
    "clear my todos",
    "delete completed tasks",
    "delete tasks about rent",
    # Questions are not todos.
    "what tasks are done?",
    "what is done?",
    "which tasks are done",
    "everything is done",
    # There is one todo list: making another is not a todo called "list".
    "make a todo list",
    "create a new task list",
    "start a to do list",
    "make a todo list for the trip",
    "new todo list",
    # A reminder at a time is not a todo.
    "set a reminder for 5pm",
    "set a reminder for tomorrow",
    "set a reminder for 5pm to call mom",
    "create a task for tomorrow",
]


@pytest.mark.parametrize("prompt", REFUSALS)
def test_refuses_with_a_helpful_reason(prompt: str) -> None:
    result = plan_request(prompt)
    assert result.plan is None
    assert result.confident is False
    assert result.reason is not None and result.reason.endswith(".")
    assert "OPENAI_API_KEY" in result.reason
    assert "calculations" in result.reason and "todo" in result.reason


# Requests whose reading is open (most were once answered wrongly with a confident plan): each
# must be refused, never guessed.
AMBIGUOUS = [
    # Percentages mixed into + or -: only "A + B%", A and B plain numbers, is read (A * (1 + B%)).
    "100 + 10% + 10%",
    "100 - 10% - 10%",
    "what is 5% + 5%",
    "50% + 50%",
    "what's 80 plus 10 percent plus 5",
    "what is 200 + 5% - 3",
    "10% + 80",
    "8% - 3",
    "100 + -10%",
    "(100 + 10%) + 10%",
    "100 + (10% + 10%)",
    "add 5 and 10%",
    "sum of 10% and 20%",
    "average of 10% and 5",
    "add 10 to 5%",
    "add 5% to 10%",
    "increase 5% by 10",
    "15% off 10%",
    "5 more than 10%",
    "difference between 10% and 5%",
    "it + 10%",
    # The operand of "by" must be a plain number or a plain percentage.
    "increase 50 by 10% plus 5",
    "decrease 80 by 25% minus 5",
    "decrease 80 by 25 minus 5",
    "increase 50 by -10%",
    "increase 50 by 3 squared",
    # Stacked powers, and powers whose base or exponent is left open.
    "2^3^2",
    "2 to the power of 3 to the power of 2",
    "2 to the power of 3 squared",
    "raise 2 to the power of 3 squared",
    "2^3!",
    "-2^2",
    "minus 2 to the power of 2",
    # A function-like phrase followed by an expression with a further operator.
    "square root of 3 squared plus 4 squared",
    "square root of 16 plus 9",
    "sqrt 16 + 9",
    "square root of 16 squared",
    "log of 1000 squared",
    "factorial of 3 squared",
    "absolute value of -5 plus 3",
    "round 3.7 plus 1",
    "what is 20% off 100 plus 5",
    "what is 10% of 200 plus 5",
    "10% of 50 squared",
    "20% of 50 + 10% of 30",
    "what is 1/3 of 90 plus 5",
    "difference between 10 and 4 plus 1",
    "multiply 3 by 4 plus 1",
    "divide 10 by 2 plus 3",
    "add 5 to 10 times 2",
    "raise 2 to the power of 3 plus 1",
    "30 is what percent of 100 plus 20",
    "3 plus 4 out of 10 as a percentage",
    "50 plus 5 increased by 10%",
    "half of 90 plus 5",
    "double 3 plus 4",
    "twice 3 squared",
    "a third of 90 plus 1",
    "what is 2 + 3 then half of it plus 1",
    # Numbers: a comma in a list may separate items, thousands or decimals; "0x10" may be hex.
    "sum of 100,200 and 300",
    "sum of 1,500 and 2",
    "average of 1,5 and 2",
    "sum of 1,2,3",
    "max(100,200)",
    "what is 2,5 times 2",
    "what is 0x10 + 1",
    "what is 0x10",
    # "percent" between two numbers is not modulo.
    "what's 15 percent 80",
    "what is 20 percent 50",
    "what is 10 percent 3",
    "what's 15% 80",
    # Ranges of percentages.
    "what is 10-15% of 200",
    "15-20% of 60",
    "what is 10-15%",
    "what is 10–15% of 200",
    # "20% over 100": 120, or 20% / 100?
    "what is 20% over 100",
    "what is 20 percent over 100",
    # A bare percentage after "then": 10% of the result?
    "what is 200 then 10%",
    "what is 200 and then 10 percent",
    # Number words joined by "and" where "and" also separates items.
    "average of two hundred and fifty and three hundred",
    "product of one hundred and two and three",
    "max of one hundred and two and fifty",
    "sum of one thousand and five and six",
    "difference between one hundred and five and three",
    # After "then", a clause starting with an operator and going on.
    "what is 10 then -5 + 2",
    "what is 10 then minus 5 plus 2",
    "what is 10 then * 2 + 1",
    "what is 10 then -5 squared",
    # "raise X to Y" usually means an increase.
    "raise 50 to 60",
    "raise 2 to 3",
    # A negative number and a postfix power: (-3) ** 2 or -(3 ** 2)?
    "-3 squared",
    "2 times -3 squared",
    "what is -5 squared",
    "minus 5 squared",
    "negative 3 cubed",
    "10 + -2 squared",
    # Todos named by their place in the list, which is neither their text nor their number.
    "delete the second todo",
    "delete my last todo",
    "mark the first todo as done",
    "remove the last item from my list",
    "delete the 2nd task",
    "delete the last one",
    "show the top todo",
    "complete the next one",
    "complete the first two todos",
    "delete the last todo about taxes",
    # "I need to ..." a todo action: a note to self, or the action?
    "I need to finish task 4",
    "I need to delete todo 3",
    "I need to work out 15% of 80 for the report",
    # "{{" and "}}" mark step references in a plan.
    "remind me to email {{step_1.text}}",
    "remind me to email {{ step_1.result }}",
    "add a todo: fix the }} in the template",
]


@pytest.mark.parametrize("prompt", AMBIGUOUS)
def test_refuses_what_it_would_have_to_guess(prompt: str) -> None:
    result = plan_request(prompt)
    assert result.plan is None, result.plan
    assert result.confident is False
    assert result.reason is not None and result.reason.endswith(".")
    assert "OPENAI_API_KEY" in result.reason


def test_pocket_calculator_percent_reading_is_only_for_a_number_and_a_percentage() -> None:
    assert_plan(plan_request("80 + 10%"), [calc(88)])
    assert_plan(plan_request("what is 100 + 10% then add 10%"), [calc(110), calc(121)])
    assert plan_request("100 + 10% + 10%").plan is None


def test_refusal_explains_todos_are_not_picked_by_place() -> None:
    result = plan_request("delete the second todo")
    assert result.reason is not None
    assert '"delete the second todo"' in result.reason
    assert "not by its place in the list" in result.reason


def test_refusal_explains_double_braces() -> None:
    result = plan_request("remind me to email {{step_1.text}}")
    assert result.reason is not None and '"{{"' in result.reason


def test_refusal_names_the_parts_it_did_not_understand() -> None:
    result = plan_request("book a flight to Paris and tell me the weather")
    assert result.reason is not None
    assert '"book a flight to Paris"' in result.reason
    assert '"tell me the weather"' in result.reason
    result = plan_request("what's 2 plus 2 and tell me the weather")
    assert result.reason is not None
    assert '"tell me the weather"' in result.reason and "2 plus 2" not in result.reason


def test_refuses_more_than_three_parts() -> None:
    result = plan_request("what is 1 + 1, then double it, then double it, then double it")
    assert result.plan is None and result.reason is not None
    assert "4 requests" in result.reason
    assert plan_request("what is 1 + 1, then double it, then double it").plan is not None


def test_length_limit() -> None:
    at_limit = "remind me to " + "x" * (MAX_PROMPT_CHARS - len("remind me to "))
    assert plan_request(at_limit).plan is not None
    result = plan_request(at_limit + "x")
    assert result.plan is None and result.reason is not None and "too long" in result.reason


@pytest.mark.parametrize(
    ("prompt", "confident"),
    [
        ("what's 15% of 200", True),
        ("remind me to renew my passport", True),
        ("show me my tasks", True),
        ("complete todo 3", True),
        ("add buy eggs to my list, then mark it done", True),
        ("remind me to buy bread and milk", True),  # "milk" does not start a request
        # Intent read from a statement rather than a command.
        ("I need to book flights", False),
        ("I finished buying milk", False),
        ("done with laundry", False),
        ("the laundry is done", False),
        # A "then"/"and <request word>" kept inside a todo text.
        ("remind me to pay rent then call mom", False),
        ("remind me to buy milk and tell me the weather", False),
        ("remind me to back up my phone and delete old photos", False),
        # A filler word kept as the end of a todo's text.
        ("remind me to say thank you", False),
        ("remind me to call mom, please", True),
        # Refused: never confident.
        ("compose a sonnet about autumn", False),
    ],
)
def test_confident(prompt: str, confident: bool) -> None:
    assert plan_request(prompt).confident is confident


def test_refusal_explains_bulk_actions_are_not_supported() -> None:
    for prompt in ["delete all my todos", "delete my todos", "mark my tasks as done"]:
        result = plan_request(prompt)
        assert result.reason is not None and "one todo at a time" in result.reason, prompt


def test_then_and_a_destructive_command_in_a_todo_text_is_refused() -> None:
    """After "then" a delete must split off; without a todo marker it is not read as one."""
    result = plan_request("remind me to back up my phone, then delete old photos")
    assert result.plan is None and result.reason is not None
    assert '"delete old photos"' in result.reason
    assert plan_request("remind me to book the hotel then cancel it").plan is None


def test_text_kept_in_a_todo_when_the_rest_is_not_a_request() -> None:
    assert_plan(
        plan_request("remind me to pay rent then call mom"), [todo("add", "pay rent then call mom")]
    )


HOSTILE = [
    "x" * 1_000_000,
    "__import__('os').system('ls')",
    "2**2; import os",
    "eval('1+1')",
    "lambda: 0",
    "print(open('/etc/passwd').read())",
    "<script>alert(1)</script>",
    "'; DROP TABLE todos; --",
    "{{step_1.result}} * 2",
    "what is 2\x00+2",
    "\x00" * 50,
    "remind me to \x00\x01 call mom",
    "🔥" * 500,
    "٣ + ٤",
    "what is ２+２",
    "ℌ𝔢𝔩𝔩𝔬",
    "\u202e\u200b\ufeff",
    "9" * 1999,
    "(" * 1000 + ")" * 1000,
    "then " * 300,
    "and " * 400,
    ", " * 900,
    "what is 2 to the power of 1000000",
    "remind me to " + "and show my list " * 100,
]


@pytest.mark.parametrize("prompt", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_never_raises(prompt: str) -> None:
    result = plan_request(prompt)
    assert isinstance(result, PatternResult)
    assert (result.plan is None) == (result.reason is not None)
    if result.plan is not None:
        assert_parses(result.plan)


def test_code_is_never_planned_as_a_calculation() -> None:
    for prompt in ["__import__('os').system('ls')", "2**2; import os", "eval('1+1')"]:
        assert plan_request(prompt).plan is None


def test_non_string_input_is_refused() -> None:
    result = plan_request(None)  # type: ignore[arg-type]
    assert result.plan is None and result.reason is not None


def assert_parses(plan: Plan) -> None:
    for step in plan.steps:
        if step.tool_name == "calculator":
            parse_expression(STEP_REFERENCE.sub("1", step.tool_input["expression"]))
        else:
            assert set(step.tool_input) == {"action", "text", "todo_id"}


def test_random_word_salad_never_raises_and_only_emits_valid_plans() -> None:
    words = (
        "add remind me to then and what is of by plus times show my list todo done it , ; 3 4 "
        "percent half double sqrt ( ) % mark delete task 2 the average sum 1,000 one hundred ! ?"
    ).split()
    rng = random.Random(1234)
    for _ in range(300):
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        result = plan_request(prompt)
        if result.plan is not None:
            assert_parses(result.plan)
            assert len(result.plan.steps) <= 3


def test_capabilities_examples_all_plan() -> None:
    examples = [
        line[2:]
        for line in CAPABILITIES.split("Examples:")[1].splitlines()
        if line.startswith("- ")
    ]
    assert 4 <= len(examples) <= 6
    for example in examples:
        result = plan_request(example)
        assert result.plan is not None and result.confident, example
