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
  training pairs (against forgetting).  The emoji corpus is the source domain of models whose
  strong tower is text (the kit's model); for other models replay is skipped with a notice.
  ``train_text_projection=False`` keeps pretraining's text map.
- ``init="scratch"``: the same model with a randomly initialised image tower, trained end to end on
  shop pairs only (no replay, every projection trains): the no-transfer baseline.
- ``label_fraction``: keep only that share of the training SKUs (label efficiency).

:func:`default_config` gives a model's default recipe: its strong tower (``model.strong_tower``)
stays locked (:mod:`ecmm.finetune_recipe`).  Every step is :func:`ecmm.train.clip_step` inside
:func:`ecmm.train.fit`, on one process or on ``N`` under torchrun (:mod:`ecmm.distributed`).
What the frozen parts compute is cached once when the model exposes where to cut, for catalogs
whose preprocessed photos fit in ``PHOTO_CACHE_BYTES``; a larger catalog is read batch by batch
through its :class:`~ecmm.data.catalogs.PhotoSet` (:mod:`ecmm.clip_training`).
:func:`build_shop_model` is the registry's builder of the shop model of a (catalog, model);
:func:`interpolate_weights` gives WiSE-FT.  ``[torchrun --nproc_per_node=N] python -m ecmm.finetune
[--catalog CSV] [--model SPEC]`` builds and saves the shop model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecmm.clip_training import (PairBatches, TrainingView, frozen_maps, pad_hidden, photo_inputs, preprocessed_bytes,
                                splits_image_tower, splits_text_tower, text_inputs, weights_digest)
from ecmm.data.catalogs import CatalogSource, PhotoSet
from ecmm.distributed import (DistributedContext, gather_with_grad, init_distributed, shard_positions,
                              shutdown_distributed, single_process, wrap_data_parallel)
from ecmm.finetune_recipe import (INITS, MODES, RECIPE_VERSION, FinetuneConfig, catalog_record, default_config,
                                  model_sha256, recipe_tag, save_shop_model, shop_model_dir, training_pairs)
from ecmm.train import clip_step, fit

__all__ = ["FinetuneConfig", "MODES", "RECIPE_VERSION", "PHOTO_CACHE_BYTES", "default_config", "finetune",
           "interpolate_weights", "build_shop_model", "base_model", "save_shop_model", "catalog_record", "shop_model_dir",
           "recipe_tag", "training_pairs", "model_sha256", "main"]

PHOTO_CACHE_BYTES = 1_500_000_000  # a catalog whose preprocessed photos fit is preprocessed once; a larger one streams


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


def finetune(model: Any, catalog: pd.DataFrame, photos: PhotoSet | np.ndarray,
             config: FinetuneConfig = FinetuneConfig(), device: str | torch.device | None = None,
             progress: bool = True, context: DistributedContext | None = None, *,
             photo_cache_bytes: int | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Fine-tune a copy of any CLIP-like model on the shop's training pairs with :func:`ecmm.train.fit`.

    Every training SKU contributes its photos; each step pairs a photo with its SKU's title or
    description (chosen at random); all pairs of one SKU count as positives (``caption_ids``).
    When the catalog's preprocessed photos fit ``photo_cache_bytes`` they are computed once (and
    the frozen image blocks run once over them); a larger catalog is streamed: each step reads
    only its batch's photos through the :class:`~ecmm.data.catalogs.PhotoSet`, so memory follows
    the batch, not the catalog.  The choice is by size only; both give the same pairs.

    Args:
        model: the starting model (left unchanged); its ``preprocess`` and ``tokenizer`` are used.
        catalog: shop catalog; rows with ``split == "train"`` are used.
        photos: uint8 ``(num_skus, photos_per_sku, H, W, 3)`` aligned with ``catalog``: an array
            or a PhotoSet (decoded on access).
        config: the recipe.
        device: where to train; None picks the best available (ignored under ``context``).
        progress: show a progress bar (rank 0 only).
        context: from :func:`ecmm.distributed.init_distributed`; None = one process.
        photo_cache_bytes: largest preprocessed catalog kept in memory (None: ``PHOTO_CACHE_BYTES``).

    Returns:
        ``(fine-tuned model in eval mode, history)``: the :func:`~ecmm.train.fit` history plus
        ``temperature`` (per step), ``seconds`` (total), ``images_per_second``, ``num_pairs``,
        ``world_size`` and ``photos_streamed`` (1.0 when the photos were read per batch).
    """
    preprocess, tokenizer = getattr(model, "preprocess", None), getattr(model, "tokenizer", None)
    if not isinstance(catalog, pd.DataFrame):  # the older (model, preprocess, catalog, photos, config) order
        preprocess, catalog, photos = catalog, photos, config
        config = device if isinstance(device, FinetuneConfig) else FinetuneConfig()
        device = None
    budget = PHOTO_CACHE_BYTES if photo_cache_bytes is None else photo_cache_bytes
    return _finetune(model, preprocess, tokenizer, catalog, photos, config, context or single_process(device), progress,
                     budget)


def _replay_count(model: Any, config: FinetuneConfig, announce: bool) -> int:
    """Replayed source pairs per batch: only for a model pretrained on the source domain (strong text tower)."""
    if config.init != "pretrained" or config.replay_fraction == 0:
        return 0
    if model.strong_tower != "text":
        if announce:
            print(f"replay_fraction={config.replay_fraction} ignored: the emoji source corpus is the pretraining "
                  f"domain of models whose strong tower is text; this model's strong tower is {model.strong_tower}")
        return 0
    return round(config.replay_fraction * config.batch_size)


def _finetune(model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: Any,
              config: FinetuneConfig, context: DistributedContext, progress: bool,
              photo_cache_bytes: int = PHOTO_CACHE_BYTES) -> tuple[Any, dict]:
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
    stream = preprocessed_bytes(preprocess, photos) > photo_cache_bytes
    cache_text = not (stream and view.text == "hidden")  # else states of every caption would grow with the catalog
    if not cache_text:  # MiniLM tokens per batch; the view runs the frozen layers on them
        tokenizer = model.text_encoder.tokenize
    groups = model.param_groups(head_lr=config.learning_rate, image_lr=config.image_learning_rate,
                                text_lr=config.text_learning_rate, weight_decay=config.weight_decay)
    images = photo_inputs(model, view, preprocess, photos, rows, stream, device)
    subset = catalog.iloc[rows]
    captions = list(subset["title"]) + list(subset["description"])
    texts = text_inputs(model, view, captions, device) if cache_text else captions
    replay = _replay_count(model, config, context.is_main)
    source = None
    if replay:
        source_images, names, name_ids = _source_pairs(model, view, preprocess, config.seed, device)
        source_texts = text_inputs(model, view, names, device) if cache_text else list(names)
        if view.text == "hidden" and cache_text:
            length = max(texts["mask"].shape[1], source_texts["mask"].shape[1])
            texts, source_texts = pad_hidden(texts, length), pad_hidden(source_texts, length)
        source = (source_images.to(device) if view.tail is not None else source_images, source_texts, name_ids)
    batch_size = min(config.batch_size - replay, len(images))
    batch_size -= (batch_size + replay) % context.world_size  # every rank gets an equal share
    part = shard_positions(batch_size + replay, context.rank, context.world_size)
    batches = PairBatches(images, texts, int(photos.shape[1]), len(rows), batch_size, replay, source, tokenizer,
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
    history["num_pairs"] = [float(len(images))]
    history["world_size"] = [float(context.world_size)]
    history["photos_streamed"] = [float(stream)]
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


def base_model(spec: str, init: str = "pretrained") -> Any:
    """The model fine-tuning starts from, on the CPU: ``spec``'s pretrained model, or its scratch start.

    ``init="scratch"`` asks the model factory for the same architecture with a randomly
    initialised image tower (``create_clip_model(name, pretrained="scratch")``).
    """
    from ecmm.models.clip import create_clip_model, open_model, parse_model_spec

    if init == "pretrained":
        return open_model(spec, device="cpu")[0]
    return create_clip_model(parse_model_spec(spec)[0], pretrained="scratch", device="cpu")[0]


def build_shop_model(folder: Path, config: FinetuneConfig | None = None, progress: bool = True,
                     context: DistributedContext | None = None, *, source: CatalogSource | None = None,
                     model: str | None = None) -> None:
    """The registry's builder: fine-tune a pretrained model on a shop catalog and save it in ``folder``.

    Args:
        folder: where the model and its card go.
        config: the recipe (None: :func:`default_config` of the model).
        progress: show a progress bar.
        context: under torchrun (several processes) every rank trains and rank 0 saves.
        source: the catalog (None: :func:`ecmm.data.catalogs.open_catalog`).
        model: the base model's spec (None: :func:`ecmm.data.catalogs.model_spec`).
    """
    from ecmm.data.catalogs import model_spec, open_catalog

    source = source if source is not None else open_catalog()
    spec = model_spec(model)
    base = base_model(spec, config.init if config is not None else "pretrained")
    _build(Path(folder), config or default_config(base), source, spec, base, context or single_process(None), progress)


def _build(folder: Path, config: FinetuneConfig, source: CatalogSource, spec: str, base: Any,
           context: DistributedContext, progress: bool) -> None:
    model, history = _finetune(base, base.preprocess, base.tokenizer, source.table(), source.photos(), config, context,
                               progress)
    if context.is_main:
        save_shop_model(model, folder, config, history, weights_digest(base), catalog=catalog_record(source),
                        base_model=spec)


def _experiment(config: FinetuneConfig, context: DistributedContext, history_path: Path, source: CatalogSource,
                base: Any) -> None:
    """Fine-tune on the catalog and write the history (rank 0) without saving a model."""
    _, history = _finetune(base, base.preprocess, base.tokenizer, source.table(), source.photos(), config, context,
                           progress=True)
    if context.is_main:
        history_path.parent.mkdir(parents=True, exist_ok=True)
        history_path.write_text(json.dumps({"config": asdict(config), **history}, indent=2))
        print(f"world size {context.world_size}: final loss {history['step_loss'][-1]:.4f}, "
              f"{history['images_per_second'][0]:.0f} pairs/s")


def main(argv: list[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m ecmm.finetune [options]``: build the shop model.

    The catalog is ``--catalog`` (a folder catalog's CSV) or ``ECMM_CATALOG`` / ``ECMM_PROFILE``,
    the base model ``--model`` or ``ECMM_MODEL`` (both are set in the environment, so every rank
    agrees); the recipe is the model's :func:`default_config` with the options given.  Without
    ``--history`` it fine-tunes and saves the model in :func:`shop_model_dir` (for the offline
    shop and the kit's model, the default recipe's folder is the registry's ``shop_clip``, the
    model ``ecmm search`` loads).  With ``--history PATH`` it is an experiment: the loss history is
    written there and no model is saved.  ``--batch-size`` is the global batch under torchrun.
    """
    from ecmm.data.catalogs import CATALOG_ENV, MODEL_ENV, catalog_scope, model_spec, open_catalog
    from ecmm.device import seed_everything

    parser = argparse.ArgumentParser(prog="python -m ecmm.finetune", description=main.__doc__)
    parser.add_argument("--catalog", default=None, help="a folder catalog's CSV (default: ECMM_CATALOG / ECMM_PROFILE)")
    parser.add_argument("--model", default=None, help="base model spec (default: ECMM_MODEL, else ecmm-clip)")
    parser.add_argument("--steps", type=int, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, help="global batch size")
    parser.add_argument("--mode", choices=MODES, help="what stays locked (default: the model's strong tower)")
    parser.add_argument("--init", choices=INITS, help="pretrained model or random image tower")
    parser.add_argument("--image-blocks", type=int, help="image blocks that train")
    parser.add_argument("--replay-fraction", type=float, help="source pairs per batch")
    parser.add_argument("--label-fraction", type=float, help="share of training SKUs")
    parser.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision")
    parser.add_argument("--seed", type=int, help="seed of pairs, captions and fresh parts")
    parser.add_argument("--history", type=Path, default=None, help="experiment: write the history here, save nothing")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.catalog is not None:
        os.environ[CATALOG_ENV] = args.catalog
    if args.model:
        os.environ[MODEL_ENV] = args.model
    given = {name: value for name, value in vars(args).items()
             if value is not None and name not in ("catalog", "model", "history")}
    context = init_distributed()
    try:
        source, spec = open_catalog(), model_spec()
        seed_everything(given.get("seed", FinetuneConfig.seed))  # identical fresh parts on every rank
        base = base_model(spec, given.get("init", "pretrained"))
        defaults = default_config(base)
        config = replace(defaults, **given)
        if args.history is not None:
            _experiment(config, context, args.history, source, base)
            return 0
        folder = shop_model_dir(config, scope=catalog_scope(source, spec), default=defaults)
        _build(folder, config, source, spec, base, context, progress=True)
        if context.is_main:
            print(f"shop model of {context.world_size} process(es) saved in {folder}")
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
