"""The labeled requests of `crane eval`: loading them strictly, preparing todos, scoring one run."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, TypeGuard, cast, get_args

from tools.todo_store import TodoStore

__all__ = [
    "CATEGORIES",
    "DATASET_PATH",
    "TODO_ACTIONS",
    "TOOLS",
    "Category",
    "EvalItem",
    "Expectation",
    "ExpectedTodo",
    "PlanCall",
    "SetupTodo",
    "Verdict",
    "apply_setup",
    "load_dataset",
    "normalise_text",
    "score",
]

DATASET_PATH: Final = Path(__file__).resolve().parent / "data" / "eval_requests.jsonl"
"""The packaged dataset (`graph/data/eval_requests.jsonl`, shipped as package data)."""

Category = Literal["calculator", "todo", "chain", "refuse"]
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)

TOOLS: Final = ("calculator", "todo_store")
TODO_ACTIONS: Final = ("add", "list", "get", "complete", "delete")
_CHANGING_ACTIONS: Final = frozenset({"add", "complete", "delete"})

# Both tolerances: a float answer may differ in its last bits, and 0 must still equal 0.
_REL_TOL: Final = 1e-6
_ABS_TOL: Final = 1e-9

_ITEM_KEYS: Final = frozenset({"id", "request", "category", "setup", "expect"})
_EXPECT_KEYS: Final = frozenset(
    {"answer", "todos", "answer_todo", "answer_list", "refused", "plan"}
)
_TODO_KEYS: Final = frozenset({"text", "completed"})
# Apostrophes are dropped rather than turned into spaces, so "don't" and "dont" agree, while a
# hyphen or slash separates words, so "follow-up" and "follow up" agree.
_APOSTROPHES: Final = frozenset("'’‘`´")


@dataclass(frozen=True)
class SetupTodo:
    """A todo created before the run, in file order (so the first one gets id "1").

    Attributes:
        text: The todo's text.
        completed: Whether it is marked done before the run.
    """

    text: str
    completed: bool


@dataclass(frozen=True)
class ExpectedTodo:
    """One todo of the expected final list.

    Attributes:
        texts: Accepted texts (alternatives), compared after `normalise_text`.
        completed: Whether it must be marked done.
    """

    texts: tuple[str, ...]
    completed: bool


@dataclass(frozen=True)
class PlanCall:
    """One step of an expected plan: the tool and, for `todo_store`, the action.

    Attributes:
        tool: `calculator` or `todo_store`.
        action: The todo action (`add`, `list`, ...); None for the calculator.
    """

    tool: str
    action: str | None = None


@dataclass(frozen=True)
class Expectation:
    """What a run of an item must achieve; unset fields are not checked.

    Attributes:
        answer: The number the last step must output.
        todos: The whole final todo list of the user, in any order.
        answer_todo: Accepted texts of the todo the last step must output.
        answer_list: The last step must output a `{"todos": [...]}` list.
        refused: The run must fail without any step that adds, completes or deletes a todo,
            leaving the todo list as the setup made it.
        plan: The expected tool (and todo action) sequence, reported apart from correctness.
    """

    answer: int | float | None = None
    todos: tuple[ExpectedTodo, ...] | None = None
    answer_todo: tuple[str, ...] | None = None
    answer_list: bool = False
    refused: bool = False
    plan: tuple[PlanCall, ...] | None = None


@dataclass(frozen=True)
class EvalItem:
    """One labeled request.

    Attributes:
        id: Unique id, e.g. `calc-001`.
        request: What the person types.
        category: `calculator`, `todo`, `chain` (several steps) or `refuse`.
        setup: Todos created, in order, for a fresh user before the run.
        expect: What the run must achieve.
    """

    id: str
    request: str
    category: Category
    setup: tuple[SetupTodo, ...]
    expect: Expectation

    @property
    def multi_step(self) -> bool:
        """Whether the expected plan has more than one step."""
        return self.expect.plan is not None and len(self.expect.plan) > 1


@dataclass
class Verdict:
    """How one run of an item was judged.

    Attributes:
        correct: The run achieved everything the item expects.
        plan_matches: The planned tool sequence equals the expected one; None when the item
            gives no plan.
        reason: Why the run is wrong (or its plan differs), briefly, for a report; None when
            it is right and its plan matches.
    """

    correct: bool
    plan_matches: bool | None
    reason: str | None


# --- Loading ------------------------------------------------------------------------------


class _LineError(Exception):
    """A problem of one line, given its file and line number by `load_dataset`."""


def _fail(message: str) -> NoReturn:
    raise _LineError(message)


def _object(value: Any, where: str, allowed: frozenset[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(f"{where} must be an object, not {_kind(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        _fail(f"unknown key(s) in {where}: {', '.join(unknown)}")
    missing = sorted(required - set(value))
    if missing:
        _fail(f"missing key(s) in {where}: {', '.join(missing)}")
    return cast(dict[str, Any], value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{where} must be a non-empty string, not {_kind(value)}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(f"{where} must be true or false, not {_kind(value)}")
    return value


def _alternatives(value: Any, where: str) -> tuple[str, ...]:
    """Read a text or a non-empty list of alternative texts, each with words to compare."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        _fail(f"{where} must be a string or a non-empty list of strings, not {_kind(value)}")
    for index, text in enumerate(texts):
        _text(text, f"{where}[{index}]" if texts is value else where)
        if not normalise_text(text):
            _fail(f"{where} {text!r} has no words to compare")
    return tuple(texts)


def _number(value: Any, where: str) -> int | float:
    if not _is_number(value):
        _fail(f"{where} must be a finite number, not {_kind(value)}")
    return value


def _todo_objects(value: Any, name: str) -> list[tuple[Any, str, bool]]:
    """Read a list of {"text", "completed"} objects: each raw text, where it is, and its flag."""
    if not isinstance(value, list):
        _fail(f"'{name}' must be a list, not {_kind(value)}")
    read = []
    for index, raw in enumerate(value):
        where = f"{name}[{index}]"
        todo = _object(raw, where, _TODO_KEYS, set(_TODO_KEYS))
        read.append((todo["text"], f"{where}.text", _flag(todo["completed"], f"{where}.completed")))
    return read


def _setup(value: Any) -> tuple[SetupTodo, ...]:
    return tuple(SetupTodo(_text(t, w), done) for t, w, done in _todo_objects(value, "setup"))


def _expected_todos(value: Any) -> tuple[ExpectedTodo, ...]:
    return tuple(
        ExpectedTodo(_alternatives(t, w), done)
        for t, w, done in _todo_objects(value, "expect.todos")
    )


def _plan(value: Any) -> tuple[PlanCall, ...]:
    if not isinstance(value, list) or not value:
        _fail(f"'expect.plan' must be a non-empty list, not {_kind(value)}")
    calls = []
    for index, raw in enumerate(value):
        where = f"expect.plan[{index}]"
        if raw == ["calculator"]:
            calls.append(PlanCall("calculator"))
        elif isinstance(raw, list) and len(raw) == 2 and raw[0] == "todo_store":
            if raw[1] not in TODO_ACTIONS:
                _fail(f"{where}: unknown todo action {raw[1]!r}; use one of {TODO_ACTIONS}")
            calls.append(PlanCall("todo_store", raw[1]))
        else:
            _fail(f'{where} must be ["calculator"] or ["todo_store", ACTION], not {raw!r}')
    return tuple(calls)


def _expectation(value: Any) -> Expectation:
    expect = _object(value, "'expect'", _EXPECT_KEYS, set())
    if "refused" in expect and expect["refused"] is not True:
        _fail("'expect.refused' must be true when present")
    if "answer_list" in expect and expect["answer_list"] is not True:
        _fail("'expect.answer_list' must be true when present")
    answers = sorted({"answer", "answer_todo", "answer_list"} & set(expect))
    if len(answers) > 1:
        _fail(f"'expect' has more than one answer check: {', '.join(answers)}")
    if "refused" in expect and set(expect) != {"refused"}:
        # A refusal leaves the setup untouched and runs no plan: nothing else can be expected.
        _fail("a refused item expects nothing else ('answer', 'todos', 'plan', ...)")
    if expect.get("answer_list") and "todos" not in expect:
        _fail("'expect.answer_list' needs 'expect.todos' to say what the list holds")
    if not ({"answer", "answer_todo", "todos", "refused"} & set(expect)):
        _fail("'expect' has nothing to check: give 'answer', 'todos', 'answer_todo' or 'refused'")
    return Expectation(
        answer=_number(expect["answer"], "'expect.answer'") if "answer" in expect else None,
        todos=_expected_todos(expect["todos"]) if "todos" in expect else None,
        answer_todo=(
            _alternatives(expect["answer_todo"], "'expect.answer_todo'")
            if "answer_todo" in expect
            else None
        ),
        answer_list="answer_list" in expect,
        refused="refused" in expect,
        plan=_plan(expect["plan"]) if "plan" in expect else None,
    )


def _item(value: Any) -> EvalItem:
    item = _object(value, "the item", _ITEM_KEYS, {"id", "request", "category", "expect"})
    item_id = _text(item["id"], "'id'")
    if item_id != item_id.strip() or any(ch.isspace() for ch in item_id):
        _fail(f"'id' {item_id!r} must not contain whitespace")
    category = item["category"]
    if category not in CATEGORIES:
        _fail(f"'category' must be one of {', '.join(CATEGORIES)}, not {category!r}")
    expect = _expectation(item["expect"])
    if category == "refuse" and not expect.refused:
        _fail("an item of category 'refuse' must expect 'refused': true")
    return EvalItem(
        id=item_id,
        request=_text(item["request"], "'request'"),
        category=cast(Category, category),
        setup=_setup(item.get("setup", [])),
        expect=expect,
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        _fail(f"duplicate key(s) {', '.join(duplicates)}")
    return dict(pairs)


def _no_constant(name: str) -> NoReturn:
    _fail(f"{name} is not a number JSON allows")


def load_dataset(path: Path | None = None) -> list[EvalItem]:
    """Read and strictly check a JSONL dataset (by default the packaged one).

    Blank lines are skipped; every other line must be one item.

    Raises:
        ValueError: a line is not JSON, has unknown or missing keys or values of the wrong
            type, repeats an id, or checks nothing; the message names the file and line.
            Also when the file cannot be read or holds no item.
    """
    path = DATASET_PATH if path is None else path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the dataset ({exc})") from exc
    items: list[EvalItem] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            try:
                value = json.loads(
                    line, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant
                )
            except json.JSONDecodeError as exc:
                _fail(f"not valid JSON ({exc.msg}, column {exc.colno})")
            item = _item(value)
            if item.id in first_line:
                _fail(f"duplicate id {item.id!r} (first on line {first_line[item.id]})")
        except _LineError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        first_line[item.id] = number
        items.append(item)
    if not items:
        raise ValueError(f"{path}: the dataset has no items")
    return items


# --- Setup --------------------------------------------------------------------------------


def apply_setup(todos: TodoStore, user_id: str, item: EvalItem) -> None:
    """Create `item`'s setup todos for `user_id`, in order, completing those marked done.

    The ids the setup's requests name ("todo 2") are the store's: "1", "2", ... for a user who
    never had a todo, so give each item a fresh `user_id`.

    Raises:
        ValueError: `user_id` already has todos, which the expectations would not account for.
        TodoError: the store refused a todo or could not be written.
    """
    if todos.list(user_id)["todos"]:
        raise ValueError(f"user {user_id!r} already has todos; use a fresh user per item")
    for setup in item.setup:
        added = todos.add(user_id, setup.text)
        if setup.completed:
            todos.complete(user_id, todo_id=added["id"])


# --- Scoring ------------------------------------------------------------------------------


_ARTICLES = frozenset({"a", "an", "the"})


def normalise_text(text: str) -> str:
    """Fold a todo text for comparison: casefolded, punctuation and articles dropped.

    "Renew the passport." and "renew passport" compare equal: a model that drops or adds an
    article has kept the person's todo; any other changed word makes another todo.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = (
        "" if ch in _APOSTROPHES else " " if unicodedata.category(ch).startswith("P") else ch
        for ch in folded
    )
    return " ".join(w for w in "".join(kept).split() if w not in _ARTICLES)


def score(item: EvalItem, response: dict[str, Any], todos_after: list[dict[str, Any]]) -> Verdict:
    """Judge one run of `item` from its response dict and the user's final todo list.

    Args:
        item: The labeled request.
        response: The run's `response` (see the contract: status, answer, steps, plan).
        todos_after: `TodoStore.list(user_id)["todos"]` after the run.

    Returns:
        The verdict. A malformed response (missing keys, wrong types) is a wrong answer with
        a reason, never an exception.
    """
    if not isinstance(response, dict):
        return Verdict(False, _plan_matches(item, None), f"the response is {_kind(response)}")
    plan_matches = _plan_matches(item, response)
    if item.expect.refused:
        problems = _refusal_problems(item, response, todos_after)
    else:
        problems = _answer_problems(item, response, todos_after)
    notes = list(problems)
    if plan_matches is False and item.expect.plan is not None:
        want = ", ".join(_call_label(c) for c in item.expect.plan)
        got = _planned_calls(response)
        seen = "no plan" if got is None else ", ".join(_call_label(c) for c in got) or "no steps"
        notes.append(f"plan differs: expected [{want}], got [{seen}]")
    return Verdict(correct=not problems, plan_matches=plan_matches, reason="; ".join(notes) or None)


def _refusal_problems(
    item: EvalItem, response: dict[str, Any], todos_after: list[dict[str, Any]]
) -> list[str]:
    problems = []
    status = response.get("status")
    if status != "failed":
        problems.append(f"expected a refusal, but the run ended with status {status!r}")
    steps = response.get("steps")
    if not isinstance(steps, list):
        problems.append(f"the response's 'steps' is {_kind(steps)}, not a list")
    else:
        changed = [_step_label(s) for s in steps if _changes_todos(s)]
        if changed:
            problems.append(f"a refused request changed todos ({', '.join(changed)})")
    expected = tuple(ExpectedTodo((s.text,), s.completed) for s in item.setup)
    if (difference := _todo_list_difference(expected, todos_after)) is not None:
        problems.append(f"the todo list no longer equals the setup: {difference}")
    return problems


def _answer_problems(
    item: EvalItem, response: dict[str, Any], todos_after: list[dict[str, Any]]
) -> list[str]:
    expect = item.expect
    status = response.get("status")
    if status != "completed":
        error = response.get("error")
        said = f": {_short(error)}" if isinstance(error, str) and error else ""
        return [f"the run ended with status {status!r}, not 'completed'{said}"]
    problems = []
    if expect.answer is not None or expect.answer_todo is not None or expect.answer_list:
        if "answer" not in response:
            problems.append("the response has no 'answer'")
        elif (problem := _answer_problem(expect, response["answer"])) is not None:
            problems.append(problem)
    if expect.todos is not None:
        if (difference := _todo_list_difference(expect.todos, todos_after)) is not None:
            problems.append(f"wrong todo list: {difference}")
    return problems


def _answer_problem(expect: Expectation, answer: Any) -> str | None:
    """Return why `answer` (the last step's output) is not the expected one, or None."""
    if expect.answer is not None:
        if not _is_number(answer):
            return f"expected the number {expect.answer}, got {_short(answer)}"
        if not _close(answer, expect.answer):
            return f"expected {expect.answer}, got {answer}"
    if expect.answer_todo is not None:
        text = answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            return f"expected the todo {expect.answer_todo[0]!r}, got {_short(answer)}"
        if not _text_matches(text, expect.answer_todo):
            return f"expected the todo {_either(expect.answer_todo)}, got the todo {text!r}"
    if expect.answer_list and not (
        isinstance(answer, dict) and isinstance(answer.get("todos"), list)
    ):
        return f"expected the todo list, got {_short(answer)}"
    return None


def _todo_list_difference(
    expected: Sequence[ExpectedTodo], actual: list[dict[str, Any]]
) -> str | None:
    """Match expected and actual todos one to one; describe what is unmatched, or None."""
    if not isinstance(actual, list):
        return f"the todo list is {_kind(actual)}"
    readable = [
        (todo["text"], todo["completed"])
        for todo in actual
        if isinstance(todo, dict)
        and isinstance(todo.get("text"), str)
        and isinstance(todo.get("completed"), bool)
    ]
    if len(readable) != len(actual):
        return "the todo list holds entries without a text and a completed flag"
    pairs = _max_matching(
        len(expected),
        len(readable),
        lambda i, j: (
            expected[i].completed == readable[j][1]
            and _text_matches(readable[j][0], expected[i].texts)
        ),
    )
    if len(pairs) == len(expected) == len(readable):
        return None
    matched_expected = {i for i, _ in pairs}
    matched_actual = {j for _, j in pairs}
    missing = [
        f"{_either(t.texts)} ({_state(t.completed)})"
        for i, t in enumerate(expected)
        if i not in matched_expected
    ]
    extra = [
        f"{text!r} ({_state(done)})"
        for j, (text, done) in enumerate(readable)
        if j not in matched_actual
    ]
    parts = [f"missing {', '.join(missing)}"] if missing else []
    parts += [f"unexpected {', '.join(extra)}"] if extra else []
    return "; ".join(parts)


def _max_matching(left: int, right: int, fits: Callable[[int, int], bool]) -> list[tuple[int, int]]:
    """Return a maximum one-to-one matching of `left` to `right` items (augmenting paths).

    Greedy matching is not enough once texts have alternatives: an expected "milk" / "buy
    milk" could take the todo that only another expectation accepts.
    """
    owner: dict[int, int] = {}  # right index -> left index

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(right):
            if j not in seen and fits(i, j):
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(left):
        augment(i, set())
    return sorted((i, j) for j, i in owner.items())


def _plan_matches(item: EvalItem, response: Any) -> bool | None:
    if item.expect.plan is None:
        return None
    got = _planned_calls(response) if isinstance(response, dict) else None
    return got is not None and tuple(got) == item.expect.plan


def _planned_calls(response: dict[str, Any]) -> list[PlanCall] | None:
    """Return the tool sequence of the response's plan, or None when it has no readable plan."""
    plan = response.get("plan")
    steps = plan.get("steps") if isinstance(plan, dict) else None
    if not isinstance(steps, list):
        return None
    calls = []
    for step in steps:
        if not isinstance(step, dict) or not isinstance(step.get("tool_name"), str):
            return None
        tool: str = step["tool_name"]
        if tool == "todo_store":
            calls.append(PlanCall(tool, _action(step)))
        else:
            calls.append(PlanCall(tool))
    return calls


def _action(step: dict[str, Any]) -> str | None:
    tool_input = step.get("tool_input")
    action = tool_input.get("action") if isinstance(tool_input, dict) else None
    # The tool itself reads the action case- and space-insensitively.
    return action.strip().lower() if isinstance(action, str) else None


def _changes_todos(step: Any) -> bool:
    """Whether an executed step added, completed or deleted a todo."""
    return (
        isinstance(step, dict)
        and step.get("tool_name") == "todo_store"
        and step.get("ok") is True
        and _action(step) in _CHANGING_ACTIONS
    )


def _step_label(step: dict[str, Any]) -> str:
    return f"step {step.get('step_number', '?')} {_action(step)}"


def _call_label(call: PlanCall) -> str:
    return call.tool if call.action is None else f"{call.tool}.{call.action}"


def _text_matches(text: str, alternatives: tuple[str, ...]) -> bool:
    folded = normalise_text(text)
    return any(folded == normalise_text(alternative) for alternative in alternatives)


def _is_number(value: Any) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    # math.isfinite would overflow on an int beyond the float range; every int is finite.
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _close(actual: int | float, expected: int | float) -> bool:
    try:
        return math.isclose(actual, expected, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
    except OverflowError:  # an int beyond the float range: equal only if exactly equal
        return actual == expected


def _either(texts: tuple[str, ...]) -> str:
    return " or ".join(repr(t) for t in texts)


def _state(completed: bool) -> str:
    return "done" if completed else "open"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any) -> str:
    """Show a value in a reason, shortened: responses may hold long lists or errors."""
    try:
        text = json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):  # circular structures
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
