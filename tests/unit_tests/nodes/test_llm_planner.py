from __future__ import annotations

import json
from typing import Any

import pytest

from graph.plan import Plan, PlanStep
from graph.prompts import FEW_SHOT_EXAMPLES
from graph.state import State
from nodes.llm_planner import allm_planner, llm_planner, planner_messages, system_prompt
from tests.fakes import OPENAI_ERROR_TYPES, fake_model, make_services, openai_error, plan_message

GOOD = {
    "steps": [
        {
            "step_number": 1,
            "tool_name": "calculator",
            "tool_input": {"expression": "6*7"},
            "reasoning": "r",
        }
    ],
    "final_goal": "multiply",
}


def services_with(tmp_path: Any, *replies: Any) -> Any:
    return make_services(tmp_path, models={"fast": fake_model(*replies)})


def test_success_writes_plan_model_and_tokens(tmp_path: Any) -> None:
    services = services_with(tmp_path, plan_message(GOOD, tokens=77))
    update = llm_planner(State(request="six times seven", tier="fast", tokens=3), services=services)
    assert update["plan"] == Plan.model_validate(GOOD)
    assert update["plan_source"] == "llm" and update["error_type"] is None
    assert (
        update["tokens"] == 80 and update["model"] == "fake-model" and update["llm_attempts"] == 1
    )


@pytest.mark.parametrize(
    ("kind", "error_type"),
    OPENAI_ERROR_TYPES,
)
def test_errors_are_classified_never_raised(tmp_path: Any, kind: str, error_type: str) -> None:
    update = llm_planner(
        State(request="x", tier="fast"), services=services_with(tmp_path, openai_error(kind))
    )
    assert update["error_type"] == error_type
    assert update["plan"] is None and update["llm_error"]


def test_unexpected_exception_is_other(tmp_path: Any) -> None:
    update = llm_planner(
        State(request="x", tier="fast"), services=services_with(tmp_path, RuntimeError("boom"))
    )
    assert update["error_type"] == "other" and "boom" in update["llm_error"]


@pytest.mark.parametrize(
    "reply",
    [
        "plain text, no plan",
        plan_message({"steps": "not a list", "final_goal": "x"}),
        plan_message({"final_goal": "missing steps"}),
        plan_message(GOOD | {"extra": 1}),
    ],
)
def test_unparseable_output_is_invalid_output(tmp_path: Any, reply: Any) -> None:
    update = llm_planner(State(request="x", tier="fast"), services=services_with(tmp_path, reply))
    assert update["error_type"] == "invalid_output" and update["plan"] is None


def test_repair_sends_the_rejected_plan_and_the_errors(tmp_path: Any) -> None:
    services = services_with(tmp_path, plan_message(GOOD))
    bad = Plan(steps=[PlanStep(step_number=1, tool_name="abacus", tool_input={})], final_goal="x")
    state = State(
        request="six times seven",
        tier="fast",
        plan=bad,
        plan_source="llm",
        validation_errors=["step 1: unknown tool 'abacus'"],
        llm_attempts=1,
    )
    update = llm_planner(state, services=services)
    assert update["repairs"] == 1 and update["llm_attempts"] == 2
    sent = services.models["fast"].prompts[0]
    assert "abacus" in sent[-2].content and "unknown tool 'abacus'" in sent[-1].content


def test_first_attempt_has_no_feedback(tmp_path: Any) -> None:
    services = make_services(tmp_path)
    messages = planner_messages(State(request="hi"), services, [])
    assert [m.type for m in messages] == ["system", "human"]


def test_system_prompt_is_generated_from_the_registry(tmp_path: Any) -> None:
    prompt = system_prompt(make_services(tmp_path))
    assert '"expression"' in prompt and '"todo_id"' in prompt and "user_id" not in prompt


def test_few_shot_off_leaves_the_hand_written_examples_out(tmp_path: Any) -> None:
    with_examples = system_prompt(make_services(tmp_path))
    basic = system_prompt(make_services(tmp_path, few_shot=False))
    request, plan = FEW_SHOT_EXAMPLES[0]
    shown = f"Request: {request}\nPlan: {json.dumps(plan)}"
    assert shown in with_examples and "\nExamples:\nRequest: " in with_examples
    assert shown not in basic and "\nExamples:\nRequest: " not in basic
    assert with_examples.startswith(basic.rstrip("\n"))  # only the examples differ


def test_a_tier_without_a_model_is_an_error_not_a_crash(tmp_path: Any) -> None:
    services = services_with(tmp_path)
    update = llm_planner(State(request="x", tier="reasoning"), services=services)
    assert update["error_type"] == "other" and "reasoning" in update["llm_error"]


def failed_on_fast(error_type: str, **kw: Any) -> State:
    fields: dict[str, Any] = {"tier": "fast", "attempt": 1, "llm_attempts": 1} | kw
    return State(request="six times seven", error_type=error_type, **fields)


def test_retry_waits_the_recorded_backoff_on_the_same_tier(tmp_path: Any) -> None:
    services = services_with(tmp_path, plan_message(GOOD))
    update = llm_planner(failed_on_fast("timeout", retry_after_s=0.01), services=services)
    assert update["tier"] == "fast" and update["attempt"] == 2 and update["llm_attempts"] == 2
    assert update["llm_wait_s"] == 0.01 and update["plan_source"] == "llm"
    assert update["llm_route"][0] == "timeout: retrying after 0.01 s"


def test_escalation_moves_to_the_next_tier_and_resets_its_counters(tmp_path: Any) -> None:
    fast, smart = fake_model(), fake_model(plan_message(GOOD))
    smart.model_name = "smart-model"
    services = make_services(tmp_path, models={"fast": fast, "smart": smart})
    state = failed_on_fast("server_error", attempt=3, repairs=1, next_tier="smart")
    update = llm_planner(state, services=services)
    assert update["tier"] == "smart" and update["attempt"] == 1 and update["repairs"] == 0
    assert update["model"] == "smart-model" and update["plan_source"] == "llm"
    assert not fast.prompts and len(smart.prompts) == 1


def test_escalation_target_skips_tiers_running_the_same_model(tmp_path: Any) -> None:
    shared = fake_model(openai_error("not_found"))
    services = make_services(tmp_path, models={"fast": shared, "smart": shared})
    update = llm_planner(State(request="x", tier="fast"), services=services)
    assert update["error_type"] == "not_found" and update["next_tier"] is None


def test_transient_failures_record_a_jittered_exponential_backoff(tmp_path: Any) -> None:
    services = make_services(
        tmp_path,
        models={"fast": fake_model(*[openai_error("server_error")] * 3)},
        backoff_base_s=0.004,
        backoff_cap_s=0.006,
    )
    state = State(request="x", tier="fast")
    waits = []
    for _ in range(3):
        update = llm_planner(state, services=services)
        waits.append(update["retry_after_s"])
        state = State(request="x", **{k: v for k, v in update.items() if k != "path"})
    # attempt n may wait up to base * 2**(n-1), capped; after two retries there is no third
    assert 0 <= waits[0] <= 0.004 and 0 <= waits[1] <= 0.006 and waits[2] is None
    assert state.attempt == 3 and state.llm_wait_s == pytest.approx(waits[0] + waits[1])


def test_backoff_jitter_comes_from_the_runtimes_random_source(tmp_path: Any) -> None:
    def first_wait(seed: int) -> float:
        services = make_services(
            tmp_path, models={"fast": fake_model(openai_error("timeout"))}, seed=seed
        )
        wait: float = llm_planner(State(request="x", tier="fast"), services=services)[
            "retry_after_s"
        ]
        return wait

    assert first_wait(1) == first_wait(1) != first_wait(2)


def test_rate_limit_records_the_endpoints_retry_after(tmp_path: Any) -> None:
    import httpx
    import openai

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(429, request=request, headers={"retry-after-ms": "250"})
    error = openai.RateLimitError("slow down", response=response, body=None)
    update = llm_planner(State(request="x", tier="fast"), services=services_with(tmp_path, error))
    assert update["error_type"] == "rate_limit" and update["retry_after_s"] == 0.25


def test_auth_failure_opens_the_breaker_at_once_and_then_skips_the_call(tmp_path: Any) -> None:
    model = fake_model(openai_error("auth"), plan_message(GOOD))
    services = make_services(tmp_path, models={"fast": model})
    llm_planner(State(request="x", tier="fast"), services=services)
    assert services.breaker("fast").state == "open"
    update = llm_planner(State(request="x", tier="fast"), services=services)
    assert update["error_type"] == "circuit_open" and len(model.prompts) == 1


def test_consecutive_transient_failures_open_the_breaker(tmp_path: Any) -> None:
    services = make_services(
        tmp_path, models={"fast": fake_model(*[openai_error("timeout")] * 3)}, breaker_threshold=3
    )
    states = []
    for _ in range(3):
        llm_planner(State(request="x", tier="fast"), services=services)
        states.append(services.breaker("fast").state)
    assert states == ["closed", "closed", "open"]


def test_invalid_output_does_not_count_against_the_breaker(tmp_path: Any) -> None:
    services = make_services(tmp_path, models={"fast": fake_model(*["not json"] * 4)})
    for _ in range(4):
        llm_planner(State(request="x", tier="fast"), services=services)
    assert services.breaker("fast").state == "closed"


def test_cost_is_priced_per_model_and_accumulated(tmp_path: Any) -> None:
    services = make_services(
        tmp_path,
        models={"fast": fake_model(plan_message(GOOD, tokens=1010))},
        prices='{"fake-model": {"input": 2.0, "output": 10.0}}',
    )
    state = State(request="x", tier="fast", tokens=5, cost_usd=0.5)
    update = llm_planner(state, services=services)
    assert update["tokens"] == 1015
    assert update["cost_usd"] == pytest.approx(0.5 + (1000 * 2.0 + 10 * 10.0) / 1e6)
    assert update["usage"] == {
        "fake-model": {
            "calls": 1,
            "input_tokens": 1000,
            "output_tokens": 10,
            "tokens": 1010,
            "cost_usd": pytest.approx(0.0021),
        }
    }


def test_tokens_of_an_invalid_reply_are_still_counted(tmp_path: Any) -> None:
    reply = plan_message({"steps": "nope", "final_goal": "x"}, tokens=40)
    update = llm_planner(State(request="x", tier="fast"), services=services_with(tmp_path, reply))
    assert update["error_type"] == "invalid_output" and update["tokens"] == 40


def test_empty_plan_is_a_decline_with_the_models_reason(tmp_path: Any) -> None:
    reply = plan_message({"steps": [], "final_goal": "No tool can book flights."})
    update = llm_planner(State(request="x", tier="fast"), services=services_with(tmp_path, reply))
    assert update["error_type"] == "declined" and "book flights" in update["llm_error"]


def _truncated(finish_reason: str) -> Any:
    from langchain_core.messages import AIMessage

    text = '{"steps": [{"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": "15% * 8'
    return AIMessage(content=text, response_metadata={"finish_reason": finish_reason})


@pytest.mark.parametrize("finish_reason", ["length", "stop"])
def test_truncated_json_is_never_completed_into_a_plan(tmp_path: Any, finish_reason: str) -> None:
    # A lenient parser would close the brackets and run "15% * 8": a wrong answer.
    update = llm_planner(
        State(request="x", tier="fast"), services=services_with(tmp_path, _truncated(finish_reason))
    )
    assert update["error_type"] == "invalid_output" and update["plan"] is None


def test_refusal_is_invalid_output(tmp_path: Any) -> None:
    from langchain_core.messages import AIMessage

    reply = AIMessage(content="", additional_kwargs={"refusal": "I can't help with that."})
    update = llm_planner(State(request="x", tier="fast"), services=services_with(tmp_path, reply))
    assert update["error_type"] == "invalid_output" and "refused" in update["llm_error"]


@pytest.mark.anyio
async def test_async_body_matches_the_sync_one(tmp_path: Any) -> None:
    services = services_with(tmp_path, openai_error("timeout"), plan_message(GOOD))
    failed = await allm_planner(State(request="x", tier="fast"), services=services)
    assert failed["error_type"] == "timeout" and failed["retry_after_s"] is not None
    retry_state = State(request="x", **{k: v for k, v in failed.items() if k != "path"})
    update = await allm_planner(retry_state, services=services)
    assert update["plan_source"] == "llm" and update["attempt"] == 2
    assert update["llm_wait_s"] == failed["retry_after_s"]
