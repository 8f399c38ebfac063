"""The three outcomes (answered, uncertain, declined) through every front end: the assistant, `ask --json`,
`chat`, `/api/ask`, the OpenAI endpoint and the chat page, on the real corpus with the shipped model and reader."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import httpx
import pexpect
import pytest
from playwright.sync_api import Browser, expect
from typer.testing import CliRunner

from conftest import ARTIFACTS, ROOT, Server, cli_env, clocked_page
from partnerbot.answering.assistant import Assistant
from partnerbot.cli import app
from partnerbot.phrases import REFUSAL, UNCERTAIN
from test_ui import ask_in_page

# One question per outcome, as the public asks them. The uncertain one is in scope (the corpus speaks of
# HSI's training) but does not say which training is meant, so no one sentence is a confident answer.
QUESTIONS = {
    "answered": "What is HERO Corps?",
    "uncertain": "what kind of training is there",
    "declined": "What is the capital of France?",
}


def check_shape(data: dict, outcome: str) -> None:
    """The JSON of an answer with `outcome`: sources and text as that outcome shows them."""
    assert data["outcome"] == outcome, (data["question"], data["outcome"], data["answer"][:200])
    assert data["refused"] is (outcome == "declined")
    if outcome == "declined":
        assert data["sources"] == [] and data["answer"] == REFUSAL
    elif outcome == "uncertain":
        lines = data["answer"].split("\n")
        assert lines[0] == UNCERTAIN and 1 <= len(data["sources"]) <= 3 and len(lines) == len(data["sources"]) + 1
        for source, line in zip(data["sources"], lines[1:], strict=True):  # each passage quoted and cited
            assert line == f"- {source['quote']} [{source['n']}]"
    else:
        assert data["sources"] and not data["answer"].startswith(UNCERTAIN) and "[1]" in data["answer"]


@pytest.mark.parametrize("outcome", sorted(QUESTIONS))
def test_each_outcome_from_the_assistant(assistant: Assistant, outcome: str) -> None:
    answer = assistant.ask(QUESTIONS[outcome])
    check_shape(answer.to_dict(), outcome)


def test_each_outcome_from_ask_json_and_chat(real_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERBOT_DATA_DIR", str(real_index))
    for outcome, question in QUESTIONS.items():
        result = CliRunner().invoke(app, ["ask", question, "--json"])
        assert result.exit_code == 0, result.output
        check_shape(json.loads(result.stdout), outcome)
    env = cli_env(real_index, ROOT / "corpus") | {"TERM": "xterm", "COLUMNS": "200"}
    chat = pexpect.spawn(sys.executable, ["-m", "partnerbot.cli", "chat"], use_poll=True, env=env, encoding="utf-8",
                         dimensions=(50, 200), timeout=90)
    chat.logfile_read = io.StringIO()  # everything the chat printed
    try:
        # In a conversation a question leans on the earlier ones ("what kind of training is there" after "What is
        # HERO Corps?" asks about HERO Corps' training), so the one with no topic of its own comes first.
        for question in (QUESTIONS["uncertain"], QUESTIONS["declined"], QUESTIONS["answered"]):
            chat.expect_exact("you> ")
            chat.sendline(question)
        chat.expect_exact("you> ")
        chat.sendeof()
        chat.expect(pexpect.EOF)
        printed = " ".join(chat.logfile_read.getvalue().split())
    finally:
        chat.close(force=True)
    assert " ".join(UNCERTAIN.split()) in printed
    assert " ".join(REFUSAL.split()[:8]) in printed


def test_each_outcome_through_the_http_apis(server: Server) -> None:
    for outcome, question in QUESTIONS.items():
        check_shape(server.ask(question), outcome)
        reply = httpx.post(server.url + "/api/ask", json={"question": question}, timeout=60)
        assert reply.status_code == 200
        check_shape(reply.json(), outcome)
        chat = httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
            "model": "partnerbot", "messages": [{"role": "user", "content": question}]}).json()
        data, content = chat["partnerbot"], chat["choices"][0]["message"]["content"]
        check_shape(data, outcome)
        assert content.startswith(UNCERTAIN) is (outcome == "uncertain")
        assert ("Sources:" in content) is (outcome != "declined")


def test_each_outcome_on_the_chat_page(server: Server, browser: Browser) -> None:
    page = clocked_page(browser)
    for outcome in ("answered", "uncertain", "declined"):
        page.goto(server.url + "/")  # each question on its own, as the API asks it, in a fresh session
        expect(page.locator("#chat .pb-msg")).to_have_count(0)
        ask_in_page(page, QUESTIONS[outcome], 0)
        last = page.locator("#chat .pb-msg").first  # one look for every outcome: the text, then its sources
        expect(last).to_have_class(re.compile(f"pb-{outcome}"))
        if outcome == "uncertain":
            expect(last).to_contain_text(UNCERTAIN)
            last.locator("details.pb-sources > summary").click()
            expect(last.locator(".pb-note")).to_contain_text("Not a confident answer")
            expect(last.locator(".pb-card").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "outcome-uncertain.png"))
        elif outcome == "declined":
            expect(last).to_contain_text(REFUSAL)
            expect(last.locator(".pb-card")).to_have_count(0)
        else:
            expect(last).not_to_contain_text(UNCERTAIN)
            last.locator("details.pb-sources > summary").click()
            expect(last.locator(".pb-card").first).to_be_visible()
            expect(last.locator(".pb-note")).to_have_count(0)
    page.close()
