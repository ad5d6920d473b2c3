"""Fine-tune the offline CLIP model on the shop's (photo, title/description) pairs.

Recipes (:class:`FinetuneConfig`):

- ``mode="lit"``: the text tower (MiniLM) stays locked; the image tower's last ``image_blocks``
  CNN blocks, both projections and the temperature train.  The frozen part of the CNN (if any)
  runs once over the photos and its feature maps are cached.
- ``mode="unlocked"``: as above, and MiniLM's last transformer layer trains too (its input
  hidden states are cached the same way), at a lower learning rate.
- ``replay_fraction``: that share of every batch is (augmented icon, emoji name) pairs from the
  source domain, so the model keeps matching product-type names it will not see in the shop's
  training pairs (against forgetting; it lifts ``test_products``).  ``train_text_projection=False``
  keeps pretraining's text map instead (tried; replay did better on a validation split of held-out
  training types).
- ``init="scratch"``: the same model with a randomly initialised CNN, trained end to end on shop
  pairs only (no replay, every projection trains): the no-transfer baseline.
- ``label_fraction``: keep only that share of the training SKUs (label efficiency).

:func:`interpolate_weights` gives WiSE-FT (weight-space ensembles); :func:`get_shop_model` returns
the cached fine-tuned model used by search, the CLI and the service.  Evaluation lives in
:mod:`ecmm.search`.  ``python -m ecmm.finetune`` fine-tunes and caches the shop model.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
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
           "recipe_tag", "training_pairs"]

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
    image_learning_rate: float = 5e-4  # trained CNN blocks (all of the CNN from scratch)
    text_learning_rate: float = 5e-5  # MiniLM's last layer in "unlocked" mode
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 20  # linear warm-up, then cosine decay
    image_blocks: int = 5  # CNN blocks that train, from the end (5: all of the kit's CNN; 0: frozen)
    train_text_projection: bool = True  # False keeps pretraining's text map (unseen type names stay put)
    replay_fraction: float = 0.5  # share of each batch drawn from source (icon, name) pairs; pretrained only
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
        if self.image_blocks < 0 or not 0.0 <= self.replay_fraction < 1.0:
            raise ValueError("image_blocks must be >= 0 and replay_fraction in [0, 1)")


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
    blocks = len(model.backbone.blocks)
    return blocks if config.init == "scratch" else min(config.image_blocks, blocks)


def _image_inputs(model: Any, preprocess: Any, photos: np.ndarray, tail: int, device: torch.device) -> torch.Tensor:
    """Preprocess photos and run the frozen head of the CNN once: ``(P, C, h, w)`` on ``device``."""
    blocks = list(model.backbone.blocks)
    frozen = torch.nn.Sequential(*blocks[: len(blocks) - tail]).to(device).eval()
    with torch.no_grad():
        return torch.cat([frozen(preprocess(photos[start:start + 256]).to(device))
                          for start in range(0, len(photos), 256)])


_PHOTO_CACHE: list = []  # [weakref to the photos array, preprocessing key, preprocessed (S, P, 3, s, s) tensor]


def _preprocessed_photos(preprocess: Any, photos: np.ndarray) -> torch.Tensor:
    """All photos preprocessed once per photos array: ``(num_skus, photos_per_sku, 3, S, S)`` on CPU.

    Runs of one session (LiT, unlocked, label fractions, scratch) share the same photos array.
    """
    import weakref

    key = (getattr(preprocess, "image_size", None), tuple(getattr(preprocess, "mean", ())),
           tuple(getattr(preprocess, "std", ())), photos.shape)
    if not (_PHOTO_CACHE and _PHOTO_CACHE[0]() is photos and _PHOTO_CACHE[1] == key):
        flat = photos.reshape(-1, *photos.shape[2:])
        inputs = torch.cat([preprocess(np.array(flat[start:start + 512])) for start in range(0, len(flat), 512)])
        _PHOTO_CACHE[:] = [weakref.ref(photos), key, inputs.view(*photos.shape[:2], *inputs.shape[1:])]
    return _PHOTO_CACHE[2]


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
        if len(_TEXT_CACHE) >= 8:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[key] = {name: value.cpu() for name, value in _encode_texts(encoder, texts, unlocked, device).items()}
    return {name: value.to(device) for name, value in _TEXT_CACHE[key].items()}


def _encode_texts(encoder: Any, texts: list[str], unlocked: bool, device: torch.device,
                  chunk: int = 128) -> dict[str, torch.Tensor]:
    """MiniLM over ``texts`` in chunks of similar length (short titles are not padded to descriptions)."""
    tokens = {key: value.to(device) for key, value in encoder.tokenize(texts).items()}  # (N, T)
    lengths = tokens["attention_mask"].sum(1)
    order = torch.argsort(lengths, stable=True)
    pieces = []
    with torch.no_grad():
        for start in range(0, len(texts), chunk):
            rows = order[start:start + chunk]
            keep = int(lengths[rows].max())
            ids, mask = tokens["input_ids"][rows, :keep], tokens["attention_mask"][rows, :keep]
            if unlocked:
                hidden = encoder.transformer(input_ids=ids, attention_mask=mask,
                                             output_hidden_states=True).hidden_states[-2]  # (b, keep, D)
                pieces.append(F.pad(hidden, (0, 0, 0, tokens["input_ids"].shape[1] - keep)))
            else:
                pieces.append(encoder(ids, mask))  # (b, D)
    stacked = torch.empty_like(torch.cat(pieces))
    stacked[order] = torch.cat(pieces)
    return {"hidden": stacked, "mask": tokens["attention_mask"]} if unlocked else {"features": stacked}


_SOURCE_CACHE: dict[tuple, torch.Tensor] = {}  # frozen-CNN maps of the replay views, per CNN weights


def _source_inputs(model: Any, preprocess: Any, tail: int, unlocked: bool, seed: int,
                   device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Replay data: frozen-CNN maps of one augmented view per source icon, name features, name ids.

    Shapes:
        maps ``(N, C, h, w)``; name ids ``(N,)`` (equal names share an id).
    """
    from ecmm.data import augment_photos, load_source_corpus
    from ecmm.pretraining.clip import downsample, normalise_views

    frame, icons = load_source_corpus()
    blocks = list(model.backbone.blocks)
    frozen = torch.nn.Sequential(*blocks[: len(blocks) - tail]).to(device).eval()
    with torch.no_grad():
        fingerprint = float(sum(p.double().sum() for p in frozen.parameters())) if len(frozen) else 0.0
        key = (fingerprint, tail, seed, preprocess.image_size)
        if key not in _SOURCE_CACHE:
            generator = torch.Generator().manual_seed(seed + 1)  # own stream: same views with or without cache
            maps = [frozen(normalise_views(augment_photos(downsample(icons[start:start + 256], 64), generator,
                                                          image_size=preprocess.image_size), preprocess).to(device)).cpu()
                    for start in range(0, len(icons), 256)]
            _SOURCE_CACHE.clear()
            _SOURCE_CACHE[key] = torch.cat(maps)
    names = list(frame["name"])
    _, name_ids = np.unique(names, return_inverse=True)
    return _SOURCE_CACHE[key].to(device), _text_inputs(model, names, unlocked, device), torch.as_tensor(name_ids)


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
    inputs = _preprocessed_photos(preprocess, photos)[torch.as_tensor(rows)].flatten(0, 1)  # (P, 3, S, S)
    images = _image_inputs(model, lambda batch: batch, inputs, tail, device)  # frozen CNN head once: (P, C, h, w)
    subset = catalog.iloc[rows]
    texts = list(subset["title"]) + list(subset["description"])
    text_cache = _text_inputs(model, texts, config.mode == "unlocked", device)
    transfer = config.init == "pretrained"  # the scratch baseline trains everything on shop pairs only
    replay = round(config.replay_fraction * config.batch_size) if transfer else 0
    if replay:
        source_maps, source_text, source_ids = _source_inputs(model, preprocess, tail, config.mode == "unlocked",
                                                              config.seed, device)
    model.lock_text_tower(lock_projection=transfer and not config.train_text_projection).lock_image_tower()
    tail_blocks = list(model.backbone.blocks)[len(model.backbone.blocks) - tail:] if tail else []
    for block in tail_blocks:
        block.requires_grad_(True)
    image_parameters = [p for block in tail_blocks for p in block.parameters()]
    head_parameters = [*model.image_projection.parameters(), model.logit_scale]
    if not transfer or config.train_text_projection:
        head_parameters += list(model.text_projection.parameters())
    groups = [{"params": head_parameters, "lr": config.learning_rate}]
    if image_parameters:
        groups.append({"params": image_parameters, "lr": config.image_learning_rate})
    if config.mode == "unlocked":
        last_layer = model.text_encoder.transformer.encoder.layer[-1].requires_grad_(True)
        groups.append({"params": list(last_layer.parameters()), "lr": config.text_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    base_rates = [group["lr"] for group in optimizer.param_groups]
    model.train()
    tail_module = torch.nn.Sequential(*tail_blocks)
    history: dict[str, list[float]] = {"step_loss": [], "temperature": []}
    num_pairs, batch_size = len(images), min(config.batch_size - replay, len(images))
    train_start = time.perf_counter()
    for step in tqdm(range(config.steps), desc=f"fine-tune ({config.mode}, {config.init})", disable=not progress):
        pair = torch.randperm(num_pairs, generator=generator)[:batch_size]  # photo positions
        sku = pair // per_sku  # (B,) position in the subset
        caption = sku + len(rows) * torch.randint(2, (batch_size,), generator=generator)  # title or description
        for group, base in zip(optimizer.param_groups, base_rates):
            group["lr"] = base * cosine_schedule(step, config.steps, config.warmup_steps)
        maps, caption_ids = images[pair.to(device)], sku.to(device)  # (B, C, h, w), (B,)
        if replay:
            icon = torch.randperm(len(source_maps), generator=generator)[:replay].to(device)
            maps = torch.cat([maps, source_maps[icon]])
            caption_ids = torch.cat([caption_ids, len(rows) + source_ids.to(device)[icon]])
        features = tail_module(maps).mean(dim=(2, 3))  # (B, num_features)
        image_emb = F.normalize(model.image_projection(features), dim=-1)  # (B, E)
        text_emb = _text_embeddings(model, text_cache, caption.to(device))  # (B, E)
        if replay:
            text_emb = torch.cat([text_emb, _text_embeddings(model, source_text, icon)])
        loss = clip_loss(image_emb, text_emb, model.scale(), caption_ids=caption_ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["step_loss"].append(loss.item())
        history["temperature"].append(1.0 / model.scale().item())
    train_seconds = time.perf_counter() - train_start
    model.lock_text_tower().eval()
    history["seconds"] = [time.perf_counter() - start]
    history["images_per_second"] = [config.steps * (batch_size + replay) / max(train_seconds, 1e-9)]
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


def recipe_tag(config: FinetuneConfig) -> str:
    """Short hash of a recipe (12 hex digits): names the cached shop model built with it."""
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]


def shop_model_dir(config: FinetuneConfig = FinetuneConfig()) -> Path:
    """Cache folder of the shop model of a recipe (``ECMM_HOME/assets/shop_clip_<recipe tag>``).

    A changed recipe gets a new folder, so a model built with an older recipe is never reused.
    """
    from ecmm.config import get_settings

    return get_settings().home / "assets" / f"shop_clip_{recipe_tag(config)}"


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
    from ecmm.assets import asset_card, ensure_asset
    from ecmm.data import load_catalog, load_photos
    from ecmm.models.clip import (ClipTokenizer, create_clip_model, load_clip_checkpoint,
                                  save_clip_checkpoint)
    from ecmm.models.image import ImagePreprocess

    folder = shop_model_dir(config)
    card_path = folder / "card.json"
    ensure_asset("clip")  # an outdated pretrained model is rebuilt first
    base_sha256 = (asset_card("clip") or {}).get("sha256")
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        if card.get("recipe") != asdict(config) or card.get("data", {}).get("base_sha256") != base_sha256:
            card_path.unlink()  # built with another recipe or from another pretrained model: rebuild
    if not card_path.is_file():
        base, preprocess, _ = create_clip_model("ecmm-clip", pretrained=True, device=device)
        catalog, photos = load_catalog("offline"), load_photos("offline")
        model, history = finetune(base, preprocess, catalog, photos, config, device=device, progress=progress)
        card = {"asset": "shop_clip", "recipe": asdict(config),
                "data": {"catalog": "offline shop, split == 'train'", "pairs": int(history["num_pairs"][0]),
                         "base_sha256": base_sha256},
                "metrics": {"final_loss": float(np.mean(history["step_loss"][-20:])),
                            "train_seconds": history["seconds"][0]},
                "text_trained": config.mode == "unlocked"}
        save_clip_checkpoint(model.cpu(), folder, card)
    model, _ = load_clip_checkpoint(folder, device=device)
    cnn = model.backbone.config
    preprocess = ImagePreprocess(cnn.image_size, cnn.mean, cnn.std)
    return model, preprocess, ClipTokenizer(model.text_encoder.tokenizer, model.config.context_length)


def main(argv: list[str] | None = None) -> int:
    """``python -m ecmm.finetune [--force] [--steps N] [--mode lit|unlocked]``: build the shop model.

    Under ``torchrun --nproc_per_node=N -m ecmm.finetune`` (``WORLD_SIZE > 1``) it runs the
    data-parallel LiT fine-tuning of :mod:`ecmm.distributed` instead.
    """
    parser = argparse.ArgumentParser(prog="python -m ecmm.finetune", description=main.__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--steps", type=int, default=FinetuneConfig.steps, help="optimiser steps")
    parser.add_argument("--mode", choices=MODES, default="lit", help="which towers train")
    args = parser.parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: data-parallel LiT fine-tuning
        from ecmm.distributed import main as distributed_main

        return distributed_main(["--steps", str(args.steps), "--save"])
    config = replace(FinetuneConfig(), steps=args.steps, mode=args.mode)
    folder = shop_model_dir(config)
    if args.force and (folder / "card.json").exists():
        (folder / "card.json").unlink()
    get_shop_model(config=config)
    print(f"shop model ready in {folder.name}/ under ECMM_HOME")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
