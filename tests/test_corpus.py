"""Corpus format and validation: every broken file gets an error naming file, field and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partnerbot.cli import app
from partnerbot.corpus.parse import load_corpus, parse_document
from partnerbot.errors import CorpusErrors

ROOT = Path(__file__).resolve().parents[1]
# The seed as captured from the web (public domain), kept here so the test needs nothing outside the repo.
SEED = Path(__file__).parent / "data" / "seed-press-release.txt"
SHARED_SEED = ROOT.parent / "shared" / "seed" / "000_fd922456832adeae.txt"
IDS = {
    "press-release-2020-07-30", "ero", "hsi", "287g", "criminal-alien-program", "best", "ipr-center",
    "cyber-crimes-center", "hero-corps", "human-rights-violators-war-crimes-center",
    "office-of-partnership-and-engagement",
}
GOOD = """---
id: {id}
title: "A title"
url: https://example.gov/page
date: 2020-07-30
component: ICE
sources:
  - https://example.gov/page
summary: "One sentence."
---

# A title

A body sentence.
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def check(folder: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["corpus", "check", "--corpus", str(folder)])
    return result.exit_code, result.output


def test_real_corpus_passes_check() -> None:
    code, output = check(ROOT / "corpus")
    assert code == 0, output
    assert "11 documents" in output
    assert {d.id for d in load_corpus(ROOT / "corpus")} == IDS


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("missing.md", GOOD.format(id="missing").replace('summary: "One sentence."\n', ""),
         r"missing\.md:1: field 'summary': required field is missing"),
        ("baddate.md", GOOD.format(id="baddate").replace("2020-07-30", "30/07/2020"),
         r"baddate\.md:5: field 'date': must be an ISO date"),
        ("nodate.md", GOOD.format(id="nodate").replace("2020-07-30", "2020-02-30"),
         r"nodate\.md:5: field 'date': must be an ISO date YYYY-MM-DD, got '2020-02-30'"),
        ("extra.md", GOOD.format(id="extra").replace("component: ICE", "component: ICE\nauthor: someone"),
         r"extra\.md:7: field 'author': unknown field"),
        ("wrongname.md", GOOD.format(id="other-name"), r"wrongname\.md:2: field 'id': 'other-name' does not match"),
        ("badurl.md", GOOD.format(id="badurl").replace("url: https://example.gov/page", "url: not a url"),
         r"badurl\.md:4: field 'url': not a well-formed"),
        ("empty.md", GOOD.format(id="empty").split("# A title")[0], r"empty\.md:\d+: field 'body': the document body is empty"),
        ("tagged.md", GOOD.format(id="tagged").replace('title: "A title"', "title: !!python/object/apply:os.system ['echo hi']"),
         r"tagged\.md:3: front matter is not valid YAML"),
        ("nofront.md", "# Just markdown\n\nText.\n", r"nofront\.md:1: missing YAML front matter"),
        ("component.md", GOOD.format(id="component").replace("component: ICE", "component: FBI"),
         r"component\.md:6: field 'component': must be one of"),
    ],
)
def test_broken_file_errors_name_file_field_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    write(tmp_path, "fine.md", GOOD.format(id="fine"))
    write(tmp_path, name, text)
    code, output = check(tmp_path)
    assert code != 0
    assert re.search(expected, " ".join(output.split())), output


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "latin.md", GOOD.format(id="latin").encode() + b"caf\xe9 au lait\n")
    code, output = check(tmp_path)
    assert code != 0
    assert re.search(r"latin\.md:15: not valid UTF-8", " ".join(output.split())), output


def test_duplicate_id_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "first.md", GOOD.format(id="first"))
    write(tmp_path, "second.md", GOOD.format(id="first"))
    with pytest.raises(CorpusErrors) as info:
        load_corpus(tmp_path)
    text = str(info.value)
    assert "duplicate id 'first'" in text and "second.md" in text


def test_oversized_and_hostile_files_are_refused(tmp_path: Path) -> None:
    big = write(tmp_path, "big.md", GOOD.format(id="big") + ("x" * 120 + "\n") * 70_000)  # ~8 MB
    with pytest.raises(CorpusErrors, match="limit is"):
        parse_document(big)
    # A control or an invisible format character, as the question cleaning (`sanitize`) defines them.
    for name, char in (("nul", "\x00"), ("zero-width", "\u200b"), ("c1", "\x85")):
        ctrl = write(tmp_path, f"{name}.md", GOOD.format(id=name) + f"bad {char} byte\n")
        with pytest.raises(CorpusErrors, match="control characters"):
            parse_document(ctrl)
    tabs = parse_document(write(tmp_path, "tabs.md", GOOD.format(id="tabs") + "a\ttab and a line\r\nend\n"))
    assert "a\ttab and a line\nend" in tabs.text


def test_markup_in_body_is_kept_as_text(tmp_path: Path) -> None:
    doc = parse_document(write(tmp_path, "markup.md", GOOD.format(id="markup") + "<script>alert(1)</script>\n"))
    assert "<script>alert(1)</script>" in doc.text


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?”])\s+(?=[A-Z“])", text) if s.strip()]


def test_press_release_holds_every_seed_sentence() -> None:
    seed = SEED.read_text(encoding="utf-8")
    if SHARED_SEED.exists():  # beside a checkout of the workspace: the copy must be the seed itself
        assert SHARED_SEED.read_text(encoding="utf-8") == seed
    furniture = {"Skip to main content", "Updated:"}
    paragraphs = [p.strip() for p in seed.split("\n\n")]
    body = [p for p in paragraphs[1:] if p and p not in furniture]  # paragraphs[0] is the page header
    doc = parse_document(ROOT / "corpus" / "press-release-2020-07-30.md")
    assert "Skip to main content" not in doc.text and "Updated:" not in doc.text
    assert doc.date == "2020-07-30"
    for paragraph in body:
        for sentence in _sentences(paragraph):
            assert sentence in doc.text, sentence


def test_program_documents_are_sourced_and_dated() -> None:
    for doc in load_corpus(ROOT / "corpus"):
        assert doc.sources and all(s.startswith("https://") for s in doc.sources), doc.id
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc.date), doc.id
        if doc.id != "press-release-2020-07-30":
            words = len(doc.text.split())
            assert 300 <= words <= 900, (doc.id, words)
            assert "\n## " in doc.text, doc.id
            assert "UNVERIFIED" not in doc.text


# A program document: two sources, so every sentence needs a footnote naming one of them.
SOURCED = """---
id: {id}
title: "A program"
url: https://example.gov/program
date: 2021-05-01
component: HSI
sources:
  - https://example.gov/program
  - https://example.gov/report
summary: "One sentence."
---

# A program

The program began in 2005.[^report] It has 40 members.[^page][^report]

## Figures

The program trained 300 officers in 2019.[^report]

[^page]: https://example.gov/program (2021-05-01) "The program's page"
[^report]: https://example.gov/report (2019-12-31)
"""


def test_footnotes_give_each_sentence_its_pages_and_leave_the_text_clean(tmp_path: Path) -> None:
    from partnerbot.corpus.chunk import document_sentences

    doc = parse_document(write(tmp_path, "prog.md", SOURCED.format(id="prog")))
    assert "[^" not in doc.text and "example.gov" not in doc.text  # neither markers nor definitions remain
    assert "The program began in 2005. It has 40 members.\n" in doc.text
    got = {s.text: s.pages for s in document_sentences(doc)}
    assert [p.url for p in got["The program began in 2005."]] == ["https://example.gov/report"]
    assert got["It has 40 members."][0].title == "The program's page"
    assert [(p.url, p.date) for p in got["It has 40 members."]] == [
        ("https://example.gov/program", "2021-05-01"), ("https://example.gov/report", "2019-12-31")]
    for s in document_sentences(doc):  # offsets point into the clean text
        assert doc.text[s.start : s.end] == s.text


def test_a_document_that_is_its_own_source_needs_no_footnotes(tmp_path: Path) -> None:
    from partnerbot.corpus.chunk import document_sentences

    doc = parse_document(write(tmp_path, "own.md", GOOD.format(id="own")))
    [sentence] = document_sentences(doc)
    assert [(p.url, p.date) for p in sentence.pages] == [("https://example.gov/page", "2020-07-30")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("It has 40 members.[^page][^report]", "It has 40 members."),
         r"prog\.md:15: field 'footnotes': sentence has no footnote: 'It has 40 members\.'"),
        (("in 2019.[^report]", "in 2019.[^missing]"), r"prog\.md:19: field 'footnotes': footnote \[\^missing\] is used but not defined"),
        (("[^page][^report]", "[^report]"), r"prog\.md:21: field 'footnotes': footnote \[\^page\] is defined but never used"),
        (("https://example.gov/report (", "https://example.gov/elsewhere ("),
         r"prog\.md:22: field 'footnotes': footnote \[\^report\]: URL https://example\.gov/elsewhere is not in the document's `sources`"),
        (("(2019-12-31)", "(Dec 2019)"), r"prog\.md:22: field 'footnotes': footnote \[\^report\]: the as-of date must be YYYY-MM-DD"),
        (("[^report]: https://example.gov/report (2019-12-31)", "[^report]: see the report"),
         r"prog\.md:22: field 'footnotes': malformed footnote definition"),
        (("## Figures", "## Figures[^page]"), r"prog\.md:17: field 'footnotes': footnote \[\^page\] does not follow a sentence"),
        (('"The program\'s page"', '"The program\'s page"\n[^page]: https://example.gov/program (2021-05-02)'),
         r"prog\.md:22: field 'footnotes': footnote \[\^page\] is defined twice \(also on line 21\)"),
    ],
    ids=["no-footnote", "undefined", "unused", "url-not-in-sources", "bad-date", "malformed", "not-after-sentence",
         "defined-twice"],
)
def test_footnote_problems_name_file_and_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    text = SOURCED.format(id="prog")
    assert old in text
    write(tmp_path, "fine.md", SOURCED.format(id="fine"))
    write(tmp_path, "prog.md", text.replace(old, new, 1))
    code, output = check(tmp_path)
    assert code != 0
    assert re.search(expected, " ".join(output.split())), output
    assert "fine.md" not in output


def test_every_program_sentence_has_a_dated_supporting_page() -> None:
    from partnerbot.corpus.chunk import document_sentences

    for doc in load_corpus(ROOT / "corpus"):
        assert "[^" not in doc.text, doc.id
        for s in document_sentences(doc):
            assert s.pages, (doc.id, s.text)
            for page in s.pages:
                assert page.url in doc.sources and re.fullmatch(r"\d{4}-\d{2}-\d{2}", page.date), (doc.id, page)
        if not doc.own_source:
            assert doc.footnotes, doc.id


def test_corpus_sources_document_matches_the_footnotes(tmp_path: Path) -> None:
    from partnerbot.corpus.footnotes import with_footnote_listing

    docs = load_corpus(ROOT / "corpus")
    current = (ROOT / "docs" / "corpus-sources.md").read_text(encoding="utf-8")
    assert with_footnote_listing(current, docs) == current, "run `partnerbot corpus sources --write docs/corpus-sources.md`"
    for doc in docs:
        for f in doc.footnotes:
            assert f"<{f.page.url}>" in current and f"as of {f.page.date}" in current
    # The command rewrites only its own block, and the result is stable.
    target = write(tmp_path, "sources.md", "# Notes\n\nHand-written.\n")
    result = CliRunner().invoke(app, ["corpus", "sources", "--write", str(target)])
    assert result.exit_code == 0, result.output
    once = target.read_text()
    assert once.startswith("# Notes\n\nHand-written.\n") and "### 287g.md" in once
    CliRunner().invoke(app, ["corpus", "sources", "--write", str(target)])
    assert target.read_text() == once
