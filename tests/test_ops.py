"""Operations: the reindex lease on a shared store, the project root, `serve` errors, progress, the Makefile."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pexpect
import pytest
from typer.testing import CliRunner

from conftest import ROOT, ChromaServer, FakeClock, Server, cli_env, eventually, free_port, wait_http
from partnerbot.answering.assistant import Assistant
from partnerbot.cli import app
from partnerbot.errors import ConfigError, IndexLockedError, PartnerbotError
from partnerbot.index import lease, store
from partnerbot.index.build import build_index
from partnerbot.index.snapshots import IndexSnapshots
from partnerbot.settings import Settings
from test_index import _big_corpus

SECRET = "How many spare lighthouse lamps does the Alpha Program keep?"


# -- the reindex lease -------------------------------------------------------------------------------------------

def test_two_machines_never_build_at_once_and_a_dead_run_is_taken_over(
    tmp_path: Path, tiny_corpus: Path, chroma_server: ChromaServer, model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A builds in a subprocess; machine B (this process) has its own data directory, same store."""
    ttl = 2.0
    monkeypatch.setenv("PARTNERBOT_INDEX_LEASE_SECONDS", str(ttl))
    b = Settings(data_dir=tmp_path / "b" / "data", corpus_dir=tiny_corpus, chroma_url=chroma_server.url)
    active = build_index(b).version
    _big_corpus(tiny_corpus, 3)
    env = cli_env(tmp_path / "a" / "data", tiny_corpus, chroma_server.url) | {"PARTNERBOT_INDEX_LEASE_SECONDS": str(ttl)}
    proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "index", "--no-eval"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = store.connect(b)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            holder = lease.newest_holder(client)
            if holder is not None and holder.pid == proc.pid and holder.live(time.time()):
                break
            time.sleep(0.1)
        first = lease.newest_holder(client)
        assert first is not None and first.pid == proc.pid, "machine A never took the lease"
        # Past the first lease's life, A's lease has been live all along: only renewal keeps it so.
        renewed = first
        while time.time() <= first.expires_at + 0.2:
            renewed = lease.newest_holder(client)
            assert renewed is not None and renewed.token == first.token and renewed.live(time.time())
            time.sleep(0.1)
        assert renewed.expires_at > first.expires_at
        with pytest.raises(IndexLockedError, match=rf"running on this store: .*@{socket.gethostname()} \(pid {proc.pid}\)"):
            build_index(b)
        assert proc.poll() is None, "machine A finished before B tried: the test proves nothing"
        os.kill(proc.pid, signal.SIGKILL)  # A dies without releasing its lease
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert store.read_pointer(client).version == active  # the dead build switched nothing
    for extra in tiny_corpus.glob("*-copy*.md"):
        extra.unlink()
    alpha = tiny_corpus / "alpha.md"
    alpha.write_text(alpha.read_text().replace("4817", "5926"))
    dead = eventually(lambda: lease.newest_holder(client), lambda h: h is not None and not h.live(time.time()),
                      within=ttl + 0.5)
    assert dead is not None and dead.token == first.token and not dead.live(time.time())  # A's lease ran out
    result = CliRunner().invoke(app, ["index", "--no-eval"], env={
        "PARTNERBOT_DATA_DIR": str(b.data_dir), "PARTNERBOT_CORPUS_DIR": str(tiny_corpus),
        "PARTNERBOT_CHROMA_URL": chroma_server.url})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "took over a stale reindex lease from" in text and f"(pid {proc.pid})" in text
    pointer = store.read_pointer(client)
    assert pointer.version != active and pointer.previous == active
    assert store.versions_present(client) == {pointer.version, active}  # A's partial version is gone
    released = lease.newest_holder(client)
    assert released is not None and released.released and released.pid == os.getpid()
    assert "5926" in Assistant(b, snapshots=IndexSnapshots(b, check_seconds=0)).ask(SECRET).text


def _claim(url: str, results: object) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from partnerbot.errors import IndexLockedError as Locked
    from partnerbot.index import lease as lease_mod

    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False))
    try:
        held = lease_mod.acquire(client, ttl=60)
        results.put(("won", held.generation))  # type: ignore[attr-defined]
    except Locked as exc:
        results.put(("lost", str(exc)))  # type: ignore[attr-defined]


def test_racing_claims_have_exactly_one_winner(chroma_server: ChromaServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(chroma_server.url, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert sorted(o[0] for o in outcomes) == ["lost", "lost", "lost", "won"], outcomes
    assert all("another `partnerbot index`" in o[1] for o in outcomes if o[0] == "lost")


def test_a_run_presumed_dead_cannot_switch(tmp_path: Path) -> None:
    client = store.connect(Settings(data_dir=tmp_path / "data"))
    clock = FakeClock()  # both runs read one clock, as machines whose clocks agree
    slow = lease.acquire(client, ttl=1.0, clock=clock)  # a run that stopped renewing (a long pause, a lost network)
    clock.advance(0.9)
    with pytest.raises(IndexLockedError, match="running on this store"):  # still live just before it runs out
        lease.acquire(client, ttl=60, clock=clock)
    clock.advance(0.3)
    fresh = lease.acquire(client, ttl=60, clock=clock)
    assert fresh.took_over is not None and fresh.took_over.token == slow.holder.token
    with pytest.raises(IndexLockedError, match=r"taken over by .*nothing was switched"):
        slow.renew()
    slow.release()  # a no-op: it must not release the new holder's lease
    assert lease.newest_holder(client) == fresh.holder
    fresh.release()
    assert lease.acquire(client, ttl=60, clock=clock).took_over is None  # a released lease is not "stale"


def test_a_build_releases_its_lease_and_rollback_takes_it(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    s = Settings(data_dir=tmp_path / "data", corpus_dir=tiny_corpus)
    build_index(s)
    client = store.connect(s)
    done = lease.newest_holder(client)
    assert done is not None and done.released
    held = lease.acquire(client, ttl=60)
    from partnerbot.index.rollback import rollback

    with pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"):
        rollback(s)
    with pytest.raises(IndexLockedError, match="running on this store"):
        build_index(s, rebuild=True)
    assert build_index(s, dry_run=True).dry_run  # a dry run writes nothing and needs no lease
    held.release()


# -- the project root ----------------------------------------------------------------------------------------------

def _project(tmp_path: Path, tiny_corpus: Path, text: str, name: str = "partnerbot.toml") -> Path:
    root = tmp_path / "project"
    (root / "docs" / "deep").mkdir(parents=True)
    tiny_corpus.rename(root / "texts")
    (root / name).write_text(text)
    return root


def test_settings_come_from_the_nearest_project_file(tmp_path: Path, tiny_corpus: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, tiny_corpus, '[tool.partnerbot]\ncorpus_dir = "texts"\nport = 7999\n', "pyproject.toml")
    monkeypatch.delenv("PARTNERBOT_DATA_DIR")
    monkeypatch.chdir(root / "docs" / "deep")
    s = Settings()
    assert (s.corpus_dir, s.data_dir, s.evals_dir, s.serving.port) == (root / "texts", root / ".partnerbot", root / "evals", 7999)
    (root / ".env").write_text("PARTNERBOT_PORT=7001\nPARTNERBOT_DATA_DIR=state\nOTHER_TOOL=ignored\n")
    s = Settings()
    assert (s.serving.port, s.data_dir) == (7001, root / "state")  # .env beats the file; its paths are root-relative too
    (root / ".env").write_text("PARTNERBOT_PORT=7001\nPARTNERBOT_DATA_DIRR=state\n")
    with pytest.raises(ConfigError, match=rf"unknown setting\(s\) PARTNERBOT_DATA_DIRR in {root / '.env'}"):
        Settings()
    (root / ".env").write_text("PARTNERBOT_PORT=7001\nPARTNERBOT_DATA_DIR=state\nOTHER_TOOL=ignored\n")
    monkeypatch.setenv("PARTNERBOT_PORT", "7002")
    monkeypatch.setenv("PARTNERBOT_CORPUS_DIR", "elsewhere")
    s = Settings()
    assert (s.serving.port, s.corpus_dir) == (7002, Path("elsewhere"))  # the environment beats both; relative to the cwd
    own = root / "docs" / "partnerbot.toml"
    own.write_text('corpus_dir = "../texts"\nbogus_key = 1\n')
    monkeypatch.delenv("PARTNERBOT_CORPUS_DIR")
    with pytest.raises(ConfigError, match=rf"{own}: unknown setting\(s\) bogus_key in partnerbot.toml"):
        Settings()
    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 1
    assert f"Error: {own}: unknown setting(s) bogus_key in partnerbot.toml" in " ".join(status.output.split())
    own.write_text("corpus_dir = [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{own}: cannot read the project settings"):
        Settings()


def test_an_unknown_partnerbot_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERBOT_CHUNKSIZE", "100")  # a typo of PARTNERBOT_CHUNK_SIZE: once silently ignored
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) PARTNERBOT_CHUNKSIZE in the environment.*chunk_size"):
        Settings()
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 1 and "PARTNERBOT_CHUNKSIZE" in result.output
    monkeypatch.delenv("PARTNERBOT_CHUNKSIZE")
    monkeypatch.setenv("PARTNERBOT_CHUNK_SIZE", "100")  # every existing name still works, in whichever group it sits
    monkeypatch.setenv("PARTNERBOT_PORT", "7001")
    monkeypatch.setenv("OTHER_TOOL_SETTING", "x")  # other tools' variables are theirs
    s = Settings(rate_limit=0)
    assert (s.index.chunk_size, s.serving.port, s.serving.rate_limit) == (100, 7001, 0)


def test_setting_names_are_unique_across_groups_and_reading_them_touches_no_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from partnerbot import artifact
    from partnerbot.settings import FIELDS, GROUP_FIELDS

    names = [n for group in GROUP_FIELDS.values() for n in group]
    assert len(names) == len(set(names)) and set(names) < set(FIELDS)
    monkeypatch.setattr(artifact, "weights_sha256", lambda _folder: pytest.fail("settings hashed the weights"))
    monkeypatch.setattr(artifact, "is_artifact", lambda _folder: pytest.fail("settings looked for a model"))
    s = Settings(embed_model="/nowhere/model")
    copy = s.updated(chunk_size=100)
    assert (copy.index.embed_model, copy.index.chunk_size, s.index.chunk_size) == ("/nowhere/model", 100, 200)


def test_this_repository_is_a_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "tests" / "data")
    s = Settings()
    assert (s.corpus_dir, s.evals_dir, s.test_cases) == (ROOT / "corpus", ROOT / "evals", ROOT / "evals" / "test")


def test_index_from_a_subfolder_uses_the_project_root(tmp_path: Path, tiny_corpus: Path,
                                                      monkeypatch: pytest.MonkeyPatch, model: object) -> None:
    root = _project(tmp_path, tiny_corpus, 'corpus_dir = "texts"\ndata_dir = "state"\neval_gate = false\n')
    monkeypatch.delenv("PARTNERBOT_DATA_DIR")
    monkeypatch.delenv("PARTNERBOT_EVAL_GATE")
    monkeypatch.chdir(root / "docs" / "deep")
    result = CliRunner().invoke(app, ["index"])
    assert result.exit_code == 0, result.output
    assert "added 3" in result.output and (root / "state" / "chroma").is_dir()
    assert not (root / "docs" / "deep" / ".partnerbot").exists()


def test_missing_corpus_or_evals_folder_is_an_error_naming_it(tmp_path: Path, tiny_corpus: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, tiny_corpus, 'corpus_dir = "texts"\n')
    monkeypatch.delenv("PARTNERBOT_EVAL_GATE")  # the gate is on, as for a maintainer
    monkeypatch.chdir(root / "docs")
    result = CliRunner().invoke(app, ["index"])
    assert result.exit_code == 1
    assert f"evals folder (for the eval gate; --no-eval skips it) not found: {root / 'evals'}" in " ".join(result.output.split())
    assert not (tmp_path / "data").exists()  # nothing was built
    (root / "texts").rename(root / "gone")
    result = CliRunner().invoke(app, ["index", "--no-eval"])
    assert result.exit_code == 1 and f"corpus folder not found: {root / 'texts'}" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["eval"])
    assert result.exit_code == 1 and f"test split not found: {root / 'evals' / 'test'}" in " ".join(result.output.split())


# -- serve ---------------------------------------------------------------------------------------------------------

def _serve(data_dir: Path, corpus: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "partnerbot.cli", "serve", *args], env=cli_env(data_dir, corpus),
                          capture_output=True, text=True, timeout=120)


def test_serve_busy_port_and_missing_index_are_one_line_errors(tmp_path: Path, tiny_corpus: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = _serve(tmp_path / "data", tiny_corpus, "--port", str(port))
    assert taken.returncode == 1
    assert taken.stderr.strip().splitlines()[-1] == (f"Error: port {port} on 127.0.0.1 is already in use: stop the "
                                                     "program using it, or choose another port with --port")
    assert "Traceback" not in taken.stderr + taken.stdout
    empty = _serve(tmp_path / "data", tiny_corpus, "--port", str(free_port()))
    assert empty.returncode == 1 and "Traceback" not in empty.stderr + empty.stdout
    assert empty.stderr.strip().splitlines()[-1] == "Error: no index has been built yet: run `partnerbot index`"
    bad = _serve(tmp_path / "data", tiny_corpus, "--log-level", "loud")
    assert bad.returncode == 1 and "--log-level must be one of critical, error, warning, info, debug" in bad.stderr


def test_serve_log_level_reaches_uvicorn(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    data = tmp_path / "data"
    build_index(Settings(data_dir=data, corpus_dir=tiny_corpus))
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "serve", "--port", str(port), "--log-level",
                                 "info"], env=cli_env(data, tiny_corpus), stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 120, proc)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "loading the model and the index..." in text
    assert "Application startup complete" in text  # uvicorn's info-level log
    assert '"path": "/healthz"' in text  # requests go to partnerbot's JSON access log, not uvicorn's


def test_serve_refuses_to_start_when_its_writer_cannot_be_built(tmp_path: Path, tiny_corpus: Path,
                                                                model: object) -> None:
    """With `llm_url` set and no verification threshold, `serve` stops before listening, naming the file."""
    data = tmp_path / "data"
    build_index(Settings(data_dir=data, corpus_dir=tiny_corpus))
    missing = tmp_path / "no-verify.json"
    settings = Settings(data_dir=data, corpus_dir=tiny_corpus, llm_url="http://127.0.0.1:9/v1", verifier_path=missing)
    with pytest.raises(PartnerbotError, match=r"no-verify\.json"):
        Assistant(settings).check()
    env = cli_env(data, tiny_corpus) | {"PARTNERBOT_LLM_URL": "http://127.0.0.1:9/v1",
                                        "PARTNERBOT_VERIFIER_PATH": str(missing)}
    done = subprocess.run([sys.executable, "-m", "partnerbot.cli", "serve", "--port", str(free_port())], env=env,
                          capture_output=True, text=True, timeout=90)  # it used to start, and answer "not ready"
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert str(missing) in done.stderr.strip().splitlines()[-1], done.stderr


def test_a_client_that_sends_its_request_slowly_is_cut_off(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    """A half-sent request (slowloris) is closed after the read timeout; the server answers everyone else."""
    data = tmp_path / "data"
    build_index(Settings(data_dir=data, corpus_dir=tiny_corpus))
    srv = Server(data, tiny_corpus, env={"PARTNERBOT_READ_TIMEOUT": "1"})
    try:
        slow = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
        for i, conn in enumerate(slow):
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"POST /api/ask HTTP/1.1\r\n"
                         b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            conn.settimeout(10)
        assert httpx.get(f"{srv.url}/healthz").status_code == 200  # everyone else is served meanwhile
        t0 = time.monotonic()
        assert all(conn.recv(100) == b"" for conn in slow)  # each closed by the server, headers or body half-sent
        assert time.monotonic() - t0 < 5
        for conn in slow:
            conn.close()
    finally:
        srv.stop()


# -- progress ------------------------------------------------------------------------------------------------------

def test_reindex_names_each_slow_step(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                      model: object) -> None:
    monkeypatch.setenv("PARTNERBOT_CORPUS_DIR", str(tiny_corpus))
    cases = tmp_path / "gate.yaml"
    cases.write_text("- id: alpha-number\n  question: How many spare lighthouse lamps does the Alpha Program keep?\n"
                     "  sources: [alpha]\n  facts: ['4817']\n")
    first = CliRunner().invoke(app, ["index", "--no-eval"])
    assert first.exit_code == 0 and "loading the embedding model..." in first.output and "embedding..." in first.output
    active = store.read_pointer(store.connect(Settings())).version
    beta = tiny_corpus / "beta.md"
    beta.write_text(beta.read_text() + "\nThe task force also keeps a small archive.\n")
    monkeypatch.setenv("PARTNERBOT_EVAL_GATE", "true")
    gated = CliRunner().invoke(app, ["index", "--cases", str(cases)])
    assert gated.exit_code == 0, gated.output
    new = store.read_pointer(store.connect(Settings())).version
    lines = gated.output.splitlines()
    steps = [line for line in lines if line.endswith("...")]
    assert steps == ["loading the embedding model...", "embedding...", f"eval gate: active version {active}...",
                     f"eval gate: new version {new}..."]


def test_ask_in_a_terminal_shows_the_model_loading(tmp_path: Path, tiny_corpus: Path, model: object) -> None:
    data = tmp_path / "data"
    build_index(Settings(data_dir=data, corpus_dir=tiny_corpus))
    seen = io.StringIO()
    child = pexpect.spawn(sys.executable, ["-m", "partnerbot.cli", "ask", SECRET], use_poll=True, encoding="utf-8", timeout=120,
                          env=cli_env(data, tiny_corpus) | {"TERM": "xterm-256color"}, dimensions=(24, 120))
    child.logfile_read = seen
    child.expect("loading the embedding model")  # the spinner, drawn in the terminal while the model loads
    child.expect("4817")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "loading the embedding model..." not in seen.getvalue()  # a terminal gets the spinner, not log lines


# -- the Makefile's torch step -------------------------------------------------------------------------------------

def _make_install_commands(tmp_path: Path, *args: str) -> list[str]:
    venv = tmp_path / "venv"
    out = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={venv}", *args, f"{venv}/.installed"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "pip install" in line and "torch==" in line]


def test_makefile_torch_step_uses_the_index_it_is_given(tmp_path: Path) -> None:
    assert _make_install_commands(tmp_path) == [f"{tmp_path}/venv/bin/pip install --quiet torch==2.13.0"]
    cpu = "https://download.pytorch.org/whl/cpu"
    assert _make_install_commands(tmp_path, f"TORCH_INDEX_URL={cpu}") == [
        f"{tmp_path}/venv/bin/pip install --quiet --index-url {cpu} torch==2.13.0"]


# -- latency percentiles -------------------------------------------------------------------------------------------

def test_latency_percentiles_interpolate_and_skip_outages() -> None:
    from dataclasses import replace

    from partnerbot.evaluation.metrics import CaseResult, metrics

    base = CaseResult("c", True, [], "q", "a", False, [], [], 0.0)
    results = [replace(base, id=f"c{i}", latency_ms=float(i)) for i in range(1, 21)]
    outage = replace(base, id="down", latency_ms=10_000.0, status="unavailable")
    m = metrics([*results, outage])
    assert m["latency_ms_p50"] == 10.5 and m["latency_ms_p95"] == 19.05  # linear between the 19th and 20th
    assert metrics([])["latency_ms_p95"] == 0.0


def test_the_package_metadata_reads_without_a_deprecation_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """setuptools reads pyproject.toml as an install does; a deprecated form (a license table) is an error here."""
    import warnings

    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)  # the readme is found relative to the working directory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "MIT"
