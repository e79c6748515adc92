"""A per-user todo list kept in SQLite, exposed to the planner as the ``todo_store`` tool.

``get``, ``complete`` and ``delete`` without a ``todo_id`` find the todo by ``text``, and act
only on a todo the person clearly meant. Texts are compared casefolded, as whole words
(punctuation dropped), in three steps:

1. Exact: the whole text, whitespace normalised. Several exact duplicates are ambiguous,
   except that ``complete`` takes the only open one if exactly one is open.
2. Run: the query's content words (stop words dropped, no stemming) occur as a contiguous
   run of whole words in the todo: "bread" names "buy bread", "the dentist" names "call the
   dentist", but "bread" never names "read".
3. Same words: the set of the query's stemmed content words equals the todo's, so "buying
   milk" names "buy milk"; a subset is not enough ("parking" never names "walk the dog in
   the park").

The first step that matches anything decides: one todo is the answer, several raise
``ambiguous``. For steps 2 and 3, ``complete`` first tries open todos only, then all. A todo
is never found by its words appearing inside a longer query ("milk and pay rent" names
neither "buy milk" nor "pay rent"). No match raises ``not_found`` listing a few todos.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import sqlite3
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from graph.db import SqliteFile
from graph.errors import ToolError

__all__ = [
    "MAX_TEXT_LENGTH",
    "MAX_USER_ID_LENGTH",
    "TodoAction",
    "TodoError",
    "TodoStore",
    "TodoStoreInput",
    "make_todo_tool",
]

TOOL_NAME = "todo_store"
MAX_TEXT_LENGTH = 500
MAX_USER_ID_LENGTH = 200

# Inputs this far over the limit are refused before any normalisation work is spent on them.
_RAW_TEXT_LIMIT = 20 * MAX_TEXT_LENGTH
# Bound on anything echoed back in an error message, so a hostile input is never repeated whole.
_ECHO_LIMIT = 80
# Ids live in SQLite INTEGER columns; anything larger cannot exist and would overflow binding.
_MAX_SQLITE_INT = 2**63 - 1
_LISTED_IN_NOT_FOUND = 5
_LISTED_IN_AMBIGUOUS = 10

_ID_PATTERN = re.compile(r"#?\s*([0-9]+)", re.ASCII)
_WORD_PATTERN = re.compile(r"\w+")
_STOP_WORDS = frozenset(
    {"a", "an", "the", "my", "our", "your", "to", "of", "for", "and", "or", "on", "in", "at"}
    | {"with", "about", "is", "it", "this", "that", "me", "i"}
)
_SUFFIXES = ("ing", "ed", "es", "s")
# Stripping a suffix must leave a real stem: "bus" stays "bus", "needed" becomes "need".
_MIN_STEM = 3

TodoAction = Literal["add", "list", "get", "complete", "delete"]
_ACTIONS: tuple[str, ...] = ("add", "list", "get", "complete", "delete")

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS todo_counters (
        user_id TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS todos (
        user_id TEXT NOT NULL,
        id INTEGER NOT NULL,
        text TEXT NOT NULL,
        completed INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, id)
    )
    """,
)


class TodoError(ToolError):
    """Raised when ``todo_store`` refuses its input or cannot reach its database.

    Reasons: ``not_found``, ``ambiguous``, ``missing_argument``, ``invalid_text``,
    ``invalid_id`` (a bad todo id or user id), ``invalid_action`` and ``storage``.
    Every refusal happens before anything is written.
    """

    def __init__(self, reason: str, message: str) -> None:
        """Build the error; ``tool`` is always ``todo_store``."""
        super().__init__(TOOL_NAME, reason, message)


class TodoStoreInput(BaseModel):
    """Arguments of the ``todo_store`` tool; ``user_id`` is injected, never chosen by the LLM."""

    # Models often send ids as numbers; accept 3 as "3" instead of failing validation.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    action: TodoAction = Field(
        description=(
            "What to do: 'add' a todo, 'list' all todos, 'get' one todo, "
            "'complete' (mark done) one todo, or 'delete' one todo."
        )
    )
    text: str | None = Field(
        default=None,
        description=(
            "For 'add': the todo's text (required, at most 500 characters). For 'get', "
            "'complete' and 'delete' without a todo_id: the todo's text, or some "
            "consecutive words of it, e.g. 'dentist' for 'call the dentist'; words of "
            "other todos or extra words make it match nothing. Leave null for 'list'."
        ),
    )
    todo_id: str | None = Field(
        default=None,
        description=(
            "The todo's id, e.g. '3', as shown by 'list' or returned by 'add'. Preferred "
            "over text for 'get', 'complete' and 'delete' whenever you know it."
        ),
    )
    user_id: Annotated[str, InjectedToolArg] = "default"


class TodoStore:
    """Todos of many users in one SQLite file, safe to share across threads and processes.

    Every operation opens its own connection and closes it before returning, and every
    write runs in a ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on the
    database lock (up to 30 s) instead of racing. Ids are per-user sequential numbers
    that are never reused, even after a delete.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Point the store at ``path``; the file and its tables are created on first use."""
        self._path = Path(path)
        self._db = SqliteFile(self._path, _SCHEMA)

    @property
    def path(self) -> Path:
        """The SQLite file holding the todos."""
        return self._path

    def __repr__(self) -> str:
        """Show the file the store reads and writes."""
        return f"TodoStore({str(self._path)!r})"

    def add(self, user_id: str, text: str) -> dict[str, Any]:
        """Add a todo for ``user_id`` and return it."""
        user_id = _check_user_id(user_id)
        clean = _clean_text(text, what="Todo text")
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect(write=True) as conn:
            (new_id,) = conn.execute(
                "INSERT INTO todo_counters (user_id, last_id) VALUES (?, 1) "
                "ON CONFLICT (user_id) DO UPDATE SET last_id = last_id + 1 "
                "RETURNING last_id",
                (user_id,),
            ).fetchone()
            conn.execute(
                "INSERT INTO todos (user_id, id, text, completed, created_at) "
                "VALUES (?, ?, ?, 0, ?)",
                (user_id, new_id, clean, created_at),
            )
        return _todo(new_id, clean, False, created_at)

    def list(self, user_id: str) -> dict[str, Any]:
        """Return ``{"todos": [...]}`` with all of ``user_id``'s todos, ordered by id."""
        user_id = _check_user_id(user_id)
        with self._connect() as conn:
            return {"todos": _all_todos(conn, user_id)}

    def get(
        self, user_id: str, todo_id: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        """Return one todo, found by ``todo_id`` or, when that is None, by ``text``."""
        user_id = _check_user_id(user_id)
        wanted_id, query = _check_selector(todo_id, text)
        with self._connect() as conn:
            return _find(conn, user_id, wanted_id, query, prefer_open=False)

    def complete(
        self, user_id: str, todo_id: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        """Mark one todo done and return it; completing a done todo changes nothing."""
        user_id = _check_user_id(user_id)
        wanted_id, query = _check_selector(todo_id, text)
        with self._connect(write=True) as conn:
            todo = _find(conn, user_id, wanted_id, query, prefer_open=True)
            conn.execute(
                "UPDATE todos SET completed = 1 WHERE user_id = ? AND id = ?",
                (user_id, int(todo["id"])),
            )
        return {**todo, "completed": True}

    def delete(
        self, user_id: str, todo_id: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        """Delete one todo and return it as it was; its id is never handed out again."""
        user_id = _check_user_id(user_id)
        wanted_id, query = _check_selector(todo_id, text)
        with self._connect(write=True) as conn:
            todo = _find(conn, user_id, wanted_id, query, prefer_open=False)
            conn.execute(
                "DELETE FROM todos WHERE user_id = ? AND id = ?", (user_id, int(todo["id"]))
            )
        return todo

    def run(
        self, user_id: str, action: str, text: str | None = None, todo_id: str | None = None
    ) -> dict[str, Any]:
        """Dispatch one tool call; arguments an action does not use are ignored."""
        name = action.strip().lower() if isinstance(action, str) else action
        if name == "add":
            if text is None:
                raise TodoError("missing_argument", "To add a todo, give its text.")
            return self.add(user_id, text)
        if name == "list":
            return self.list(user_id)
        if name == "get":
            return self.get(user_id, todo_id=todo_id, text=text)
        if name == "complete":
            return self.complete(user_id, todo_id=todo_id, text=text)
        if name == "delete":
            return self.delete(user_id, todo_id=todo_id, text=text)
        raise TodoError(
            "invalid_action",
            f"Unknown todo action {_echo(str(action))!r}; use one of: {', '.join(_ACTIONS)}.",
        )

    @contextlib.contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """Yield a connection (in a ``BEGIN IMMEDIATE`` transaction when `write`); SQLite failures become TodoError."""
        try:
            with self._db.write() if write else self._db.read() as conn:
                yield conn
        except (sqlite3.Error, OSError) as exc:
            raise TodoError(
                "storage", f"The todo list could not be read or saved ({exc})."
            ) from exc


def make_todo_tool(store: TodoStore) -> BaseTool:
    """Wrap ``store`` as the ``todo_store`` LangChain tool; ``user_id`` comes from the executor."""

    def todo_store(
        action: str,
        text: str | None = None,
        todo_id: str | None = None,
        user_id: str = "default",
    ) -> dict[str, Any]:
        return store.run(user_id, action, text=text, todo_id=todo_id)

    return StructuredTool.from_function(
        func=todo_store,
        name=TOOL_NAME,
        description=_TOOL_DESCRIPTION,
        args_schema=TodoStoreInput,
    )


_TOOL_DESCRIPTION = """Keep the user's personal todo list (it persists between conversations).

Actions:
- add: create a todo from `text`. Returns {"id", "text", "completed", "created_at"}.
- list: return {"todos": [...]}, every todo with its id, oldest first.
- get: return one todo.
- complete: mark one todo done and return it (already-done todos are fine).
- delete: remove one todo and return it.

For get, complete and delete, pass `todo_id` when you know it (from list or add); ids are \
stable numbers like "3" and are never reused. Otherwise set `todo_id` to null and pass the \
todo's text, or a few consecutive words of it, as `text` (one todo per call); if they match \
no todo or several, the tool says so and lists candidates with ids, and you should retry \
with `todo_id`.

Examples:
- "remind me to call the dentist" -> {"action": "add", "text": "call the dentist"}
- "what's on my list?" -> {"action": "list"}
- "I bought the milk" -> {"action": "complete", "text": "buy milk"}
- "done with number 3" -> {"action": "complete", "todo_id": "3"}
- "forget the dentist one" -> {"action": "delete", "text": "dentist"}"""


def _check_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise TodoError("invalid_id", "The user id must be a non-empty string.")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise TodoError(
            "invalid_id", f"The user id must be at most {MAX_USER_ID_LENGTH} characters long."
        )
    return user_id


def _clean_text(text: str, *, what: str) -> str:
    """Return ``text`` with whitespace collapsed and control characters removed."""
    if not isinstance(text, str):
        raise TodoError("invalid_text", f"{what} must be a string.")
    if len(text) > _RAW_TEXT_LIMIT:
        raise TodoError(
            "invalid_text",
            f"{what} is {len(text)} characters long; the limit is {MAX_TEXT_LENGTH}.",
        )
    # Whitespace controls (tab, newline) separate words, so they become spaces; other
    # controls and lone surrogates (which SQLite cannot store as UTF-8) are dropped.
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    clean = " ".join(kept.split())
    if not clean:
        raise TodoError("invalid_text", f"{what} is empty; say what the todo is.")
    if len(clean) > MAX_TEXT_LENGTH:
        raise TodoError(
            "invalid_text",
            f"{what} is {len(clean)} characters long; the limit is {MAX_TEXT_LENGTH}.",
        )
    return clean


def _check_selector(todo_id: str | None, text: str | None) -> tuple[int | None, str | None]:
    """Validate how get/complete/delete name their todo: an id, else a text query."""
    if todo_id is not None:
        return parse_todo_id(todo_id), None
    if text is None or (isinstance(text, str) and not text.strip()):
        raise TodoError(
            "missing_argument", "Say which todo: give its todo_id, or some of its words as text."
        )
    return None, _clean_text(text, what="The text to look for")


def parse_todo_id(todo_id: str) -> int:
    """Return the number a todo id names.

    Raises:
        TodoError: it is not a todo id (ids are numbers such as "3").
    """
    # Python callers may pass 3 rather than "3"; bool is an int but never an id.
    if isinstance(todo_id, int) and not isinstance(todo_id, bool):
        todo_id = str(todo_id)
    if not isinstance(todo_id, str):
        raise TodoError("invalid_id", "A todo id must be a number such as '3'.")
    match = _ID_PATTERN.fullmatch(todo_id.strip())
    if match is None:
        raise TodoError(
            "invalid_id",
            f"{_echo(todo_id)!r} is not a todo id; ids are numbers such as '3' (see 'list').",
        )
    number = int(match.group(1))
    if number > _MAX_SQLITE_INT:
        # Cannot exist; answer as for any unknown id rather than overflow SQLite.
        raise TodoError("not_found", f"You have no todo with id {_echo(match.group(1))}.")
    return number


def _find(
    conn: sqlite3.Connection,
    user_id: str,
    todo_id: int | None,
    query: str | None,
    *,
    prefer_open: bool,
) -> dict[str, Any]:
    if todo_id is not None:
        row = conn.execute(
            "SELECT id, text, completed, created_at FROM todos WHERE user_id = ? AND id = ?",
            (user_id, todo_id),
        ).fetchone()
        if row is None:
            raise TodoError("not_found", f"You have no todo with id {todo_id}.")
        return _row_to_todo(row)
    assert query is not None  # _check_selector guarantees an id or a query
    todos = _all_todos(conn, user_id)
    # Step 1 (module docstring). An exact match wins over everything, even for complete:
    # completing a done todo is a no-op, which beats completing a different, merely similar
    # one. Exact duplicates are ambiguous unless complete can take the only open one.
    wanted = _fold(query)
    candidates = [t for t in todos if _fold(t["text"]) == wanted]
    if len(candidates) > 1 and prefer_open:
        still_open = [t for t in candidates if not t["completed"]]
        if len(still_open) == 1:
            candidates = still_open
    if not candidates:
        pools = [[t for t in todos if not t["completed"]], todos] if prefer_open else [todos]
        for pool in pools:
            candidates = _match(query, pool)
            if candidates:
                break
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        listed = ", ".join(_label(t) for t in todos[:_LISTED_IN_NOT_FOUND])
        extra = len(todos) - _LISTED_IN_NOT_FOUND
        more = f" and {extra} more" if extra > 0 else ""
        known = f"Your todos: {listed}{more}." if todos else "You have no todos."
        raise TodoError("not_found", f"No todo matches '{_echo(query)}'. {known}")
    named = ", ".join(_label(t) for t in candidates[:_LISTED_IN_AMBIGUOUS])
    extra = len(candidates) - _LISTED_IN_AMBIGUOUS
    more = f" and {extra} more" if extra > 0 else ""
    raise TodoError(
        "ambiguous",
        f"'{_echo(query)}' matches {len(candidates)} todos: {named}{more}. Say which by id.",
    )


def _match(query: str, todos: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
    """Return the todos ``query`` names by step 2, else by step 3 (see the module docstring)."""
    content = _content(query)
    if not content:
        return []  # stop words alone name nothing
    run = [t for t in todos if _contains_run(_words(t["text"]), content)]
    if run:
        return run
    stems = {_stem(w) for w in content}
    return [t for t in todos if {_stem(w) for w in _content(t["text"])} == stems]


def _words(text: str) -> tuple[str, ...]:
    """Return ``text`` as casefolded words, punctuation dropped."""
    return tuple(_WORD_PATTERN.findall(_fold(text)))


def _content(text: str) -> tuple[str, ...]:
    """Return the words of ``text`` that are not stop words, in order."""
    return tuple(w for w in _words(text) if w not in _STOP_WORDS)


def _contains_run(words: tuple[str, ...], run: tuple[str, ...]) -> bool:
    """Whether ``run`` occurs in ``words`` as a contiguous sequence of whole words."""
    size = len(run)
    if size == 0 or size > len(words):
        return False
    return any(words[i : i + size] == run for i in range(len(words) - size + 1))


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            return word[: -len(suffix)]
    return word


def _all_todos(conn: sqlite3.Connection, user_id: str) -> builtins.list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, text, completed, created_at FROM todos WHERE user_id = ? ORDER BY id",
        (user_id,),
    ).fetchall()
    return [_row_to_todo(row) for row in rows]


def _row_to_todo(row: tuple[Any, ...]) -> dict[str, Any]:
    todo_id, text, completed, created_at = row
    return _todo(todo_id, text, bool(completed), created_at)


def _todo(todo_id: int, text: str, completed: bool, created_at: str) -> dict[str, Any]:
    return {"id": str(todo_id), "text": text, "completed": completed, "created_at": created_at}


def _label(todo: dict[str, Any]) -> str:
    return f"#{todo['id']} {_echo(todo['text'])}"


def _echo(text: str) -> str:
    """Shorten ``text`` for an error message."""
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"
