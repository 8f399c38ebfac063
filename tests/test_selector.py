"""Features, the fitted selector artifact, refusal and `partnerbot tune`, on the real corpus and model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import ROOT, not_ready
from partnerbot.answering.assistant import Assistant
from partnerbot.answering.reader.features import FEATURES, counted_stems
from partnerbot.answering.reader.model import Thresholds, read_selector, write_selector
from partnerbot.answering.reader.policy import choose, decide
from partnerbot.answers import Answer
from partnerbot.cli import app
from partnerbot.errors import IndexMismatchError, SelectorError
from partnerbot.evaluation.tune import tune
from partnerbot.index.build import build_index
from partnerbot.settings import Settings, bundled_selector_path

REMOVALS = "ERO carried out 185,884 removals in FY 2020"
ARRESTS = "ERO made 103,603 administrative arrests"


def features_of(assistant: Assistant, question: str, fragment: str) -> dict[str, float]:
    """The features of the candidate sentence containing `fragment`."""
    prepared = assistant.prepare(question)
    cands = prepared.candidates
    for row, i in zip(cands.matrix, cands.sentences, strict=True):
        if fragment in prepared.snapshot.sentences[i].text:
            return dict(zip(FEATURES, map(float, row), strict=True))
    raise AssertionError(f"no candidate holds {fragment!r}")


def test_feature_matrix_has_one_named_column_per_feature(assistant: Assistant) -> None:
    cands = assistant.prepare("How many removals did ERO carry out in fiscal year 2020?").candidates
    assert cands.matrix.shape == (len(cands.sentences), len(FEATURES)) and len(cands.sentences) >= 5
    assert np.isfinite(cands.matrix).all()
    assert len(set(FEATURES)) == len(FEATURES)


def test_answer_type_features_tell_a_figure_from_its_neighbour(assistant: Assistant) -> None:
    question = "How many removals did ERO carry out in fiscal year 2020?"
    removals, arrests = features_of(assistant, question, REMOVALS), features_of(assistant, question, ARRESTS)
    assert removals["counted_near_figure"] == 1.0 and arrests["counted_near_figure"] == 0.0
    assert removals["asks_number_has_figure"] == arrests["asks_number_has_figure"] == 1.0
    assert removals["year_match"] == 1.0 and removals["year_conflict"] == 0.0
    assert counted_stems("how many administrative arrests did ERO make") == ["administr", "arrest"]
    assert counted_stems("What is HERO Corps?") == []


def test_question_level_features(assistant: Assistant) -> None:
    now = features_of(assistant, "Who leads HSI right now?", "Homeland Security Investigations (HSI) is")
    assert now["asks_now"] == 1.0 and now["asks_person_has_person"] in (0.0, 1.0)
    mine = features_of(assistant, "can my sheriff join 287g", "The 287(g) program lets")
    assert mine["first_person"] == 1.0 and mine["doc_lead"] == 1.0
    conflict = features_of(assistant, "How many removals did ERO carry out in 2012?", REMOVALS)
    assert conflict["year_conflict"] == 1.0 and conflict["year_match"] == 0.0


def test_shipped_selector_loads_and_the_index_records_it(assistant: Assistant) -> None:
    selector = read_selector(bundled_selector_path())
    assert selector.features == FEATURES and 0.0 < selector.thresholds.answer <= selector.thresholds.extra <= 1.0
    assert 0.0 < selector.thresholds.scope < 1.0
    assert selector.fitted["cases"] >= 1500 and selector.fitted["refuse_cases"] >= 300
    assert "cross_validated" in selector.fitted
    state = assistant.snapshots.current()
    assert assistant.reader.selector.id == selector.id and state.version
    assert selector.embed_sha256 == assistant.settings.index.embedding().sha256  # fitted with the model that serves


def test_selector_artifact_round_trip_and_tampering(tmp_path: Path) -> None:
    selector = read_selector(bundled_selector_path())
    path = tmp_path / "selector.json"
    assert write_selector(selector, path) == selector.id
    again = read_selector(path)
    assert again.id == selector.id and np.allclose(again.sentence.coef, selector.sentence.coef)
    assert np.allclose(again.scope.coef, selector.scope.coef)
    data = json.loads(path.read_text())
    data["model"]["coef"][0] += 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(SelectorError, match=r"does not match its id.*partnerbot tune"):
        read_selector(path)
    data["features"] = ["dense"]
    data.pop("id")
    from partnerbot.answering.reader.model import content_id

    data["id"] = content_id(data)
    path.write_text(json.dumps(data))
    with pytest.raises(SelectorError, match="other features"):
        read_selector(path)
    with pytest.raises(SelectorError, match=r"no answer selector here; run `partnerbot tune`"):
        read_selector(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(SelectorError, match="cannot be read"):
        read_selector(path)


def test_index_and_selector_disagree_says_what_to_run(tiny_corpus: Path, tmp_path: Path, model: object) -> None:
    built = Settings(corpus_dir=tiny_corpus)
    build_index(built)
    other = tmp_path / "other.json"
    selector = read_selector(bundled_selector_path())
    half = type(selector.sentence)(selector.sentence.mean, selector.sentence.scale, selector.sentence.coef * 0.5,
                                   selector.sentence.intercept)
    write_selector(type(selector)(selector.features, half, selector.scope, selector.thresholds,
                                  selector.embed_sha256, selector.fitted), other)
    moved = Settings(corpus_dir=tiny_corpus, selector_path=other)
    not_ready(Assistant(moved), "What is the Alpha Program?", IndexMismatchError,
              r"records answer selector .* run `partnerbot index`")
    summary = build_index(moved)  # records the new selector without re-embedding anything
    assert summary.switched and summary.chunks_embedded == 0
    assert isinstance(Assistant(moved).ask("How many spare lighthouse lamps does the Alpha Program keep?"), Answer)


def test_refusal_threshold_and_extra_sentences(assistant: Assistant) -> None:
    prepared = assistant.prepare("How many lookouts has the war crimes center issued?")
    state, cands = prepared.snapshot, prepared.candidates
    p = np.linspace(0.9, 0.1, len(cands.sentences))
    assert choose(state, cands.sentences, p, Thresholds(0.95, 1.0), 3) == []  # below the answer threshold
    one = choose(state, cands.sentences, p, Thresholds(0.5, 1.0), 3)
    assert [i for i, _ in one] == [cands.sentences[0]]  # nothing else is confident enough on its own
    many = choose(state, cands.sentences, p, Thresholds(0.0, 0.0), 3)
    assert 1 <= len(many) <= 3 and many[0][0] == cands.sentences[0]
    chosen = [i for i, _ in many]
    sims = state.sentence_vecs[chosen] @ state.sentence_vecs[chosen].T
    assert (sims[~np.eye(len(chosen), dtype=bool)] < 0.85).all()  # no near-copies


def test_three_outcomes_follow_the_thresholds(assistant: Assistant) -> None:
    prepared = assistant.prepare("How many lookouts has the war crimes center issued?")
    state, sents = prepared.snapshot, prepared.candidates.sentences
    p = np.linspace(0.9, 0.1, len(sents))
    t = Thresholds(answer=0.5, extra=1.0, scope=0.5)
    assert decide(state, sents, p, 0.4, t, 3).outcome == "declined" and not decide(state, sents, p, 0.4, t, 3).picked
    answered = decide(state, sents, p, 0.6, t, 3)
    assert answered.outcome == "answered" and [i for i, _ in answered.picked] == [sents[0]]
    unsure = decide(state, sents, p, 0.6, Thresholds(0.95, 1.0, 0.5), 3)
    assert unsure.outcome == "uncertain" and 1 <= len(unsure.picked) <= 3 and unsure.picked[0][0] == sents[0]
    assert decide(state, (), np.zeros(0), 0.9, t, 3).outcome == "declined"  # nothing retrieved


def test_tune_is_reproducible_and_refuses_the_test_split(real_index: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A full tune (cross-fitted fine-tuning, final model, reader) on a tiny case set, twice: the same artifacts."""
    import yaml

    from partnerbot.artifact import read_manifest

    cases = [c for f in sorted((ROOT / "evals" / "train").glob("*.yaml")) for c in yaml.safe_load(f.read_text())]
    inscope = [c for c in cases if c.get("evidence") and not c.get("history")][:10]
    refuse = [c for c in cases if c.get("refuse") and not c.get("history")][:6]
    subset = tmp_path / "train.yaml"
    subset.write_text(yaml.safe_dump(inscope + refuse))
    settings = Settings(data_dir=real_index, corpus_dir=ROOT / "corpus")
    runs = [tune(settings, subset, seed=7, folds=2, epochs=1, out=tmp_path / f"{k}.json", model_out=tmp_path / k)
            for k in ("a", "b")]
    a, b = runs
    assert a.model_sha256 == b.model_sha256 == read_manifest(tmp_path / "a")["sha256"]
    assert a.selector_id == b.selector_id and (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert a.model_sha256 != settings.index.embedding().sha256  # it did train: the weights moved
    assert set(a.figures) >= {"helpful_rate", "answer_accuracy", "wrong_answer_rate", "false_refusal_rate",
                              "refusal_accuracy", "uncertain_rate", "scope_auc"}
    assert read_selector(tmp_path / "a.json").embed_sha256 == a.model_sha256
    monkeypatch.setenv("PARTNERBOT_DATA_DIR", str(real_index))
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["tune", "--cases", "evals/test"])
    assert result.exit_code == 1 and "only ever measured" in result.output


def test_the_read_path_does_not_import_the_build_path() -> None:
    import subprocess
    import sys

    code = ("import sys, partnerbot.answering.assistant, partnerbot.answering.retrieve, partnerbot.index.read; "
            "print(sorted(m for m in sys.modules if m in ('partnerbot.index.build', 'partnerbot.corpus.parse', 'partnerbot.corpus.chunk', "
            "'partnerbot.evaluation.tune', 'partnerbot.evaluation.finetune', 'sklearn', 'datasets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_changed_model_file_is_an_error_naming_it(tmp_path: Path) -> None:
    import shutil

    from partnerbot.artifact import read_manifest
    from partnerbot.errors import ModelArtifactError
    from partnerbot.settings import tuned_model_dir

    copy = tmp_path / "embedder"
    shutil.copytree(tuned_model_dir(), copy)
    assert read_manifest(copy)["sha256"] == Settings(embed_model=str(copy)).index.embedding().sha256
    weights = copy / "model.safetensors"
    body = bytearray(weights.read_bytes())
    body[-1] ^= 0xFF
    weights.write_bytes(bytes(body))
    with pytest.raises(ModelArtifactError, match=r"model.safetensors: SHA-256 .* does not match .*run `partnerbot tune`"):
        Settings(embed_model=str(copy)).index.embedding().sha256  # noqa: B018


def test_an_index_embedded_with_another_model_stops_ask_with_the_command_to_run(tiny_corpus: Path) -> None:
    base = Settings(corpus_dir=tiny_corpus, embed_model=Settings().index.base_model_path)
    build_index(base)
    not_ready(Assistant(Settings(corpus_dir=tiny_corpus)), "What is the Alpha Program?", IndexMismatchError,
              r"built with another embedding model.*run `partnerbot index`")
    summary = build_index(Settings(corpus_dir=tiny_corpus))  # re-embeds everything with the configured model
    assert summary.switched and summary.chunks_embedded == summary.chunks_total > 0
    assert isinstance(Assistant(Settings(corpus_dir=tiny_corpus)).ask("What is the Alpha Program?"), Answer)
