"""The semantic plan cache and dynamic examples through the whole graph, with the offline embedder."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from graph import build_graph
from graph.cli import main
from graph.prompts import DYNAMIC_EXAMPLES_HEADER
from tests.fakes import fake_model, plan_message
from tests.openai_server import OpenAIServer, running_server


def run(app: Any, prompt: str, user: str = "default") -> dict[str, Any]:
    response: dict[str, Any] = app.invoke({"prompt": prompt, "user_id": user})["response"]
    json.dumps(response)
    return response


def stable(value: Any) -> Any:
    """An answer without the volatile `created_at` of todos."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k != "created_at"}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


SEQUENCE = [
    "what is 15% of 200",
    "what is 15% of 200?",  # a repeat
    "calculate 15 percent of 200",  # a paraphrase
    "what is 15% of 300",  # another number: a template
    "what is 15 percent of 300",
    "what is fifteen percent of 300",
    "what is 2 squared",
    "what is 3 squared",  # "2 ** 2" cannot be traced: planned afresh
    "what is 10 minus 3",
    "what is 3 minus 10",
    "what's 10 - 3",
    "add a todo to call the dentist",
    "add a todo to call the plumber",
    "please add a todo to call the dentist",  # a paraphrase: a second todo, as from scratch
    "remind me to buy milk",
    "remind me to buy bread",
    "show me my todos",
    "show my list",
    "show me todo 1",
    "show me todo 2",
    "mark todo 1 as done",
    "complete todo 2",
    "delete todo 2",
    "delete todo 3",
    "add a todo to renew my passport, then show me my list",
    "add a todo to renew my license, then show me my list",
    "what is the average of 4, 5 and 6",
    "what's the mean of 4, 5 and 6",
    "what is the average of 4, 5 and 7",
    "what is 1/0",
    "what is 1/0",
    "what is 6 times 7",
    "what is 7 times 6",
    "what is 6 x 7",
]


def test_every_answer_equals_planning_from_scratch(tmp_path: Path) -> None:
    cached = build_graph(home=str(tmp_path / "cached"))
    scratch = build_graph(home=str(tmp_path / "scratch"), cache_enabled=False)
    levels: list[str] = []
    for prompt in SEQUENCE:
        got, want = run(cached, prompt), run(scratch, prompt)
        assert (got["status"], stable(got["answer"])) == (
            want["status"],
            stable(want["answer"]),
        ), prompt
        assert want["plan_source"] != "cache"
        if got["plan_source"] == "cache":
            levels.append(got["cache_hit"]["level"])
            assert got["cache_hit"]["reason"]
    final = run(cached, "show me my todos")["answer"], run(scratch, "show me my todos")["answer"]
    assert stable(final[0]) == stable(final[1])  # creation times differ between the two runtimes
    assert {"exact", "template", "semantic"} <= set(levels), levels


def test_repeats_paraphrases_and_new_values_are_served_with_a_reason(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))
    first = run(app, "what is 15% of 200")
    assert first["plan_source"] == "pattern" and first["cache_hit"] is None
    repeat = run(app, "what is 15% of 200 ?")
    assert repeat["plan_source"] == "cache" and repeat["cache_hit"]["level"] == "exact"
    paraphrase = run(app, "calculate 15 percent of 200")
    assert paraphrase["plan_source"] == "cache" and paraphrase["answer"] == 30
    assert paraphrase["cache_hit"]["level"] == "semantic"
    assert paraphrase["cache_hit"]["run_id"] == first["run_id"]
    assert "same parameters" in paraphrase["cache_hit"]["reason"]
    other = run(app, "what is 15% of 300")
    assert other["cache_hit"]["level"] == "template" and other["answer"] == 45
    assert "300 for 200" in other["cache_hit"]["reason"]


@pytest.mark.parametrize(
    ("first", "near_miss"),
    [
        ("add a todo to call the dentist", "add a todo to call the plumber"),
        ("mark todo 1 as done", "delete todo 1"),
        ("what is 15% of 200", "what is 15 plus 200"),
        ("remind me to buy milk", "remind me to buy Milk"),
        ("what is 5!", "what is 5"),
    ],
)
def test_near_misses_never_get_a_cached_plan(tmp_path: Path, first: str, near_miss: str) -> None:
    app = build_graph(home=str(tmp_path))
    run(app, "add a todo to feed the cat")
    assert run(app, first)["status"] == "completed"
    assert run(app, near_miss)["plan_source"] != "cache"


def test_cache_and_examples_survive_a_restart(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))
    first = run(app, "what is 15% of 200")
    restarted = build_graph(home=str(tmp_path))
    assert run(restarted, "what is 15% of 200")["cache_hit"]["level"] == "exact"
    assert run(restarted, "calculate 15 percent of 200")["cache_hit"]["level"] == "semantic"
    model = fake_model(plan_message(calc("15% * 80")))
    with_llm = build_graph(home=str(tmp_path), chat_model=model, pattern_first=False)
    run(with_llm, "how much is 15% of 80 then")
    system, examples, request = (m.content for m in model.prompts[0])
    assert DYNAMIC_EXAMPLES_HEADER not in system and request == "how much is 15% of 80 then"
    assert examples.startswith(DYNAMIC_EXAMPLES_HEADER)
    assert "Request: what is 15% of 200" in examples
    assert first["run_id"]


def calc(expression: str) -> dict[str, Any]:
    step = {"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": expression}}
    return {"steps": [step | {"reasoning": "compute"}], "final_goal": "compute"}


def test_two_users_with_colliding_requests_share_nothing(tmp_path: Path) -> None:
    model = fake_model(*[plan_message(calc("2 + 3"))] * 4)
    app = build_graph(home=str(tmp_path), chat_model=model, pattern_first=False)
    assert run(app, "zorp 2 and 3", "alice")["plan_source"] == "llm"
    # Bob's request collides with Alice's at every level; he gets none of her plans...
    assert run(app, "zorp 2 and 3", "bob")["plan_source"] == "llm"
    # ... and none of her examples: his first prompt had none, Alice's second has her own.
    assert len(model.prompts[1]) == 2
    run(app, "zorp 2 and 3 again", "carol")
    assert len(model.prompts[2]) == 2
    run(app, "zorp 2 and 3 again", "alice")
    assert "Request: zorp 2 and 3" in model.prompts[3][1].content
    assert run(app, "zorp 2 and 3", "alice")["plan_source"] == "cache"


def test_examples_can_be_turned_off(tmp_path: Path) -> None:
    model = fake_model(*[plan_message(calc("2 + 3"))] * 2)
    app = build_graph(
        home=str(tmp_path), chat_model=model, pattern_first=False, examples_enabled=False
    )
    run(app, "zorp 2 and 3")
    run(app, "zorp 2 and 3 again")
    assert len(model.prompts[1]) == 2


def complete(text: str) -> dict[str, Any]:
    tool_input = {"action": "complete", "text": text, "todo_id": None}
    step = {"step_number": 1, "tool_name": "todo_store", "tool_input": tool_input}
    return {"steps": [step | {"reasoning": "complete"}], "final_goal": "complete it"}


def test_a_plan_that_later_fails_is_evicted_and_stops_being_an_example(tmp_path: Path) -> None:
    model = fake_model(*[plan_message(complete("water the plants"))] * 3)
    app = build_graph(home=str(tmp_path), chat_model=model)  # the rules add and delete
    run(app, "add a todo to water the plants")
    first = run(app, "the plants got their water")
    assert first["plan_source"] == "llm" and first["status"] == "completed"
    run(app, "delete todo 1")
    failed = run(app, "the plants got their water")  # served from the cache: the todo is gone
    assert failed["plan_source"] == "cache" and failed["status"] == "failed"
    again = run(app, "the plants got their water")
    assert again["plan_source"] != "cache"
    last_prompt = " ".join(str(m.content) for m in model.prompts[-1])
    assert "Request: the plants got their water" not in last_prompt


@pytest.fixture
def crane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run `crane ARGS` in this process on a fresh data directory: (exit code, stdout, stderr)."""
    monkeypatch.setenv("CRANE_HOME", str(tmp_path))

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_crane_history_forget_removes_a_runs_plan_and_example(crane: Any) -> None:
    run_id = json.loads(crane("run", "what is 15% of 200", "--json")[1])["run_id"]
    stats = json.loads(crane("cache", "stats", "--json")[1])
    assert stats["plans"]["entries"] == 1 and stats["examples"]["entries"] == 1
    code, out, _ = crane("history", "forget", run_id)
    assert code == 0 and "1 cached plan(s) and 1 example(s)" in out
    stats = json.loads(crane("cache", "stats", "--json")[1])
    assert stats["plans"]["entries"] == 0 and stats["examples"]["entries"] == 0
    again = json.loads(crane("run", "what is 15% of 200", "--json")[1])
    assert again["plan_source"] == "pattern"
    code, _, err = crane("history", "forget", "no-such-run")
    assert code == 1 and "no run" in err


def test_crane_cache_stats_and_clear(crane: Any) -> None:
    for user in ("alice", "bob"):
        crane("run", "what is 15% of 200", "--user", user)
    text = crane("cache", "stats")[1]
    assert "Plan cache: 2 entries" in text and "local:all-MiniLM-L6-v2-int8" in text
    alice = json.loads(crane("cache", "stats", "--user", "alice", "--json")[1])
    assert alice["plans"]["entries"] == 1
    assert (
        "Removed 1 cached plan(s) of user 'alice'" in crane("cache", "clear", "--user", "alice")[1]
    )
    assert json.loads(crane("cache", "stats", "--json")[1])["plans"]["entries"] == 1
    assert "Removed 1 cached plan(s)." in crane("cache", "clear")[1]
    stats = json.loads(crane("cache", "stats", "--json")[1])
    assert stats["plans"]["entries"] == 0 and stats["examples"]["entries"] == 2
    assert "Removed 2 example(s)." in crane("cache", "clear", "--examples")[1]


def test_cache_hits_under_ainvoke(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))

    async def main() -> list[dict[str, Any]]:
        await app.ainvoke({"prompt": "what is 15% of 200"})
        outs = await asyncio.gather(
            *(
                app.ainvoke({"prompt": p})
                for p in ["calculate 15 percent of 200", "what is 15% of 40"]
            )
        )
        return [o["response"] for o in outs]

    paraphrase, template = asyncio.run(main())
    assert paraphrase["cache_hit"]["level"] == "semantic" and paraphrase["answer"] == 30
    assert template["cache_hit"]["level"] == "template" and template["answer"] == 6


def test_llm_endpoint_receives_the_dynamic_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def planner(text: str) -> dict[str, Any] | None:
        return calc("2 + 3") if "zorp" in text else None

    server: OpenAIServer
    with running_server(planner=planner) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        app = build_graph(home=str(tmp_path), pattern_first=False)
        run(app, "zorp 2 and 3")
        run(app, "zorp 2 and 3 again")
        messages = server.requests[-1].messages
    assert [m["role"] for m in messages] == ["system", "user", "user"]
    assert messages[1]["content"].startswith(DYNAMIC_EXAMPLES_HEADER)
    assert "Request: zorp 2 and 3\nPlan: " in messages[1]["content"]
    assert messages[2]["content"] == "zorp 2 and 3 again"


def test_a_cached_plan_the_validator_rejects_is_replanned_without_claiming_a_hit(
    tmp_path: Path,
) -> None:
    model = fake_model(*[plan_message(calc("2 + 3"))] * 2)
    app = build_graph(home=str(tmp_path), chat_model=model, pattern_first=False)
    first = run(app, "zorp 2 and 3")
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:  # the tool was renamed since
        conn.execute("UPDATE plan_entries SET payload = replace(payload, 'calculator', 'abacus')")
    conn.close()
    again = run(app, "zorp 2 and 3")
    assert again["plan_source"] == "llm" and again["cache_hit"] is None and again["answer"] == 5
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        taught = [r for (r,) in conn.execute("SELECT run_id FROM examples")]
    conn.close()
    assert taught == [again["run_id"]] and first["run_id"] != again["run_id"]


def test_forgetting_a_run_served_from_the_cache_forgets_the_run_it_came_from(crane: Any) -> None:
    source = json.loads(crane("run", "what is 15% of 200", "--json")[1])
    served = json.loads(crane("run", "what is 15% of 200", "--json")[1])
    assert served["cache_hit"]["run_id"] == source["run_id"]
    code, out, _ = crane("history", "forget", served["run_id"])
    assert code == 0 and source["run_id"] in out and "1 cached plan(s) and 1 example(s)" in out
    assert json.loads(crane("run", "what is 15% of 200", "--json")[1])["plan_source"] == "pattern"


def test_cache_commands_report_a_broken_data_directory(crane: Any, tmp_path: Path) -> None:
    (tmp_path / "cache.sqlite").write_bytes(b"not a database" * 100)
    code, _, err = crane("cache", "stats")
    assert code == 2 and err.startswith("Error: the data directory cannot be read")


def test_build_graph_takes_an_embeddings_name(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path), embeddings="hash")
    run(app, "what is 15% of 200")
    hit = run(app, "please what is 15% of 200")["cache_hit"]
    assert hit["level"] == "semantic"
