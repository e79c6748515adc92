"""Tests for the SQLite todo store and its ``todo_store`` LangChain tool."""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from graph.errors import ToolError
from tools.todo_store import TodoError, TodoStore, TodoStoreInput, make_todo_tool


@pytest.fixture
def store(tmp_path: Path) -> TodoStore:
    return TodoStore(tmp_path / "data" / "todos.db")


def _texts(store: TodoStore, user: str = "u") -> list[str]:
    return [t["text"] for t in store.list(user)["todos"]]


def _raises(reason: str, fn: Any, *args: Any, **kwargs: Any) -> TodoError:
    with pytest.raises(TodoError) as info:
        fn(*args, **kwargs)
    assert info.value.reason == reason, str(info.value)
    assert info.value.tool == "todo_store"
    return info.value


# --- actions -------------------------------------------------------------------------


def test_add_returns_the_todo(store: TodoStore) -> None:
    todo = store.add("u", "call the dentist")
    assert set(todo) == {"id", "text", "completed", "created_at"}
    assert todo["id"] == "1"
    assert todo["text"] == "call the dentist"
    assert todo["completed"] is False
    created = datetime.fromisoformat(todo["created_at"])
    assert created.utcoffset() == timedelta(0)


def test_add_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "todos.db"
    TodoStore(path).add("u", "x")
    assert path.exists()


def test_list_is_ordered_by_id(store: TodoStore) -> None:
    assert store.list("u") == {"todos": []}
    for text in ["one", "two", "three"]:
        store.add("u", text)
    todos = store.list("u")["todos"]
    assert [t["id"] for t in todos] == ["1", "2", "3"]
    assert [t["text"] for t in todos] == ["one", "two", "three"]


def test_get_by_id(store: TodoStore) -> None:
    added = store.add("u", "buy milk")
    assert store.get("u", todo_id="1") == added


def test_complete_by_id_is_idempotent(store: TodoStore) -> None:
    store.add("u", "buy milk")
    done = store.complete("u", todo_id="1")
    assert done["completed"] is True
    assert store.complete("u", todo_id="1") == done
    assert store.get("u", todo_id="1")["completed"] is True


def test_delete_returns_the_todo_and_ids_are_never_reused(store: TodoStore) -> None:
    store.add("u", "a")
    second = store.add("u", "b")
    assert store.delete("u", todo_id="2") == second
    assert _texts(store) == ["a"]
    _raises("not_found", store.get, "u", todo_id="2")
    assert store.add("u", "c")["id"] == "3"


def test_database_uses_wal(store: TodoStore) -> None:
    store.add("u", "x")
    with closing(sqlite3.connect(store.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- run dispatch --------------------------------------------------------------------


def test_run_dispatches_every_action(store: TodoStore) -> None:
    assert store.run("u", "add", text="buy milk")["id"] == "1"
    assert store.run("u", "list")["todos"][0]["text"] == "buy milk"
    assert store.run("u", "get", todo_id="1")["text"] == "buy milk"
    assert store.run("u", "complete", text="milk")["completed"] is True
    assert store.run("u", "delete", todo_id="#1")["id"] == "1"
    assert store.run("u", "list") == {"todos": []}


@pytest.mark.parametrize("action", ["archive", "", "DROP TABLE todos", None, 3])
def test_run_refuses_unknown_actions(store: TodoStore, action: Any) -> None:
    error = _raises("invalid_action", store.run, "u", action)
    assert "add, list, get, complete, delete" in str(error)


def test_run_add_without_text(store: TodoStore) -> None:
    _raises("missing_argument", store.run, "u", "add")


@pytest.mark.parametrize("action", ["get", "complete", "delete"])
def test_selector_needs_id_or_text(store: TodoStore, action: str) -> None:
    store.add("u", "x")
    _raises("missing_argument", store.run, "u", action)
    _raises("missing_argument", store.run, "u", action, text="   ")
    assert _texts(store) == ["x"]


# --- matching by text ----------------------------------------------------------------


@pytest.fixture
def stocked(store: TodoStore) -> TodoStore:
    for text in ["buy milk", "call the dentist", "Water the plants", "milk the cow"]:
        store.add("u", text)
    return store


def test_exact_match_wins_over_substring(stocked: TodoStore) -> None:
    # "buy milk" would also match "milk the cow" by stemmed words; exact wins outright.
    assert stocked.get("u", text="  BUY   milk ")["id"] == "1"


def test_exact_duplicates_are_ambiguous(store: TodoStore) -> None:
    # Replaces a test that pinned "the first exact match is taken", a silent guess.
    store.add("u", "buy milk")
    store.add("u", "Buy Milk")
    error = _raises("ambiguous", store.get, "u", text="buy milk")
    assert str(error) == "'buy milk' matches 2 todos: #1 buy milk, #2 Buy Milk. Say which by id."
    _raises("ambiguous", store.delete, "u", text="buy milk")
    # Both are open, so complete cannot pick either.
    _raises("ambiguous", store.complete, "u", text="buy milk")
    assert _texts(store) == ["buy milk", "Buy Milk"]
    assert not any(t["completed"] for t in store.list("u")["todos"])


def test_delete_of_exact_duplicates_one_done_is_ambiguous(store: TodoStore) -> None:
    store.add("u", "buy milk")
    store.add("u", "buy milk")
    store.complete("u", todo_id="1")
    error = _raises("ambiguous", store.delete, "u", text="buy milk")
    assert "#1 buy milk" in str(error) and "#2 buy milk" in str(error)
    assert [t["id"] for t in store.list("u")["todos"]] == ["1", "2"]
    _raises("ambiguous", store.get, "u", text="buy milk")
    # complete takes the only open one.
    assert store.complete("u", text="buy milk")["id"] == "2"


def test_complete_of_exact_duplicates_all_done_is_ambiguous(store: TodoStore) -> None:
    store.add("u", "buy milk")
    store.add("u", "buy milk")
    store.complete("u", todo_id="1")
    store.complete("u", todo_id="2")
    _raises("ambiguous", store.complete, "u", text="buy milk")


def test_substring_match(stocked: TodoStore) -> None:
    assert stocked.get("u", text="dentist")["id"] == "2"
    assert stocked.get("u", text="the dentist")["id"] == "2"
    assert stocked.get("u", text="my dentist")["id"] == "2"
    assert stocked.get("u", text="the plants")["id"] == "3"


def test_run_match_needs_contiguous_whole_words_unstemmed(store: TodoStore) -> None:
    store.add("u", "buy bread")
    store.add("u", "call the dentist")
    assert store.get("u", text="bread")["id"] == "1"
    assert store.get("u", text="buy bread")["id"] == "1"
    assert store.get("u", text="the dentist")["id"] == "2"
    # Out of order is not a run, and not the same word set either.
    _raises("not_found", store.get, "u", text="dentist call today")


def test_stemmed_word_match(stocked: TodoStore) -> None:
    assert stocked.get("u", text="buying milk")["id"] == "1"
    assert stocked.get("u", text="plant watering")["id"] == "3"
    assert stocked.get("u", text="called my dentist")["id"] == "2"


def test_ambiguous_match_names_candidates(stocked: TodoStore) -> None:
    error = _raises("ambiguous", stocked.complete, "u", text="milk")
    assert str(error) == "'milk' matches 2 todos: #1 buy milk, #4 milk the cow. Say which by id."
    assert not any(t["completed"] for t in stocked.list("u")["todos"])


def test_no_match_lists_todos(stocked: TodoStore) -> None:
    error = _raises("not_found", stocked.delete, "u", text="walk the dog")
    message = str(error)
    assert message.startswith("No todo matches 'walk the dog'.")
    assert "#1 buy milk" in message and "#4 milk the cow" in message
    assert len(stocked.list("u")["todos"]) == 4


def test_no_match_lists_at_most_five(store: TodoStore) -> None:
    for i in range(8):
        store.add("u", f"task {i}")
    message = str(_raises("not_found", store.get, "u", text="zebra"))
    assert "#5 task 4" in message and "#6" not in message
    assert "3 more" in message


def test_no_match_with_empty_list(store: TodoStore) -> None:
    assert "You have no todos." in str(_raises("not_found", store.get, "u", text="milk"))


def test_stop_words_alone_match_nothing(stocked: TodoStore) -> None:
    _raises("not_found", stocked.get, "u", text="to my of")


def test_complete_prefers_open_todos(store: TodoStore) -> None:
    store.add("u", "buy milk")
    store.add("u", "buy milk for the cat")
    store.complete("u", todo_id="1")
    assert store.complete("u", text="milk")["id"] == "2"
    # Completing a done todo by text still finds it.
    assert store.complete("u", text="buy milk")["id"] == "1"
    # get and delete consider all todos.
    _raises("ambiguous", store.get, "u", text="milk")
    _raises("ambiguous", store.delete, "u", text="milk")


@pytest.fixture
def lookalikes(store: TodoStore) -> TodoStore:
    for text in ["read", "start taxes", "call Ann"]:
        store.add("u", text)
    return store


@pytest.mark.parametrize("query", ["bread", "art", "star", "ann-marie"])
def test_containment_is_on_whole_words(lookalikes: TodoStore, query: str) -> None:
    # Character substrings are not words: "bread" is not "read", "art" is not "start taxes".
    _raises("not_found", lookalikes.delete, "u", text=query)
    assert _texts(lookalikes) == ["read", "start taxes", "call Ann"]


def test_longer_query_does_not_name_a_shorter_word(lookalikes: TodoStore) -> None:
    _raises("not_found", lookalikes.complete, "u", text="call annabelle")
    assert not any(t["completed"] for t in lookalikes.list("u")["todos"])


def test_whole_word_containment_still_matches(lookalikes: TodoStore) -> None:
    assert lookalikes.get("u", text="read")["id"] == "1"
    assert lookalikes.get("u", text="READ!")["id"] == "1"
    assert lookalikes.get("u", text="start")["id"] == "2"
    assert lookalikes.get("u", text="starting taxes")["id"] == "2"
    assert lookalikes.get("u", text="call Ann")["id"] == "3"


@pytest.mark.parametrize("query", ["please call Ann today", "I must read", "call annabelle"])
def test_todo_inside_a_longer_query_is_not_a_match(lookalikes: TodoStore, query: str) -> None:
    # Formerly "please call Ann today" found "call Ann" and "I must read" deleted "read":
    # a todo's words inside a longer query no longer name it.
    _raises("not_found", lookalikes.delete, "u", text=query)
    assert _texts(lookalikes) == ["read", "start taxes", "call Ann"]


def test_containment_needs_a_content_word(stocked: TodoStore) -> None:
    # "the" is a whole word of two todos, but stop words alone name nothing.
    _raises("not_found", stocked.get, "u", text="the")


def test_exact_match_beats_open_preference(store: TodoStore) -> None:
    store.add("u", "buy milk")
    store.add("u", "buy milk and eggs")
    store.complete("u", todo_id="1")
    done = store.complete("u", text="buy milk")
    assert (done["id"], done["completed"]) == ("1", True)
    assert [t["completed"] for t in store.list("u")["todos"]] == [True, False]
    # Fuzzy matches still prefer open todos.
    assert store.complete("u", text="milk")["id"] == "2"


def test_complete_takes_the_open_one_of_exact_duplicates(store: TodoStore) -> None:
    store.add("u", "buy milk")
    store.add("u", "Buy Milk")
    store.complete("u", todo_id="1")
    assert store.complete("u", text="buy milk")["id"] == "2"
    _raises("ambiguous", store.get, "u", text="buy milk")


@pytest.mark.parametrize(
    ("todo", "query"),
    [
        ("walk the dog in the park", "parking"),
        ("meet Sarah for lunch", "the meeting"),
        ("confirm the hotel booking", "books"),
        ("buy new shoes", "the news"),
    ],
)
@pytest.mark.parametrize("action", ["get", "complete", "delete"])
def test_stemming_never_merges_different_words(
    store: TodoStore, action: str, todo: str, query: str
) -> None:
    store.add("u", todo)
    error = _raises("not_found", store.run, "u", action, text=query)
    assert str(error) == f"No todo matches '{query}'. Your todos: #1 {todo}."
    assert store.list("u")["todos"][0]["completed"] is False
    assert _texts(store) == [todo]


def test_stemmed_match_needs_the_same_word_set(store: TodoStore) -> None:
    store.add("u", "buy milk")
    store.add("u", "call the dentist")
    store.add("u", "walk the dog in the park")
    assert store.complete("u", text="buying milk")["id"] == "1"
    assert store.get("u", text="calling the dentist")["id"] == "2"
    assert store.get("u", text="walking dogs park")["id"] == "3"
    _raises("not_found", store.get, "u", text="walking dogs")  # a subset is not enough
    _raises("not_found", store.get, "u", text="buying milk today")  # nor a superset


@pytest.mark.parametrize(
    ("todos", "query"),
    [
        (["buy milk", "pay rent"], "milk and pay rent"),
        (["email Bob"], "email Bob the report"),
        (["call mom"], "call mom and dad"),
        (["call Ann"], "call annabelle"),
    ],
)
@pytest.mark.parametrize("action", ["get", "complete", "delete"])
def test_query_naming_more_than_a_todo_matches_nothing(
    store: TodoStore, action: str, todos: list[str], query: str
) -> None:
    for text in todos:
        store.add("u", text)
    error = _raises("not_found", store.run, "u", action, text=query)
    listed = ", ".join(f"#{i} {text}" for i, text in enumerate(todos, 1))
    assert str(error) == f"No todo matches '{query}'. Your todos: {listed}."
    assert _texts(store) == todos
    assert not any(t["completed"] for t in store.list("u")["todos"])


def test_complete_prefers_open_todos_before_looser_steps(store: TodoStore) -> None:
    store.add("u", "buying milk today")
    store.add("u", "buy milk")
    store.complete("u", todo_id="1")
    # The done todo is a run match, the open one a same-words match; the open one wins.
    assert store.complete("u", text="buying milk")["id"] == "2"
    # get has no open preference: the run match decides.
    assert store.get("u", text="buying milk")["id"] == "1"


def test_todo_id_wins_over_text(stocked: TodoStore) -> None:
    assert stocked.get("u", todo_id="2", text="milk")["id"] == "2"


# --- ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["3", " 3 ", "#3", "# 3", "03", "\t#3\n"])
def test_id_normalisation(store: TodoStore, raw: str) -> None:
    for text in ["a", "b", "c"]:
        store.add("u", text)
    assert store.get("u", todo_id=raw)["text"] == "c"


def test_integer_id_from_python_callers(store: TodoStore) -> None:
    store.add("u", "a")
    assert store.get("u", todo_id=1)["text"] == "a"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw", ["three", "", "  ", "3a", "-1", "1.0", "#", "٣", "1; DROP TABLE todos", "' OR 1=1 --"]
)
def test_non_numeric_ids_are_refused(store: TodoStore, raw: str) -> None:
    store.add("u", "keep me")
    error = _raises("invalid_id", store.delete, "u", todo_id=raw)
    assert "not a todo id" in str(error)
    assert _texts(store) == ["keep me"]


@pytest.mark.parametrize("raw", ["7", "0", "9" * 40])
def test_unknown_ids(store: TodoStore, raw: str) -> None:
    store.add("u", "keep me")
    error = _raises("not_found", store.complete, "u", todo_id=raw)
    assert str(error).startswith("You have no todo with id")
    assert store.get("u", todo_id="1")["completed"] is False


def test_unknown_id_message(store: TodoStore) -> None:
    assert str(_raises("not_found", store.get, "u", todo_id="7")) == "You have no todo with id 7."


# --- users ---------------------------------------------------------------------------


def test_users_are_isolated(store: TodoStore) -> None:
    store.add("alice", "alice's secret")
    store.add("bob", "bob's chore")
    assert _texts(store, "alice") == ["alice's secret"]
    assert _texts(store, "bob") == ["bob's chore"]
    # Each user numbers from 1, and bob's id 1 is not alice's todo 1.
    assert store.get("bob", todo_id="1")["text"] == "bob's chore"
    store.complete("bob", todo_id="1")
    store.delete("bob", todo_id="1")
    assert store.get("alice", todo_id="1")["completed"] is False
    _raises("not_found", store.get, "bob", text="secret")
    _raises("not_found", store.get, "carol", todo_id="1")


@pytest.mark.parametrize("user", ["", "   ", "x" * 201, None])
def test_bad_user_ids(store: TodoStore, user: Any) -> None:
    _raises("invalid_id", store.add, user, "x")
    _raises("invalid_id", store.list, user)


def test_long_but_valid_user_id(store: TodoStore) -> None:
    store.add("x" * 200, "ok")
    assert _texts(store, "x" * 200) == ["ok"]


# --- persistence ---------------------------------------------------------------------


def test_todos_persist_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "todos.db"
    first = TodoStore(path)
    first.add("u", "buy milk")
    first.add("u", "gone")
    first.delete("u", todo_id="2")
    second = TodoStore(path)
    assert _texts(second) == ["buy milk"]
    second.complete("u", text="milk")
    assert second.add("u", "next")["id"] == "3"
    assert first.get("u", todo_id="1")["completed"] is True


# --- hostile and unusual input -------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["1; DROP TABLE todos", "' OR 1=1 --", "x'); DELETE FROM todos; --", "%_*"]
)
def test_sql_injection_text_is_stored_verbatim(store: TodoStore, text: str) -> None:
    store.add("other", "must survive")
    todo = store.add("u", text)
    assert store.get("u", todo_id=todo["id"])["text"] == text
    assert store.get("u", text=text)["id"] == todo["id"]
    assert _texts(store, "other") == ["must survive"]
    with closing(sqlite3.connect(store.path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM todos").fetchone()[0] == 2


def test_sql_injection_user_id_is_just_a_name(store: TodoStore) -> None:
    store.add("u", "must survive")
    store.add("' OR 1=1 --", "x")
    assert _texts(store, "' OR 1=1 --") == ["x"]
    assert _texts(store) == ["must survive"]


def test_one_megabyte_text_is_refused(store: TodoStore) -> None:
    error = _raises("invalid_text", store.add, "u", "a" * 1_000_000)
    assert "500" in str(error) and len(str(error)) < 200
    assert store.list("u") == {"todos": []}


def test_text_length_limit(store: TodoStore) -> None:
    assert len(store.add("u", "a" * 500)["text"]) == 500
    _raises("invalid_text", store.add, "u", "a" * 501)
    # The limit applies after whitespace is collapsed.
    assert store.add("u", "  b  " + " " * 2000)["text"] == "b"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00\x07"])
def test_empty_text_is_refused(store: TodoStore, text: str) -> None:
    _raises("invalid_text", store.add, "u", text)
    assert store.list("u") == {"todos": []}


def test_non_string_text_is_refused(store: TodoStore) -> None:
    _raises("invalid_text", store.add, "u", None)
    _raises("invalid_text", store.add, "u", 42)


def test_whitespace_and_control_characters(store: TodoStore) -> None:
    todo = store.add("u", "  buy\tmilk\n\nand\x00 eggs\x1b  ")
    assert todo["text"] == "buy milk and eggs"


@pytest.mark.parametrize(
    "text",
    ["🦀 feed the crab 🦀", "👩‍👩‍👧 family dinner", "اتصل بطبيب الأسنان", "牙医预约", "café ﬁne"],
)
def test_unicode_round_trips(store: TodoStore, text: str) -> None:
    todo = store.add("u", text)
    assert todo["text"] == text
    assert store.get("u", todo_id=todo["id"])["text"] == text
    assert store.get("u", text=text)["id"] == todo["id"]
    assert TodoStore(store.path).list("u")["todos"][0]["text"] == text


def test_lone_surrogates_are_dropped(store: TodoStore) -> None:
    assert store.add("u", "buy \ud800milk")["text"] == "buy milk"


def test_todo_error_is_a_tool_error() -> None:
    error = TodoError("not_found", "gone")
    assert isinstance(error, ToolError)
    assert (error.tool, error.reason, str(error)) == ("todo_store", "not_found", "gone")


def test_todo_error_pickles() -> None:
    # Errors raised in worker processes must cross back to the parent intact.
    error = pickle.loads(pickle.dumps(TodoError("ambiguous", "which one?")))
    assert (error.tool, error.reason, str(error)) == ("todo_store", "ambiguous", "which one?")


def test_storage_errors_become_todo_errors(tmp_path: Path) -> None:
    not_a_db = tmp_path / "todos.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    error = _raises("storage", TodoStore(not_a_db).list, "u")
    assert isinstance(error.__cause__, sqlite3.Error)


# --- concurrency ---------------------------------------------------------------------


def test_fifty_threads_add_concurrently(store: TodoStore) -> None:
    with ThreadPoolExecutor(max_workers=50) as pool:
        added = list(pool.map(lambda i: store.add("u", f"todo {i}"), range(50)))
    assert sorted(int(t["id"]) for t in added) == list(range(1, 51))
    todos = store.list("u")["todos"]
    assert [t["id"] for t in todos] == [str(i) for i in range(1, 51)]
    assert sorted(t["text"] for t in todos) == sorted(f"todo {i}" for i in range(50))


def _add_ten(path: str, worker: int) -> list[str]:
    store = TodoStore(path)
    return [store.add("u", f"worker {worker} todo {i}")["id"] for i in range(10)]


def test_four_processes_add_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "shared" / "todos.db")
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=4) as pool:
        results = pool.starmap(_add_ten, [(path, worker) for worker in range(4)])
    ids = [todo_id for result in results for todo_id in result]
    assert sorted(int(i) for i in ids) == list(range(1, 41))
    assert len(TodoStore(path).list("u")["todos"]) == 40


# --- LangChain tool ------------------------------------------------------------------


def test_tool_invoke(store: TodoStore) -> None:
    tool = make_todo_tool(store)
    assert tool.name == "todo_store"
    todo = tool.invoke({"action": "add", "text": "x", "user_id": "u"})
    assert todo["text"] == "x" and todo["id"] == "1"
    assert tool.invoke({"action": "list", "user_id": "u"}) == {"todos": [todo]}
    assert tool.invoke({"action": "get", "todo_id": 1, "user_id": "u"}) == todo
    assert store.list("default") == {"todos": []}


def test_tool_schema_hides_user_id(store: TodoStore) -> None:
    tool = make_todo_tool(store)
    assert tool.args_schema is TodoStoreInput
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"action", "text", "todo_id"}
    assert schema["required"] == ["action"]
    assert "todo_id" in tool.description and "complete" in tool.description


def test_tool_errors_propagate(store: TodoStore) -> None:
    tool = make_todo_tool(store)
    with pytest.raises(TodoError) as info:
        tool.invoke({"action": "get", "todo_id": "7", "user_id": "u"})
    assert info.value.reason == "not_found"


def test_tool_schema_rejects_extra_fields(store: TodoStore) -> None:
    tool = make_todo_tool(store)
    with pytest.raises(ValueError):
        tool.invoke({"action": "list", "user_id": "u", "priority": "high"})
