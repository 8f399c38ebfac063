"""The chat page: the cost of building an answer's message (its cards and whole documents) on the server, the
size it sends, and, in headless Chromium at 390x844, the time from Enter to the finished answer on the page."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import ROOT, free_port, machine, p50, pct, questions, table, temp_dir

from partnerbot.answering.assistant import Assistant
from partnerbot.index.build import build_index
from partnerbot.serving.cards import message_html
from partnerbot.serving.page import SourceDates
from partnerbot.settings import Settings


def in_process(assistant: Assistant, qs: list[tuple[str, list[str]]]) -> list[list[object]]:
    checked = SourceDates(assistant)
    build, size, cards = [], [], []
    for q, h in qs:
        data = assistant.ask(q, h).to_dict()
        t0 = time.perf_counter()
        shown = message_html(data, 1, assistant.document, checked())
        build.append((time.perf_counter() - t0) * 1000)
        size.append(len(shown.encode()) / 1024)
        cards.append(len(data["sources"]))
    with_sources = [s for s, n in zip(size, cards, strict=True) if n]
    return [["build one message (ms)", p50(build), pct(build, 0.95), max(build)],
            ["message size, with sources (KB)", p50(with_sources), pct(with_sources, 0.95), max(with_sources)]]


def in_browser(url: str, qs: list[tuple[str, list[str]]]) -> list[list[object]]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(url)
        box = page.get_by_label("Your question")
        box.wait_for()
        for n, (q, _) in enumerate(qs, 1):
            if n % 10 == 1:  # a fresh conversation every ten questions, as a visitor would start
                page.get_by_role("button", name="New chat").click()
                page.wait_for_function("() => !document.querySelector('#chat .pb-msg')")
                base = n - 1
            box.fill(q)
            t0 = time.perf_counter()
            box.press("Enter")
            page.wait_for_function("k => (document.querySelector('#pb-live') || {}).textContent?.startsWith(`Answer ${k}:`)",
                                   arg=n - base, polling=10)
            times.append((time.perf_counter() - t0) * 1000)
        browser.close()
    return [["Enter to the finished answer, 390 px (ms)", p50(times), pct(times, 0.95), max(times)]]


def main(count: int = 40) -> None:
    data = temp_dir("page")
    settings = Settings(data_dir=data, corpus_dir=ROOT / "corpus")
    build_index(settings)
    assistant = Assistant(settings)
    qs = questions()[:count]
    rows = in_process(assistant, qs)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNERBOT_")} | {
        "PARTNERBOT_DATA_DIR": str(data), "PARTNERBOT_CORPUS_DIR": str(ROOT / "corpus"),
        "PARTNERBOT_PORT": str(port), "PARTNERBOT_RATE_LIMIT": "0", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        rows += in_browser(f"http://127.0.0.1:{port}/", [(q, []) for q, _ in qs])
    finally:
        proc.terminate()
        proc.wait(20)
    print(f"The chat page over {len(qs)} eval questions (history left out in the browser); {machine()}\n")
    print(table(["measure", "p50", "p95", "max"], rows))


if __name__ == "__main__":
    main()
