"""Evaluation cases: their YAML format (`CaseSpec`), loading and validation, and a case through the serving path.

Where a case's evidence sits, and which passages hold it, is `evidence`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from partnerbot.answering.language import foreign_reply
from partnerbot.errors import EvalError, PartnerbotError
from partnerbot.sanitize import clean_history, clean_question
from partnerbot.settings import Settings

if TYPE_CHECKING:
    from partnerbot.answering.assistant import Assistant, Prepared


@dataclass(frozen=True)
class Case:
    """One evaluation case (the fixed YAML format)."""

    id: str
    question: str
    history: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    facts: tuple[tuple[str, ...], ...] = ()
    evidence: tuple[str, ...] = ()
    refuse: bool = False
    input_error: bool = False
    file: str = ""
    partial: bool = False
    all_evidence: bool = False

    @property
    def in_scope(self) -> bool:
        return not (self.refuse or self.input_error)


def case_files(paths: Sequence[Path]) -> list[Path]:
    """The YAML files named, with each directory replaced by the `*.yaml` files under it (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.rglob("*.yaml")))
        elif path.exists():
            files.append(path)
        else:
            raise EvalError(f"{path}: no such cases file or folder")
    return files


def _key(question: str, history: Sequence[str]) -> tuple[str, ...]:
    """What makes two cases the same case: their words, in order, ignoring case and punctuation."""
    return tuple(" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in (*history, question))


def load_cases(paths: Sequence[Path], doc_ids: Iterable[str] | None = None) -> list[Case]:
    """Read case files (or folders of them) and validate each case against `CaseSpec`.

    Raises:
        EvalError: unknown keys, a missing question, a value of the wrong kind, unknown doc ids,
            duplicate ids or duplicate cases (the same question and history), naming the file, the
            case (its id, or its number when it has none), the field and, where it can, the line.
    """
    known = set(doc_ids) if doc_ids is not None else None
    cases: list[Case] = []
    seen: dict[str, str] = {}
    asked: dict[tuple[str, ...], str] = {}
    for path in case_files(paths):
        raw, node = _read_yaml(path)
        if not isinstance(raw, list):
            raise EvalError(f"{path}: a cases file must be a YAML list of cases")
        for n, item in enumerate(raw, 1):
            case = _parse_case(item, n, path, known, node.value[n - 1])
            where = f"{path}: case {case.id!r}"
            if case.id in seen:
                raise EvalError(f"{where}: duplicate id (also in {seen[case.id]})")
            seen[case.id] = str(path)
            key = _key(case.question, case.history)
            if key in asked:
                raise EvalError(f"{where}: duplicate case: the same question and history as {asked[key]!r}")
            asked[key] = case.id
            cases.append(case)
    return cases


def _read_yaml(path: Path) -> tuple[Any, Any]:
    """The file's data and its YAML node tree, which knows the line of every value."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"{path}: cannot read the cases file ({exc})") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise EvalError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    finally:
        loader.dispose()


def _fact(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) and value else [value]
    if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in items):
        return tuple(str(v) for v in items)
    raise PydanticCustomError("fact", "must be a text or a number, or a list of them (any of which may appear)")


def _nonblank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value  # `history:` with nothing after it, as in hand-written YAML


Text = Annotated[StrictStr, AfterValidator(_nonblank)]
Texts = Annotated[list[Text], BeforeValidator(_none_as_empty)]
Facts = Annotated[list[Annotated[tuple[str, ...], BeforeValidator(_fact)]], BeforeValidator(_none_as_empty)]


class CaseSpec(BaseModel):
    """One case as written in a cases file; `load_cases` turns it into a `Case`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: Text = Field(description="a name unique across all cases files")
    question: Text = Field(description="the question as the public would type it")
    history: Texts = Field([], description="earlier user turns, a list of strings")
    sources: Texts = Field([], description="doc ids, any one of which must be cited")
    facts: Facts = Field([], description="texts or numbers that must appear; a list means any of them")
    evidence: Texts = Field([], description="gold passages, each quoted verbatim from the corpus")
    refuse: StrictBool = Field(False, description="true or false: the assistant must decline and cite nothing")
    input_error: StrictBool = Field(False, description="true or false: the question is unusable (empty, too long)")
    partial: StrictBool = Field(False, description="true or false: the corpus answers only part of the question (a "
                                "negated question, or a second part or side it lacks); the evidence is the part it "
                                "answers, and the assistant must not answer with confidence")
    all_evidence: StrictBool = Field(False, description="true or false: each evidence passage answers a different part "
                                     "(a two-part or comparison question); an answer must show every one")

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: list[str], info: ValidationInfo) -> list[str]:
        known = (info.context or {}).get("known")
        bad = [s for s in sources if known is not None and s not in known]
        if bad:
            raise PydanticCustomError("unknown_doc", "unknown doc id(s) {ids}", {"ids": ", ".join(bad)})
        return sources

    @model_validator(mode="after")
    def _expectations(self) -> CaseSpec:
        if (self.refuse or self.input_error) and (self.evidence or self.sources or self.facts):
            raise PydanticCustomError("expectations", "a refuse or input_error case has no sources, facts or evidence")
        if (self.partial or self.all_evidence) and not self.evidence:
            raise PydanticCustomError("expectations", "a partial or all_evidence case needs its evidence")
        if self.partial and self.all_evidence:
            raise PydanticCustomError("expectations", "a case is partial or all_evidence, not both")
        return self


CASE_KEYS = frozenset(CaseSpec.model_fields)


def _parse_case(item: Any, n: int, path: Path, known: set[str] | None, node: Any) -> Case:
    try:
        spec = CaseSpec.model_validate(item, context={"known": known})
    except ValidationError as exc:
        name = item.get("id") if isinstance(item, dict) else None
        case = f"case {name!r}" if isinstance(name, str) and name.strip() else f"case #{n}"
        problems = _problems(exc, node)
        several = len(problems) > 1
        line = (None if several else problems[0][1]) or node.start_mark.line + 1
        text = "; ".join(p + (f" (line {ln})" if several and ln else "") for p, ln in problems)
        raise EvalError(f"{path}:{line}: {case}: {text}") from exc
    return Case(spec.id, spec.question, tuple(spec.history), tuple(spec.sources), tuple(spec.facts),
                tuple(spec.evidence), spec.refuse, spec.input_error, str(path), spec.partial, spec.all_evidence)


def _problems(exc: ValidationError, node: Any) -> list[tuple[str, int | None]]:
    """pydantic's errors for one case as (message naming the field, line) pairs."""
    out: list[tuple[str, int | None]] = []
    extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
    if extra:
        keys = ", ".join(sorted(str(loc[0]) for loc in extra))
        out.append((f"unknown key(s) {keys} (allowed: {', '.join(sorted(CASE_KEYS))})", _line(node, extra[0])))
    for e in exc.errors():
        loc, kind = e["loc"], e["type"]
        field = str(loc[0]) if loc else ""
        item = f" item {int(loc[1]) + 1}" if len(loc) > 1 and isinstance(loc[1], int) else ""
        if kind == "extra_forbidden":
            continue
        if kind == "model_type":
            text = "each case must be a mapping"
        elif kind == "missing" or (kind == "blank" and not item):
            text = f"missing '{field}'"
        elif kind in ("unknown_doc", "expectations"):
            text = e["msg"] + (f" in '{field}'" if field else "")
        else:
            hint = CaseSpec.model_fields[field].description if field in CaseSpec.model_fields else ""
            text = f"'{field}'{item}: {e['msg'][:1].lower()}{e['msg'][1:]}" + (f" ({field}: {hint})" if hint else "")
        out.append((text, _line(node, loc)))
    return out


def _line(node: Any, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the key or item at `loc` within one case's YAML node."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def shared_questions(train: Sequence[Case], test: Sequence[Case]) -> list[tuple[Case, Case]]:
    """(train, test) pairs that ask the same question with the same history, ignoring case and punctuation."""
    tested = {_key(c.question, c.history): c for c in test}
    return [(c, tested[k]) for c in train if (k := _key(c.question, c.history)) in tested]


def near_questions(train: Sequence[Case], test: Sequence[Case], embed: Any, threshold: float = 0.95
                   ) -> list[tuple[Case, Case, float]]:
    """(train, test, cosine) for each pair whose questions (with their history) embed at least `threshold` alike.

    `embed` maps a list of texts to unit-length vectors.
    """
    import numpy as np

    def text(c: Case) -> str:
        return " ".join((*c.history, c.question))

    a, b = embed([text(c) for c in train]), embed([text(c) for c in test])
    sims = np.asarray(a) @ np.asarray(b).T
    rows, cols = np.nonzero(sims >= threshold)
    pairs = [(train[i], test[j], float(sims[i, j])) for i, j in zip(rows.tolist(), cols.tolist(), strict=True)]
    return sorted(pairs, key=lambda p: -p[2])


def prepare_case(assistant: Assistant, case: Case) -> Prepared | None:
    """What the serving path retrieves and scores for `case`, as `Assistant.ask` would before choosing.

    The question and history are cleaned as `ask` cleans them, then `Assistant.prepare` runs on them; None for
    a question in another language, which `ask` declines without retrieving.

    Raises:
        InputError: the question is unusable (empty or too long once cleaned).
        StoreUnavailableError: the vector store cannot be reached.
    """
    limit = assistant.settings.answering.max_question_chars
    question = clean_question(case.question, limit)
    if foreign_reply(question, assistant.snapshots.current().normalizer.vocabulary) is not None:
        return None
    return assistant.prepare(question, clean_history(list(case.history), limit))


def train_only(cases: Path, settings: Settings, command: str) -> Path:
    """`cases`, unless it lies inside the test split, which is only ever measured.

    Raises:
        PartnerbotError: `cases` is (inside) the test split; the message names the train split.
    """
    if cases.resolve().is_relative_to(settings.test_cases.resolve()):
        raise PartnerbotError(f"{cases}: the test split is only ever measured; {command} on {settings.train_cases}")
    return cases
