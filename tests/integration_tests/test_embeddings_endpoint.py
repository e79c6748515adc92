"""`CRANE_EMBEDDINGS=openai` driving the real `OpenAIEmbeddings` client against the scripted server."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from graph.embeddings import OpenAIEndpointEmbeddings, make_embeddings
from graph.errors import EmbeddingsError
from tests.openai_server import (
    Delay,
    OpenAIServer,
    Reset,
    embedding_for,
    running_server,
    server_error,
    unauthorized,
)

TEXTS = ["what is 15% of 80", "add buy milk to my list"]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with running_server() as s:
        yield s


@pytest.fixture
def endpoint_env(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)


def unit(text: str, dim: int = 16) -> list[float]:
    vector = np.array(embedding_for(text, dim))
    return list(vector / np.linalg.norm(vector))


@pytest.mark.usefixtures("endpoint_env")
def test_vectors_are_the_servers_normalized(server: OpenAIServer) -> None:
    embedder = make_embeddings("openai", timeout_s=2)
    vectors = embedder.embed_documents(TEXTS)
    assert len(vectors) == 2
    for text, vector in zip(TEXTS, vectors, strict=True):
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(vector, unit(text), atol=1e-6)  # float32 on the wire
    np.testing.assert_allclose(embedder.embed_query(TEXTS[0]), vectors[0], atol=1e-9)
    assert embedder.embed_documents([]) == []  # asks nothing
    first, second = server.embedding_requests
    assert first.inputs == TEXTS and second.inputs == [TEXTS[0]]
    assert first.model == "text-embedding-3-small" and first.action == "Reply"
    assert first.endpoint == "embeddings"
    assert first.headers["authorization"] == "Bearer test-key"
    assert server.requests == []  # chat completions are recorded apart


@pytest.mark.usefixtures("endpoint_env")
def test_the_model_comes_from_the_spec(server: OpenAIServer) -> None:
    make_embeddings("openai:text-embedding-3-large").embed_query("hi")
    assert server.embedding_requests[0].model == "text-embedding-3-large"


def test_no_key_fails_on_first_use_not_before(server: OpenAIServer) -> None:
    embedder = make_embeddings("openai")  # OPENAI_API_KEY is unset by conftest
    with pytest.raises(EmbeddingsError, match="OPENAI_API_KEY"):
        embedder.embed_query("hi")
    assert server.embedding_requests == []


@pytest.mark.usefixtures("endpoint_env")
def test_a_server_error_is_an_embeddings_error_without_retries(server: OpenAIServer) -> None:
    server.script_embeddings("milk", server_error())
    embedder = make_embeddings("openai", timeout_s=2)
    with pytest.raises(EmbeddingsError, match="HTTP 500"):
        embedder.embed_documents(TEXTS)
    assert [r.action for r in server.embedding_requests] == ["Status(500)"]
    assert len(embedder.embed_documents(TEXTS)) == 2  # the rule is used up


@pytest.mark.usefixtures("endpoint_env")
def test_a_wrong_key_is_an_embeddings_error(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    with pytest.raises(EmbeddingsError, match="HTTP 401"):
        make_embeddings("openai").embed_query("hi")
    assert server.embedding_requests[0].action == "unauthorized"
    server.default_embeddings(unauthorized())
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with pytest.raises(EmbeddingsError, match="Incorrect API key"):
        make_embeddings("openai").embed_query("hi")


@pytest.mark.usefixtures("endpoint_env")
def test_connection_errors_and_timeouts(server: OpenAIServer) -> None:
    server.script_embeddings("reset", Reset())
    server.script_embeddings("slow", Delay(2.0))
    embedder = make_embeddings("openai", timeout_s=0.2)
    with pytest.raises(EmbeddingsError, match="could not reach the embeddings endpoint"):
        embedder.embed_query("reset")
    with pytest.raises(EmbeddingsError, match=r"did not answer within 0\.2 s"):
        embedder.embed_query("slow")
    assert embedder.embed_query("fine")


@pytest.mark.usefixtures("endpoint_env")
@pytest.mark.anyio
async def test_async_calls(server: OpenAIServer) -> None:
    embedder = make_embeddings("openai", timeout_s=2)
    assert isinstance(embedder, OpenAIEndpointEmbeddings)
    vectors = await embedder.aembed_documents(TEXTS)
    np.testing.assert_allclose(vectors, [unit(text) for text in TEXTS], atol=1e-6)
    np.testing.assert_allclose(await embedder.aembed_query(TEXTS[1]), vectors[1], atol=1e-9)
    server.default_embeddings(server_error(503))
    with pytest.raises(EmbeddingsError, match="HTTP 503"):
        await embedder.aembed_query("hi")
    assert len(server.embedding_requests) == 3


@pytest.mark.usefixtures("endpoint_env")
def test_embeddings_and_chat_rules_are_apart(server: OpenAIServer) -> None:
    server.script("milk", server_error())  # a chat rule: embeddings never consume it
    make_embeddings("openai").embed_documents(TEXTS)
    assert server.embedding_requests[0].action == "Reply"
    assert server._rules[0].actions  # still waiting for a chat request


# ---- the server's endpoint, raw


def post(server: OpenAIServer, body: Any, *, key: str = "test-key") -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        connection.request("POST", "/v1/embeddings", body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_raw_response_shape(server: OpenAIServer) -> None:
    status, body = post(server, {"model": "e", "input": "one text", "encoding_format": "float"})
    assert status == 200
    assert body["object"] == "list" and body["model"] == "e"
    assert body["data"] == [
        {"object": "embedding", "index": 0, "embedding": embedding_for("one text", 16)}
    ]
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    status, body = post(server, {"model": "e", "input": ["a", "b"], "dimensions": 8})
    assert status == 200
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in body["data"])


def test_raw_bad_input_and_key(server: OpenAIServer) -> None:
    status, body = post(server, {"model": "e", "input": [[1, 2, 3]]})
    assert status == 400 and body["error"]["param"] == "input"
    assert server.embedding_requests[-1].action == "input_rejected"
    status, body = post(server, {"model": "e", "input": "x"}, key="nope")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_embedding_dim_is_configurable() -> None:
    with running_server(embedding_dim=8) as server:
        status, body = post(server, {"model": "e", "input": "x", "encoding_format": "float"})
    assert status == 200 and len(body["data"][0]["embedding"]) == 8


def test_reset_forgets_embeddings_too(server: OpenAIServer) -> None:
    server.default_embeddings(server_error())
    server.script_embeddings("x", server_error())
    assert post(server, {"model": "e", "input": "x"})[0] == 500
    server.reset()
    assert server.embedding_requests == []
    assert post(server, {"model": "e", "input": "x"})[0] == 200
