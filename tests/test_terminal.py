"""The terminal: `partnerbot chat` through a pseudo-terminal, and `partnerbot ask --url` against a real server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import ROOT, Server, cli_env, free_port, wait_http
from partnerbot.answering.assistant import Assistant
from partnerbot.cli import app
from partnerbot.phrases import EXAMPLE_QUESTIONS, REFUSAL, UNCERTAIN
from partnerbot.serving.terminal import chat as chat_loop

BEST = "Tell me about the Border Enforcement Security Task Forces"
PROMPT = "you> "


@pytest.fixture
def chat(real_index: Path):  # type: ignore[no-untyped-def]
    env = cli_env(real_index, ROOT / "corpus") | {"TERM": "xterm", "COLUMNS": "200"}
    child = pexpect.spawn(sys.executable, ["-m", "partnerbot.cli", "chat"], use_poll=True, env=env, encoding="utf-8",
                          dimensions=(50, 200), timeout=90)
    yield child
    child.close(force=True)


def turn(child: pexpect.spawn, line: str) -> str:
    """Send one line; return what the chat printed before its next prompt."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return str(child.before)


def test_chat_holds_a_conversation_with_sources_and_commands(chat: pexpect.spawn) -> None:
    chat.expect_exact("Loading the model and the index")  # the spinner, before anything is loaded
    chat.expect_exact(PROMPT)
    first = turn(chat, BEST)
    assert "[1] Border Enforcement Security Task Forces" in first and "https://" in first
    follow = turn(chat, "When were they created?")  # leans on the first question for its topic
    assert "2005" in follow and "[1]" in follow
    full = turn(chat, "/sources 1")
    assert "doc_id: best" in full and "section: History" in full and "Laredo" in full
    assert "No source 9: the last answer has sources 1 to 1." in turn(chat, "/sources 9")
    assert "Error: The question is too long" in turn(chat, "a" * 1001)
    assert "New conversation" in turn(chat, "/new")
    alone = " ".join(turn(chat, "When were they created?").split())  # the history is gone: no topic of its own
    assert " ".join(UNCERTAIN.split()) in alone or " ".join(REFUSAL.split()) in alone  # never a confident answer
    declined = " ".join(turn(chat, "What is the capital of France?").split())
    assert " ".join(REFUSAL.split()) in declined
    assert "The last answer has no sources." in turn(chat, "/sources 1")
    assert "Unknown command /nope" in turn(chat, "/nope")
    chat.sendeof()  # Ctrl-D
    chat.expect_exact("Goodbye.")
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def _ask(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["ask", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_chat_offers_the_example_questions_under_a_decline(assistant: Assistant) -> None:
    out = io.StringIO()
    lines = iter(["What is the capital of France?", "What is HERO Corps?"])

    def read() -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        return line

    chat_loop(assistant, Console(file=out, width=200), read)
    printed = out.getvalue()
    offer = f"Try: {' · '.join(EXAMPLE_QUESTIONS)}\n"
    # The decline's text, then the questions the chat page offers as buttons; none under the answer after it.
    assert printed.count("Try: ") == 1 and offer in printed
    declined, answered = printed.split(offer)
    assert declined.endswith(REFUSAL + "\n") and "[1]" in answered


def test_ask_url_gives_the_same_json_and_exit_codes_as_local(server: Server, real_index: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["When were they created?", "--history", BEST, "--json"]
    code, remote_out, _ = _ask(*args, "--url", server.url)
    monkeypatch.setenv("PARTNERBOT_DATA_DIR", str(real_index))
    local_code, local_out, _ = _ask(*args)
    assert code == local_code == 0
    remote, local = json.loads(remote_out), json.loads(local_out)
    assert list(remote) == list(local) and remote.pop("timings_ms") and local.pop("timings_ms")
    assert remote == local and "2005" in remote["answer"]
    code, text, _ = _ask("What is HERO Corps?", "--url", server.url)  # the plain form prints sources too
    assert code == 0 and "\n[1] " in text and "as of" in text and "https://" in text
    code, text, _ = _ask("What is the capital of France?", "--url", server.url, "--json")
    assert code == 0 and json.loads(text)["refused"] is True
    code, _, err = _ask("   ", "--url", server.url)
    assert code == 1 and "empty" in err


def test_ask_url_tells_an_unreachable_server_from_one_that_is_not_partnerbot(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, err = _ask("What is HERO Corps?", "--url", url, "--json")
    assert code == 4 and out == "" and f"cannot reach the partnerbot server at {url}" in " ".join(err.split())
    port = free_port()
    other = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/", 30, other)
        code, out, err = _ask("What is HERO Corps?", "--url", f"http://127.0.0.1:{port}", "--json")
        assert code == 1 and out == "" and "did not answer as a partnerbot server" in " ".join(err.split())
    finally:
        other.terminate()
        other.wait(10)
    code, _, err = _ask("What is HERO Corps?", "--url", url, "--retriever", "bm25")
    assert code == 1 and "--retriever applies to the local assistant" in err
