"""The HTTP API for real: `partnerbot serve` on a free port, driven by httpx, the official `openai` client and
gradio_client. Each test speaks for its own client address (`X-Forwarded-For`, which uvicorn trusts from
loopback, as from a proxy on the same machine), so rate-limit buckets never leak between tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, expect
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, ChromaServer, Server, eventually
from partnerbot.corpus.parse import load_corpus
from partnerbot.index.build import build_index
from partnerbot.phrases import CITATION_RE, UNAVAILABLE
from partnerbot.settings import Settings
from partnerbot.types import Document

BURST = 12
RATE = 0.25  # one token every 4 s: slow enough that nothing refills in the middle of a test
QUESTIONS: list[tuple[str, list[str]]] = [
    ("What is HERO Corps?", []),
    ("What is the Criminal Alien Program?", []),
    ("When was the Cyber Crimes Center established?", []),
    ("When were they created?", ["Tell me about the Border Enforcement Security Task Forces"]),
    ("What is the capital of France?", []),
]


@pytest.fixture(scope="module")
def api(real_index: Path) -> Iterator[Server]:
    srv = Server(real_index, ROOT / "corpus", env={"PARTNERBOT_RATE_LIMIT": str(RATE),
                                                          "PARTNERBOT_RATE_BURST": str(BURST)})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def docs() -> dict[str, Document]:
    return {d.id: d for d in load_corpus(ROOT / "corpus")}


def as_client(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"10.12.0.{n}"}


def oai(srv: Server, n: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, default_headers=as_client(n))


def check_citations(data: dict[str, Any], docs: dict[str, Document]) -> None:
    """Every [n] in the answer has source n; sources are numbered 1..k; every quote is verbatim in its document."""
    numbers = [s["n"] for s in data["sources"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert {int(n) for n in CITATION_RE.findall(data["answer"])} == set(numbers)
    for s in data["sources"]:
        assert docs[s["doc_id"]].text[s["start"] : s["end"]] == s["quote"], s
    assert data["refused"] == (not data["sources"])


def ask(srv: Server, client: int, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/ask", json=body, headers=as_client(client), timeout=30, **kw)


def drain(srv: Server, client: int) -> int:
    """Spend a client's bucket with quick requests; the number that got through before the first 429."""
    served = 0
    while httpx.get(f"{srv.url}/v1/models", headers=as_client(client)).status_code == 200:
        served += 1
    return served


def test_api_ask_answers_refuses_and_follows_up(api: Server, docs: dict[str, Document]) -> None:
    r = ask(api, 1, {"question": "What is the Criminal Alien Program?"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()
    assert not data["refused"] and not data["unavailable"]
    assert data["sources"][0]["doc_id"] == "criminal-alien-program"
    check_citations(data, docs)
    assert set(data["timings_ms"]) >= {"embed", "retrieve", "compose", "total"}
    follow = ask(api, 1, {"question": "When were they created?",
                          "history": ["Tell me about the Border Enforcement Security Task Forces"]}).json()
    assert "2005" in follow["answer"] and "best" in {s["doc_id"] for s in follow["sources"]}
    refused = ask(api, 1, {"question": "What is the capital of France?"})
    assert refused.status_code == 200 and refused.json()["refused"] and refused.json()["sources"] == []


def test_every_endpoint_gives_the_same_cited_answer(api: Server, docs: dict[str, Document]) -> None:
    client = oai(api, 2)
    for i, (question, history) in enumerate(QUESTIONS):
        want = ask(api, 20 + i, {"question": question, "history": history}).json()
        check_citations(want, docs)
        via_gradio = api.ask(question, history, headers=as_client(30 + i))
        check_citations(via_gradio, docs)
        assert (via_gradio["answer"], via_gradio["sources"]) == (want["answer"], want["sources"])

        messages: list[Any] = [{"role": "user", "content": h} for h in history]
        messages.append({"role": "user", "content": question})
        plain = client.chat.completions.create(model="partnerbot", messages=messages)
        extra = plain.model_extra["partnerbot"]  # type: ignore[index]
        check_citations(extra, docs)
        assert (extra["answer"], extra["sources"]) == (want["answer"], want["sources"])
        content = plain.choices[0].message.content or ""
        assert plain.model == "partnerbot" and plain.choices[0].finish_reason == "stop"
        assert content.startswith(want["answer"])
        assert {int(n) for n in CITATION_RE.findall(content)} == {s["n"] for s in want["sources"]}
        for s in want["sources"]:  # the numbered list of sources follows the answer
            assert f"[{s['n']}] {s['title']}" in content and s["url"] in content

        pieces, last = [], None
        for chunk in client.chat.completions.create(model="partnerbot", messages=messages, stream=True):
            pieces.append(chunk.choices[0].delta.content or "")
            last = chunk
        assert len(pieces) > 2 and "".join(pieces) == content
        assert last is not None and last.choices[0].finish_reason == "stop"
        assert last.model_extra["partnerbot"]["sources"] == want["sources"]  # type: ignore[index]


def test_openai_client_lists_the_model_and_gets_clear_errors(api: Server) -> None:
    client = oai(api, 3)
    assert [m.id for m in client.models.list()] == ["partnerbot"]
    assert client.models.retrieve("partnerbot").id == "partnerbot"
    with pytest.raises(openai.NotFoundError, match="gpt-4o"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "What is BEST?"}])
    with pytest.raises(openai.BadRequestError, match="last message must be from the user"):
        client.chat.completions.create(model="partnerbot", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.chat.completions.create(model="partnerbot", messages=[{"role": "user", "content": "  "}])
    with pytest.raises(openai.BadRequestError, match="image_url"):
        client.chat.completions.create(model="partnerbot", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}])
    parts = client.chat.completions.create(model="partnerbot", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is HERO Corps?"}]}])
    assert parts.model_extra["partnerbot"]["sources"][0]["doc_id"] == "hero-corps"  # type: ignore[index]


@pytest.mark.parametrize(("body", "status", "code", "field", "words"), [
    (b'{"question": "What is BEST?"', 400, "invalid_body", None, "not valid JSON"),
    (b"", 400, "invalid_body", None, "body is empty"),
    (b'{"question": "What is \xff\xfe BEST?"}', 400, "invalid_body", None, "not valid UTF-8"),
    (b"[1, 2]", 422, "invalid_request", None, "the body must be a JSON object"),
    (b'{"history": []}', 422, "invalid_request", "question", "question: Field required"),
    (b'{"question": 42}', 422, "invalid_request", "question", "question: Input should be a valid string"),
    (b'{"question": "What is BEST?", "history": "What is HSI?"}', 422, "invalid_request", "history",
     "history: Input should be a valid list"),
    (b'{"question": "What is BEST?", "history": ["a", 7]}', 422, "invalid_request", "history[1]",
     "history[1]: Input should be a valid string"),
    (b'{"question": "What is BEST?", "k": 3}', 422, "invalid_request", "k", "k: Extra inputs are not permitted"),
    (b'{"question": "   "}', 400, "invalid_input", "question", "question is empty"),
    (b'{"question": "<p><br></p>"}', 400, "invalid_input", "question", "question is empty"),
    (json.dumps({"question": "x" * 2000}).encode(), 400, "invalid_input", "question", "too long"),
    (json.dumps({"question": "x" * 70_000}).encode(), 413, "body_too_large", None, "at most 65,536 bytes"),
])
def test_bad_bodies_get_a_status_and_a_message_naming_the_problem(api: Server, body: bytes, status: int, code: str,
                                                                   field: str | None, words: str) -> None:
    r = httpx.post(f"{api.url}/api/ask", content=body, timeout=30,
                   headers={"content-type": "application/json"} | as_client(40 + len(body) % 100))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == {"code": code, "field": field, "message": r.json()["error"]["message"]}
    assert words in r.json()["error"]["message"]
    assert "Traceback" not in r.text and "site-packages" not in r.text


def test_unknown_api_addresses_and_methods_answer_in_the_api_s_own_shape(api: Server) -> None:
    r = httpx.get(f"{api.url}/api/ask", headers=as_client(45))
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.post(f"{api.url}/api/nothing-here", json={}, headers=as_client(45))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{api.url}/v1/nothing-here", headers=as_client(45))
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_openai_endpoint_counts_usage_refuses_n_and_ignores_sampling(api: Server) -> None:
    from partnerbot.index.embed import count_tokens

    client = oai(api, 5)
    messages: list[Any] = [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "Tell me about the Border Enforcement Security Task Forces"},
                           {"role": "user", "content": "When were they created?"}]
    reply = client.chat.completions.create(model="partnerbot", messages=messages, temperature=1.7, top_p=0.1,
                                           max_tokens=3, seed=4, stop=["."], presence_penalty=1.0, user="x")
    content = reply.choices[0].message.content or ""
    assert "2005" in content and len(content.split()) > 3  # max_tokens and stop are ignored: never cut short
    settings = Settings()
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == sum(count_tokens(settings, m["content"]) for m in messages[1:])
    assert reply.usage.completion_tokens == count_tokens(settings, content)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    chunks = list(client.chat.completions.create(model="partnerbot", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.model_dump() == reply.usage.model_dump()
    plain = list(client.chat.completions.create(model="partnerbot", messages=messages, stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"
    for n in (0, 2):
        with pytest.raises(openai.BadRequestError, match="n must be 1") as caught:
            client.chat.completions.create(model="partnerbot", messages=messages, n=n)
        assert caught.value.body["param"] == "n" and caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert client.chat.completions.create(model="partnerbot", messages=messages, n=1).choices[0].index == 0


def test_chat_completions_rejects_bad_json_openai_style(api: Server) -> None:
    r = httpx.post(f"{api.url}/v1/chat/completions", content=b'{"model": "partnerbot", "messages": []}',
                   headers={"content-type": "application/json"} | as_client(4))
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    assert r.json()["error"] | {"message": ""} == {"message": "", "type": "invalid_request_error", "param": "messages",
                                                   "code": "invalid_request"}
    r = httpx.post(f"{api.url}/v1/chat/completions", content=b'{"model": "partnerbot", "messages": "\xff"}',
                   headers={"content-type": "application/json"} | as_client(4))
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]["message"]
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.post(f"{api.url}/v1/chat/completions", content=b"{not json", headers=as_client(4))
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]["message"]
    r = httpx.post(f"{api.url}/v1/chat/completions", content=b"{not json",
                   headers={"content-type": "application/json"} | as_client(4))
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_a_client_over_its_limit_gets_429_and_others_do_not(api: Server) -> None:
    gradio, client = api.client(as_client(50)), oai(api, 50)  # connecting costs tokens too: connect first
    assert BURST - 3 < drain(api, 50) < BURST  # the burst, less what connecting took
    r = ask(api, 50, {"question": "What is HERO Corps?"})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 1 / RATE
    assert r.json()["rate_limited"] is True and "Please wait" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "rate_limited"
    with pytest.raises(openai.RateLimitError, match="faster than this service"):  # one bucket for every endpoint
        client.models.list()
    limited = gradio.predict("What is HERO Corps?", [], api_name="/ask")
    assert limited["rate_limited"] and "Please wait" in limited["error"]["message"] and "sources" not in limited
    assert ask(api, 51, {"question": "What is HERO Corps?"}).status_code == 200  # another client is served
    # That the client is served again once its bucket refills: tests/test_limits.py, with a controlled clock.


def test_chat_page_says_politely_that_the_client_is_over_its_limit(api: Server, browser: Browser) -> None:
    context = browser.new_context(extra_http_headers=as_client(60))
    page = context.new_page()
    page.goto(api.url + "/")
    expect(page.get_by_label("Your question", exact=True)).to_be_visible()
    assert BURST - 3 < drain(api, 60) < BURST  # loading the page cost one
    box = page.get_by_label("Your question", exact=True)
    box.fill("What is HERO Corps?")
    box.press("Enter")
    expect(page.locator("#chat")).to_contain_text("You are asking faster than this service can answer everyone")
    expect(page.locator("#chat .pb-card")).to_have_count(0)
    context.close()


def test_metrics_count_requests_by_outcome_and_show_the_index_version(api: Server) -> None:
    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{api.url}/metrics", headers=as_client(70)).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def count(m: dict, endpoint: str, outcome: str) -> float:
        return m[("partnerbot_requests_total", (("endpoint", endpoint), ("outcome", outcome)))]

    before = scrape()
    ask(api, 71, {"question": "What is HERO Corps?"})
    ask(api, 71, {"question": "What is the capital of France?"})
    ask(api, 71, {"question": ""})
    oai(api, 71).chat.completions.create(model="partnerbot", messages=[{"role": "user", "content": "What is BEST?"}])
    api.ask("What is HERO Corps?", headers=as_client(72))
    drain(api, 73)
    assert ask(api, 73, {"question": "What is HERO Corps?"}).status_code == 429
    after = scrape()
    assert count(after, "api_ask", "answered") - count(before, "api_ask", "answered") == 1
    assert count(after, "api_ask", "refused") - count(before, "api_ask", "refused") == 1
    assert count(after, "api_ask", "invalid") - count(before, "api_ask", "invalid") == 1
    assert count(after, "api_ask", "rate_limited") - count(before, "api_ask", "rate_limited") == 1
    assert count(after, "gradio_ask", "answered") - count(before, "gradio_ask", "answered") == 1
    completions = sum(count(after, "chat_completions", o) - count(before, "chat_completions", o)
                      for o in ("answered", "uncertain", "refused"))
    assert completions == 1
    for stage in ("embed", "retrieve", "compose"):
        key = ("partnerbot_stage_seconds_count", (("stage", stage),))
        assert after[key] - before.get(key, 0) == 4  # each answer: two from /api/ask, one each from the others
    total = ("partnerbot_request_seconds_count", (("endpoint", "api_ask"),))
    assert after[total] - before[total] == 2  # the questions asked; the empty one is counted, refused before asking
    assert count(after, "models", "rate_limited") - count(before, "models", "rate_limited") == 1
    version = httpx.get(f"{api.url}/healthz").json()["index_version"]
    assert after[("partnerbot_index_version", (("version", version),))] == 1.0


def test_access_log_is_one_json_line_per_request_without_question_or_address(api: Server) -> None:
    marker = "Zanzibar-lighthouse-7391"
    before = api.log_path.read_text().count("\n")
    ask(api, 80, {"question": f"What is {marker}?"})
    httpx.get(f"{api.url}/v1/models", headers={"X-Forwarded-For": "10.12.9.80"})
    httpx.get(f"{api.url}/healthz?token=secret")
    expected = [("POST", "/api/ask", 200), ("GET", "/v1/models", 200), ("GET", "/healthz", 200)]

    def logged() -> list[dict[str, Any]]:
        complete = api.log_path.read_text().split("\n")[before:-1]  # not a line the server is still writing
        entries = [json.loads(line) for line in complete if line.startswith("{")]
        # (a chat page of an earlier test may still log its event stream closing, at any moment)
        return [e for e in entries if not e["path"].startswith("/gradio_api/")]

    def requests(entries: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
        return [(e["method"], e["path"], e["status"]) for e in entries][-3:]

    lines = eventually(logged, lambda entries: requests(entries) == expected, within=5)  # written after answering
    text = api.log_path.read_text()
    assert requests(lines) == expected
    assert lines[-3]["outcome"] == "refused" and lines[-3]["endpoint"] == "api_ask"
    assert all(isinstance(e["duration_ms"], float) for e in lines)
    assert marker not in text and "10.12.9.80" not in text and "10.12.0.80" not in text
    assert "127.0.0.1:" not in "".join(json.dumps(e) for e in lines) and "secret" not in text


def test_docs_and_schema_and_no_uploads(api: Server) -> None:
    schema = httpx.get(f"{api.url}/openapi.json").json()
    assert {"/api/ask", "/v1/chat/completions", "/v1/models", "/metrics"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/ask"]["post"]["responses"]) >= {"200", "400", "422", "429", "503"}
    # The documented answer lists every key the answer JSON carries, so the schema cannot fall behind the types.
    answer = httpx.post(f"{api.url}/api/ask", json={"question": "What is HERO Corps?"}, headers=as_client(91), timeout=30).json()
    documented = schema["components"]["schemas"]
    assert set(answer) - {"error"} <= set(documented["AnswerOut"]["properties"])
    assert answer["sources"] and set(answer["sources"][0]) <= set(documented["Source"]["properties"])
    assert "swagger" in httpx.get(f"{api.url}/docs").text.lower()
    probe = {"files": ("probe.txt", b"partnerbot-upload-probe" * 1000, "text/plain")}
    for path in ("/gradio_api/upload", "/api/ask", "/v1/chat/completions"):
        r = httpx.post(api.url + path, files=probe, headers=as_client(90), timeout=30)
        assert r.status_code in (400, 404, 413, 422), (path, r.status_code)
        assert "probe.txt" not in r.text
    stored = [p for p in api.gradio_tmp.rglob("*") if p.is_file()] if api.gradio_tmp.exists() else []
    assert not any(p.name == "probe.txt" for p in stored)


def test_store_outage_is_503_unavailable_on_every_endpoint(tmp_path: Path, tiny_corpus: Path,
                                                          chroma_server: ChromaServer, model: object) -> None:
    question = "How many spare lighthouse lamps does the Alpha Program keep?"
    build_index(Settings(data_dir=tmp_path / "maintainer", corpus_dir=tiny_corpus, chroma_url=chroma_server.url))
    (tmp_path / "srv").mkdir()
    srv = Server(tmp_path / "srv" / "data", tiny_corpus, chroma_server.url)
    try:
        assert "4817" in ask(srv, 1, {"question": question}).json()["answer"]
        call = f"{srv.url}/gradio_api/call/ask"  # Gradio's REST route for the `/ask` endpoint
        assert "event_id" in httpx.post(call, json={"data": [question, []]}, timeout=30).json()
        chroma_server.kill()  # the route asks the store at most once a second: it says so within that second
        r = eventually(lambda: httpx.post(call, json={"data": [question, []]}, timeout=30),
                       lambda r: r.status_code == 503, within=1.2)
        assert r.status_code == 503 and r.json()["unavailable"] is True and r.json()["error"]["message"] == UNAVAILABLE
        r = ask(srv, 1, {"question": question})
        assert r.status_code == 503 and r.json() == {"error": {"code": "unavailable", "message": UNAVAILABLE,
                                                               "field": None},
                                                     "outcome": "unavailable", "unavailable": True}
        with pytest.raises(openai.InternalServerError) as caught:
            oai(srv, 1).chat.completions.create(model="partnerbot", messages=[{"role": "user", "content": question}])
        assert caught.value.status_code == 503 and caught.value.body["message"] == UNAVAILABLE  # type: ignore[index]
        assert caught.value.response.json()["unavailable"] is True
        gradio = srv.ask(question)
        assert gradio["unavailable"] is True and gradio["error"]["message"] == UNAVAILABLE
        metrics = httpx.get(f"{srv.url}/metrics").text
        assert 'partnerbot_requests_total{endpoint="api_ask",outcome="unavailable"} 1.0' in metrics
        chroma_server.start()
        back = eventually(lambda: ask(srv, 1, {"question": question}), lambda r: r.status_code == 200, within=1.2)
        assert "4817" in back.json()["answer"]
    finally:
        srv.stop()


def test_one_history_rule_on_every_front_end(api: Server) -> None:
    """Any number of earlier turns may be sent (within the body limit); every front end reads the last six."""
    topic = "Tell me about the Border Enforcement Security Task Forces"
    long = ["What is HERO Corps?"] * 300 + [topic]
    want = ask(api, 60, {"question": "When were they created?", "history": long[-6:]}).json()
    assert want["sources"] and want["sources"][0]["doc_id"] == "best"
    for turns in (long[-51:], long):
        r = ask(api, 61, {"question": "When were they created?", "history": turns})
        assert r.status_code == 200, r.text
        assert (r.json()["answer"], r.json()["sources"]) == (want["answer"], want["sources"])
    via_gradio = api.ask("When were they created?", long, headers=as_client(62))
    assert (via_gradio["answer"], via_gradio["sources"]) == (want["answer"], want["sources"])
    messages: list[Any] = [{"role": "user", "content": h} for h in [*long, "When were they created?"]]
    extra = oai(api, 63).chat.completions.create(model="partnerbot", messages=messages).model_extra["partnerbot"]  # type: ignore[index]
    assert (extra["answer"], extra["sources"]) == (want["answer"], want["sources"])
