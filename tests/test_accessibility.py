"""WCAG 2.1 AA on the public chat page: axe-core in every page state, the keyboard path, screen-reader output.

axe-core is installed (pinned) by `make .node/.axe-core-<version>`, which `make test` runs, and injected
into the page under test. Automated rules find only part of the problems, so the keyboard path and the
live region are checked by hand-written tests below.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import ARTIFACTS, ROOT, Server, clocked_page
from partnerbot.phrases import REFUSAL
from test_outcomes import QUESTIONS
from test_ui import wait_for_answer

AXE_JS = ROOT / ".node" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BEST = "When were the Border Enforcement Security Task Forces created?"
OFF_TOPIC = "Give me a recipe for banana bread"


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS.relative_to(ROOT)} is missing: run `make test` (or its axe-core target) first")
    return AXE_JS.read_text()


def axe_violations(page: Page, axe_source: str) -> list[dict[str, Any]]:
    """Run axe-core's WCAG 2.0/2.1 A and AA rules on the page; one summary per violated rule."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    return page.evaluate(
        """async tags => {
             const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
             return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}));
           }""",
        WCAG_TAGS,
    )


def ask_and_wait(page: Page, question: str, number: int) -> None:
    """Ask in the page and wait until answer `number` is complete (announced)."""
    box = page.get_by_label("Your question", exact=True)
    box.fill(question)
    box.press("Enter")
    wait_for_answer(page, number)
    page.clock.run_for(300)  # let Gradio's progress overlay fade out


def open_page(browser: Browser, server: Server, theme: str, width: int = 1280) -> Page:
    page = clocked_page(browser, viewport={"width": width, "height": 900}, color_scheme=theme)
    page.goto(server.url + "/")
    expect(page.get_by_label("Your question", exact=True)).to_be_visible()
    return page


def report(state: str, violations: list[dict[str, Any]]) -> str:
    return f"{state}: " + json.dumps(violations, indent=1)


PLACEHOLDER_COLOURS = """() => {
  const box = document.querySelector('#question textarea');
  let e = box, bg = 'rgba(0, 0, 0, 0)';
  while (e && (bg = getComputedStyle(e).backgroundColor) === 'rgba(0, 0, 0, 0)') e = e.parentElement;
  return [getComputedStyle(box, '::placeholder').color, bg];
}"""


FOCUS_STYLE = """() => {
  const e = document.activeElement, s = getComputedStyle(e);
  return {tag: e.tagName.toLowerCase(), id: e.id, cls: String(e.className), label: e.getAttribute('aria-label') || '',
          text: (e.textContent || '').trim().slice(0, 60), outline: s.outlineStyle, width: parseFloat(s.outlineWidth),
          color: s.outlineColor, visible: e.offsetWidth > 0 || e.offsetHeight > 0};
}"""


def luminance(rgb: str) -> float:
    r, g, b = (float(v) / 255 for v in re.findall(r"[\d.]+", rgb)[:3])
    return 0.2126 * _lin(r) + 0.7152 * _lin(g) + 0.0722 * _lin(b)


def _lin(c: float) -> float:
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def assert_focus_visible(page: Page, background: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """The focused element shows an outline of at least 2px with 3:1 contrast against the page (WCAG 2.4.7, 1.4.11)."""
    f = page.evaluate(FOCUS_STYLE)
    seen.append(f)
    assert f["tag"] != "body", f"focus was lost after {seen[:-1]}"
    assert f["outline"] != "none" and f["width"] >= 2, f"no visible focus on {f}"
    assert contrast(f["color"], background) >= 3, f"focus outline {f['color']} on {background}: {f}"
    return f


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_wcag_violations_in_every_page_state(
    server: Server, browser: Browser, axe_source: str, theme: str
) -> None:
    results: dict[str, list[dict[str, Any]]] = {}
    page = open_page(browser, server, theme)
    results["empty"] = axe_violations(page, axe_source)
    # axe does not check placeholder text; WCAG 1.4.3 counts it as text.
    placeholder, background = page.evaluate(PLACEHOLDER_COLOURS)
    assert contrast(placeholder, background) >= 4.5, (placeholder, background)
    ask_and_wait(page, BEST, 1)
    answer = page.locator("#chat .pb-msg").first
    answer.locator("details.pb-sources > summary").click()
    expect(answer.locator(".pb-card").first).to_be_visible()
    results["answer with sources"] = axe_violations(page, axe_source)
    answer.locator("details.pb-whole > summary").first.click()
    expect(answer.locator("mark.pb-cited").first).to_be_visible()
    results["whole document"] = axe_violations(page, axe_source)
    ask_and_wait(page, OFF_TOPIC, 2)
    expect(page.locator("#chat .pb-msg").nth(1)).to_contain_text(REFUSAL)
    results["refusal"] = axe_violations(page, axe_source)
    page.goto(server.url + "/")  # the unsure question on its own, in a fresh session: no earlier topic
    expect(page.get_by_label("Your question", exact=True)).to_be_visible()
    expect(page.locator("#chat .pb-msg")).to_have_count(0)
    ask_and_wait(page, QUESTIONS["uncertain"], 1)
    unsure = page.locator("#chat .pb-msg").first
    expect(unsure).to_have_class(re.compile("pb-uncertain"))
    unsure.locator("details.pb-sources > summary").click()
    results["uncertain"] = axe_violations(page, axe_source)
    page.get_by_role("button", name="Like", exact=True).last.click()
    expect(page.get_by_label("Add a comment to your vote (optional)")).to_be_visible()
    expect(page.locator("#feedback-status")).to_contain_text("recorded")
    page.clock.run_for(300)
    results["after a vote"] = axe_violations(page, axe_source)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"a11y-{theme}.png"), full_page=True)
    page.close()

    phone = open_page(browser, server, theme, width=390)
    results["390px, empty"] = axe_violations(phone, axe_source)
    ask_and_wait(phone, BEST, 1)
    phone.locator("#chat a.pb-cite").first.click()
    results["390px, answer with sources"] = axe_violations(phone, axe_source)
    ask_and_wait(phone, OFF_TOPIC, 2)
    results["390px, refusal"] = axe_violations(phone, axe_source)
    phone.screenshot(path=str(ARTIFACTS / f"a11y-{theme}-390px.png"), full_page=True)
    phone.close()

    print(theme, {state: [(v["id"], len(v["nodes"])) for v in found] for state, found in results.items()})
    failed = {state: found for state, found in results.items() if found}
    assert not failed, "\n".join(report(state, found) for state, found in failed.items())


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_keyboard_only_question_citation_card_and_source_link(server: Server, browser: Browser, theme: str) -> None:
    page = open_page(browser, server, theme)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    seen: list[dict[str, Any]] = []
    page.locator("body").focus()
    page.keyboard.press("Tab")  # the first stop: "Skip to question"
    assert "pb-skip" in assert_focus_visible(page, background, seen)["cls"]
    page.keyboard.press("Enter")
    expect(page.get_by_label("Your question", exact=True)).to_be_focused()
    page.keyboard.type(BEST)
    page.keyboard.press("Enter")
    wait_for_answer(page, 1)
    # The answer sits above the question box, so the way to it is backwards: the conversation is one stop,
    # and it starts at the newest answer's first citation.
    page.keyboard.press("Shift+Tab")
    assert_focus_visible(page, background, seen)
    marker = page.locator("#chat a.pb-cite").first
    expect(marker).to_be_focused()
    page.keyboard.press("Enter")
    card = page.locator("#src-1-1")
    expect(card).to_be_focused()
    expect(card).to_be_in_viewport()
    assert_focus_visible(page, background, seen)
    for _ in range(5):  # focus must survive the chat's re-renders: checked every 0.1 s for 0.5 s
        page.wait_for_timeout(100)
        expect(page.locator("#src-1-1")).to_be_focused()
    page.keyboard.press("Tab")
    link = page.locator("#src-1-1 .pb-page a").first  # the card's first link: the page behind the quote
    expect(link).to_be_focused()
    assert_focus_visible(page, background, seen)
    page.keyboard.press("ArrowDown")  # the arrow keys go on through the conversation
    expect(link).not_to_be_focused()
    assert page.evaluate("document.querySelector('#chat').contains(document.activeElement)")
    assert_focus_visible(page, background, seen)
    assert page.url.rstrip("/").endswith(str(server.port))  # Enter on the marker did not navigate
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"a11y-keyboard-{theme}.png"))
    page.close()


def test_screen_reader_hears_each_finished_answer_once_and_named_citations(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, "light")
    assert page.evaluate("document.documentElement.lang") == "en"
    live = page.locator("#pb-live")
    expect(live).to_have_attribute("aria-live", "polite")
    expect(live).to_have_attribute("role", "status")
    # Every change of every live region on the page, from now on.
    page.evaluate("""() => {
      window.__spoken = [];
      new MutationObserver(ms => {
        for (const m of ms) {
          const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
          const region = node && node.closest('[aria-live]:not([aria-live="off"]), [role="log"]:not([aria-live="off"])');
          if (region) window.__spoken.push([region.id || region.getAttribute('role'), region.textContent.trim()]);
        }
      }).observe(document.body, {childList: true, subtree: true, characterData: true});
    }""")
    ask_and_wait(page, BEST, 1)
    for _ in range(5):  # for 0.5 s after the answer, checked every 0.1 s
        page.wait_for_timeout(100)
        spoken = page.evaluate("window.__spoken")
        answer_parts = [text for _, text in spoken if "2005" in text]
        assert len(answer_parts) == 1, spoken  # the finished answer, once; no streamed partial answer
    expect(page.locator("#chat [role='log']")).to_have_attribute("aria-live", "off")
    assert answer_parts[0].startswith("Answer 1: ") and "Border Enforcement Security Task Force" in answer_parts[0]
    assert "(source 1)" in answer_parts[0] and "[1]" not in answer_parts[0]
    expect(live).to_contain_text("Answer 1:")
    marker = page.locator("#chat a.pb-cite").first
    expect(marker).to_have_accessible_name("source 1: Border Enforcement Security Task Forces")
    expect(page.get_by_role("link", name="source 1: Border Enforcement Security Task Forces")).to_have_count(1)

    ask_and_wait(page, OFF_TOPIC, 2)
    for _ in range(5):  # for 0.5 s after the answer, checked every 0.1 s
        page.wait_for_timeout(100)
        spoken = page.evaluate("window.__spoken")
        refusal = [text for _, text in spoken if text.startswith("Answer 2:")]
        assert refusal == [f"Answer 2: {REFUSAL}"], spoken
    page.close()
