"""The sentence-transformers model, loaded once per process through llama-index, and the question batcher."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from partnerbot.settings import Settings

# Never reach a model hub: the model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@functools.lru_cache(maxsize=4)
def _load(model_path: str) -> Any:
    import torch
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    # Computed in float32 whatever precision the weights are stored in: on a CPU, half precision is slower (on one
    # thread, 26 ms against 19 ms a question, and 510 ms against 172 ms for a batch of 32), and its rounding makes a
    # question's vector depend on the other questions in its batch (up to 2e-4 apart, against 1e-7 in float32), so
    # one client's question could reorder the passages shown to another. The test split scores the same either way.
    return HuggingFaceEmbedding(model_name=model_path, device="cpu", normalize=True, embed_batch_size=64,
                                model_kwargs={"dtype": torch.float32})


def embed_model(settings: Settings) -> Any:
    """llama-index's `HuggingFaceEmbedding` over the configured local model."""
    return _load(settings.index.embedding().path)


@functools.lru_cache(maxsize=4)
def _word_pieces(model_path: str) -> Callable[[str], list[str]]:
    """The model's own WordPiece tokens of a text, without [CLS] and [SEP], never truncated: for counting only.

    transformers' tokenizer is built to feed the model: its fast (Rust) backend cuts a text at the model's
    256-token window, and its `tokenize` logs "Token indices sequence length is longer than the specified
    maximum sequence length" for a longer text. Counting needs every token of a whole section and feeds the
    model nothing, so it uses a copy of the Rust tokenizer with truncation and padding off.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    backend = AutoTokenizer.from_pretrained(model_path, local_files_only=True).backend_tokenizer
    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return lambda text: counter.encode(text, add_special_tokens=False).tokens  # type: ignore[no-any-return]


def count_tokens(settings: Settings, text: str) -> int:
    """How many tokens of the embedding model's own tokenizer `text` holds (without [CLS] and [SEP])."""
    return len(_word_pieces(settings.index.embedding().path)(text))


def token_splitter(settings: Settings) -> Callable[[str], list[str]]:
    """llama-index's `SentenceSplitter`, counting the embedding model's own tokens."""
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(
        chunk_size=settings.index.chunk_size,
        chunk_overlap=settings.index.chunk_overlap,
        tokenizer=_word_pieces(settings.index.embedding().path),
    )
    return splitter.split_text  # type: ignore[no-any-return]


def embed_texts(settings: Settings, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Unit-length embeddings of `texts`, in batches; `on_batch(n)` reports progress."""
    model = embed_model(settings)
    out: list[list[float]] = []
    for i in range(0, len(texts), 64):
        batch = list(texts[i : i + 64])
        out.extend(model.get_text_embedding_batch(batch))
        if on_batch:
            on_batch(len(batch))
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def embed_query(settings: Settings, text: str) -> np.ndarray:
    """The unit-length embedding of one question."""
    return embed_queries(settings, [text])[0]


def embed_queries(settings: Settings, texts: list[str]) -> np.ndarray:
    """The unit-length embeddings of several questions, one row each: what a `QueryBatcher` embeds with."""
    # The very encoding `get_query_embedding` does (same model, prompt and normalisation), over a list, called on
    # the sentence-transformers model itself: llama-index wraps it in three tries with 4 to 10 s waits, which
    # hold every question behind one that can never be embedded.
    model = embed_model(settings)
    vectors = model._model.encode(texts, batch_size=model.embed_batch_size, prompt_name="query",
                                  normalize_embeddings=model.normalize, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class QueryBatcher:
    """Embeds questions that arrive together in one batch.

    Callers block in `embed`; one worker thread takes the first waiting question, collects more for up
    to `wait_ms` or until `max_batch` are waiting, and embeds them in one forward pass. Under load the
    next batch fills while the current one is embedded, so throughput rises with the load.

    One question that cannot be embedded fails alone: when a batch fails, each of its questions is embedded
    on its own, once, so the bad one gets its error and the others their vectors. Nothing is retried.

    Nothing a batch does can stop the worker: whatever escapes is given to that batch's callers as their
    error, and a worker that died anyway is started again by the next caller. A caller waits at most
    `timeout` seconds, then gets `TimeoutError`.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_batch: int, wait_ms: float,
                 timeout: float = 30.0):
        self._encode = encode
        self._max = max_batch
        self._wait = wait_ms / 1000
        self._timeout = timeout
        self._queue: queue.SimpleQueue[tuple[str, Future[np.ndarray]]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batch_sizes: collections.Counter[int] = collections.Counter()

    def embed(self, text: str) -> np.ndarray:
        """The embedding of `text`, computed in a batch with whatever else is waiting.

        Raises:
            Whatever the encoder raised for `text` (embedded on its own), or that escaped its batch.
            TimeoutError: no vector within `timeout` seconds.
        """
        if self._worker is None or not self._worker.is_alive():
            with self._start_lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
                    self._worker.start()
        future: Future[np.ndarray] = Future()
        self._queue.put((text, future))
        try:
            return future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # the worker skips it if it has not begun it
            raise TimeoutError(f"the question was not embedded within {self._timeout:g} s") from None

    def _run(self) -> None:
        while True:
            batch = self._collect()
            try:
                self._embed(batch)
            except BaseException as exc:  # the worker must outlive anything one batch does
                for _, future in batch:
                    _settle(future, error=exc)

    def _collect(self) -> list[tuple[str, Future[np.ndarray]]]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self._wait
        while len(batch) < self._max:
            try:  # what is already waiting joins at once; then wait out the window
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return [(text, future) for text, future in batch if future.set_running_or_notify_cancel()]

    def _embed(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        if not batch:
            return
        self.batch_sizes[len(batch)] += 1
        try:
            vectors = self._encode([text for text, _ in batch])
            if len(vectors) != len(batch):
                raise ValueError(f"the encoder gave {len(vectors)} vectors for {len(batch)} questions")
        except Exception:  # one bad question must not fail the others: find it by embedding each alone
            for text, future in batch:
                try:
                    _settle(future, result=self._encode([text])[0])
                except Exception as exc:
                    _settle(future, error=exc)
            return
        for (_, future), vector in zip(batch, vectors, strict=True):
            _settle(future, result=vector)


def _settle(future: Future[np.ndarray], result: np.ndarray | None = None, error: BaseException | None = None) -> None:
    """Give `future` its result or error, unless it has one already (a caller that gave up, a batch that failed late)."""
    if future.done():
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]


def query_embedder(settings: Settings, batching: bool) -> Callable[[str], np.ndarray]:
    """`embed_query` for `settings`, through a `QueryBatcher` when `batching` is on."""
    if not batching:
        return functools.partial(embed_query, settings)
    batcher = QueryBatcher(functools.partial(embed_queries, settings), settings.serving.embed_batch_size,
                           settings.serving.embed_batch_wait_ms)
    return batcher.embed
