"""The chat server, for real: `partnerbot serve`, gradio_client, and headless Chromium via Playwright."""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from conftest import ARTIFACTS, ROOT, Server, cli_env, clocked_page, eventually
from partnerbot.corpus.parse import load_corpus
from partnerbot.evaluation.cases import load_cases
from partnerbot.index.build import build_index
from partnerbot.phrases import REFUSAL
from partnerbot.settings import Settings


def wait_for_answer(page: Page, number: int) -> None:
    """Wait until answer `number` is complete: the page announces it to screen readers then (see page.js)."""
    page.wait_for_function(
        "n => { const l = document.querySelector('#pb-live'); return !!l && l.textContent.startsWith(`Answer ${n}:`); }",
        arg=number, timeout=30_000)
    page.clock.run_for(600)  # the chat's own scrolling (300 ms after an update), then page.js's


def ask_in_page(page: Page, question: str, answers_before: int) -> None:
    box = page.get_by_label("Your question", exact=True)
    box.fill(question)
    box.press("Enter")
    wait_for_answer(page, answers_before + 1)


def test_api_returns_cited_answers_refusals_and_follow_ups(server: Server) -> None:
    data = server.ask("What is the Criminal Alien Program?")
    assert set(data) == {"question", "answer", "outcome", "refused", "unavailable", "notice", "passages", "language",
                         "mode", "fallback", "sources", "timings_ms"}
    assert not data["refused"] and "[1]" in data["answer"] and data["unavailable"] is False
    assert data["sources"][0]["doc_id"] == "criminal-alien-program"
    refused = server.ask("What is the capital of France?")
    assert refused["refused"] and refused["sources"] == []
    follow = server.ask("When were they created?", ["Tell me about the Border Enforcement Security Task Forces"])
    assert "2005" in follow["answer"] and "best" in {s["doc_id"] for s in follow["sources"]}
    empty = server.ask("   ")
    assert empty["error"]["code"] == "invalid_input" and empty["error"]["field"] == "question"
    assert "empty" in empty["error"]["message"] and "answer" not in empty


def test_two_clients_at_once_each_get_their_own_answer(server: Server) -> None:
    questions = {"hero-corps": "What is HERO Corps?", "best": "Who was Jaime Zapata?"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {doc: pool.submit(server.ask, q) for doc, q in questions.items()}
        results = {doc: f.result() for doc, f in futures.items()}
    for doc, data in results.items():
        assert data["question"] == questions[doc]
        assert data["sources"][0]["doc_id"] == doc


def test_health_route_and_no_stray_files(server: Server) -> None:
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["ok"] and health["store_reachable"] and health["index_version"].startswith("v")
    for path in ("/file=/etc/passwd", "/gradio_api/file=/etc/passwd", f"/gradio_api/file={server.data_dir}/feedback.jsonl"):
        r = httpx.get(server.url + path)
        assert r.status_code in (400, 403, 404), path
        assert "root:" not in r.text


def test_browser_chat_sources_under_each_answer_and_script_safety(server: Server, browser: Browser) -> None:
    page = clocked_page(browser, viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server.url + "/")
    ask_in_page(page, "When were the Border Enforcement Security Task Forces created?", 0)
    first = page.locator("#chat .pb-msg").first
    expect(first).to_contain_text("[1]")
    sources = first.locator("details.pb-sources")  # right under the answer, collapsed to one line naming them
    expect(sources.locator("> summary")).to_contain_text("Border Enforcement Security Task Forces")
    assert sources.evaluate("d => d.open") is False
    first.locator("a.pb-cite").first.click()  # a citation opens them and moves to its card
    card = first.locator(".pb-card").first
    expect(card).to_be_focused()
    expect(card).to_have_class(re.compile("pb-focus"))
    expect(card).to_contain_text("Border Enforcement Security Task Forces")
    expect(card.locator(".pb-quote mark")).to_contain_text("2005")
    # The card links the page behind the quoted sentence (its footnote), and the program's own page.
    best = next(d for d in load_corpus(ROOT / "corpus") if d.id == "best")
    quote = card.locator(".pb-quote mark").inner_text()
    start = best.text.index(quote)
    supporting = best.pages(start, start + len(quote))[0]
    link = card.locator(".pb-page a").first
    expect(link).to_have_attribute("href", supporting.url)
    expect(card.locator(".pb-page").first).to_contain_text(supporting.date)
    if supporting.url != best.url:
        expect(card.locator(".pb-program a")).to_have_attribute("href", "https://www.ice.gov/best")
    # No internet here: the public page is served by a stand-in, so the test sees the link open in a new tab.
    page.context.route(supporting.url, lambda route: route.fulfill(status=200, content_type="text/html",
                                                                   body="<title>supporting page</title>"))
    with page.expect_popup() as opened:
        link.click()
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url == supporting.url and popup.title() == "supporting page"
    popup.close()

    ask_in_page(page, "What is HERO Corps?", 1)
    second = page.locator("#chat .pb-msg").nth(1)
    expect(second.locator("details.pb-sources > summary")).to_contain_text("Child-Rescue Corps")
    expect(first.locator("details.pb-sources > summary")).to_contain_text("Border Enforcement Security Task Forces")

    ask_in_page(page, "What is the Criminal Alien Program?", 2)
    first.locator("a.pb-cite").first.click()  # answer 1's [1], two answers later
    expect(page.locator("#src-1-1")).to_be_focused()
    assert page.url.rstrip("/").endswith(str(server.port))  # the link did not navigate

    ask_in_page(page, "<script>alert('xss')</script><img src=x onerror=alert(1)> What is BEST?", 3)
    for _ in range(5):  # no script ran, checked every 0.1 s for 0.5 s (an image's onerror comes after its request)
        page.wait_for_timeout(100)
        assert dialogs == []
    # the question is shown as it was read: cleaned of its markup, never run
    expect(page.locator('[aria-label^="user\'s message"]').nth(3)).to_have_text("What is BEST?")
    expect(page.locator("#chat")).not_to_contain_text("alert(")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#chat [data-testid='bot']")).to_have_count(0)
    page.close()


def test_refused_answer_shows_no_source_cards(server: Server, browser: Browser) -> None:
    page = clocked_page(browser)
    page.goto(server.url + "/")
    ask_in_page(page, "Give me a recipe for banana bread", 0)
    expect(page.locator("#chat .pb-msg").first).to_contain_text(REFUSAL)
    expect(page.locator("#chat .pb-card")).to_have_count(0)
    page.close()


def test_sessions_do_not_share_state(server: Server, browser: Browser) -> None:
    a, b = browser.new_context(), browser.new_context()
    pa, pb = clocked_page(a), clocked_page(b)
    pa.goto(server.url + "/")
    pb.goto(server.url + "/")
    ask_in_page(pa, "What is HERO Corps?", 0)
    pb.reload()
    expect(pb.locator("#chat [data-testid='bot']")).to_have_count(0)
    expect(pb.locator("#chat .pb-card")).to_have_count(0)
    ask_in_page(pb, "What is C3?", 0)
    expect(pa.locator("#chat")).not_to_contain_text("Cyber Crimes Center (C3) is")
    a.close()
    b.close()


def test_feedback_vote_then_an_optional_comment_is_logged_and_exported(server: Server, browser: Browser,
                                                                       tmp_path: Path) -> None:
    log = server.data_dir / "feedback.jsonl"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    page = clocked_page(browser)
    page.goto(server.url + "/")
    ask_in_page(page, "What is HERO Corps?", 0)
    comment = page.get_by_label("Add a comment to your vote (optional)")
    expect(comment).to_have_count(0)  # the page asks for a vote first
    page.get_by_role("button", name="Like", exact=True).first.click()
    expect(page.locator("#feedback-status")).to_contain_text("your vote on answer 1 was recorded")
    comment.fill("clear and useful")
    page.get_by_role("button", name="Send comment").click()
    expect(page.locator("#feedback-status")).to_contain_text("your comment on answer 1 was recorded")
    expect(comment).to_have_count(0)
    page.close()
    lines = log.read_text().splitlines()
    assert len(lines) == before + 2  # the vote at once, then the vote again with its comment
    vote, commented = (json.loads(line) for line in lines[-2:])
    assert vote["vote"] == commented["vote"] == "up" and vote["comment"] == ""
    assert commented["comment"] == "clear and useful"
    entry = commented
    assert entry["question"] == "What is HERO Corps?" and entry["sources"][0]["doc_id"] == "hero-corps"
    assert entry["index_version"].startswith("v")
    assert not {"ip", "client", "user_agent", "headers"} & set(entry)
    out = tmp_path / "from-feedback.yaml"
    result = subprocess.run([sys.executable, "-m", "partnerbot.cli", "feedback", "export", "--to-evals", str(out)],
                            env=cli_env(server.data_dir, ROOT / "corpus"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    cases = load_cases([out], doc_ids={"hero-corps", "287g", "best", "ipr-center", "cyber-crimes-center"} | {
        "ero", "hsi", "criminal-alien-program", "human-rights-violators-war-crimes-center",
        "office-of-partnership-and-engagement", "press-release-2020-07-30"})
    assert [c.sources for c in cases if c.question == "What is HERO Corps?"] == [("hero-corps",)]  # one case
    assert "comment: clear and useful" in out.read_text()


def test_hot_reload_after_reindex(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    data = tmp_path / "data"
    s = Settings(data_dir=data, corpus_dir=tiny_corpus)
    build_index(s)
    srv = Server(data, tiny_corpus)
    try:
        assert "4817" in srv.ask("How many spare lighthouse lamps does the Alpha Program keep?")["answer"]
        alpha = tiny_corpus / "alpha.md"
        alpha.write_text(alpha.read_text().replace("4817", "5926"))
        build_index(s)
        # The server reads the active pointer at most once a second: it answers from the new version by then.
        answer = eventually(lambda: srv.ask("How many spare lighthouse lamps does the Alpha Program keep?"),
                            lambda data: "4817" not in data["answer"], within=1.2)
        assert "5926" in answer["answer"] and "4817" not in answer["answer"]
    finally:
        srv.stop()


def test_no_route_accepts_an_anonymous_upload(server: Server) -> None:
    marker = b"partnerbot-upload-probe-" + b"x" * 5_000_000
    for path in ("/gradio_api/upload", "/upload", "/gradio_api/upload/", "/gradio_api/upload?upload_id=abc"):
        r = httpx.post(server.url + path, files={"files": ("probe.txt", marker, "text/plain")}, timeout=30)
        assert r.status_code in (404, 413), (path, r.status_code)
        assert "probe.txt" not in r.text
    assert server.ask("What is HERO Corps?")["sources"]  # the chat still works
    stored = [p for p in server.gradio_tmp.rglob("*") if p.is_file()] if server.gradio_tmp.exists() else []
    assert not any(p.stat().st_size >= 5_000_000 or p.name == "probe.txt" for p in stored), stored
