"""Fine-tune the embedding model on train questions, and the versioned model artifact it is saved as.

Training uses sentence-transformers' own trainer (`SentenceTransformerTrainer`) with
MultipleNegativesRankingLoss over (question, answering sentence in context, one hard negative) triplets:
every other positive and negative in the batch is a further negative. Batches never hold the same text
twice (`BatchSamplers.NO_DUPLICATES`), so two questions about one sentence never push each other apart.
Everything is seeded and runs on the CPU, so the same pairs and seed give the same weights.

The artifact is a sentence-transformers model folder: `model.safetensors` (fp16 by default), the
tokenizer and pooling files, and `partnerbot-model.json`, which records the SHA-256 of the weights, the
base model, the seed and the training figures. The index records that hash; serving refuses an index
built with other weights.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partnerbot.artifact import FORMAT, MANIFEST, WEIGHTS, weights_sha256
from partnerbot.errors import PartnerbotError


@dataclass(frozen=True)
class Triplet:
    """One training example: a question (as retrieval sees it), its answering sentence, and a hard negative."""

    anchor: str
    """The question as retrieval sees it (with a follow-up's topic)."""
    positive: str
    """The answering sentence, after its document's title and section heading."""
    negative: str
    """The wrong candidate the base model ranks highest, in the same form."""


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fine-tuned (the recipe measured in the answering research of 2026-11-30)."""

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    scale: float = 20.0
    seed: int = 13


def _torch_setup(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def load_model(path: str) -> Any:
    """A `SentenceTransformer` from a local folder, in float32 on the CPU whatever dtype its weights are stored in."""
    import torch
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.float32}, local_files_only=True)


def train(base_path: str, triplets: Sequence[Triplet], config: TrainConfig) -> Any:
    """Fine-tune the model at `base_path` on `triplets` and return it (in memory, float32).

    Raises:
        PartnerbotError: no triplets to train on.
    """
    if not triplets:
        raise PartnerbotError("no training pairs: the train cases hold no in-scope question with evidence")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    _torch_setup(config.seed)
    model = load_model(base_path)
    data = Dataset.from_dict({
        "anchor": [t.anchor for t in triplets],
        "positive": [t.positive for t in triplets],
        "negative": [t.negative for t in triplets],
    })
    with tempfile.TemporaryDirectory(prefix="partnerbot-tune-") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the steps (transformers 5)
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            seed=config.seed,
            data_seed=config.seed,
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            logging_steps=10_000,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                             loss=MultipleNegativesRankingLoss(model, scale=config.scale))
        trainer.train()
    model.eval()
    return model


def save_artifact(model: Any, folder: Path, info: dict[str, Any], fp16: bool = True) -> str:
    """Write `model` to `folder` (replacing it only once the new one is complete) and return its weights' SHA-256.

    `info` (base model, seed, figures) goes into the manifest beside the hash.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        if fp16:
            model = model.half()
        model.save(str(tmp), safe_serialization=True)
        if fp16:
            model.float()
        for junk in ("README.md",):  # the generated model card holds timestamps: the artifact must be reproducible
            (tmp / junk).unlink(missing_ok=True)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the artifact is as readable as the rest of the package
        for path in tmp.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        sha = weights_sha256(tmp)
        manifest = {"format": FORMAT, "weights": WEIGHTS, "sha256": sha, "dtype": "float16" if fp16 else "float32",
                    **info}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return sha
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def elapsed(t0: float) -> float:
    return round(time.perf_counter() - t0, 1)
