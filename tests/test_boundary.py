"""One bad request must never hurt anyone else: the HTTP API against any input, malformed requests beside
ordinary ones, a question whose embedding fails, and questions with markup, Markdown and names in them.

Everything runs against a real `partnerbot serve` (or, where a failure must be planted in the embedder, the
real app in a real uvicorn server in this process), with raw bodies sent by httpx so that lone surrogates
travel as JSON escapes and invalid UTF-8 as bytes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, Server, free_port, wait_http
from partnerbot.answering import unanswered
from partnerbot.answering.assistant import Assistant
from partnerbot.answering.language import REPLIES
from partnerbot.answering.retrieve import Retriever
from partnerbot.answers import Answer
from partnerbot.index.embed import QueryBatcher, embed_queries
from partnerbot.settings import Settings

ANSWER_KEYS = {"question", "answer", "outcome", "refused", "unavailable", "notice", "passages", "language", "mode",
               "fallback", "sources", "timings_ms"}
ERROR_CODES = {"invalid_input", "invalid_request", "invalid_body", "body_too_large", "length_required", "not_found",
               "method_not_allowed", "rate_limited", "unavailable", "not_ready", "internal_error"}
ORDINARY = ["What is HERO Corps?", "What is the Criminal Alien Program?",
            "When was the Cyber Crimes Center established?", "How many lookouts has the war crimes center issued?",
            "What is the capital of France?", "Who was Jaime Zapata?", "What does HSI do?", "What is 287(g)?"]


@pytest.fixture(scope="module")
def srv(real_index: Path) -> Iterator[Server]:
    server = Server(real_index, ROOT / "corpus")
    yield server
    server.stop()


def post(url: str, body: bytes, client: httpx.Client | None = None) -> httpx.Response:
    send = client.post if client else httpx.post
    return send(url, content=body, headers={"content-type": "application/json"}, timeout=60)


def encode(obj: Any) -> bytes:
    """JSON as a client would send it: ASCII, so a lone surrogate travels as its escape ("\\ud83d")."""
    return json.dumps(obj, ensure_ascii=True).encode()


def check_api_reply(r: httpx.Response) -> dict[str, Any]:
    """A `/api/ask` reply: 200 with the answer JSON, or a 4xx with the project's error object."""
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    data = r.json()
    if r.status_code == 200:
        assert set(data) == ANSWER_KEYS and data["outcome"] in ("answered", "uncertain", "declined")
        data["question"].encode("utf-8")
    else:
        assert set(data["error"]) == {"code", "message", "field"} and data["error"]["code"] in ERROR_CODES
    return data  # type: ignore[no-any-return]


def check_openai_reply(r: httpx.Response) -> dict[str, Any]:
    """A `/v1/chat/completions` reply: a chat completion, or a 4xx with OpenAI's error object."""
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    data = r.json()
    if r.status_code == 200:
        assert data["object"] == "chat.completion" and set(data["partnerbot"]) == ANSWER_KEYS
        assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    else:
        assert set(data["error"]) >= {"message", "type", "param", "code"}
        assert data["error"]["type"] == "invalid_request_error"
    return data  # type: ignore[no-any-return]


# Every code point, lone surrogates included, and the shapes that broke assistants elsewhere.
ANY_TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=120),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=4).map(
        lambda s: f"What is HERO Corps? {s}"),
    st.sampled_from(["What is <HERO Corps>?", "# What is ERO?", "<script>alert(1)</script>", "\x00\x1b[31m",
                     "a < b", "\ud83d", "\udc00\ud800", "\u202e\u200b", "x" * 1200]),
)
HISTORY = st.lists(ANY_TEXT, max_size=4)
PART = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": ANY_TEXT}),
                 st.fixed_dictionaries({"type": st.sampled_from(["image_url", "\ud83d"]), "image_url": st.just({})}))
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "user", "system", "assistant"]),
                                 "content": st.one_of(ANY_TEXT, st.lists(PART, min_size=1, max_size=3), st.none())})
RAW = st.one_of(
    st.binary(max_size=200),  # anything at all, mostly not UTF-8
    st.tuples(ANY_TEXT, st.binary(min_size=1, max_size=8)).map(
        lambda t: b'{"question": "' + t[0].encode("utf-8", "surrogatepass") + t[1] + b'"}'),
    st.just(b'{"question": "What is \xed\xa0\xbd HERO?"}'),  # a surrogate encoded in UTF-8 bytes (CESU-8)
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=ANY_TEXT, history=HISTORY, messages=st.lists(MESSAGE, min_size=1, max_size=4), raw=RAW)
def test_any_input_gets_json_in_its_documented_shape_and_never_a_5xx(srv: Server, question: str,
                                                                      history: list[str],
                                                                      messages: list[dict[str, Any]],
                                                                      raw: bytes) -> None:
    check_api_reply(post(f"{srv.url}/api/ask", encode({"question": question, "history": history})))
    check_openai_reply(post(f"{srv.url}/v1/chat/completions", encode({"model": "partnerbot", "messages": messages})))
    check_api_reply(post(f"{srv.url}/api/ask", raw))
    check_openai_reply(post(f"{srv.url}/v1/chat/completions", raw))


def test_a_lone_surrogate_is_read_as_a_replacement_character_everywhere(srv: Server) -> None:
    plain = check_api_reply(post(f"{srv.url}/api/ask", encode({"question": "What is HERO Corps?"})))
    data = check_api_reply(post(f"{srv.url}/api/ask", encode({"question": "What is HERO Corps? \ud83d",
                                                             "history": ["\udc00 What is BEST?"]})))
    assert data["question"] == "What is HERO Corps? \ufffd"
    assert (data["outcome"], [s["doc_id"] for s in data["sources"]]) == (
        plain["outcome"], [s["doc_id"] for s in plain["sources"]])
    chat = check_openai_reply(post(f"{srv.url}/v1/chat/completions", encode({"model": "partnerbot", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is HERO Corps? \ud83d"}]}]})))
    assert chat["partnerbot"]["question"] == "What is HERO Corps? \ufffd"
    log = srv.log_path.read_text(encoding="utf-8", errors="strict")  # the server's log is valid UTF-8
    assert "UnicodeEncodeError" not in log and "Traceback" not in log


# Malformed requests: surrogates in each place, invalid UTF-8, broken JSON, markup only (benchmarks/malformed.py
# sends the same ones).
MALFORMED: list[tuple[str, bytes]] = [
    ("/api/ask", encode({"question": "What is HERO Corps? \ud83d"})),
    ("/api/ask", encode({"question": "What is BEST?", "history": ["\ud800\udbff"]})),
    ("/v1/chat/completions", encode({"model": "partnerbot", "messages": [{"role": "user", "content": "\udfff?"}]})),
    ("/api/ask", b'{"question": "What is \xff\xfe?"}'),
    ("/v1/chat/completions", b"\xc3\x28\xa0\xa1"),
    ("/api/ask", b'{"question": '),
    ("/api/ask", encode({"question": "<script>alert(1)</script>"})),
    ("/api/ask", encode({"question": "\x00" * 500})),
]


def malformed(i: int) -> tuple[str, bytes]:
    """The i-th malformed request, in turn."""
    return MALFORMED[i % len(MALFORMED)]


def test_malformed_requests_beside_ordinary_ones_hurt_no_one(srv: Server) -> None:
    """64 ordinary questions while 16 malformed requests hit the server: every ordinary one is answered as when
    alone. (Their latency with and without the malformed ones is measured by benchmarks/malformed.py.)"""
    url = srv.url
    expected = {q: check_api_reply(post(f"{url}/api/ask", encode({"question": q}))) for q in ORDINARY}
    ordinary = [ORDINARY[i % len(ORDINARY)] for i in range(64)]
    jobs: list[tuple[str, bytes, str | None]] = [("/api/ask", encode({"question": q}), q) for q in ordinary]
    for i in range(16):  # spread through the ordinary ones
        path, body = malformed(i)
        jobs.insert(i * 5, (path, body, None))
    with httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=80)) as client, \
            ThreadPoolExecutor(40) as pool:
        replies = list(pool.map(lambda job: (job, post(job[0], job[1], client)), jobs))
    for (path, _, question), r in replies:
        data = check_api_reply(r) if path == "/api/ask" else check_openai_reply(r)
        if question is not None:
            want = expected[question]
            assert r.status_code == 200
            assert (data["answer"], data["sources"], data["outcome"]) == (want["answer"], want["sources"],
                                                                         want["outcome"])
    assert httpx.get(f"{url}/healthz").status_code == 200


@pytest.mark.parametrize(("asked", "plain"), [
    ("What is <HERO Corps>?", "What is HERO Corps?"),  # not a tag: the words stay
    ("# What is ERO?", "What is ERO?"),
    ("> **What is the Criminal Alien Program?**", "What is the Criminal Alien Program?"),
    ("<p>When was the <b>Cyber Crimes Center</b> established?</p>", "When was the Cyber Crimes Center established?"),
    ("Were there < 30 BEST units in February 2013?", "Were there fewer than 30 BEST units in February 2013?"),
    ("Were there > 30 BEST units in February 2013?", "Were there more than 30 BEST units in February 2013?"),
    ("Is HERO Corps training < 1 year?", "Is HERO Corps training less than 1 year?"),
    # English with an accented Spanish name: answered in English, as the name written without accents is.
    ("Which Mexican agency took part in BEST (Secretaría de Seguridad Pública)?",
     "Which Mexican agency took part in BEST (Secretaria de Seguridad Publica)?"),
    ("Did Mexico's Secretaría de Seguridad Pública take part in BEST units?",
     "Did Mexico's Secretaria de Seguridad Publica take part in BEST units?"),
])
def test_markup_markers_symbols_and_names_are_answered_as_the_plain_question(assistant: Assistant, srv: Server,
                                                                              asked: str, plain: str) -> None:
    want = assistant.ask(plain)
    got = assistant.ask(asked)
    assert isinstance(got, Answer) and isinstance(want, Answer)
    assert got.language == "en" and got.text != REPLIES["SPANISH"].text, got.text
    assert (got.outcome, [s.quote for s in got.sources]) == (want.outcome, [s.quote for s in want.sources])
    if " < " in asked or " > " in asked:
        assert got.question == asked  # a comparison keeps its sign
    served = check_api_reply(post(f"{srv.url}/api/ask", encode({"question": asked})))
    assert served["language"] == "en" and served["outcome"] == str(want.outcome)
    assert [s["quote"] for s in served["sources"]] == [s.quote for s in want.sources]


class _Failing:
    """A query encoder that cannot embed any batch holding MARK (as the tokenizer could not embed a lone surrogate)."""

    MARK = "zebrafish-lantern"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.batches: list[int] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        if any(self.MARK in t.lower() for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        return embed_queries(self.settings, texts)


def test_a_question_whose_embedding_fails_fails_alone_with_the_json_error(real_index: Path) -> None:
    import uvicorn

    from partnerbot.serving.server import build_app

    settings = Settings(data_dir=real_index, corpus_dir=ROOT / "corpus", rate_limit=0)
    failing = _Failing(settings)
    batcher = QueryBatcher(failing, max_batch=32, wait_ms=50)  # a wide window, so the bad one shares batches
    assistant = Assistant(settings, retriever=Retriever(settings, batcher.embed), unanswered=unanswered.recorder(settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(settings, assistant), host="127.0.0.1", port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", 60)
        expected = {q: check_api_reply(post(f"{url}/api/ask", encode({"question": q}))) for q in ORDINARY}
        bad = f"What is the {_Failing.MARK} program?"
        jobs = [("/api/ask", encode({"question": q})) for q in ORDINARY] * 2
        jobs[3:3] = [("/api/ask", encode({"question": bad})), ("/v1/chat/completions", encode(
            {"model": "partnerbot", "messages": [{"role": "user", "content": bad}]}))] * 2
        with httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(len(jobs)) as pool:
            replies = list(pool.map(lambda job: (job, post(job[0], job[1], client)), jobs))
        for (path, body), r in replies:
            if _Failing.MARK.encode() in body:
                assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
                error = r.json()["error"]
                if path == "/api/ask":
                    assert error == {"code": "internal_error", "field": None, "message": error["message"]}
                else:
                    assert error["type"] == "server_error" and error["code"] == "internal_error"
                assert "Sorry" in error["message"] and "TextEncodeInput" not in r.text
            else:
                data = check_api_reply(r)
                want = expected[json.loads(body)["question"]]
                assert (data["answer"], data["sources"]) == (want["answer"], want["sources"])
        assert any(n > 1 for n in failing.batches)  # the bad question did share a batch with good ones
        metrics = httpx.get(f"{url}/metrics").text
        assert 'partnerbot_requests_total{endpoint="api_ask",outcome="error"} 2.0' in metrics
    finally:
        server.should_exit = True
        thread.join(10)
