"""Fine-tune any CLIP-like model on the shop's (photo, title/description) pairs, through one loop.

Recipes (:class:`FinetuneConfig`), named by what stays locked:

- ``mode="text_locked"``: the text tower stays locked (for the kit's model, MiniLM, the strong
  tower); the image tower's last ``image_blocks`` blocks, both projections and the temperature
  train.
- ``mode="text_last_layer"``: as above, and the text tower's last transformer layer trains too,
  at ``text_learning_rate``.
- ``mode="image_locked"``: LiT proper (Zhai et al. 2022, "locked-image tuning"): the image tower
  stays locked and the text tower trains.
- ``mode="full"``: both towers train.
- ``replay_fraction``: that share of every batch is (augmented icon, emoji name) pairs from the
  source domain, so the model keeps matching product-type names it will not see in the shop's
  training pairs (against forgetting).  ``train_text_projection=False`` keeps pretraining's text map.
- ``init="scratch"``: the same model with a randomly initialised image tower, trained end to end on
  shop pairs only (no replay, every projection trains): the no-transfer baseline.
- ``label_fraction``: keep only that share of the training SKUs (label efficiency).

Every step is :func:`ecmm.train.clip_step` inside :func:`ecmm.train.fit`, on one process or on
``N`` under torchrun (:mod:`ecmm.distributed`).  What the frozen parts compute is cached once when
the model exposes where to cut (:mod:`ecmm.clip_training`).  :func:`build_shop_model` is the
registry's builder of the shop model; :func:`interpolate_weights` gives WiSE-FT.
``[torchrun --nproc_per_node=N] python -m ecmm.finetune`` builds and saves the shop model.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecmm.clip_training import (PairBatches, TrainingView, frozen_maps, pad_hidden, preprocessed_photos,
                                splits_image_tower, splits_text_tower, text_features, weights_digest)
from ecmm.distributed import (DistributedContext, gather_with_grad, init_distributed, shard_positions,
                              shutdown_distributed, single_process, wrap_data_parallel)
from ecmm.train import clip_step, fit

__all__ = ["FinetuneConfig", "MODES", "RECIPE_VERSION", "finetune", "interpolate_weights", "build_shop_model", "save_shop_model",
           "shop_model_dir", "recipe_tag", "training_pairs", "model_sha256", "main"]

RECIPE_VERSION = 2  # of the shop model: a cached "shop_clip" with another version is rebuilt by the registry
MODES = ("text_locked", "text_last_layer", "image_locked", "full")
INITS = ("pretrained", "scratch")


@dataclass(frozen=True)
class FinetuneConfig:
    """Recipe of a fine-tuning run on the shop's training pairs."""

    mode: str = "text_locked"  # what stays locked: one of MODES (see the module docstring)
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


def training_pairs(catalog: pd.DataFrame, label_fraction: float = 1.0, seed: int = 0) -> np.ndarray:
    """Sorted row positions of the training SKUs kept for a label fraction (at least two SKUs)."""
    rows = np.flatnonzero(catalog["split"].to_numpy() == "train")
    count = max(2, int(round(label_fraction * len(rows))))
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))


def _lock(model: Any, config: FinetuneConfig) -> None:
    """Lock what the recipe locks, through the model's own verbs (open_clip's group counting)."""
    lock_text_projection = config.init == "pretrained" and not config.train_text_projection
    if config.init == "scratch" or config.mode == "full":
        model.unlock_image_tower()
    elif config.mode == "image_locked":
        model.lock_image_tower(0, lock_projection=True)
    else:
        try:  # the last image_blocks blocks and the projection (the last group)
            model.lock_image_tower(config.image_blocks + 1)
        except ValueError:  # more blocks than the tower has: all of it trains
            model.unlock_image_tower()
    if config.mode in ("image_locked", "full"):
        model.unlock_text_tower()
    else:  # text_locked: nothing of the encoder; text_last_layer: its last layer (+ the projection)
        model.lock_text_tower(0 if config.mode == "text_locked" else 2, lock_projection=lock_text_projection)


def _view(model: Any) -> TrainingView:
    """The trained view: cached inputs wherever the model exposes where its frozen part ends."""
    tail = None
    if splits_image_tower(model):
        stack = list(model.backbone.blocks)
        trained = [any(p.requires_grad for p in block.parameters()) for block in stack]
        first = trained.index(True) if any(trained) else len(stack)
        tail = torch.nn.Sequential(*stack[first:])  # frozen blocks before it run once
    text = "tokens"
    if splits_text_tower(model):
        encoder = model.text_encoder
        last_layer = {id(p) for p in encoder.transformer.encoder.layer[-1].parameters()}
        trained = {id(p) for p in encoder.parameters() if p.requires_grad}
        text = "features" if not trained else "hidden" if trained <= last_layer else "tokens"
    return TrainingView(model, tail, text)


_SOURCE: dict[tuple, tuple[torch.Tensor, list[str], torch.Tensor]] = {}  # replay views per frozen weights


def _source_pairs(model: Any, view: TrainingView, preprocess: Any, seed: int,
                  device: torch.device) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Replay pairs: one augmented view per source icon (frozen maps when cached), names, name ids ``(N,)``."""
    from ecmm.data import augment_photos, load_source_corpus
    from ecmm.pretraining.clip import downsample, normalise_views

    frame, icons = load_source_corpus()
    stack = list(model.backbone.blocks) if view.tail is not None else []
    frozen = torch.nn.Sequential(*stack[:len(stack) - len(view.tail)]) if view.tail is not None else None
    size = getattr(preprocess, "image_size", 64)
    key = (weights_digest(frozen) if frozen is not None else id(model), seed, size, len(icons),
           tuple(getattr(preprocess, "mean", ())), tuple(getattr(preprocess, "std", ())))
    if key not in _SOURCE:
        generator = torch.Generator().manual_seed(seed + 1)  # its own stream: the same views with or without cache
        chunks = []
        for start in range(0, len(icons), 256):
            views = augment_photos(downsample(icons[start:start + 256], 64), generator, image_size=size)  # (b, 3, s, s)
            if hasattr(preprocess, "mean"):
                inputs = normalise_views(views, preprocess)
            else:  # a preprocessing that takes uint8 photos (open_clip's transforms)
                inputs = preprocess(np.asarray((views * 255).round().byte().permute(0, 2, 3, 1)))
            chunks.append(frozen_maps(list(frozen), inputs, device).cpu() if frozen is not None else inputs)
        _SOURCE.clear()
        _, name_ids = np.unique(list(frame["name"]), return_inverse=True)
        _SOURCE[key] = (torch.cat(chunks), list(frame["name"]), torch.as_tensor(name_ids))
    return _SOURCE[key]


def _text_inputs(model: Any, view: TrainingView, texts: list[str], device: torch.device) -> Any:
    """What the view's ``encode_text`` takes for every caption: cached features / states, or the strings."""
    if view.text == "tokens":
        return list(texts)
    cache = text_features(model.text_encoder, texts, view.text == "hidden", device)
    return cache["features"] if view.text == "features" else cache


def finetune(model: Any, catalog: pd.DataFrame, photos: np.ndarray, config: FinetuneConfig = FinetuneConfig(),
             device: str | torch.device | None = None, progress: bool = True,
             context: DistributedContext | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Fine-tune a copy of any CLIP-like model on the shop's training pairs with :func:`ecmm.train.fit`.

    Every training SKU contributes its photos; each step pairs a photo with its SKU's title or
    description (chosen at random); all pairs of one SKU count as positives (``caption_ids``).

    Args:
        model: the starting model (left unchanged); its ``preprocess`` and ``tokenizer`` are used.
        catalog: shop catalog; rows with ``split == "train"`` are used.
        photos: uint8 ``(num_skus, photos_per_sku, H, W, 3)`` aligned with ``catalog``.
        config: the recipe.
        device: where to train; None picks the best available (ignored under ``context``).
        progress: show a progress bar (rank 0 only).
        context: from :func:`ecmm.distributed.init_distributed`; None = one process.

    Returns:
        ``(fine-tuned model in eval mode, history)``: the :func:`~ecmm.train.fit` history plus
        ``temperature`` (per step), ``seconds`` (total), ``images_per_second``, ``num_pairs``.
    """
    preprocess, tokenizer = getattr(model, "preprocess", None), getattr(model, "tokenizer", None)
    if not isinstance(catalog, pd.DataFrame):  # the older (model, preprocess, catalog, photos, config) order
        preprocess, catalog, photos = catalog, photos, config
        config = device if isinstance(device, FinetuneConfig) else FinetuneConfig()
        device = None
    return _finetune(model, preprocess, tokenizer, catalog, photos, config, context or single_process(device), progress)


def _finetune(model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray,
              config: FinetuneConfig, context: DistributedContext, progress: bool) -> tuple[Any, dict]:
    import time

    start, device = time.perf_counter(), context.device
    torch.manual_seed(config.seed)
    model = copy.deepcopy(model).to(device)
    if tokenizer is None and hasattr(model, "text_encoder"):
        from ecmm.models.clip import ClipTokenizer

        tokenizer = ClipTokenizer(model.text_encoder.tokenizer, model.config.context_length)
    rows = training_pairs(catalog, config.label_fraction, config.seed)
    _lock(model, config)
    view = _view(model)
    groups = model.param_groups(head_lr=config.learning_rate, image_lr=config.image_learning_rate,
                                text_lr=config.text_learning_rate, weight_decay=config.weight_decay)
    photo_inputs = preprocessed_photos(preprocess, photos)[torch.as_tensor(rows)].flatten(0, 1)  # (P, 3, S, S)
    if view.tail is not None:
        stack = list(model.backbone.blocks)
        photo_inputs = frozen_maps(stack[:len(stack) - len(view.tail)], photo_inputs, device)  # (P, C, h, w), once
    subset = catalog.iloc[rows]
    texts = _text_inputs(model, view, list(subset["title"]) + list(subset["description"]), device)
    replay = round(config.replay_fraction * config.batch_size) if config.init == "pretrained" else 0
    source = None
    if replay:
        source_images, names, name_ids = _source_pairs(model, view, preprocess, config.seed, device)
        source_texts = _text_inputs(model, view, names, device)
        if view.text == "hidden":
            length = max(texts["mask"].shape[1], source_texts["mask"].shape[1])
            texts, source_texts = pad_hidden(texts, length), pad_hidden(source_texts, length)
        source = (source_images.to(device) if view.tail is not None else source_images, source_texts, name_ids)
    batch_size = min(config.batch_size - replay, len(photo_inputs))
    part = shard_positions(batch_size + replay, context.rank, context.world_size)
    batches = PairBatches(photo_inputs, texts, photos.shape[1], len(rows), batch_size, replay, source, tokenizer,
                           part, config.seed)
    trained = wrap_data_parallel(view.to(device), context)
    gather = gather_with_grad if context.world_size > 1 else None
    temperatures: list[float] = []

    def loss_fn(module: torch.nn.Module, batch: dict) -> torch.Tensor:
        temperatures.append(1.0 / float(model.scale().detach()))
        return clip_step(module, batch, gather=gather)

    history = fit(trained, batches, loss_fn=loss_fn, steps=config.steps,
                  optimizer=torch.optim.AdamW(groups, weight_decay=config.weight_decay),
                  warmup_steps=config.warmup_steps, amp=config.amp, device=device,
                  progress=progress and context.is_main, description=f"fine-tune ({config.mode}, {config.init})")
    history["temperature"] = temperatures
    history["images_per_second"] = [config.steps * (batch_size + replay) / max(history["seconds"][-1], 1e-9)]
    history["seconds"] = [time.perf_counter() - start]
    history["num_pairs"] = [float(len(photo_inputs))]
    history["world_size"] = [float(context.world_size)]
    return model.eval(), history


@torch.no_grad()
def interpolate_weights(zero_shot: torch.nn.Module, finetuned: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """WiSE-FT: a copy of ``finetuned`` with floating-point weights ``(1 - alpha) * zero_shot + alpha * finetuned``.

    ``alpha`` in ``[0, 1]``: 0 gives the zero-shot weights, 1 the fine-tuned ones (same architecture).
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
    """Folder of the shop model of a recipe under :func:`ecmm.artifacts.assets_home`.

    The default recipe's model is the registry's ``shop_clip`` (what ``ecmm search`` loads);
    another recipe gets ``shop_clip_<recipe tag>``, so a model of one recipe is never taken for another's.
    """
    from ecmm.artifacts import assets_home

    return assets_home() / ("shop_clip" if config == FinetuneConfig() else f"shop_clip_{recipe_tag(config)}")


def model_sha256(card: dict) -> str | None:
    """The sha256 of a model folder's weights, from its card (``files`` or an older ``sha256`` key)."""
    files = card.get("files") or {}
    return (files.get("model.safetensors") or {}).get("sha256") or card.get("sha256")


def save_shop_model(model: Any, folder: Path, config: FinetuneConfig, history: dict, base_sha256: str | None) -> Path:
    """Save a fine-tuned model with the card every shop model carries (recipe, data, base sha256, metrics)."""
    card = {"asset": "shop_clip", "recipe": {"version": RECIPE_VERSION, **asdict(config)},
            "data": {"catalog": "offline shop, split == 'train'", "pairs": int(history["num_pairs"][0]),
                     "base_sha256": base_sha256},
            "metrics": {"final_loss": float(np.mean(history["step_loss"][-20:])),
                        "train_seconds": history["seconds"][0], "world_size": int(history["world_size"][0])},
            "text_trained": config.mode != "text_locked"}
    if hasattr(model, "save"):
        return model.cpu().save(folder, card)
    from ecmm.models.clip import save_clip_checkpoint

    return save_clip_checkpoint(model.cpu(), folder, card)


def build_shop_model(folder: Path, config: FinetuneConfig = FinetuneConfig(), progress: bool = True,
                     context: DistributedContext | None = None) -> None:
    """The registry's builder: fine-tune the pretrained offline model on the shop and save it in ``folder``.

    Under torchrun (``context`` with several processes) every rank trains and rank 0 saves.
    """
    from ecmm.artifacts import assets_home, read_card
    from ecmm.data import load_catalog, load_photos
    from ecmm.models.clip import create_clip_model

    context = context or single_process(None)
    pretrained = config.init == "pretrained"
    base_sha256 = model_sha256(read_card(assets_home() / "clip")) if pretrained else None
    base, preprocess, tokenizer = create_clip_model("ecmm-clip", pretrained=True if pretrained else "scratch",
                                                    device="cpu")
    model, history = _finetune(base, getattr(base, "preprocess", preprocess), getattr(base, "tokenizer", tokenizer),
                               load_catalog("offline"), load_photos("offline"), config, context, progress)
    if context.is_main:
        save_shop_model(model, Path(folder), config, history, base_sha256)


def _experiment(config: FinetuneConfig, context: DistributedContext, history_path: Path) -> None:
    """Fine-tune on the offline shop and write the history (rank 0) without saving a model."""
    from ecmm.data import load_catalog, load_photos
    from ecmm.device import seed_everything
    from ecmm.models.clip import create_clip_model

    seed_everything(config.seed)  # identical fresh parts on every rank
    base, preprocess, tokenizer = create_clip_model(
        "ecmm-clip", pretrained=True if config.init == "pretrained" else "scratch", device="cpu")
    _, history = _finetune(base, preprocess, tokenizer, load_catalog("offline"), load_photos("offline"), config,
                           context, progress=True)
    if context.is_main:
        history_path.parent.mkdir(parents=True, exist_ok=True)
        history_path.write_text(json.dumps({"config": asdict(config), **history}, indent=2))
        print(f"world size {context.world_size}: final loss {history['step_loss'][-1]:.4f}, "
              f"{history['images_per_second'][0]:.0f} pairs/s")


def main(argv: list[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m ecmm.finetune [options]``: build the shop model.

    Without ``--history`` it fine-tunes the pretrained model with the recipe and saves it in
    :func:`shop_model_dir` (the default recipe's folder is the registry's ``shop_clip``, the model
    ``ecmm search`` loads).  With ``--history PATH`` it is an experiment: the loss history is written
    there and no model is saved.  ``--batch-size`` is the global batch under torchrun.
    """
    defaults = FinetuneConfig()
    parser = argparse.ArgumentParser(prog="python -m ecmm.finetune", description=main.__doc__)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="global batch size")
    parser.add_argument("--mode", choices=MODES, default=defaults.mode, help="what stays locked")
    parser.add_argument("--init", choices=INITS, default=defaults.init, help="pretrained model or random CNN")
    parser.add_argument("--image-blocks", type=int, default=defaults.image_blocks, help="image blocks that train")
    parser.add_argument("--replay-fraction", type=float, default=defaults.replay_fraction, help="source pairs per batch")
    parser.add_argument("--label-fraction", type=float, default=defaults.label_fraction, help="share of training SKUs")
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of pairs, captions and fresh parts")
    parser.add_argument("--history", type=Path, default=None, help="experiment: write the history here, save nothing")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = replace(defaults, steps=args.steps, batch_size=args.batch_size, mode=args.mode, init=args.init,
                     image_blocks=args.image_blocks, replay_fraction=args.replay_fraction,
                     label_fraction=args.label_fraction, amp=args.amp, seed=args.seed)
    context = init_distributed()
    try:
        if args.history is not None:
            _experiment(config, context, args.history)
            return 0
        folder = shop_model_dir(config)
        build_shop_model(folder, config, progress=True, context=context)
        if context.is_main:
            print(f"shop model of {context.world_size} process(es) saved in {folder.name}/ under ECMM_HOME/assets")
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
