"""The tuned embedding model as an artifact: its manifest, and the SHA-256 of its weights (the read side).

`finetune` writes the artifact; this module only reads and checks it, so serving never imports training code.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import ModelArtifactError

MANIFEST = "partnerbot-model.json"
WEIGHTS = "model.safetensors"
FORMAT = "partnerbot-embedder/1"


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


