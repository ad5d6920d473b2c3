"""Fine-tune the offline CLIP model on the shop's (photo, title/description) pairs.

Recipes (:class:`FinetuneConfig`):

- ``mode="lit"``: the text tower (MiniLM) stays locked; the image tower's last block, both
  projections and the temperature train.  The frozen part of the CNN runs once over the photos
  and its feature maps are cached, so a step costs only the last block.
- ``mode="unlocked"``: as above, and MiniLM's last transformer layer trains too (its input
  hidden states are cached the same way), at a lower learning rate.
- ``init="scratch"``: the same model with a randomly initialised CNN, trained end to end.
- ``label_fraction``: keep only that share of the training SKUs (label efficiency).

:func:`interpolate_weights` gives WiSE-FT (weight-space ensembles); :func:`get_shop_model` returns
the cached fine-tuned model used by search, the CLI and the service.  Evaluation lives in
:mod:`ecmm.search`.  ``python -m ecmm.finetune`` fine-tunes and caches the shop model.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ecmm.device import get_device
from ecmm.losses import clip_loss
from ecmm.pretraining.clip import cosine_schedule

__all__ = ["FinetuneConfig", "finetune", "interpolate_weights", "get_shop_model", "shop_model_dir",
           "training_pairs"]

MODES = ("lit", "unlocked")
INITS = ("pretrained", "scratch")


@dataclass(frozen=True)
class FinetuneConfig:
    """Recipe of a fine-tuning run on the shop's training pairs."""

    mode: str = "lit"  # "lit": MiniLM locked; "unlocked": MiniLM's last layer trains too
    init: str = "pretrained"  # "pretrained": the contrastively pretrained model; "scratch": random CNN
    label_fraction: float = 1.0  # share of training SKUs used (seeded choice)
    steps: int = 300  # optimiser steps
    batch_size: int = 96  # (photo, caption) pairs per step
    learning_rate: float = 2e-3  # projections and temperature
    image_learning_rate: float = 1e-3  # image tower (its last block, or all of it from scratch)
    text_learning_rate: float = 5e-5  # MiniLM's last layer in "unlocked" mode
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 20  # linear warm-up, then cosine decay
    seed: int = 0  # seed of the SKU subset, batch order and caption choice

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {self.init!r}")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1]; got {self.label_fraction}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2")


def training_pairs(catalog: pd.DataFrame, label_fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """Row positions of the training SKUs kept for a label fraction (at least two SKUs).

    Args:
        catalog: the shop catalog (``split`` column).
        label_fraction: share of training SKUs to keep.
        seed: seed of the choice.

    Returns:
        Sorted int array of catalog row positions.
    """
    rows = np.flatnonzero(catalog["split"].to_numpy() == "train")
    count = max(2, int(round(label_fraction * len(rows))))
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))


def _tail_length(model: Any, config: FinetuneConfig) -> int:
    return len(model.backbone.blocks) if config.init == "scratch" else 1


def _image_inputs(model: Any, preprocess: Any, photos: np.ndarray, tail: int, device: torch.device) -> torch.Tensor:
    """Preprocess photos and run the frozen head of the CNN once: ``(P, C, h, w)`` on ``device``."""
    blocks = list(model.backbone.blocks)
    frozen = torch.nn.Sequential(*blocks[: len(blocks) - tail]).to(device).eval()
    with torch.no_grad():
        return torch.cat([frozen(preprocess(photos[start:start + 256]).to(device))
                          for start in range(0, len(photos), 256)])


_TEXT_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}  # MiniLM outputs reused across runs of one session


def _text_inputs(model: Any, texts: list[str], unlocked: bool, device: torch.device) -> dict[str, torch.Tensor]:
    """MiniLM inputs cached once: pooled features (LiT) or the hidden states before its last layer.

    Results are memoised per (MiniLM weights fingerprint, texts, mode), so the label-efficiency and
    scratch runs of one session do not re-encode the same captions.
    """
    encoder = model.text_encoder.to(device).eval()
    with torch.no_grad():
        fingerprint = float(sum(p.double().sum() for p in encoder.parameters()))
    key = (fingerprint, tuple(texts), unlocked)
    if key not in _TEXT_CACHE:
        if len(_TEXT_CACHE) >= 4:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[key] = {name: value.cpu() for name, value in _encode_texts(encoder, texts, unlocked, device).items()}
    return {name: value.to(device) for name, value in _TEXT_CACHE[key].items()}


def _encode_texts(encoder: Any, texts: list[str], unlocked: bool, device: torch.device) -> dict[str, torch.Tensor]:
    tokens = {key: value.to(device) for key, value in encoder.tokenize(texts).items()}
    with torch.no_grad():
        if not unlocked:
            return {"features": encoder(tokens["input_ids"], tokens["attention_mask"])}
        hidden = encoder.transformer(**tokens, output_hidden_states=True).hidden_states[-2]  # (N, T, D)
    return {"hidden": hidden, "mask": tokens["attention_mask"]}


def _text_embeddings(model: Any, cache: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """Projected, normalised text embeddings of cached captions ``rows`` -> ``(B, E)``."""
    if "features" in cache:
        return model.project_text(cache["features"][rows])
    mask = cache["mask"][rows]  # (B, T)
    keep = int(mask.sum(1).max())
    mask, hidden = mask[:, :keep], cache["hidden"][rows, :keep]
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    out = model.text_encoder.transformer.encoder.layer[-1](hidden, attention_mask=additive)
    out = out[0] if isinstance(out, tuple) else out  # (B, T, D)
    weights = mask.unsqueeze(-1).to(out.dtype)
    return model.project_text((out * weights).sum(1) / weights.sum(1).clamp(min=1e-9))


def finetune(
    model: Any,
    preprocess: Any,
    catalog: pd.DataFrame,
    photos: np.ndarray,
    config: FinetuneConfig = FinetuneConfig(),
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[Any, dict[str, list[float]]]:
    """Fine-tune a copy of an offline :class:`~ecmm.models.clip.ClipModel` on training pairs.

    Every training SKU contributes its photos; each step pairs a photo with its SKU's title or
    description (chosen at random); all pairs of one SKU count as positives (``caption_ids``).

    Args:
        model: the starting model (left unchanged).
        preprocess: its image preprocessing.
        catalog: shop catalog; rows with ``split == "train"`` are used.
        photos: uint8 ``(num_skus, photos_per_sku, H, W, 3)`` aligned with ``catalog``.
        config: the recipe.
        device: where to train; None picks the best available.
        progress: show a tqdm bar.

    Returns:
        ``(fine-tuned model in eval mode, history)``; history has ``step_loss``, ``temperature``,
        ``seconds`` (total), ``images_per_second`` and ``num_pairs``.
    """
    if not hasattr(model, "backbone"):
        raise ValueError("finetune() works on the offline 'ecmm-clip' model; fine-tune hub models with open_clip")
    device = get_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = copy.deepcopy(model).to(device)
    start = time.perf_counter()
    rows = training_pairs(catalog, config.label_fraction, config.seed)
    per_sku = photos.shape[1]
    tail = _tail_length(model, config)
    images = _image_inputs(model, preprocess, photos[rows].reshape(-1, *photos.shape[2:]), tail, device)
    subset = catalog.iloc[rows]
    texts = list(subset["title"]) + list(subset["description"])
    text_cache = _text_inputs(model, texts, config.mode == "unlocked", device)
    model.lock_text_tower().lock_image_tower()
    tail_blocks = list(model.backbone.blocks)[len(model.backbone.blocks) - tail:]
    for block in tail_blocks:
        block.requires_grad_(True)
    image_parameters = [p for block in tail_blocks for p in block.parameters()]
    groups = [
        {"params": image_parameters, "lr": config.image_learning_rate},
        {"params": [*model.image_projection.parameters(), *model.text_projection.parameters(), model.logit_scale],
         "lr": config.learning_rate},
    ]
    if config.mode == "unlocked":
        last_layer = model.text_encoder.transformer.encoder.layer[-1].requires_grad_(True)
        groups.append({"params": list(last_layer.parameters()), "lr": config.text_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    base_rates = [group["lr"] for group in optimizer.param_groups]
    model.train()
    tail_module = torch.nn.Sequential(*tail_blocks)
    history: dict[str, list[float]] = {"step_loss": [], "temperature": []}
    num_pairs, batch_size = len(images), min(config.batch_size, len(images))
    train_start = time.perf_counter()
    for step in tqdm(range(config.steps), desc=f"fine-tune ({config.mode}, {config.init})", disable=not progress):
        pair = torch.randperm(num_pairs, generator=generator)[:batch_size]  # photo positions
        sku = pair // per_sku  # (B,) position in the subset
        caption = sku + len(rows) * torch.randint(2, (batch_size,), generator=generator)  # title or description
        for group, base in zip(optimizer.param_groups, base_rates):
            group["lr"] = base * cosine_schedule(step, config.steps, config.warmup_steps)
        features = tail_module(images[pair.to(device)]).mean(dim=(2, 3))  # (B, num_features)
        image_emb = F.normalize(model.image_projection(features), dim=-1)  # (B, E)
        text_emb = _text_embeddings(model, text_cache, caption.to(device))  # (B, E)
        loss = clip_loss(image_emb, text_emb, model.scale(), caption_ids=sku.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["step_loss"].append(loss.item())
        history["temperature"].append(1.0 / model.scale().item())
    train_seconds = time.perf_counter() - train_start
    model.lock_text_tower().eval()
    history["seconds"] = [time.perf_counter() - start]
    history["images_per_second"] = [config.steps * batch_size / max(train_seconds, 1e-9)]
    history["num_pairs"] = [float(num_pairs)]
    return model, history


@torch.no_grad()
def interpolate_weights(zero_shot: torch.nn.Module, finetuned: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """WiSE-FT: a model with weights ``(1 - alpha) * zero_shot + alpha * finetuned``.

    Args:
        zero_shot: the model before fine-tuning.
        finetuned: the model after fine-tuning (same architecture).
        alpha: mixing weight in ``[0, 1]`` (0 = zero-shot, 1 = fine-tuned).

    Returns:
        A new model (a copy of ``finetuned`` with mixed floating-point weights and buffers).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    mixed = copy.deepcopy(finetuned)
    start = zero_shot.state_dict()
    state = {key: ((1 - alpha) * start[key].to(value.device) + alpha * value) if value.is_floating_point() else value
             for key, value in finetuned.state_dict().items()}
    mixed.load_state_dict(state)
    return mixed.eval()


def shop_model_dir() -> Path:
    """Cache folder of the fine-tuned shop model (``ECMM_HOME/assets/shop_clip``)."""
    from ecmm.config import get_settings

    return get_settings().home / "assets" / "shop_clip"


def get_shop_model(device: str | torch.device | None = None, config: FinetuneConfig = FinetuneConfig(),
                   progress: bool = True) -> tuple[Any, Any, Any]:
    """The CLIP model fine-tuned on the whole shop training split (built once, then cached).

    Args:
        device: where to put the model; None picks the best available.
        config: recipe used when it has to be built.
        progress: show progress bars while building.

    Returns:
        ``(model, preprocess, tokenizer)`` like :func:`ecmm.models.clip.create_clip_model`.
    """
    from ecmm.data import load_catalog, load_photos
    from ecmm.models.clip import (ClipTokenizer, create_clip_model, load_clip_checkpoint,
                                  save_clip_checkpoint)
    from ecmm.models.image import ImagePreprocess

    folder = shop_model_dir()
    if not (folder / "card.json").is_file():
        base, preprocess, _ = create_clip_model("ecmm-clip", pretrained=True, device=device)
        catalog, photos = load_catalog("offline"), load_photos("offline")
        model, history = finetune(base, preprocess, catalog, photos, config, device=device, progress=progress)
        card = {"asset": "shop_clip", "recipe": asdict(config),
                "data": {"catalog": "offline shop, split == 'train'", "pairs": int(history["num_pairs"][0])},
                "metrics": {"final_loss": float(np.mean(history["step_loss"][-20:])),
                            "train_seconds": history["seconds"][0]},
                "text_trained": config.mode == "unlocked"}
        save_clip_checkpoint(model.cpu(), folder, card)
    model, _ = load_clip_checkpoint(folder, device=device)
    cnn = model.backbone.config
    preprocess = ImagePreprocess(cnn.image_size, cnn.mean, cnn.std)
    return model, preprocess, ClipTokenizer(model.text_encoder.tokenizer, model.config.context_length)


def main(argv: list[str] | None = None) -> int:
    """``python -m ecmm.finetune [--force] [--steps N] [--mode lit|unlocked]``: build the shop model."""
    parser = argparse.ArgumentParser(prog="python -m ecmm.finetune", description=main.__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--steps", type=int, default=FinetuneConfig.steps, help="optimiser steps")
    parser.add_argument("--mode", choices=MODES, default="lit", help="which towers train")
    args = parser.parse_args(argv)
    folder = shop_model_dir()
    if args.force and (folder / "card.json").exists():
        (folder / "card.json").unlink()
    get_shop_model(config=replace(FinetuneConfig(), steps=args.steps, mode=args.mode))
    print(f"shop model ready in {folder.name}/ under ECMM_HOME")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
