"""The chat page as the public uses it: phone first, short declines, sources under each answer, a short
keyboard path. Real server, real Chromium; screenshots of every state at 320, 390 and 1280 px go to
test-artifacts/page-<width>-<state>.png."""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import ARTIFACTS, ROOT, Server, clocked_page
from partnerbot.corpus.parse import load_corpus
from partnerbot.phrases import EXAMPLE_QUESTIONS, REFUSAL, UNCERTAIN
from partnerbot.serving.cards import date_label, document_html
from test_outcomes import QUESTIONS
from test_ui import ask_in_page, wait_for_answer

ANSWERED = "When were the Border Enforcement Security Task Forces created?"
DOCS = {d.id: d for d in load_corpus(ROOT / "corpus")}
# The day the live pages were checked: the latest date any footnote carries.
CHECKED = max(f.page.date for d in DOCS.values() for f in d.footnotes)
DATE_WORDS = re.compile(r", (page checked|published|archived) (\d{4}-\d{2}-\d{2})$")


def open_page(browser: Browser, server: Server, width: int, height: int = 844) -> Page:
    page = clocked_page(browser, viewport={"width": width, "height": height})
    page.goto(server.url + "/")
    expect(page.get_by_label("Your question", exact=True)).to_be_visible()
    return page


def message(page: Page, n: int) -> Any:
    """Answer `n` (1-based) as the chat shows it."""
    return page.locator("#chat .pb-msg").nth(n - 1)


def no_sideways_scroll(page: Page, state: str) -> None:
    widths = page.evaluate("""() => {
      const d = document.documentElement, log = document.querySelector('#chat [role="log"]');
      return {page: [d.scrollWidth, d.clientWidth], chat: log ? [log.scrollWidth, log.clientWidth] : [0, 0]};
    }""")
    for where, (scroll, client) in widths.items():
        assert scroll <= client, f"{state}: the {where} scrolls sideways ({scroll} > {client})"


def shoot(page: Page, width: int, state: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{width}-{state}.png"))


# -- without a browser ------------------------------------------------------------------------------------------
def test_the_decline_is_short_and_says_what_partnerbot_covers() -> None:
    words = REFUSAL.split()
    assert len(words) <= 35, len(words)
    assert "outside what my sources cover" in REFUSAL and "ICE partnership programs" in REFUSAL
    # The programs are listed once, in the page's intro, and the examples are buttons: neither is in the text.
    assert "287(g)" not in REFUSAL and "HERO Corps" not in REFUSAL and "?" not in REFUSAL


def test_dates_say_whether_the_page_was_checked_published_or_archived() -> None:
    # Three footnotes of corpus/best.md, one of each kind.
    assert date_label("https://www.ice.gov/best", CHECKED, CHECKED) == f"page checked {CHECKED}"
    assert date_label("https://www.ice.gov/news/releases/ice-launches-web-page-highlight-critical-partnerships-"
                      "law-enforcement-agencies", "2020-07-30", CHECKED) == "published 2020-07-30"
    capture = "https://cybercemetery.unt.edu/archive/oilspill/20130215181801/http://www.ice.gov/best/"
    assert date_label(capture, "2013-02-15", CHECKED) == "archived 2013-02-15"
    # An archived copy of a dated release is dated by its publication, not its capture.
    release = "https://webarchive.library.unt.edu/web/20121007043610/http://www.ice.gov/news/releases/1001/x.htm"
    assert date_label(release, "2010-01-08", CHECKED) == "published 2010-01-08"
    assert CHECKED == "2026-11-28"


def test_the_whole_document_is_sanitised_html_with_the_cited_sentence_marked() -> None:
    text = ("# Title\n\nIntro <script>alert(1)</script> text.\n\n## Section\n\nThe cited sentence is here. "
            "[a link](javascript:alert(2)) and [a page](https://www.ice.gov/best).\n")
    start = text.index("The cited")
    end = text.index("here.") + len("here.")
    shown = document_html(text, start, end, "doc-1-1")
    assert "<h1>Title</h1>" in shown and "<h2>Section</h2>" in shown and "\n" not in shown
    assert '<mark class="pb-cited" id="doc-1-1">The cited sentence is here.</mark>' in shown
    assert "<script" not in shown and "javascript:" not in shown.replace("[a link](javascript:", "")
    assert 'href="https://www.ice.gov/best"' in shown and "noopener" in shown
    real = DOCS["best"]
    quote = "The first Border Enforcement Security Task Force was created in 2005"
    at = real.text.index(quote)
    rendered = document_html(real.text, at, at + len(quote), "x")
    assert not re.search(r">\s*#", rendered) and "<h2>" in rendered and f">{quote}</mark>" in rendered


# -- in the browser ---------------------------------------------------------------------------------------------
def test_on_a_phone_the_question_box_and_ask_are_on_the_first_screen(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, 390, 844)
    for target in (page.get_by_label("Your question", exact=True), page.locator("#ask-button")):
        box = target.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, box
    assert page.evaluate("window.scrollY") == 0
    page.close()


@pytest.mark.parametrize("width", [320, 390, 1280])
def test_every_state_without_sideways_scroll_with_screenshots(server: Server, browser: Browser, width: int) -> None:
    page = open_page(browser, server, width, 844 if width < 1000 else 800)
    no_sideways_scroll(page, "first load")
    shoot(page, width, "empty")

    # The unsure question first: with no earlier question, the conversation gives it no topic.
    ask_in_page(page, QUESTIONS["uncertain"], 0)
    unsure = message(page, 1)
    expect(unsure).to_have_class(re.compile("pb-uncertain"))
    expect(unsure).to_contain_text(UNCERTAIN)
    unsure.locator("details.pb-sources > summary").click()
    expect(unsure.locator(".pb-card").first).to_be_visible()
    no_sideways_scroll(page, "uncertain")
    shoot(page, width, "uncertain")

    ask_in_page(page, ANSWERED, 1)
    answer = message(page, 2)
    expect(answer).to_have_class(re.compile("pb-answered"))
    answer.locator("details.pb-sources > summary").click()  # the sources sit right under the answer
    expect(answer.locator(".pb-card").first).to_be_visible()
    no_sideways_scroll(page, "answer")
    shoot(page, width, "answer")

    ask_in_page(page, QUESTIONS["declined"], 2)
    expect(message(page, 3)).to_contain_text(REFUSAL)
    no_sideways_scroll(page, "decline")
    shoot(page, width, "decline")

    answer.locator("a.pb-cite").first.click()  # back to the answer: its card, then its whole document
    whole = answer.locator("details.pb-whole").first
    whole.locator("summary").click()
    expect(whole.locator("mark.pb-cited")).to_be_in_viewport()
    no_sideways_scroll(page, "whole document")
    shoot(page, width, "whole-document")
    page.close()


def test_a_decline_offers_example_questions_as_buttons(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, 390)
    intro = page.locator("#intro")
    expect(intro).to_contain_text("Office of Partnership and Engagement")  # the program list, once, up top
    ask_in_page(page, QUESTIONS["declined"], 0)
    decline = message(page, 1)
    shown = decline.locator("p").first.inner_text()
    assert shown == REFUSAL and len(shown.split()) <= 35
    expect(decline.locator(".pb-card")).to_have_count(0)
    expect(page.locator("#chat [data-testid='user']").last).to_be_in_viewport()  # the question stays in view
    chips = page.locator("#chat .options button")
    expect(chips).to_have_text(list(EXAMPLE_QUESTIONS))
    assert page.locator("body").inner_text().count("Office of Partnership and Engagement") == 1
    chips.first.click()  # asks it
    wait_for_answer(page, 2)
    expect(page.locator("#chat [data-testid='user']").last).to_have_text(EXAMPLE_QUESTIONS[0])
    expect(message(page, 2).locator(".pb-card").first).to_be_attached()
    page.close()


def test_source_cards_have_no_gaps_and_say_what_their_dates_are(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, 390)
    ask_in_page(page, ANSWERED, 0)
    answer = message(page, 1)
    answer.locator("details.pb-sources > summary").click()
    card = answer.locator(".pb-card").first
    expect(card).to_be_visible()
    title = card.locator("h3").inner_text().split("] ", 1)[1]
    doc = next(d for d in DOCS.values() if d.title == title)
    quote = card.locator(".pb-quote mark").inner_text()
    start = doc.text.index(quote)
    pages = doc.pages(start, start + len(quote))
    lines = card.locator(".pb-page")
    expect(lines).to_have_count(len(pages))
    for i, supporting in enumerate(pages):
        line = lines.nth(i).inner_text()
        assert " as of " not in line
        found = DATE_WORDS.search(line)
        assert found and found.group(2) == supporting.date, line
        assert found.group(0) == ", " + date_label(supporting.url, supporting.date, CHECKED), line
        assert line == f"{'Source:' if i == 0 else 'Also:'} {supporting.title}{found.group(0)}"
    gaps = card.evaluate("""c => {
      const out = [];
      for (const a of c.querySelectorAll('a')) {
        const s = getComputedStyle(a);
        for (const k of ['paddingLeft', 'paddingRight', 'marginLeft', 'marginRight']) if (parseFloat(s[k]) !== 0) out.push([a.textContent, k, s[k]]);
      }
      for (const p of c.querySelectorAll('.pb-page')) {  // "Source:", one space, the link
        const label = p.querySelector('.pb-label').getBoundingClientRect(), a = p.querySelector('a').getClientRects()[0];
        if (a.top < label.bottom && a.left - label.right > 6) out.push(['gap after the label', a.left - label.right]);
      }
      const quote = c.querySelector('.pb-quote').getBoundingClientRect().left;
      for (const p of c.querySelectorAll('.pb-page, .pb-program')) {
        const left = (p.querySelector('.pb-label') || p.querySelector('a')).getClientRects()[0].left;
        if (Math.abs(left - quote) > 1) out.push(['indented', p.textContent.slice(0, 30), left - quote]);
      }
      return out;
    }""")
    assert gaps == []
    page.close()


def test_the_whole_document_is_html_with_no_markdown_marks(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, 1280, 800)
    ask_in_page(page, ANSWERED, 0)
    answer = message(page, 1)
    answer.locator("a.pb-cite").first.click()
    whole = answer.locator("details.pb-whole").first
    whole.locator("summary").click()
    view = whole.locator(".pb-doc")
    expect(view.locator("h1")).to_have_count(1)
    assert view.locator("h2").count() >= 2
    lines = [line for line in view.inner_text().split("\n") if line.strip()]
    assert lines and not [line for line in lines if line.lstrip().startswith("#")], lines[:5]
    cited = view.locator("mark.pb-cited")
    expect(cited).to_have_text(answer.locator(".pb-quote mark").first.inner_text())
    expect(cited).to_be_in_viewport()
    page.close()


COVERED = """() => {
  const log = document.querySelector('#chat [role="log"]'), view = log.getBoundingClientRect(), bad = [];
  let seen = 0;
  for (const m of document.querySelectorAll('#chat [data-testid="bot"], #chat [data-testid="user"]')) {
    const r = m.getBoundingClientRect();
    const left = Math.max(r.left, view.left) + 2, right = Math.min(r.right, view.right) - 2;
    const top = Math.max(r.top, view.top) + 2, bottom = Math.min(r.bottom, view.bottom) - 2;
    if (right <= left || bottom <= top) continue;  // out of view at this scroll position
    seen++;
    for (const [x, y] of [[left, top], [right, top], [left, bottom], [right, bottom]]) {
      const hit = document.elementFromPoint(x, y);
      if (!hit || !m.contains(hit)) bad.push([m.textContent.slice(0, 30), x, y, hit ? hit.tagName + '.' + hit.className : null]);
    }
  }
  return {seen, bad};
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_nothing_covers_a_chat_message_at_any_scroll_position(server: Server, browser: Browser, width: int) -> None:
    page = open_page(browser, server, width, 844 if width < 1000 else 800)
    for n, question in enumerate([ANSWERED, QUESTIONS["declined"], QUESTIONS["uncertain"], "What is HERO Corps?"]):
        ask_in_page(page, question, n)
    message(page, 1).locator("details.pb-sources > summary").click()  # a long chat, to scroll through
    log = page.locator("#chat [role='log']")
    height = log.evaluate("l => l.scrollHeight - l.clientHeight")
    assert height > 0
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        log.evaluate("(l, y) => { l.scrollTop = y; }", round(height * fraction))
        page.wait_for_timeout(150)
        result = page.evaluate(COVERED)
        assert result["seen"] > 0 and result["bad"] == [], (fraction, result)
    page.close()


def focused(page: Page) -> dict[str, str]:
    return page.evaluate("""() => { const e = document.activeElement;
      return {tag: e.tagName.toLowerCase(), id: e.id, cls: String(e.className), label: e.getAttribute('aria-label') || '',
              text: (e.textContent || '').trim().slice(0, 60)}; }""")


def test_a_short_keyboard_path_after_five_turns(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, 1280, 800)
    box = page.get_by_label("Your question", exact=True)
    questions = [ANSWERED, "What is HERO Corps?", QUESTIONS["declined"], QUESTIONS["uncertain"],
                 "When was the Cyber Crimes Center established?"]
    for n, question in enumerate(questions):
        ask_in_page(page, question, n)
    # From the top of the page, as after loading it (the body itself takes focus for a moment).
    page.evaluate("() => { document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex'); }")
    page.keyboard.press("Tab")  # the first stop: the skip link
    assert focused(page)["cls"] == "pb-skip" and focused(page)["text"] == "Skip to question"
    page.keyboard.press("Enter")
    expect(box).to_be_focused()
    page.keyboard.press("Tab")  # one Tab from the question box reaches Ask
    expect(page.locator("#ask-button")).to_be_focused()
    seen = [focused(page)]
    while len(seen) < 12 and seen[-1]["tag"] != "textarea":
        page.keyboard.press("Tab")
        seen.append(focused(page))
    assert seen[-1]["tag"] == "textarea" and len(seen) <= 6, seen  # around the page and back in at most 6 stops
    # The conversation is one stop; inside it the arrow keys reach every citation, source and message button.
    assert page.evaluate("document.querySelectorAll('#chat [tabindex=\"0\"]').length") == 1
    page.keyboard.press("Shift+Tab")
    stop = focused(page)
    assert stop["cls"] == "pb-cite" and stop["label"].startswith("source 1: "), stop  # the newest answer's [1]
    names = [stop["label"] or stop["text"]]
    for _ in range(8):
        page.keyboard.press("ArrowDown")
        names.append(focused(page)["label"] or focused(page)["text"])
    assert any(n.startswith("Sources (") for n in names), names
    buttons = [n for n in names if n in ("Copy message", "Like", "Dislike")]
    assert buttons[:3] == ["Copy message", "Like", "Dislike"], names  # Like before Dislike
    last = page.locator("#chat .message-buttons").last  # the newest answer's buttons, under it
    like, dislike = (last.locator(f"button[aria-label='{n}']").bounding_box() for n in ("Like", "Dislike"))
    assert like is not None and dislike is not None and like["x"] < dislike["x"]
    # Buttons out of the Tab order are still there for a pointer and a screen reader.
    expect(last.get_by_role("button", name="Like", exact=True)).to_be_visible()
    # A message is named by its text, not by its markup (Gradio would name an answer with its cards' HTML).
    labels = page.evaluate("""() => Array.from(document.querySelectorAll(
      '#chat [data-testid="bot"], #chat [data-testid="user"]'), m => m.getAttribute('aria-label') || '')""")
    assert len(labels) == 10 and all("<" not in label and len(label) <= 300 for label in labels), labels
    assert all(label.startswith(("bot's message: ", "user's message: ")) for label in labels), labels
    page.close()


def test_the_api_is_for_developers_at_docs_not_on_the_page(server: Server, browser: Browser) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    assert 'api_name="/ask"' in schema["info"]["description"]
    assert httpx.get(server.url + "/docs").status_code == 200
    page = open_page(browser, server, 390)
    expect(page.get_by_text("Use via API")).to_have_count(0)
    expect(page.locator("footer a, footer button")).to_have_count(0)
    page.close()


# -- what each answer costs on the wire, and what the asker typed ------------------------------------------------
def answer_payloads(page: Page, question: str, turns: int) -> list[int]:
    """The bytes the page receives on Gradio's event stream for each of `turns` answers to `question`.

    Counted by the browser itself (Chrome's network events), between one question and the next; the last
    answer's bytes are counted once the stream has been quiet for half a second.
    """
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    received: dict[str, int] = {}
    cdp.on("Network.requestWillBeSent", lambda ev: urls.__setitem__(ev["requestId"], ev["request"]["url"]))
    cdp.on("Network.dataReceived",
           lambda ev: received.__setitem__(ev["requestId"], received.get(ev["requestId"], 0) + ev["dataLength"]))

    def streamed() -> int:
        return sum(n for r, n in received.items() if "/queue/data" in urls.get(r, ""))

    marks = [streamed()]
    for k in range(turns):
        ask_in_page(page, question, k)
        marks.append(streamed())
    quiet = 0
    while quiet < 5:  # the stream's last message can arrive after the answer is shown
        page.wait_for_timeout(100)
        quiet, marks[-1] = (quiet + 1, marks[-1]) if streamed() == marks[-1] else (0, streamed())
    return [b - a for a, b in itertools.pairwise(marks)]


def test_an_answer_costs_the_same_however_long_the_conversation(server: Server, browser: Browser) -> None:
    """Each question sends its own turn: the 50th answer carries no earlier turn and no document."""
    page = open_page(browser, server, 1280, 900)
    sizes = answer_payloads(page, ANSWERED, 50)
    first, last = sum(sizes[:5]) / 5, sum(sizes[-5:]) / 5  # five each: a message can be counted a turn late
    assert last <= 1.2 * first, (sizes[:5], sizes[-5:])
    assert first < 40_000, sizes[:5]  # an answer, its cards and their paragraphs; no whole document
    expect(page.locator("#chat .pb-msg")).to_have_count(50)  # yet the chat shows the whole conversation
    expect(page.locator("#chat .pb-asked")).to_have_count(50)
    whole = message(page, 1).locator("details.pb-whole").first  # the first answer's document, fetched when opened
    assert whole.locator(".pb-doc h1").count() == 0
    message(page, 1).locator("details.pb-sources > summary").click()
    with page.expect_response(re.compile(r"/documents/")) as fetched:
        whole.locator("summary").click()
    assert fetched.value.status == 200
    expect(whole.locator(".pb-doc h1")).to_have_count(1)
    page.close()


def test_the_asker_s_words_are_plain_text_and_nothing_they_name_is_fetched(server: Server, browser: Browser) -> None:
    page = open_page(browser, server, 1280)
    fetched: list[str] = []
    page.context.route("https://example.org/**", lambda route: (fetched.append(route.request.url), route.abort()))
    asked = "![t](https://example.org/x.png) What is **BEST**?"
    ask_in_page(page, asked, 0)
    page.wait_for_timeout(300)
    assert fetched == [] and page.locator("#chat img").count() == 0  # no image, so nothing fetched
    bubble = page.locator("#chat [data-testid='user']").first
    expect(bubble).to_have_text(asked)  # the Markdown as typed, not an image and bold text
    page.close()


def test_a_question_that_grows_when_cleaned_gets_its_error_in_the_chat(server: Server, browser: Browser) -> None:
    """1,000 × U+0958 is 2,000 characters once normalised: the reply says it is too long (it once broke the page)."""
    page = open_page(browser, server, 1280)
    ask_in_page(page, "\u0958" * 1000, 0)
    reply = page.locator("#chat .pb-msg").first
    expect(reply).to_have_class(re.compile("pb-problem"))
    expect(reply).to_contain_text("too long")
    expect(page.locator("#chat [data-testid='user']")).to_have_count(1)
    page.close()
