"""Read and validate the Markdown corpus: one file per document, with YAML front matter."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from partnerbot.corpus.footnotes import read_footnotes, valid_url
from partnerbot.errors import CorpusError, CorpusErrors
from partnerbot.text import first_control, iso_date
from partnerbot.types import COMPONENTS, Document, Footnote

REQUIRED = ("id", "title", "url", "date", "component", "sources", "summary")
MAX_FILE_BYTES = 2_000_000
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")



def corpus_files(corpus_dir: Path) -> list[Path]:
    """The corpus documents in `corpus_dir`, sorted by name (README files excluded)."""
    if not corpus_dir.is_dir():
        raise CorpusErrors([CorpusError(corpus_dir, "corpus folder not found")])
    return sorted(p for p in corpus_dir.glob("*.md") if p.name.lower() != "readme.md")


def _field_line(front: str, field: str) -> int | None:
    """1-based line of `field:` in the file (front matter starts at line 2)."""
    for i, line in enumerate(front.splitlines()):
        if line.startswith(f"{field}:"):
            return i + 2
    return None


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, with dates kept as text so that a bad one is reported, not raised."""


_Loader.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class _Problem:
    field: str
    message: str


def _url(value: object) -> object:
    if not valid_url(value):
        raise ValueError(f"not a well-formed http(s) URL: {value!r}")
    return value


def _iso_date(value: object) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    day = iso_date(value) if isinstance(value, str) else None
    if day is not None:
        return day.isoformat()
    raise ValueError(f"must be an ISO date YYYY-MM-DD, got {value!r}")


def _component(value: str) -> str:
    if value not in COMPONENTS:
        raise ValueError(f"must be one of {', '.join(COMPONENTS)}, got {value!r}")
    return value


def _text(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("required field is missing or empty")
    return value


_Url = Annotated[str, BeforeValidator(_url)]
_Text = Annotated[str, AfterValidator(_text)]


class FrontMatter(BaseModel):
    """A corpus document's YAML front matter; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, StringConstraints(pattern=ID_RE.pattern)]
    title: _Text
    url: _Url
    date: Annotated[str, BeforeValidator(_iso_date)]
    component: Annotated[str, AfterValidator(_component)]
    sources: Annotated[list[_Url], Field(min_length=1)]
    summary: _Text


def front_matter_problems(meta: dict[Any, Any]) -> list[_Problem]:
    """What is wrong with a front-matter mapping, one problem per field, in plain words."""
    try:
        FrontMatter.model_validate(meta)
    except ValidationError as exc:
        return [_explain(e, meta) for e in exc.errors()]
    return []


def _explain(error: Any, meta: dict[Any, Any]) -> _Problem:
    """A pydantic error as the message a corpus author needs."""
    field = str(error["loc"][0]) if error["loc"] else "front matter"
    value = meta.get(field)
    kind = error["type"]
    if kind == "missing" or value is None or value == "" or value == []:
        return _Problem(field, "required field is missing or empty")
    if kind == "extra_forbidden":
        return _Problem(field, f"unknown field (allowed: {', '.join(REQUIRED)})")
    if kind == "value_error":
        return _Problem(field, str(error["ctx"]["error"]))
    if field == "id":
        return _Problem(field, f"must be lower-case letters, digits and hyphens, got {value!r}")
    if field == "sources":
        return _Problem(field, "must be a list of URLs")
    return _Problem(field, "must be a string" if kind == "string_type" else error["msg"])


def parse_document(path: Path) -> Document:
    """Parse and validate one corpus file.

    Raises:
        CorpusErrors: every problem found, each naming the file, field and line.
    """
    errors: list[CorpusError] = []
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise CorpusErrors([CorpusError(path, f"file is {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusErrors([CorpusError(path, f"not valid UTF-8 (byte {exc.start})", line=line)]) from exc
    text = text.replace("\r\n", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise CorpusErrors([CorpusError(path, "missing YAML front matter: the file must start with '---'", line=1)])
    try:
        close = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise CorpusErrors([CorpusError(path, "front matter is not closed by a '---' line", line=1)]) from None
    front = "\n".join(lines[1:close])
    try:
        meta = yaml.load(front, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CorpusErrors([CorpusError(path, f"front matter is not valid YAML: {problem}", line=line)]) from exc
    if not isinstance(meta, dict):
        raise CorpusErrors([CorpusError(path, "front matter must be a YAML mapping", line=2)])

    for problem in front_matter_problems(meta):
        errors.append(CorpusError(path, problem.message, field=problem.field,
                                  line=_field_line(front, problem.field) or 1))
    doc_id = meta.get("id")
    if isinstance(doc_id, str) and ID_RE.match(doc_id) and doc_id != path.stem:
        errors.append(CorpusError(path, f"'{doc_id}' does not match the file name '{path.stem}'", field="id",
                                  line=_field_line(front, "id")))
    date = meta.get("date")
    sources = meta.get("sources")
    raw_body = "\n".join(lines[close + 1 :])
    body = raw_body.strip("\n")
    body_line = close + 2 + (len(raw_body) - len(raw_body.lstrip("\n")))
    text = body + "\n"
    footnotes: tuple[Footnote, ...] = ()
    marks: tuple[tuple[int, str], ...] = ()
    if not body.strip():
        errors.append(CorpusError(path, "the document body is empty", field="body", line=close + 2))
    elif (offset := first_control(body)) >= 0:
        line = close + 2 + body[:offset].count("\n")
        errors.append(CorpusError(path, "the body contains control characters; it must be plain text", field="body", line=line))
    else:
        listed = sources if isinstance(sources, list) else []
        # A document whose only source is its own page needs no footnotes (nor does one whose sources are broken).
        text, footnotes, marks, problems = read_footnotes(body, body_line, listed,
                                                          require=bool(listed) and listed != [meta.get("url")])
        errors.extend(CorpusError(path, message, field="footnotes", line=line) for line, message in problems)
    if errors:
        failure = CorpusErrors(errors)
        failure.doc_id = doc_id if isinstance(doc_id, str) else None
        raise failure
    return Document(
        id=str(doc_id),
        title=meta["title"].strip(),
        url=meta["url"],
        date=str(date),
        component=str(meta["component"]),
        sources=tuple(sources or ()),
        summary=meta["summary"].strip(),
        text=text,
        content_hash=hashlib.sha256(raw).hexdigest(),
        footnotes=footnotes,
        marks=marks,
    )


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Load and validate every document in `corpus_dir`.

    Raises:
        CorpusErrors: all problems in all files, including duplicate ids.
    """
    docs: list[Document] = []
    errors: list[CorpusError] = []
    seen: dict[str, Path] = {}
    files = corpus_files(corpus_dir)
    if not files:
        raise CorpusErrors([CorpusError(corpus_dir, "no Markdown documents (*.md) found")])
    for path in files:
        try:
            doc = parse_document(path)
            doc_id: str | None = doc.id
        except CorpusErrors as exc:
            errors.extend(exc.errors)
            doc, doc_id = None, exc.doc_id
        if doc_id is not None:
            if doc_id in seen:
                line = _field_line(path.read_text("utf-8", errors="replace").split("---")[1], "id") or 1
                errors.append(CorpusError(path, f"duplicate id '{doc_id}' (also in {seen[doc_id]})", field="id", line=line))
                continue
            seen[doc_id] = path
        if doc is not None:
            docs.append(doc)
    if errors:
        raise CorpusErrors(errors)
    return docs
