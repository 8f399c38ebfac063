"""Scale-out and faults: two servers on one Chroma server, Chroma outages, concurrent writers, bad input."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, ChromaServer, eventually
from partnerbot.answering.assistant import Assistant
from partnerbot.answers import Answer, Outcome, Passage
from partnerbot.errors import InputError
from partnerbot.index.build import build_index
from partnerbot.phrases import CITATION_RE
from partnerbot.serving import feedback, replies
from partnerbot.settings import Settings
from test_ui import Server

SECRET = "How many spare lighthouse lamps does the Alpha Program keep?"


def test_two_servers_one_chroma_pick_up_a_reindex(tmp_path: Path, tiny_corpus: Path, chroma_server: ChromaServer,
                                                  model: object) -> None:
    maintainer = Settings(data_dir=tmp_path / "maintainer", corpus_dir=tiny_corpus, chroma_url=chroma_server.url)
    build_index(maintainer)
    servers = []
    try:
        for name in ("a", "b"):  # separate data directories, as on separate machines
            (tmp_path / name).mkdir()
            servers.append(Server(tmp_path / name / "data", tiny_corpus, chroma_server.url))
        assert all("4817" in s.ask(SECRET)["answer"] for s in servers)
        alpha = tiny_corpus / "alpha.md"
        alpha.write_text(alpha.read_text().replace("4817", "5926"))
        version = build_index(maintainer).version
        # Each server reads the active pointer at most once a second: both answer from the new version by then.
        answers = eventually(lambda: [s.ask(SECRET)["answer"] for s in servers],
                             lambda found: all("5926" in a for a in found), within=1.2)
        assert all("5926" in a for a in answers), answers
        for s in servers:
            health = httpx.get(f"{s.url}/healthz").json()
            assert health["index_version"] == version and health["store_reachable"]
    finally:
        for s in servers:
            s.stop()


def test_chroma_outage_gives_clear_message_and_recovers(tmp_path: Path, tiny_corpus: Path,
                                                        chroma_server: ChromaServer, model: object) -> None:
    s = Settings(data_dir=tmp_path / "maintainer", corpus_dir=tiny_corpus, chroma_url=chroma_server.url)
    build_index(s)
    (tmp_path / "srv").mkdir()
    srv = Server(tmp_path / "srv" / "data", tiny_corpus, chroma_server.url)
    try:
        assert "4817" in srv.ask(SECRET)["answer"]
        chroma_server.kill()
        down = srv.ask(SECRET)
        assert down["unavailable"] is True and down["outcome"] == "unavailable" and "sources" not in down
        assert down["error"]["code"] == "unavailable" and "temporarily unavailable" in down["error"]["message"]
        from typer.testing import CliRunner

        from partnerbot.cli import app

        env = {"PARTNERBOT_CHROMA_URL": chroma_server.url, "PARTNERBOT_CORPUS_DIR": str(tiny_corpus),
               "PARTNERBOT_DATA_DIR": str(tmp_path / "cli")}
        cli = CliRunner().invoke(app, ["ask", SECRET, "--json"], env=env)
        assert cli.exit_code == 4 and "temporarily unavailable" in cli.output
        assert json.loads(cli.stdout)["unavailable"] is True
        remote = CliRunner().invoke(app, ["ask", SECRET, "--json", "--url", srv.url], env=env)
        assert remote.exit_code == 4 and "temporarily unavailable" in remote.stderr
        assert json.loads(remote.stdout) | {"timings_ms": {}} == json.loads(cli.stdout) | {"timings_ms": {}}
        assert "Traceback" not in json.dumps(down) and "/" not in down["error"]["message"]
        assert httpx.get(f"{srv.url}/healthz").status_code == 503
        chroma_server.start()
        back = eventually(lambda: srv.ask(SECRET), lambda data: "unavailable" not in data, within=1.2)
        assert "4817" in back["answer"]  # no restart of the chat server
        assert httpx.get(f"{srv.url}/healthz").json()["store_reachable"]
    finally:
        srv.stop()


def _write_votes(path: str, worker: int, n: int) -> None:
    for i in range(n):
        feedback.record(Path(path), question=f"q{worker}-{i} " + "x" * 5000, history=[], vote="up",
                        answer=Answer("q", Outcome.ANSWERED, (Passage("a" * 3000, ()),)), comment="c" * 1000)


def test_concurrent_feedback_writes_never_interleave(tmp_path: Path) -> None:
    log = tmp_path / "feedback.jsonl"
    procs = [multiprocessing.get_context("spawn").Process(target=_write_votes, args=(str(log), w, 50))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    lines = log.read_text().splitlines()
    assert len(lines) == 200
    assert {json.loads(line)["question"].split()[0] for line in lines} == {f"q{w}-{i}" for w in range(4) for i in range(50)}


def test_long_lines_index_safely(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    text = (tiny_corpus / "alpha.md").read_text()  # alpha is its own source, so it needs no footnotes
    (tiny_corpus / "alpha.md").write_text(text + "\n" + ("lighthouse lens " * 20_000) + "\n<b>bold</b> <script>x()</script>\n")
    s = Settings(data_dir=tmp_path / "data", corpus_dir=tiny_corpus)
    assert build_index(s).switched
    assert "4817" in Assistant(s).ask("How many spare lighthouse lamps does the Alpha Program keep?").text


HOSTILE = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=50),
    st.sampled_from([
        "<script>alert(1)</script>", "'; DROP TABLE embeddings; --", '{"$where": "1 == 1"}', '{"$or": [{}]}',
        "../../etc/passwd", "/etc/passwd\x00", "%s%s%n", "{{7*7}}", "${jndi:ldap://x}", "\u202e\u200b\ufeff",
        "What is HERO Corps?" * 40, "x" * 1_000_000, "\U0001F600" * 100,
    ]),
)
HISTORY = st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=50), st.integers(), st.none(),
                                                  st.lists(st.text(max_size=5), max_size=2)), max_size=8),
                    st.integers(), st.text(max_size=20), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _clean(data: dict) -> None:
    blob = json.dumps(data)
    assert "Traceback" not in blob and "site-packages" not in blob and "/tmp/" not in blob
    assert "partnerbot/" not in blob


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=HOSTILE, history=HISTORY)
def test_ask_survives_hostile_input(assistant: Assistant, question: str, history: object) -> None:
    try:
        answer = assistant.ask(question, history)  # type: ignore[arg-type]
    except InputError as exc:
        assert "/" not in replies.problem(exc).message
        return
    _clean(answer.to_dict())
    assert {int(n) for n in CITATION_RE.findall(answer.text)} == {s.n for s in answer.sources}


@pytest.fixture(scope="module")
def api_server(real_index: Path):  # type: ignore[no-untyped-def]
    srv = Server(real_index, ROOT / "corpus")
    yield srv
    srv.stop()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=HOSTILE, history=st.lists(st.text(max_size=50), max_size=4))
def test_api_survives_hostile_input(api_server: Server, question: str, history: list[str]) -> None:
    data = api_server.ask(question, history)
    assert set(data) >= {"question", "answer", "refused", "sources", "timings_ms"} or data["error"]["code"] == "invalid_input"
    _clean(data)
    assert httpx.get(f"{api_server.url}/healthz").status_code == 200


# -- store failures, told apart by type ---------------------------------------------------------------------------

class _Failing:
    """A Chroma client whose every call raises `error`."""

    def __init__(self, error: Exception):
        self.error = error

    def get_collection(self, name: str) -> None:
        raise self.error


def test_store_failures_are_told_apart_by_type_not_by_words() -> None:
    import chromadb.errors

    from partnerbot.errors import IndexNotBuiltError, StoreError, StoreUnavailableError
    from partnerbot.index import store

    with pytest.raises(IndexNotBuiltError, match="no index has been built yet"):
        store.read_pointer(_Failing(chromadb.errors.NotFoundError("Collection [partnerbot-active] does not exist")))
    # Chroma failing in another way is a store error, not "no index built yet".
    with pytest.raises(StoreError, match="disk I/O error") as failed:
        store.read_pointer(_Failing(chromadb.errors.InternalError("disk I/O error")))
    assert not isinstance(failed.value, (StoreUnavailableError, IndexNotBuiltError))
    # Unreachable is a type (httpx's transport errors, sockets' errors), whatever the message says.
    for down in (httpx.ConnectError("[Errno 111]"), httpx.ReadTimeout("read"), ConnectionResetError()):
        with pytest.raises(StoreUnavailableError):
            store.read_pointer(_Failing(down))
    wordy = ValueError("cannot connect: connection refused, timed out")  # words alone say nothing
    with pytest.raises(ValueError, match="connection refused"):
        store.read_pointer(_Failing(wordy))
    chained = RuntimeError("the request failed")
    chained.__cause__ = httpx.ConnectError("refused")
    assert not store.unreachable(wordy) and store.unreachable(chained)


def test_the_reindex_gate_lets_nothing_through_when_the_active_pointer_cannot_be_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from partnerbot.errors import IndexNotBuiltError, PointerDamagedError, StoreUnavailableError
    from partnerbot.evaluation.gate import reindex_gate
    from partnerbot.index import store

    gate = reindex_gate(Settings(), tmp_path / "cases.yaml")
    monkeypatch.setattr(store, "connect", lambda _settings: object())

    def pointer(error: Exception) -> None:
        def read(_client: object) -> store.Pointer:
            raise error
        monkeypatch.setattr(store, "read_pointer", read)

    pointer(PointerDamagedError("the active-version pointer is damaged ('x')"))
    verdict = gate("v20260101T000000-abcdef")
    assert not verdict.passed and "cannot read it" in verdict.message and "--force" in verdict.message
    pointer(StoreUnavailableError("the vector store is unreachable"))
    with pytest.raises(StoreUnavailableError):  # the build stops: nothing is switched
        gate("v20260101T000000-abcdef")
    pointer(IndexNotBuiltError("no index has been built yet"))
    assert gate("v20260101T000000-abcdef").passed  # a first build has nothing to compare with
