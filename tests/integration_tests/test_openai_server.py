"""The scriptable OpenAI server, driven by the real `openai` and `langchain_openai` clients."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI

from graph.plan_schema import strict_schema_problems
from tests.openai_server import (
    Delay,
    OpenAIServer,
    Reply,
    Reset,
    Status,
    bad_request,
    context_length,
    rate_limited,
    running_server,
    server_error,
    truncated,
    truncated_stop,
    unauthorized,
    unknown_model,
)

PLAN = {"steps": [{"step_number": 1, "tool_name": "calculator"}], "final_goal": "compute"}
MESSAGES: Any = [{"role": "user", "content": "what is 2+2"}]


def planner(text: str) -> dict[str, Any] | None:
    return {"echo": text} if "unknown" not in text else None


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with running_server(planner=planner) as running:
        yield running


def client(server: OpenAIServer, *, timeout: float = 2.0, api_key: str = "test-key") -> Any:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=timeout)


_clients: dict[int, Any] = {}


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the clients `ask` opened (one per server: building one takes ~20 ms)."""
    yield
    for opened in _clients.values():
        opened.close()
    _clients.clear()


def ask(server: OpenAIServer, text: str = "what is 2+2", **kwargs: Any) -> Any:
    """Send one user message with a client kept for `server` until the test ends."""
    if server.port not in _clients:
        _clients[server.port] = client(server)
    return _clients[server.port].chat.completions.create(
        model="m", messages=[{"role": "user", "content": text}], **kwargs
    )


# ---- replies


def test_default_reply_uses_the_planner(server: OpenAIServer) -> None:
    completion = ask(server, "hello there")
    assert json.loads(completion.choices[0].message.content) == {"echo": "hello there"}
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert completion.model == "m"
    assert completion.object == "chat.completion"
    assert [r.action for r in server.requests] == ["Reply"]


def test_no_plan_replies_an_empty_object(server: OpenAIServer) -> None:
    assert ask(server, "unknown request").choices[0].message.content == "{}"
    with running_server() as plain:
        assert ask(plain).choices[0].message.content == "{}"


def test_the_planner_sees_the_first_user_message(server: OpenAIServer) -> None:
    with client(server) as c:
        completion = c.chat.completions.create(
            model="m",
            messages=[
                {"role": "system", "content": "plan"},
                {"role": "user", "content": [{"type": "text", "text": "the request"}]},
                {"role": "assistant", "content": "{}"},
                {"role": "user", "content": "fix it"},
            ],
        )
    assert json.loads(completion.choices[0].message.content) == {"echo": "the request"}
    (request,) = server.requests
    assert (request.first_user_text, request.text) == ("the request", "fix it")


def test_reply_with_a_plan_and_usage(server: OpenAIServer) -> None:
    server.script("2+2", Reply(plan=PLAN, prompt_tokens=7, completion_tokens=3))
    completion = ask(server)
    assert json.loads(completion.choices[0].message.content) == PLAN
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    assert completion.usage.total_tokens == 10
    assert ask(server).usage.total_tokens == 120  # the default reply's usage


def test_refusal(server: OpenAIServer) -> None:
    server.default(Reply(refusal="I can't help with that."))
    message = ask(server).choices[0].message
    assert message.refusal == "I can't help with that."
    assert message.content is None


def test_truncated_replies(server: OpenAIServer) -> None:
    server.script("2+2", truncated(PLAN), truncated_stop(PLAN), Reply(content='{"steps": "nope"}'))
    cut = json.dumps(PLAN)[: len(json.dumps(PLAN)) // 2]
    first, second, third = ask(server), ask(server), ask(server)
    assert (first.choices[0].message.content, first.choices[0].finish_reason) == (cut, "length")
    assert (second.choices[0].message.content, second.choices[0].finish_reason) == (cut, "stop")
    with pytest.raises(ValueError):
        json.loads(first.choices[0].message.content)
    assert json.loads(third.choices[0].message.content) == {"steps": "nope"}


# ---- errors


def test_rate_limit_with_retry_after(server: OpenAIServer) -> None:
    server.script("2+2", rate_limited("1"), rate_limited(None, retry_after_ms="50"))
    with pytest.raises(openai.RateLimitError) as caught:
        ask(server)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as caught:
        ask(server)
    assert caught.value.response.headers["retry-after-ms"] == "50"
    assert "retry-after" not in caught.value.response.headers


def test_server_error(server: OpenAIServer) -> None:
    server.default(server_error())
    with pytest.raises(openai.InternalServerError) as caught:
        ask(server)
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"
    server.default(server_error(503))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(server)
    assert caught.value.status_code == 503


def test_wrong_or_missing_key(server: OpenAIServer) -> None:
    with client(server, api_key="wrong") as c, pytest.raises(openai.AuthenticationError) as caught:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    assert server.requests[-1].action == "unauthorized"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        connection.request("POST", "/v1/chat/completions", body=b"{}")
        response = connection.getresponse()
        assert response.status == 401
        assert json.loads(response.read())["error"]["code"] == "invalid_api_key"
    finally:
        connection.close()


def test_scripted_unauthorized(server: OpenAIServer) -> None:
    server.script("2+2", unauthorized())
    with pytest.raises(openai.AuthenticationError):
        ask(server)
    assert ask(server).choices[0].message.content  # the rule is used up


def test_unknown_model(server: OpenAIServer) -> None:
    server.script("2+2", unknown_model("gpt-nope"))
    with pytest.raises(openai.NotFoundError) as caught:
        ask(server)
    assert caught.value.code == "model_not_found"
    assert "gpt-nope" in caught.value.message


def test_bad_requests(server: OpenAIServer) -> None:
    server.script("2+2", context_length(), bad_request("nope"), Status(422, "odd", "odd_code"))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server)
    assert caught.value.code is None
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ask(server)
    assert caught.value.code == "odd_code"


def test_stream_and_bad_json_are_rejected(server: OpenAIServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server, stream=True)
    assert "stream" in caught.value.message
    assert server.requests[-1].action == "stream_rejected"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        headers = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
        connection.request("POST", "/v1/chat/completions", body=b"{not json", headers=headers)
        response = connection.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["error"]["type"] == "invalid_request_error"
        # the same connection keeps working
        connection.request("GET", "/v1/models", headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["m"]
    finally:
        connection.close()


def test_models(server: OpenAIServer) -> None:
    ask(server)
    with client(server) as c:
        assert [model.id for model in c.models.list()] == ["m"]


# ---- connections and timing


def test_reset_drops_only_that_connection(server: OpenAIServer) -> None:
    server.script("reset me", Reset())
    with client(server) as c:
        ok = c.chat.completions.create(model="m", messages=MESSAGES)
        assert ok.choices[0].message.content
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "reset me"}])
        assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    assert [r.action for r in server.requests] == ["Reply", "Reset", "Reply"]


def test_keep_alive_reuses_one_connection(server: OpenAIServer) -> None:
    server.script("2+2", Status(500), Reply(plan=PLAN))
    with client(server) as c:
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="m", messages=MESSAGES)
        for _ in range(3):
            c.chat.completions.create(model="m", messages=MESSAGES)
    assert server.connections == 1


def test_delay_past_the_timeout(server: OpenAIServer) -> None:
    server.script("slow", Delay(1.0))
    with client(server, timeout=0.2) as c:
        with pytest.raises(openai.APITimeoutError):  # raised by the client's timeout, not the reply
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "slow"}])
        assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    assert server.requests[0].action == "Delay(1)->Reply"


def test_delay_then_an_action(server: OpenAIServer) -> None:
    server.script("2+2", Delay(0.05, then=Status(503)), Delay(0.05, then=Reply(plan=PLAN)))
    with pytest.raises(openai.InternalServerError):
        ask(server)
    assert json.loads(ask(server).choices[0].message.content) == PLAN
    first = server.requests[0]
    assert first.finished_at - first.started_at >= 0.05


def test_a_client_hanging_up_leaves_the_server_serving(server: OpenAIServer) -> None:
    server.script("slow", Delay(0.1))
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "slow"}]})
        raw.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
    time.sleep(0.15)  # the server writes its reply to a closed connection
    assert ask(server).choices[0].message.content


def test_stop_interrupts_a_delay() -> None:
    server = OpenAIServer().start()
    server.default(Delay(30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ask(server)
        except openai.APIConnectionError as error:
            errors.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    while not server.requests:
        time.sleep(0.01)
    server.stop()
    server.stop()  # idempotent
    thread.join(timeout=5)
    assert not thread.is_alive()  # the 30 s delay was cut short, not waited out
    assert len(errors) == 1


def test_concurrent_requests_overlap() -> None:
    with running_server(planner=planner, latency_s=0.5) as server, client(server) as c:
        results: list[str] = []

        def call(index: int) -> None:
            completion = c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"request {index}"}]
            )
            results.append(completion.choices[0].message.content or "")

        threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        # Overlapping, not served one after another (20 x 0.5 s): a loose bound, since on a
        # busy 2-core machine the client threads themselves start slowly.
        assert server.max_in_flight >= 5
        # A handler counts itself out just after its reply is sent: give it that moment.
        deadline = time.monotonic() + 5
        while server.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.in_flight == 0
        assert sorted(json.loads(r)["echo"] for r in results) == sorted(
            f"request {i}" for i in range(20)
        )
        assert len(server.requests) == 20


# ---- scripting


def test_rules_are_consumed_in_order_then_the_default(server: OpenAIServer) -> None:
    server.script("2+2", Status(500), Reply(plan={"n": 1}))
    server.script(lambda r: r.model == "other", Reply(plan={"n": "other"}))
    server.script("2+2", Reply(plan={"n": 2}))
    with pytest.raises(openai.InternalServerError):
        ask(server)
    assert json.loads(ask(server).choices[0].message.content) == {"n": 1}
    assert json.loads(ask(server).choices[0].message.content) == {"n": 2}
    assert json.loads(ask(server).choices[0].message.content) == {"echo": "what is 2+2"}
    with client(server) as c:
        other = c.chat.completions.create(model="other", messages=MESSAGES)
    assert json.loads(other.choices[0].message.content) == {"n": "other"}
    assert [r.action for r in server.requests] == [
        "Status(500)",
        "Reply",
        "Reply",
        "Reply",
        "Reply",
    ]


def test_default_can_be_replaced_and_reset(server: OpenAIServer) -> None:
    server.default(Status(502))
    server.script("never", Reply())
    with pytest.raises(openai.InternalServerError):
        ask(server)
    server.reset()
    assert server.requests == []
    assert json.loads(ask(server).choices[0].message.content) == {"echo": "what is 2+2"}


def test_requests_are_recorded(server: OpenAIServer) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "Plan",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    }
    ask(server, temperature=0.25, response_format=response_format)
    ask(server, "second")
    first, second = server.requests
    assert (first.model, first.temperature, first.response_format) == ("m", 0.25, response_format)
    assert (second.temperature, second.response_format) == (None, None)
    assert first.messages == [{"role": "user", "content": "what is 2+2"}]
    assert first.headers["authorization"] == "Bearer test-key"
    assert first.headers["content-type"] == "application/json"
    assert first.started_at <= first.finished_at <= second.started_at


def test_schema_check_rejects_like_openai() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "Plan", "strict": True, "schema": loose},
    }
    with running_server(schema_check=strict_schema_problems) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(server, response_format=response_format)
        assert caught.value.code == "invalid_json_schema"
        assert caught.value.param == "response_format"
        assert "Invalid schema for response_format 'Plan'" in caught.value.message
        assert "additionalProperties" in caught.value.message
        assert server.requests[-1].action == "schema_rejected"
        response_format["json_schema"]["strict"] = False  # only strict schemas are checked
        assert ask(server, response_format=response_format).choices[0].message.content == "{}"


# ---- other clients


@pytest.mark.anyio
async def test_async_client(server: OpenAIServer) -> None:
    server.script("2+2", rate_limited("2"))
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test-key", max_retries=0, timeout=2
    ) as c:
        with pytest.raises(openai.RateLimitError):
            await c.chat.completions.create(model="m", messages=MESSAGES)
        completion = await c.chat.completions.create(model="m", messages=MESSAGES)
    assert json.loads(completion.choices[0].message.content or "") == {"echo": "what is 2+2"}


def test_langchain_chat_openai(server: OpenAIServer) -> None:
    server.script("hi", Reply(content="hello!", prompt_tokens=11, completion_tokens=4))
    model = ChatOpenAI(
        model="m", base_url=server.base_url, api_key="test-key", max_retries=0, timeout=2
    )
    message = model.invoke("hi")
    assert message.content == "hello!"
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 11
    assert message.usage_metadata["output_tokens"] == 4
    assert message.usage_metadata["total_tokens"] == 15
    assert server.requests[0].model == "m"
