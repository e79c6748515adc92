"""`crane eval`: the labeled requests through the real graph against an HTTP endpoint, per variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph.cli import main
from graph.eval_dataset import load_dataset
from graph.evaluation import VARIANTS, evaluate, fold_of, markdown, rescore
from graph.pattern_planner import plan_request
from graph.prompts import DYNAMIC_EXAMPLES_HEADER, FEW_SHOT_EXAMPLES
from tests.openai_server import OpenAIServer, Reply, running_server

ITEMS = [
    {"id": "c1", "request": "what is 8% of 50", "category": "calculator", "expect": {"answer": 4}},
    {
        "id": "c2",
        "request": "what is 9% of 50",
        "category": "calculator",
        "expect": {"answer": 4.5},
    },
    {
        "id": "t1",
        "request": "complete the dentist todo",
        "category": "todo",
        "setup": [
            {"text": "call the dentist", "completed": False},
            {"text": "buy milk", "completed": False},
        ],
        "expect": {
            "todos": [
                {"text": "call the dentist", "completed": True},
                {"text": "buy milk", "completed": False},
            ],
            "answer_todo": "call the dentist",
            "plan": [["todo_store", "complete"]],
        },
    },
    {
        "id": "t2",
        "request": "add a todo to renew my passport, then show me my list",
        "category": "chain",
        "expect": {
            "todos": [{"text": "renew my passport", "completed": False}],
            "answer_list": True,
        },
    },
    {
        "id": "r1",
        "request": "book me a flight to Lisbon",
        "category": "refuse",
        "expect": {"refused": True},
    },
]


def rules(text: str) -> dict[str, Any]:
    """The endpoint plans as the rules do; "9%" gets a wrong plan, to be scored wrong."""
    if "9%" in text:
        return {
            "steps": [
                {
                    "step_number": 1,
                    "tool_name": "calculator",
                    "tool_input": {"expression": "9 + 50"},
                    "reasoning": ".",
                }
            ],
            "final_goal": ".",
        }
    result = plan_request(text)
    if result.plan is None:
        return {"steps": [], "final_goal": "No tool can do this."}
    return result.plan.model_dump()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    return path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    with running_server(planner=rules) as s:
        s.default(Reply(prompt_tokens=1000, completion_tokens=50))
        monkeypatch.setenv("OPENAI_API_KEY", s.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)
        monkeypatch.setenv("CRANE_EMBEDDINGS", "hash")
        for tier in ("FAST", "SMART", "REASONING"):
            monkeypatch.setenv(f"CRANE_MODEL_{tier}", "gpt-4o-mini")
        yield s


def opening(request: Any) -> str:
    return request.first_user_text


def test_every_variant_is_scored_and_only_its_prompt_differs(
    server: OpenAIServer, dataset: Path, tmp_path: Path
) -> None:
    items = load_dataset(dataset)
    seen: list[str] = []
    report = evaluate(
        items, list(VARIANTS), tmp_path / "home", progress=lambda v, r: seen.append(v)
    )

    assert list(report["variants"]) == list(VARIANTS)
    for name, summary in report["variants"].items():
        assert summary["n"] == 5, name
        assert summary["wrong"] == ["c2"], name  # the endpoint's wrong plan, and nothing else
        assert summary["answer_accuracy"] == 0.8 and summary["plan_validity"] == 1.0
        assert summary["fallback_rate"] == 0.0 and summary["execution_success"] == 1.0
        assert summary["plan_match"] == 1.0
        # Five calls' tokens over the four plans that ran: the decline's tokens count too.
        assert summary["tokens_per_successful_plan"] == round(5 * 1050 / 4)
        assert summary["cost_per_successful_plan_usd"] > 0
    assert seen.count("few-shot") == 5 and seen.count("basic") == 5  # the seed pass is few-shot

    shown = f"Request: {FEW_SHOT_EXAMPLES[0][0]}\n"
    prompts = {name: [] for name in VARIANTS}
    order = ["few-shot"] * 5 + ["basic"] * 5 + ["dynamic"] * 5 + ["few-shot+dynamic"] * 5
    assert len(server.requests) == 20
    for name, request in zip(order, server.requests, strict=True):
        prompts[name].append(request)
    for name, requests in prompts.items():
        for request in requests:
            system = request.messages[0]["content"]
            assert (shown in system) == ("few-shot" in name), name
            dynamic = [
                m["content"]
                for m in request.messages[1:-1]
                if m["content"].startswith(DYNAMIC_EXAMPLES_HEADER)
            ]
            if "dynamic" not in name:
                assert not dynamic, name
            elif dynamic:
                # Never its own request: the examples come from the other half's seeding runs.
                assert f"Request: {opening(request)}\n" not in dynamic[0]
    assert any(
        m["content"].startswith(DYNAMIC_EXAMPLES_HEADER)
        for r in prompts["dynamic"]
        for m in r.messages
    )
    table = markdown(report)
    assert "| answer accuracy | 80% | 80% | 80% | 80% |" in table


def test_crane_eval_writes_the_table_and_refuses_to_run_offline(
    server: OpenAIServer,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "user-home"))
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "--dataset",
            str(dataset),
            "--variants",
            "basic,few-shot",
            "--out",
            str(out),
            "--limit",
            "3",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0
    assert "| | basic | few-shot |" in printed.out and "[basic] " in printed.err
    report = json.loads((out / "eval.json").read_text())
    assert report["items"] == 3 and set(report["variants"]) == {"basic", "few-shot"}
    assert (out / "eval.md").read_text().startswith("**3 requests, model gpt-4o-mini")
    assert not (tmp_path / "user-home").exists()  # the runs never touch CRANE_HOME

    assert main(["eval", "--dataset", str(dataset), "--variants", "basic,magic"]) == 2
    assert "--variants takes some of" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    assert main(["eval", "--dataset", str(bad)]) == 2
    assert "bad.jsonl:1: missing key" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert main(["eval", "--dataset", str(dataset)]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def decline(text: str) -> dict[str, Any]:
    return {"steps": [], "final_goal": "No tool can do this."}


@pytest.mark.parametrize("endpoint", ["declines", "garbage"])
def test_what_the_rules_rescue_is_not_credited_to_the_llm(
    server: OpenAIServer, dataset: Path, tmp_path: Path, endpoint: str
) -> None:
    if endpoint == "declines":
        server.planner = decline
    else:
        server.default(Reply(content="Sure! Here is your plan: step one, compute it."))
    report = evaluate(load_dataset(dataset), ["basic"], tmp_path / "home")
    summary = report["variants"]["basic"]
    # The rules answer every doable request (the endpoint's wrong "9%" plan is never asked for).
    assert summary["answer_accuracy_with_fallback"] == 1.0 and summary["fallback_rate"] == 0.8
    assert summary["execution_success"] == 0.0 and summary["plan_match"] is None
    assert summary["tokens_per_successful_plan"] is None
    if endpoint == "declines":
        # Declining the flight is the LLM's right answer; declining the rest is not.
        assert summary["answer_accuracy"] == 0.2 and summary["wrong"] == ["c1", "c2", "t1", "t2"]
        assert summary["plan_validity"] == 1.0 and summary["declined_doable"] == 1.0
    else:
        # The flight was refused by the rules after the LLM broke: not the LLM's doing either.
        assert summary["answer_accuracy"] == 0.0 and summary["plan_validity"] == 0.0
        assert summary["declined_doable"] == 0.0
    assert summary["accuracy_by_category"]["calculator"] == 0.0


def test_an_evaluation_refuses_a_used_home_and_settings_that_defeat_it(
    server: OpenAIServer, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = load_dataset(dataset)[:1]
    used = tmp_path / "used"
    used.mkdir()
    (used / "history.sqlite").write_text("")
    with pytest.raises(ValueError, match="must be empty"):
        evaluate(items, ["basic"], used)
    monkeypatch.setenv("CRANE_EXAMPLES_K", "0")
    with pytest.raises(ValueError, match="CRANE_EXAMPLES_K"):
        evaluate(items, ["dynamic"], tmp_path / "fresh")
    monkeypatch.setenv("CRANE_BUDGET_USD", "0")  # a spent budget must not starve the evaluation
    report = evaluate(items, ["basic", "basic"], tmp_path / "fresh")
    assert list(report["variants"]) == ["basic"]
    assert report["variants"]["basic"]["execution_success"] == 1.0
    assert report["settings"]["budget_usd"] is None and report["settings"]["examples_k"] == 0


def test_a_repeated_request_stays_in_one_fold() -> None:
    assert fold_of("Mark buy milk as done") == fold_of("mark buy milk as done ")
    folds = {fold_of(f"what is {n} plus {n}") for n in range(20)}
    assert folds == {0, 1}


def test_rescore_reads_the_runs_back_and_applies_a_changed_label(
    server: OpenAIServer,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    items = load_dataset(dataset)
    report = evaluate(items, ["basic", "few-shot"], home)
    again = rescore(items, home)
    assert again["variants"] == report["variants"]
    assert again["results"] == report["results"]

    fixed = tmp_path / "fixed.jsonl"  # the label of c2 said 4.5; say the endpoint's 59 is right
    fixed.write_text(dataset.read_text().replace('"answer": 4.5', '"answer": 59'))
    monkeypatch.setenv("OPENAI_API_KEY", "")  # rescoring calls no model
    out = tmp_path / "out"
    assert main(["eval", "--rescore", str(home), "--dataset", str(fixed), "--out", str(out)]) == 0
    assert "| answer accuracy | 100% | 100% |" in capsys.readouterr().out
    assert json.loads((out / "eval.json").read_text())["variants"]["basic"]["wrong"] == []
    assert main(["eval", "--rescore", str(tmp_path / "nothing"), "--dataset", str(fixed)]) == 2
    assert not (tmp_path / "nothing").exists()
