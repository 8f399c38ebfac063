"""The index: incremental, atomic, self-describing; with embedded Chroma and a real Chroma server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, FakeClock, cli_env, eventually, not_ready
from partnerbot.answering.assistant import Assistant
from partnerbot.cli import app
from partnerbot.errors import CorpusErrors, IndexLockedError, IndexMismatchError, IndexNotBuiltError
from partnerbot.index import lease, store
from partnerbot.index.build import build_index
from partnerbot.index.meta import open_collections
from partnerbot.index.rollback import rollback
from partnerbot.index.snapshots import IndexSnapshots
from partnerbot.index.status import status
from partnerbot.settings import Settings

SECRET = "How many spare lighthouse lamps does the Alpha Program keep?"


def settings_for(tmp_path: Path, corpus: Path, url: str = "", **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", corpus_dir=corpus, chroma_url=url, **kw)


def stored_texts(s: Settings) -> list[str]:
    client = store.connect(s)
    cols = open_collections(client, store.read_pointer(client).version)
    return list(cols["chunks"].get(include=["documents"])["documents"])


def ask(s: Settings, question: str) -> str:
    return Assistant(s, snapshots=IndexSnapshots(s, check_seconds=0)).ask(question).text


def test_no_change_reindex_embeds_nothing(tmp_path: Path, tiny_corpus: Path, store_url: str, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus, store_url)
    first = build_index(s)
    assert first.added == ("alpha", "beta", "gamma") and first.chunks_embedded == first.chunks_total > 0
    second = build_index(s)
    assert second.chunks_embedded == 0 and not second.switched
    assert second.version == first.version
    assert "4817" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")


def test_edit_reembeds_only_that_document(tmp_path: Path, tiny_corpus: Path, store_url: str, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus, store_url)
    build_index(s)
    assert "smudge pots" in ask(s, "What do members of the Beta Task Force light on cold spring nights?")
    beta = tiny_corpus / "beta.md"
    beta.write_text(beta.read_text().replace("light smudge pots on cold spring nights", "run wind machines at dawn"))
    summary = build_index(s)
    assert summary.changed == ("beta",) and summary.unchanged == ("alpha", "gamma")
    assert summary.chunks_embedded == 1  # beta's one changed section; other chunks are copied
    texts = stored_texts(s)
    assert not any("smudge" in t for t in texts)
    assert len(texts) == len(set(texts)) == summary.chunks_total
    answer = ask(s, "What do members of the Beta Task Force do?")
    assert "smudge" not in answer


def test_deleting_a_document_removes_its_chunks(tmp_path: Path, tiny_corpus: Path, store_url: str, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus, store_url)
    build_index(s)
    (tiny_corpus / "gamma.md").unlink()
    summary = build_index(s)
    assert summary.removed == ("gamma",)
    assert not any("telescope" in t for t in stored_texts(s))
    assert "9,300" not in ask(s, "How many telescopes has the Gamma Office lent?")


def test_a_server_follows_the_pointer_at_most_once_per_check_interval(tmp_path: Path, tiny_corpus: Path,
                                                                      model: object) -> None:
    """What a running `partnerbot serve` does after a reindex, by a clock the test moves."""
    s = settings_for(tmp_path, tiny_corpus)
    before = build_index(s).version
    clock = FakeClock()
    serving = Assistant(s, snapshots=IndexSnapshots(s, check_seconds=1.0, clock=clock))
    assert "4817" in serving.ask(SECRET).text
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    after = build_index(s).version
    clock.advance(0.9)
    assert "4817" in serving.ask(SECRET).text and serving.version == before  # the pointer is not read again yet
    clock.advance(0.1)
    assert "5926" in serving.ask(SECRET).text and serving.version == after


def test_broken_file_fails_and_active_index_still_answers(
    tmp_path: Path, tiny_corpus: Path, store_url: str, model: object
) -> None:
    s = settings_for(tmp_path, tiny_corpus, store_url)
    version = build_index(s).version
    (tiny_corpus / "delta.md").write_text("---\nid: delta\ntitle: x\n---\n\nbody\n")
    with pytest.raises(CorpusErrors, match=r"delta\.md:1: field 'url'"):
        build_index(s)
    assert store.read_pointer(store.connect(s)).version == version
    assert "4817" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")


def test_rollback_restores_previous_version(tmp_path: Path, tiny_corpus: Path, store_url: str, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus, store_url)
    v1 = build_index(s).version
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    v2 = build_index(s).version
    assert "5926" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")
    pointer = rollback(s)
    assert (pointer.version, pointer.previous) == (v1, v2)
    assert "4817" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")


def test_other_settings_give_mismatch_error(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    build_index(settings_for(tmp_path, tiny_corpus))
    other = settings_for(tmp_path, tiny_corpus, chunk_size=100)
    not_ready(Assistant(other), "What is the Alpha Program?", IndexMismatchError,
              r"chunk_size=200 \(now 100\).*partnerbot index --rebuild")
    with pytest.raises(IndexMismatchError):
        build_index(other)
    assert build_index(other, rebuild=True).switched


def test_dry_run_writes_nothing(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus)
    version = build_index(s).version
    (tiny_corpus / "gamma.md").unlink()
    summary = build_index(s, dry_run=True)
    assert summary.dry_run and summary.removed == ("gamma",) and not summary.switched
    client = store.connect(s)
    assert store.read_pointer(client).version == version
    assert store.versions_present(client) == {version}


def test_status_reports_version_and_stale_documents(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus)
    with pytest.raises(IndexNotBuiltError, match="partnerbot index"):
        status(s)
    build_index(s)
    st = status(s)
    assert (st.documents, st.embed_model, st.stale) == (3, Settings().index.embedding().name, ())
    (tiny_corpus / "beta.md").write_text((tiny_corpus / "beta.md").read_text() + "\nA new sentence.\n")
    assert status(s).stale == ("beta",)


def test_concurrent_index_runs_are_refused(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus)
    with store.index_lock(s), pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"):
        build_index(s)
    assert build_index(s).switched  # the lock is released afterwards


def test_cli_index_prints_summary(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch, model: object) -> None:
    monkeypatch.setenv("PARTNERBOT_CORPUS_DIR", str(tiny_corpus))
    result = CliRunner().invoke(app, ["index", "--no-eval"])
    assert result.exit_code == 0, result.output
    assert "added 3" in result.output and "chunks embedded" in result.output
    again = CliRunner().invoke(app, ["index", "--no-eval"])
    assert "0 of" in again.output and "index is up to date" in again.output
    (tiny_corpus / "bad.md").write_bytes(b"---\nid: bad\n---\n\xff\n")
    broken = CliRunner().invoke(app, ["index", "--no-eval"])
    assert broken.exit_code == 2 and "bad.md" in broken.output


def _big_corpus(target: Path, copies: int) -> None:
    """Many documents made from the real corpus under new ids, so a build takes a while."""
    for src in sorted((ROOT / "corpus").glob("*.md")):
        text = src.read_text(encoding="utf-8")
        for i in range(copies):
            new_id = f"{src.stem}-copy{i}"
            # A chunk's id includes its document's id, so each copy is embedded anew.
            (target / f"{new_id}.md").write_text(text.replace(f"id: {src.stem}\n", f"id: {new_id}\n", 1),
                                                 encoding="utf-8")


def test_kill_9_mid_build_leaves_active_index_intact(
    tmp_path: Path, tiny_corpus: Path, store_url: str, model: object
) -> None:
    s = settings_for(tmp_path, tiny_corpus, store_url, index_lease_seconds=1)  # the shortest life, for the wait below
    active = build_index(s).version
    _big_corpus(tiny_corpus, 6)
    proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "index", "--no-eval"],
                            env=cli_env(s.data_dir, tiny_corpus, store_url) | {"PARTNERBOT_INDEX_LEASE_SECONDS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = store.connect(s)
    partial = None
    deadline = time.monotonic() + 240
    serving = Assistant(s, snapshots=IndexSnapshots(s, check_seconds=0))
    while partial is None and time.monotonic() < deadline and proc.poll() is None:
        assert "4817" in serving.ask(SECRET).text  # the served index keeps answering during the build
        for v in store.versions_present(client) - {active}:
            try:
                if client.get_collection(store.collection_name(v, "chunks")).count() > 0:
                    partial = v
            except Exception:
                pass
        time.sleep(0.2)
    assert partial is not None, "the build never wrote a partial version"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert store.read_pointer(client).version == active
    assert "4817" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")
    for extra in tiny_corpus.glob("*-copy*.md"):
        extra.unlink()
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    # The killed run's reindex lease runs out by the wall clock; the next run takes it over and says so.
    killed = eventually(lambda: lease.newest_holder(client), lambda h: h is not None and not h.live(time.time()),
                        within=1.5)
    assert killed is not None and killed.pid == proc.pid and not killed.live(time.time())
    said: list[str] = []
    done = build_index(s, notify=said.append)
    assert done.switched and len(said) == 1 and said[0].startswith("took over a stale reindex lease from ")
    assert f"(pid {proc.pid})" in said[0]
    assert store.versions_present(store.connect(s)) == {done.version, active}  # the partial build is gone
    assert "5926" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")


def test_corrupt_pointer_says_how_to_recover(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    s = settings_for(tmp_path, tiny_corpus)
    version = build_index(s).version
    client = store.connect(s)
    client.get_collection(store.POINTER_COLLECTION).update(ids=["active"], metadatas=[{"version": "garbage"}])
    not_ready(Assistant(s), "What is the Alpha Program?", IndexNotBuiltError, r"damaged.*index --rebuild")
    client.delete_collection(store.POINTER_COLLECTION)
    not_ready(Assistant(s), "What is the Alpha Program?", IndexNotBuiltError, "partnerbot index")
    store.write_pointer(client, store.Pointer(version, None, ""))
    client.delete_collection(store.collection_name(version, "chunks"))
    not_ready(Assistant(s), "What is the Alpha Program?", IndexNotBuiltError, "index --rebuild")
    assert build_index(s, rebuild=True).switched
    shutil.rmtree(s.data_dir / "bm25")
    assert "4817" in ask(s, "How many spare lighthouse lamps does the Alpha Program keep?")  # BM25 rebuilt from the store


def test_answers_cite_the_footnoted_page_and_a_changed_footnote_needs_no_re_embedding(
    tmp_path: Path, tiny_corpus: Path, model: object
) -> None:
    s = settings_for(tmp_path, tiny_corpus)
    build_index(s)
    answer = Assistant(s, snapshots=IndexSnapshots(s, check_seconds=0)).ask("How many telescopes had the Gamma Office lent?")
    [source] = [x for x in answer.sources if "9,300" in x.quote]
    assert "[^" not in source.quote and "[^" not in answer.text
    assert (source.url, source.date, source.doc_url) == (
        "https://example.gov/reports/gamma-2019", "2019-04-02", "https://example.gov/gamma")
    gamma = tiny_corpus / "gamma.md"
    gamma.write_text(gamma.read_text().replace("(2019-04-02)", "(2019-05-06) \"Gamma annual report\""))
    summary = build_index(s)
    assert summary.changed == ("gamma",) and summary.chunks_embedded == 0  # the text is the same: nothing re-embedded
    source = Assistant(s, snapshots=IndexSnapshots(s, check_seconds=0)).ask("How many telescopes had the Gamma Office lent?").sources[0]
    assert (source.date, source.page_title) == ("2019-05-06", "Gamma annual report")


def test_indexing_a_long_section_is_quiet_and_counts_every_token(tmp_path: Path, tiny_corpus: Path) -> None:
    """Tokens are only counted to split a section: no "Token indices sequence length" warning, and nothing cut."""
    from partnerbot.index.embed import count_tokens

    long = " ".join(f"The Alpha Program keeps lamp number {i} lit." for i in range(60))  # about 600 tokens
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text() + f"\n## Lamps\n\n{long}\n")
    assert count_tokens(Settings(), long) > 500  # the whole text is counted, past the model's 256-token window
    env = cli_env(tmp_path / "data", tiny_corpus)
    done = subprocess.run([sys.executable, "-m", "partnerbot.cli", "index", "--no-eval"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Token indices" not in done.stderr and "sequence length" not in done.stderr, done.stderr
    chunks = stored_texts(settings_for(tmp_path, tiny_corpus))
    assert all(f"lamp number {i} lit" in " ".join(chunks) for i in range(60))  # split, never truncated
