"""The fitted artifacts, read and checked: the tuned embedding model (its manifest and the SHA-256 of its
weights) and the reader's JSON file (its format and content id).

`partnerbot tune` writes them; this module only reads and checks them, so serving never imports training
code, and the index build records the reader's id without importing the answering layer.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partnerbot.errors import ModelArtifactError, SelectorError

MANIFEST = "partnerbot-model.json"
WEIGHTS = "model.safetensors"
FORMAT = "partnerbot-embedder/1"
SELECTOR_FORMAT = "partnerbot-selector"
SELECTOR_FORMAT_VERSION = 2


def weights_sha256(folder: Path) -> str:
    """The SHA-256 of a model folder's weights file."""
    digest = hashlib.sha256()
    with (Path(folder) / WEIGHTS).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256_cached(folder: Path) -> str:
    """`weights_sha256`, computed once per folder and weights file version."""
    return _sha_cached(str(Path(folder).resolve()), _mtime(folder))


@functools.lru_cache(maxsize=8)
def _sha_cached(folder: str, _mtime: float) -> str:
    return weights_sha256(Path(folder))



@dataclass(frozen=True)
class EmbeddingModel:
    """The embedding model a configuration names, resolved: where it is, its name, and its weights' hash."""

    path: str
    """The model's folder."""
    name: str
    """A machine-independent name, recorded in the index: the folder's name, or the shipped model's."""
    sha256: str
    """The SHA-256 of its weights (a tuned model's is its manifest's, checked against the weights)."""


def embedding_model(configured: str, tuned: Path, base: str) -> EmbeddingModel:
    """The model `configured` names (a folder), else the tuned model at `tuned` if there is one, else `base`.

    Reads the disk: a tuned model's manifest, checked against its weights, or the base model's weights, hashed
    (each once per process and weights file).

    Raises:
        ModelArtifactError: a tuned model's weights are missing or do not match their manifest.
    """
    if configured:
        path, name = configured, Path(configured).name
    elif is_artifact(tuned):
        path, name = str(tuned), "all-MiniLM-L6-v2-partnerbot"
    else:
        path, name = base, "all-MiniLM-L6-v2"
    folder = Path(path)
    sha = str(read_manifest(folder)["sha256"]) if is_artifact(folder) else weights_sha256_cached(folder)
    return EmbeddingModel(path, name, sha)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a tuned model folder, its recorded hash checked against the weights.

    Raises:
        ModelArtifactError: the manifest or weights are missing, unreadable, or the weights' hash differs.
    """
    return dict(_manifest(str(Path(folder).resolve()), _mtime(folder)))


def _mtime(folder: Path) -> float:
    path = Path(folder) / WEIGHTS
    return path.stat().st_mtime if path.exists() else 0.0


@functools.lru_cache(maxsize=8)
def _manifest(folder: str, _mtime: float) -> dict[str, Any]:
    fix = "run `partnerbot tune` to build it again"
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"{path}: no model manifest here; {fix}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path}: the model manifest cannot be read ({exc}); {fix}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelArtifactError(f"{path}: not a {FORMAT} manifest; {fix}")
    weights = Path(folder) / WEIGHTS
    if not weights.exists():
        raise ModelArtifactError(f"{weights}: the model weights are missing; {fix}")
    sha = weights_sha256(Path(folder))
    if sha != data.get("sha256"):
        raise ModelArtifactError(f"{weights}: SHA-256 {sha[:12]}... does not match the manifest's "
                                 f"{str(data.get('sha256'))[:12]}... (altered or half-copied); {fix}")
    return data


def is_artifact(folder: Path) -> bool:
    """Whether `folder` holds a tuned model (a manifest beside weights)."""
    return (Path(folder) / MANIFEST).exists()


def content_id(data: dict[str, Any]) -> str:
    """A short hash of a JSON artifact's content, its `id` field left out: equal content, equal id."""
    body = {k: v for k, v in data.items() if k != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def read_selector_json(path: Path) -> dict[str, Any]:
    """The reader's artifact as JSON, its format and content id checked (not yet its features).

    Raises:
        SelectorError: the file is missing, unreadable, of another format, or altered; the message names
            the file and says to run `partnerbot tune`.
    """
    fix = "run `partnerbot tune` to fit a new one"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SelectorError(f"{path}: no answer selector here; {fix}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SelectorError(f"{path}: the answer selector cannot be read ({exc}); {fix}") from exc
    if (not isinstance(data, dict) or data.get("format") != SELECTOR_FORMAT
            or data.get("format_version") != SELECTOR_FORMAT_VERSION):
        raise SelectorError(f"{path}: not a {SELECTOR_FORMAT} file of version {SELECTOR_FORMAT_VERSION}; {fix}")
    if data.get("id") != content_id(data):
        raise SelectorError(f"{path}: the content does not match its id {data.get('id')!r} (edited by hand?); {fix}")
    return data
