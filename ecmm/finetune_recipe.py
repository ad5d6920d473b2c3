"""The recipe of a fine-tuning run (:class:`FinetuneConfig`), the default recipe of a model, and
the folder and card of the shop model a recipe builds (:func:`shop_model_dir`, :func:`save_shop_model`).

Recipes are named by what stays locked (see :mod:`ecmm.finetune` for what each trains).
:func:`default_config` reads one property of the model, ``strong_tower``, the tower it was
pretrained best at, and keeps that tower locked:

- ``"text"`` (the kit's model, whose MiniLM text tower is the strong one): ``text_locked``, with
  replay of its source-domain pairs against forgetting (``FinetuneConfig()``);
- ``"image"`` (open_clip models): ``image_locked``, i.e. LiT (Zhai et al. 2022, "locked-image
  tuning"): the image tower stays locked and the text tower adapts to the shop's words, at the
  small learning rates usual for fine-tuning a pretrained CLIP; no replay (the emoji corpus is
  not such a model's source domain).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ecmm.data.catalogs import CatalogSource

__all__ = ["FinetuneConfig", "MODES", "INITS", "RECIPE_VERSION", "QUICK_STEPS", "default_config", "training_pairs",
           "recipe_tag", "shop_model_dir", "model_sha256", "catalog_record", "save_shop_model"]

RECIPE_VERSION = 2  # of the shop model: a cached "shop_clip" with another version is rebuilt by the registry

MODES = ("text_locked", "text_last_layer", "image_locked", "full")
INITS = ("pretrained", "scratch")
QUICK_STEPS, QUICK_BATCH = 40, 64  # quick mode (tests, quick notebooks): steps and pairs per step


@dataclass(frozen=True)
class FinetuneConfig:
    """Recipe of a fine-tuning run on the shop's training pairs."""

    mode: str = "text_locked"  # what stays locked: one of MODES (see ecmm.finetune's docstring)
    init: str = "pretrained"  # "pretrained": the contrastively pretrained model; "scratch": random image tower
    label_fraction: float = 1.0  # share of training SKUs used (seeded choice)
    steps: int = 300  # optimiser steps
    batch_size: int = 96  # (photo, caption) pairs per step (the global batch under torchrun)
    learning_rate: float = 2e-3  # projections and temperature
    image_learning_rate: float = 5e-4  # trained image blocks (all of the image tower from scratch)
    text_learning_rate: float = 5e-5  # trained text layers
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 20  # linear warm-up, then cosine decay
    image_blocks: int = 5  # image blocks / groups that train, from the end (5: all of the kit's CNN; 0: locked)
    train_text_projection: bool = True  # False keeps pretraining's text map (unseen type names stay put)
    replay_fraction: float = 0.5  # share of each batch drawn from source (icon, name) pairs; pretrained only
    amp: str | None = None  # mixed precision of the step: None, "bf16" (CPU or CUDA) or "fp16" (CUDA)
    seed: int = 0  # seed of the SKU subset, batch order and caption choice

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {self.init!r}")
        if self.init == "scratch" and self.mode == "image_locked":
            raise ValueError("init='scratch' trains the image tower: it cannot be combined with mode='image_locked'")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1]; got {self.label_fraction}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2")
        if self.image_blocks < 0 or not 0.0 <= self.replay_fraction < 1.0:
            raise ValueError("image_blocks must be >= 0 and replay_fraction in [0, 1)")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16'; got {self.amp!r}")


def default_config(model: Any, quick: bool = False) -> FinetuneConfig:
    """The default recipe of a model: its strong tower (``model.strong_tower``) stays locked.

    Args:
        model: any CLIP-like model of the kit.
        quick: fewer, smaller steps (``QUICK_STEPS`` of ``QUICK_BATCH`` pairs) for tests and quick notebooks.

    Returns:
        ``FinetuneConfig()`` (``text_locked``) for a strong text tower; ``image_locked`` (LiT) with
        learning rates 1e-4 (projection, temperature) and 1e-5 (text tower) and no replay for a
        strong image tower.

    Raises:
        ValueError: the model does not say which tower is strong.
    """
    strong = getattr(model, "strong_tower", None)
    if strong == "text":
        config = FinetuneConfig()
    elif strong == "image":
        config = FinetuneConfig(mode="image_locked", learning_rate=1e-4, text_learning_rate=1e-5, replay_fraction=0.0)
    else:
        raise ValueError(f"{type(model).__name__}.strong_tower must be 'text' or 'image'; got {strong!r}")
    return replace(config, steps=QUICK_STEPS, batch_size=QUICK_BATCH) if quick else config


def training_pairs(catalog: pd.DataFrame, label_fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """Sorted row positions of the training SKUs kept for a label fraction (at least two SKUs)."""
    rows = np.flatnonzero(catalog["split"].to_numpy() == "train")
    count = max(2, int(round(label_fraction * len(rows))))
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))


def recipe_tag(config: FinetuneConfig) -> str:
    """Short hash of a recipe (12 hex digits): names the cached shop model built with it."""
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]


def shop_model_dir(config: FinetuneConfig = FinetuneConfig(), *, scope: str = "",
                   default: FinetuneConfig | None = None) -> Path:
    """Folder of the shop model of a recipe: ``ECMM_HOME[/<scope>]/assets/shop_clip[_<recipe tag>]``.

    The default recipe's model is the registry's ``shop_clip`` (what ``ecmm search`` loads);
    another recipe gets ``shop_clip_<recipe tag>``, so a model of one recipe is never taken for another's.

    Args:
        config: the recipe.
        scope: :func:`ecmm.data.catalogs.catalog_scope` of the (catalog, model) it is built from
            (``""``: the offline shop with the kit's model).
        default: the default recipe of that model (None: ``FinetuneConfig()``).
    """
    from ecmm.config import get_settings

    name = "shop_clip" if config == (default or FinetuneConfig()) else f"shop_clip_{recipe_tag(config)}"
    return get_settings().home / scope / "assets" / name


def model_sha256(card: dict) -> str | None:
    """The sha256 of a model folder's weights, from its card (``files`` or an older ``sha256`` key)."""
    files = card.get("files") or {}
    return (files.get("model.safetensors") or {}).get("sha256") or card.get("sha256")


def catalog_record(source: CatalogSource) -> dict[str, str]:
    """What a card records of the catalog a model was built from: name, fingerprint and description."""
    return {"catalog": source.name, "fingerprint": source.fingerprint, "description": source.describe()}


def save_shop_model(model: Any, folder: Path, config: FinetuneConfig, history: dict, base_sha256: str | None,
                    *, catalog: dict[str, str] | None = None, base_model: str | None = None) -> Path:
    """Save a fine-tuned model with the card every shop model carries (recipe, data, base model, metrics).

    Args:
        model: the fine-tuned model; folder: where it goes; config: its recipe.
        history: the :func:`ecmm.finetune.finetune` history (``num_pairs``, ``step_loss``, ``seconds``, ``world_size``).
        base_sha256: sha256 of the starting weights (:func:`ecmm.clip_training.weights_digest`), or None.
        catalog: :func:`catalog_record` of the source it was trained on (None: not recorded).
        base_model: the model spec it started from (``"ecmm-clip"``, ``"ViT-B-32:<tag>"``, ...).
    """
    card = {"asset": "shop_clip", "recipe": {"version": RECIPE_VERSION, **asdict(config)},
            "data": {**(catalog or {"catalog": "not recorded"}), "split": "train",
                     "pairs": int(history["num_pairs"][0]), "base_sha256": base_sha256},
            "base_model": base_model,
            "metrics": {"final_loss": float(np.mean(history["step_loss"][-20:])),
                        "train_seconds": history["seconds"][0], "world_size": int(history["world_size"][0])},
            "text_trained": config.mode != "text_locked"}
    if hasattr(model, "save"):
        return model.cpu().save(folder, card)
    from ecmm.models.clip import save_clip_checkpoint

    return save_clip_checkpoint(model.cpu(), folder, card)
