"""Tests for the `crane eval` dataset: its contents, its strict loader, scoring, and its labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph.eval_dataset import (
    CATEGORIES,
    DATASET_PATH,
    TODO_ACTIONS,
    EvalItem,
    Expectation,
    ExpectedTodo,
    PlanCall,
    SetupTodo,
    Verdict,
    apply_setup,
    load_dataset,
    normalise_text,
    score,
)
from tools.todo_store import TodoStore

# Items the offline rule planner plans (status "completed") but answers wrongly. The labels are
# right; the rules are not. The label cross-check below fails when one of these is fixed (remove
# it here) or when a new disagreement appears (fix the label, or list it here with its reason).
KNOWN_RULE_PLANNER_ERRORS = {
    # "add a task to water the plants, complete it, then show my list": after a todo text, the
    # rules refuse a bare "it" joined by a comma (as in "remind me to download the app and
    # delete it"), so ", complete it" is swallowed into the todo's text: it adds "water the
    # plants, complete it", never completes it, and lists.
    "chain-011",
}


# --- The packaged dataset ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> list[EvalItem]:
    return load_dataset()


def test_dataset_is_packaged_data() -> None:
    assert DATASET_PATH.is_file()
    assert DATASET_PATH.parent.name == "data" and DATASET_PATH.parent.parent.name == "graph"
    assert load_dataset(DATASET_PATH) == load_dataset()


def test_dataset_size_and_ids(dataset: list[EvalItem]) -> None:
    assert len(dataset) >= 110
    ids = [item.id for item in dataset]
    assert len(set(ids)) == len(ids)
    assert {item.category for item in dataset} == set(CATEGORIES)


def test_dataset_covers_every_tool_and_todo_action(dataset: list[EvalItem]) -> None:
    calls = {call for item in dataset for call in item.expect.plan or ()}
    assert PlanCall("calculator") in calls
    assert {PlanCall("todo_store", action) for action in TODO_ACTIONS} <= calls


def test_dataset_has_refusals_and_chains(dataset: list[EvalItem]) -> None:
    refusals = [item for item in dataset if item.category == "refuse"]
    assert len(refusals) >= 15
    assert all(item.expect.refused for item in refusals)
    chains = [item for item in dataset if item.multi_step]
    assert len(chains) >= 15
    # Chains of 2, 3 and 4 steps, mixing tools at least once.
    assert {len(item.expect.plan or ()) for item in chains} >= {2, 3, 4}
    assert any(len({call.tool for call in item.expect.plan or ()}) == 2 for item in chains)
    # Step references: todos added then completed or deleted, results computed on.
    pairs = {tuple(item.expect.plan or ())[:2] for item in chains}
    add = PlanCall("todo_store", "add")
    assert (add, PlanCall("todo_store", "complete")) in pairs
    assert (add, PlanCall("todo_store", "delete")) in pairs
    assert (PlanCall("calculator"), PlanCall("calculator")) in pairs


def test_every_item_checks_an_answer(dataset: list[EvalItem]) -> None:
    for item in dataset:
        expect = item.expect
        if expect.refused:
            continue
        assert (
            expect.answer is not None or expect.todos is not None or expect.answer_todo is not None
        ), item.id
        if expect.answer_list:
            assert expect.todos is not None, item.id


def test_setups_exist_for_todo_references(dataset: list[EvalItem]) -> None:
    with_setup = [item for item in dataset if item.setup]
    assert len(with_setup) >= 20
    assert any(todo.completed for item in with_setup for todo in item.setup)


# --- The loader -------------------------------------------------------------------------

GOOD = {
    "id": "calc-001",
    "request": "what is 2 + 2",
    "category": "calculator",
    "expect": {"answer": 4},
}


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _line(**changes: Any) -> str:
    item = {**GOOD, **changes}
    return json.dumps({k: v for k, v in item.items() if v is not None})


def test_loader_reads_every_field(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "id": "todo-001",
            "request": "mark buy milk as done",
            "category": "todo",
            "setup": [{"text": "buy milk", "completed": False}, {"text": "x", "completed": True}],
            "expect": {
                "todos": [
                    {"text": ["buy milk", "milk"], "completed": True},
                    {"text": "x", "completed": True},
                ],
                "answer_todo": "buy milk",
                "plan": [["todo_store", "complete"], ["calculator"]],
            },
        }
    )
    (item,) = load_dataset(_write(tmp_path, "", line, ""))
    assert item == EvalItem(
        id="todo-001",
        request="mark buy milk as done",
        category="todo",
        setup=(SetupTodo("buy milk", False), SetupTodo("x", True)),
        expect=Expectation(
            todos=(ExpectedTodo(("buy milk", "milk"), True), ExpectedTodo(("x",), True)),
            answer_todo=("buy milk",),
            plan=(PlanCall("todo_store", "complete"), PlanCall("calculator")),
        ),
    )
    assert item.multi_step


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be an object"),
        (_line(extra=1), "unknown key(s) in the item: extra"),
        (_line(request=None), "missing key(s) in the item: request"),
        (_line(request=7), "'request' must be a non-empty string, not int"),
        (_line(request="  "), "'request' must be a non-empty string"),
        (_line(id="calc 2"), "must not contain whitespace"),
        (_line(category="maths"), "'category' must be one of"),
        (_line(expect={}), "nothing to check"),
        (_line(expect={"plan": [["calculator"]]}), "nothing to check"),
        (_line(expect={"answer": True}), "'expect.answer' must be a finite number, not bool"),
        (_line(expect={"answer": "4"}), "'expect.answer' must be a finite number, not str"),
        ('{"id": "x", "request": "r", "category": "calculator", "expect": {"answer": NaN}}', "NaN"),
        (_line(expect={"answer": 4, "answr": 4}), "unknown key(s) in 'expect': answr"),
        (_line(expect={"answer": 4, "answer_todo": "x"}), "more than one answer check"),
        (_line(expect={"answer_list": True}), "needs 'expect.todos'"),
        (_line(expect={"answer_list": False, "todos": []}), "must be true when present"),
        (_line(expect={"refused": False}), "must be true when present"),
        (_line(expect={"refused": True, "answer": 4}), "expects nothing else"),
        (_line(category="refuse"), "must expect 'refused': true"),
        (_line(expect={"answer": 4, "plan": []}), "non-empty list"),
        (_line(expect={"answer": 4, "plan": [["todo_store", "archive"]]}), "unknown todo action"),
        (_line(expect={"answer": 4, "plan": [["shell"]]}), 'must be ["calculator"]'),
        (_line(expect={"answer": 4, "plan": ["calculator"]}), 'must be ["calculator"]'),
        (_line(expect={"todos": [{"text": "x"}]}), "missing key(s) in expect.todos[0]: completed"),
        (_line(expect={"todos": [{"text": [], "completed": False}]}), "non-empty list"),
        (_line(expect={"todos": [{"text": "?!", "completed": False}]}), "no words to compare"),
        (_line(expect={"todos": [{"text": ["milk", 3], "completed": False}]}), "text[1]"),
        (_line(expect={"todos": {"text": "a"}}), "'expect.todos' must be a list"),
        (_line(setup={"text": "a"}), "'setup' must be a list"),
        (_line(setup=[{"text": "a", "completed": "no"}]), "setup[0].completed must be true or"),
        (_line(setup=[{"text": "a", "completed": False, "id": "1"}]), "unknown key(s) in setup[0]"),
        (_line(expect="4"), "'expect' must be an object, not str"),
        ('{"id": "x", "id": "y", "request": "r", "category": "calculator"}', "duplicate key(s) id"),
        (_line(), "duplicate id 'calc-001' (first on line 1)"),
    ],
)
def test_loader_rejects_bad_lines_with_their_number(tmp_path: Path, bad: str, message: str) -> None:
    path = _write(tmp_path, _line(), "", bad)
    with pytest.raises(ValueError) as info:
        load_dataset(path)
    assert str(info.value).startswith(f"{path}:3: "), info.value
    assert message in str(info.value)


def test_loader_rejects_an_empty_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no items"):
        load_dataset(_write(tmp_path, "", "  "))
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset(tmp_path / "missing.jsonl")


# --- Setup --------------------------------------------------------------------------------


def test_apply_setup_creates_todos_in_order(tmp_path: Path) -> None:
    store = TodoStore(tmp_path / "todos.sqlite")
    item = EvalItem(
        "todo-001",
        "r",
        "todo",
        (SetupTodo("buy milk", False), SetupTodo("call mom", True), SetupTodo("pay rent", False)),
        Expectation(answer=1),
    )
    apply_setup(store, "u1", item)
    todos = store.list("u1")["todos"]
    assert [(t["id"], t["text"], t["completed"]) for t in todos] == [
        ("1", "buy milk", False),
        ("2", "call mom", True),
        ("3", "pay rent", False),
    ]
    assert store.list("u2")["todos"] == []
    with pytest.raises(ValueError, match="already has todos"):
        apply_setup(store, "u1", item)


# --- Scoring ------------------------------------------------------------------------------


def _item(
    category: str = "calculator", setup: tuple[SetupTodo, ...] = (), **expect: Any
) -> EvalItem:
    return EvalItem("x-001", "request", category, setup, Expectation(**expect))  # type: ignore[arg-type]


def _todo(text: str, completed: bool = False, todo_id: str = "1") -> dict[str, Any]:
    return {
        "id": todo_id,
        "text": text,
        "completed": completed,
        "created_at": "2025-01-01T00:00:00+00:00",
    }


def _response(
    *calls: tuple[str, dict[str, Any], Any],
    status: str = "completed",
    ok: bool = True,
) -> dict[str, Any]:
    """A contract-shaped response running `calls`: (tool, input, output) each."""
    steps = [
        {
            "step_number": n,
            "tool_name": tool,
            "tool_input": tool_input,
            "ok": ok or n < len(calls),
            "output": output,
            "error": None,
        }
        for n, (tool, tool_input, output) in enumerate(calls, 1)
    ]
    failed = status == "failed"
    return {
        "run_id": "r",
        "status": status,
        "answer": None if failed or not steps else steps[-1]["output"],
        "plan_source": "llm",
        "plan": {
            "steps": [{**s, "reasoning": ""} for s in steps],
            "final_goal": "g",
        }
        if steps
        else None,
        "steps": steps,
        "error": "It failed." if failed else None,
        "error_type": "tool_error" if failed else None,
    }


def _calc(expression: str, result: Any) -> tuple[str, dict[str, Any], Any]:
    return ("calculator", {"expression": expression}, result)


def _store(action: str, output: Any, text: str | None = None) -> tuple[str, dict[str, Any], Any]:
    return ("todo_store", {"action": action, "text": text, "todo_id": None}, output)


def test_score_right_number() -> None:
    item = _item(answer=15, plan=(PlanCall("calculator"),))
    assert score(item, _response(_calc("15% * 80 + 3", 15.0000000001)), []) == Verdict(
        True, True, None
    )
    assert score(_item(answer=0), _response(_calc("1 - 1", 1e-12)), []).correct


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (16, "expected 15, got 16"),
        (15.001, "expected 15, got 15.001"),
        ("15", 'expected the number 15, got "15"'),
        (True, "expected the number 15, got true"),
        (None, "expected the number 15, got null"),
        (float("nan"), "expected the number 15, got NaN"),
        (10**400, "expected 15, got 1000"),
    ],
)
def test_score_wrong_number(answer: Any, reason: str) -> None:
    verdict = score(_item(answer=15), _response(_calc("x", answer)), [])
    assert not verdict.correct and verdict.plan_matches is None
    assert verdict.reason is not None and verdict.reason.startswith(reason)


def test_score_todo_state() -> None:
    item = _item(
        "todo",
        todos=(ExpectedTodo(("buy milk", "milk"), True), ExpectedTodo(("call mom",), False)),
        answer_todo=("buy milk", "milk"),
        plan=(PlanCall("todo_store", "complete"),),
    )
    done = _todo("Buy  milk.", True)
    response = _response(_store("complete", done, "milk"))
    right = score(item, response, [done, _todo("call mom", todo_id="2")])
    assert right == Verdict(True, True, None)
    # The right answer, but the list is wrong: not completed, or an extra todo.
    wrong = score(item, response, [_todo("buy milk"), _todo("call mom", todo_id="2")])
    assert not wrong.correct and wrong.plan_matches
    assert wrong.reason == (
        "wrong todo list: missing 'buy milk' or 'milk' (done); unexpected 'buy milk' (open)"
    )
    extra = score(item, response, [done, _todo("call mom"), _todo("call mom")])
    assert extra.reason == "wrong todo list: unexpected 'call mom' (open)"
    missing = score(item, response, [done])
    assert missing.reason == "wrong todo list: missing 'call mom' (open)"
    # The list is right but the answer is another todo.
    other = score(
        item, _response(_store("complete", _todo("call mom", True))), [done, _todo("call mom")]
    )
    assert other.reason == "expected the todo 'buy milk' or 'milk', got the todo 'call mom'"


def test_score_matches_todos_one_to_one_across_alternatives() -> None:
    # A greedy match would give "buy milk" to the first expectation and leave the second empty.
    item = _item(
        "todo",
        todos=(ExpectedTodo(("milk", "buy milk"), False), ExpectedTodo(("buy milk",), False)),
    )
    after = [_todo("buy milk"), _todo("milk", todo_id="2")]
    assert score(item, _response(_store("list", {"todos": after})), after).correct
    twice = [_todo("milk"), _todo("milk", todo_id="2")]
    assert not score(item, _response(_store("list", {"todos": twice})), twice).correct


def test_score_answer_list() -> None:
    item = _item("todo", todos=(), answer_list=True)
    assert score(item, _response(_store("list", {"todos": []})), []).correct
    verdict = score(item, _response(_store("get", _todo("x"))), [])
    assert verdict.reason is not None and verdict.reason.startswith("expected the todo list, got")


def test_score_failed_run_is_wrong() -> None:
    verdict = score(_item(answer=4), _response(_calc("4 / 0", None), status="failed", ok=False), [])
    assert verdict == Verdict(
        False, None, "the run ended with status 'failed', not 'completed': \"It failed.\""
    )


def test_score_refusals() -> None:
    setup = (SetupTodo("buy milk", False),)
    item = _item("refuse", setup=setup, refused=True)
    before = [_todo("buy milk")]
    no_plan = _response(status="failed")
    assert score(item, no_plan, before) == Verdict(True, None, None)
    # A step that failed, touching nothing, is a safe failure too.
    failed_step = _response(_store("delete", None, "all"), status="failed", ok=False)
    assert score(item, failed_step, before).correct
    # Not refused: it ran and completed.
    listed = score(item, _response(_store("list", {"todos": before})), before)
    assert listed.reason == "expected a refusal, but the run ended with status 'completed'"
    # Failed in the end, but a step added a todo first.
    added = _response(
        _store("add", _todo("weather in London", todo_id="2"), "weather in London"),
        _calc("x", None),
        status="failed",
        ok=False,
    )
    verdict = score(item, added, [*before, _todo("weather in London", todo_id="2")])
    assert not verdict.correct
    assert verdict.reason == (
        "a refused request changed todos (step 1 add); the todo list no longer equals the "
        "setup: unexpected 'weather in London' (open)"
    )
    # The list changed although no step says so.
    assert not score(item, no_plan, []).correct


def test_score_plan_mismatch_is_reported_apart() -> None:
    item = _item(answer=49, plan=(PlanCall("calculator"), PlanCall("calculator")))
    one_step = score(item, _response(_calc("(3 + 4) ** 2", 49)), [])
    assert one_step == Verdict(
        True, False, "plan differs: expected [calculator, calculator], got [calculator]"
    )
    todo_item = _item("todo", todos=(), plan=(PlanCall("todo_store", "list"),))
    other_action = score(todo_item, _response(_store("get", _todo("x"))), [])
    assert other_action.plan_matches is False
    # The tool reads actions case-insensitively, so the plan does too.
    loud = _response(
        ("todo_store", {"action": " LIST ", "text": None, "todo_id": None}, {"todos": []})
    )
    assert score(todo_item, loud, []) == Verdict(True, True, None)
    no_plan = score(todo_item, _response(status="failed"), [])
    assert no_plan.plan_matches is False
    assert no_plan.reason is not None and no_plan.reason.endswith("got [no plan]")


@pytest.mark.parametrize(
    "response",
    [
        None,
        [],
        "completed",
        {},
        {"status": "completed"},
        {"status": "completed", "answer": {"text": 3}, "plan": "x", "steps": "x"},
        {"status": "completed", "answer": [], "plan": {"steps": [1, None]}, "steps": [None]},
        {"status": "completed", "answer": {"todos": "x"}, "plan": {"steps": [{"tool_name": 3}]}},
        {"status": "failed", "steps": None, "plan": {"steps": None}},
        {"status": "failed", "steps": [{"tool_name": "todo_store", "ok": True, "tool_input": 5}]},
        {"status": ["completed"], "error": {"a": 1}},
    ],
)
def test_score_never_raises_on_a_malformed_response(response: Any) -> None:
    items = [
        _item(answer=1, plan=(PlanCall("calculator"),)),
        _item("todo", todos=(ExpectedTodo(("a",), False),), answer_todo=("a",)),
        _item("todo", todos=(), answer_list=True, plan=(PlanCall("todo_store", "list"),)),
        _item("refuse", refused=True),
    ]
    for item in items:
        for todos_after in ([], [{"text": None}], [_todo("a")]):
            verdict = score(item, response, todos_after)
            assert isinstance(verdict, Verdict)
            if (
                item.expect.refused
                and isinstance(response, dict)
                and response.get("status") == "failed"
            ):
                continue  # a failed run that changed nothing may well be a refusal
            assert not verdict.correct, (item, response, todos_after)
            assert verdict.reason


def test_score_names_a_missing_answer() -> None:
    response = _response(_calc("1", 1))
    del response["answer"]
    assert score(_item(answer=1), response, []).reason == "the response has no 'answer'"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Renew my passport.", "renew my passport"),
        ("don't forget", "dont forget"),
        ("parent-teacher  meeting", "parent teacher meeting"),
        ("Friday’s party", "fridays party"),
        ("ＣＡＬＬ mom", "call mom"),
    ],
)
def test_normalise_text(a: str, b: str) -> None:
    assert normalise_text(a) == normalise_text(b)


def test_normalise_text_keeps_words() -> None:
    assert normalise_text("buy milk") != normalise_text("buy oat milk")
    assert normalise_text("pay $50") == "pay $50"


# --- Labels, cross-checked by the offline rule planner -----------------------------------


def test_labels_agree_with_the_rule_planner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: list[EvalItem]
) -> None:
    """Run every item offline; where the rules plan it, the label must call the run right.

    A run the rules refuse proves nothing about a label, but a refusal item must never change
    a todo.
    """
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from graph import build_graph

    app = build_graph(home=str(tmp_path), cache_enabled=False, embeddings="hash")
    store = TodoStore(tmp_path / "todos.sqlite")
    disagreements: dict[str, str | None] = {}
    planned = correct = 0
    for item in dataset:
        user = f"eval-{item.id}"
        apply_setup(store, user, item)
        response = app.invoke({"prompt": item.request, "user_id": user})["response"]
        verdict = score(item, response, store.list(user)["todos"])
        correct += verdict.correct
        if item.expect.refused:
            assert verdict.correct, (item.id, verdict.reason)
        if response["status"] == "completed":
            planned += 1
            if not verdict.correct:
                disagreements[item.id] = verdict.reason
    assert set(disagreements) == KNOWN_RULE_PLANNER_ERRORS, disagreements
    # The rules plan most of the dataset (last measured: 109 of 158 planned, 135 of 158 right);
    # should they stop, this check would check little.
    assert planned >= len(dataset) // 2, (planned, correct)


def test_articles_do_not_make_another_todo_but_other_words_do() -> None:
    assert normalise_text("Renew the passport.") == normalise_text("renew passport")
    assert normalise_text("buy an apple") == normalise_text("Buy apple")
    assert normalise_text("renew my passport") != normalise_text("renew passport")
    assert normalise_text("theatre tickets") == "theatre tickets"  # only whole words go
