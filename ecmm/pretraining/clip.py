"""Contrastive (CLIP-style) pretraining of the offline model on the source-domain icon corpus.

The recipe is close to LiT ("locked-image tuning", Zhai et al. 2022) with a locked text encoder
too: MiniLM and the first blocks of the kit's supervised-pretrained CNN stay frozen, so their
output for many augmented (and partly recoloured) views of every icon and the MiniLM features of
every emoji name are computed once; then the last ``image_blocks`` CNN blocks, the two
projections and the temperature are trained with the symmetric InfoNCE loss on (view, caption)
pairs, each caption drawn from a few templates ("{name}", "a photo of a {name}").

Training the last block makes the image features fine-grained enough to tell ~1,900 emoji apart;
recolouring the views brings them closer to the shop's recoloured products; the templates keep
the text map from fitting one phrasing.  These choices were made on a validation split of
held-out *training* product types, never on ``test_products``.  Deterministic for a given seed;
about five minutes on 2 CPU cores.

``build(output_dir)`` is the registry's builder of the asset ``"clip"``; a card written
with another :data:`RECIPE_VERSION` is rebuilt.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ecmm.clip_training import TrainingView
from ecmm.device import get_device
from ecmm.progress import progress_bar
from ecmm.train import clip_step, fit, warmup_cosine

__all__ = ["ClipPretrainConfig", "RECIPE_VERSION", "pretrain_clip", "build", "normalise_views", "view_features",
           "source_zero_shot_accuracy", "downsample", "cosine_schedule"]

RECIPE_VERSION = 2  # bump when the default recipe changes: cached "clip" assets of another version rebuild


@dataclass(frozen=True)
class ClipPretrainConfig:
    """Recipe of the source-domain contrastive pretraining."""

    steps: int = 3000  # optimiser steps
    batch_size: int = 256  # pairs per step
    learning_rate: float = 2e-3  # projections and temperature
    image_learning_rate: float = 5e-4  # the trained CNN blocks
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 100  # linear warm-up, then cosine decay
    image_blocks: int = 1  # CNN blocks that train, from the end (0: the whole CNN locked, pure LiT)
    views_per_image: int = 16  # augmented views of every icon (cached once through the frozen blocks)
    recolour_probability: float = 0.5  # chance that a view's colours are re-painted (shop items come recoloured)
    work_size: int = 64  # icons are downsampled to this side before augmentation
    caption_templates: tuple[str, ...] = ("{name}", "a photo of a {name}")  # each pair draws one at random
    seed: int = 0  # seed of the views and the batch order

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2 (a contrastive batch needs negatives).")
        if self.image_blocks < 0 or self.views_per_image < 1 or not 0.0 <= self.recolour_probability <= 1.0:
            raise ValueError("image_blocks must be >= 0, views_per_image >= 1 and recolour_probability in [0, 1].")
        if not self.caption_templates or any("{name}" not in template for template in self.caption_templates):
            raise ValueError("caption_templates must be a non-empty tuple of strings with '{name}' in each")


def normalise_views(views: torch.Tensor, preprocess: Any) -> torch.Tensor:
    """Normalise ``[0, 1]`` views ``(N, 3, S, S)`` with the preprocessing's mean and std."""
    mean = torch.tensor(preprocess.mean, device=views.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std, device=views.device).view(1, 3, 1, 1)
    return (views - mean) / std


def downsample(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, size, size)`` in ``[0, 1]`` (antialiased)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


cosine_schedule = warmup_cosine  # the learning-rate multiplier every recipe of the kit uses


@torch.no_grad()
def view_features(
    backbone: torch.nn.Module, preprocess: Any, images: np.ndarray, views_per_image: int,
    generator: torch.Generator, work_size: int = 64, batch_size: int = 256,
    device: str | torch.device | None = None, progress: bool = True,
    trained_blocks: int = 0, recolour_probability: float = 0.0,
) -> torch.Tensor:
    """Output of the frozen part of the CNN for augmented views of every image.

    Args:
        backbone: the CNN (``blocks``, first to last).
        preprocess: gives ``image_size``, ``mean`` and ``std``.
        images: uint8 ``(N, H, W, 3)`` icons.
        views_per_image: ``V`` random views per icon.
        generator: seeds the views.
        work_size: icons are downsampled to this side first.
        batch_size: views per CNN pass.
        device: where the CNN runs; None picks the best available.
        progress: show a progress bar.
        trained_blocks: the last blocks that will train (not run here); 0 runs the whole CNN.
        recolour_probability: chance that a view is re-painted (``recolour_views``).

    Returns:
        On CPU: pooled features ``(V, N, num_features)`` when ``trained_blocks == 0``, else the
        feature maps entering the trained blocks ``(V, N, C, h, w)``.
    """
    from ecmm.data import augment_photos
    from ecmm.pretraining.backbone import recolour_views

    device = get_device(device)
    blocks = list(backbone.blocks)
    if not 0 <= trained_blocks <= len(blocks):
        raise ValueError(f"trained_blocks must be in 0..{len(blocks)}; got {trained_blocks}")
    frozen = torch.nn.Sequential(*blocks[:len(blocks) - trained_blocks]).to(device).eval()
    icons = downsample(images, work_size)  # (N, 3, s, s)
    features = []
    bar = progress_bar(total=views_per_image * len(icons), desc="icon views", disable=not progress, leave=False)
    for _ in range(views_per_image):
        chunks = []
        for start in range(0, len(icons), batch_size):
            views = augment_photos(icons[start:start + batch_size], generator, image_size=preprocess.image_size)
            if recolour_probability > 0:
                views = recolour_views(views, recolour_probability, generator)
            maps = frozen(normalise_views(views, preprocess).to(device))  # (b, C, h, w)
            chunks.append((maps if trained_blocks else maps.mean(dim=(2, 3))).cpu())
            bar.update(len(views))
        features.append(torch.cat(chunks))
    bar.close()
    return torch.stack(features)


def pretrain_clip(
    model: torch.nn.Module,
    preprocess: Any,
    images: np.ndarray,
    names: list[str],
    config: ClipPretrainConfig = ClipPretrainConfig(),
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train the last CNN blocks, projections and temperature of a :class:`~ecmm.models.clip.ClipModel` in place.

    Args:
        model: offline CLIP model; MiniLM and the CNN's first blocks stay locked.
        preprocess: the model's image preprocessing (gives ``image_size``, ``mean``, ``std``).
        images: uint8 ``(N, H, W, 3)`` icons.
        names: ``N`` names; each pair's caption is one of ``config.caption_templates`` filled with
            its name (equal names count as the same class).
        config: the recipe (``image_blocks=0`` is pure LiT: only the projections train).
        device: where to train; None picks the best available.
        progress: show progress bars.

    Returns:
        History with ``step_loss`` and ``temperature`` per step and ``seconds`` (total).
    """
    if len(images) != len(names) or len(images) < 2:
        raise ValueError("need one name per image and at least two images")
    device = get_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    model.to(device).lock_text_tower().lock_image_tower()
    blocks = list(model.backbone.blocks)
    trained = min(config.image_blocks, len(blocks))
    features = view_features(model.backbone, preprocess, images, config.views_per_image, generator,
                             config.work_size, device=device, progress=progress, trained_blocks=trained,
                             recolour_probability=config.recolour_probability).to(device)  # (V, N, ...)
    text_features = torch.stack([model.text_encoder.encode([template.format(name=name) for name in names],
                                                           normalize=False)
                                 for template in config.caption_templates]).to(device)  # (T, N, 384)
    _, caption_ids = np.unique(names, return_inverse=True)
    caption_ids = torch.as_tensor(caption_ids, device=device)
    model.lock_image_tower(trained + 1)  # the last `trained` CNN blocks and the projection
    model.lock_text_tower(0)  # MiniLM locked, its projection trains
    view = TrainingView(model, torch.nn.Sequential(*blocks[len(blocks) - trained:]), "features")
    groups = model.param_groups(head_lr=config.learning_rate, image_lr=config.image_learning_rate, text_lr=0.0)
    batches = _ViewCaptionBatches(features, text_features, caption_ids, min(config.batch_size, len(names)),
                                  generator, pooled=not trained)  # the views' generator goes on drawing batches
    temperatures: list[float] = []

    def loss_fn(module: torch.nn.Module, batch: dict) -> torch.Tensor:
        temperatures.append(1.0 / float(model.scale().detach()))
        return clip_step(module, batch)

    history = fit(view, batches, loss_fn=loss_fn, steps=config.steps,
                  optimizer=torch.optim.AdamW(groups, weight_decay=config.weight_decay),
                  warmup_steps=config.warmup_steps, device=device, progress=progress, description="pretrain clip")
    history["temperature"] = temperatures
    history["seconds"] = [time.perf_counter() - start]
    model.lock_image_tower().eval()
    return history


class _ViewCaptionBatches:
    """Endless seeded batches: a random view of random icons, each with one of its caption templates."""

    def __init__(self, features: torch.Tensor, text_features: torch.Tensor, caption_ids: torch.Tensor,
                 batch_size: int, generator: torch.Generator, pooled: bool) -> None:
        self.features, self.text_features, self.caption_ids = features, text_features, caption_ids  # (V, N, ...), (T, N, 384)
        self.batch_size, self.pooled, self.generator = batch_size, pooled, generator

    def __iter__(self):
        views, count = self.features.shape[0], self.features.shape[1]
        device = self.features.device
        while True:
            batch = torch.randperm(count, generator=self.generator)[:self.batch_size].to(device)
            view = torch.randint(views, (self.batch_size,), generator=self.generator).to(device)
            template = torch.randint(len(self.text_features), (self.batch_size,), generator=self.generator).to(device)
            images = self.features[view, batch]  # (B, C, h, w), or pooled (B, F)
            yield {"images": images[:, :, None, None] if self.pooled else images,
                   "tokens": self.text_features[template, batch], "caption_ids": self.caption_ids[batch]}


@torch.no_grad()
def source_zero_shot_accuracy(
    model: torch.nn.Module, preprocess: Any, images: np.ndarray, captions: list[str],
    device: str | torch.device | None = None,
) -> float:
    """Zero-shot top-1 accuracy on clean icons: each icon picks its name among all ``N`` names.

    Args:
        model: a CLIP model with ``encode_image`` / ``project_text`` or ``encode_text``.
        preprocess: its preprocessing.
        images: uint8 ``(N, H, W, 3)`` icons.
        captions: ``N`` names (duplicates count as the same class).

    Returns:
        Accuracy in ``[0, 1]``.
    """
    from ecmm.models.clip import cached_text_features, embed_images

    device = get_device(device)
    image_emb = embed_images(model, preprocess, images, device=device)  # (N, E)
    names, caption_ids = np.unique(captions, return_inverse=True)
    features = cached_text_features(model, list(names), device=device)  # (C, 384), memoised
    text_emb = model.project_text(features).cpu()  # (C, E)
    predicted = (image_emb @ text_emb.T).argmax(dim=1).numpy()
    return float((predicted == caption_ids).mean())


def build(output_dir: Path, device: str | torch.device | None = None,
          config: ClipPretrainConfig | None = None, progress: bool = True) -> dict:
    """Pretrain the offline CLIP model and write ``model.safetensors`` + ``card.json``.

    Args:
        output_dir: the asset folder (the registry passes it).
        device: where to train; None picks the best available.
        config: recipe (default :class:`ClipPretrainConfig`).
        progress: show progress bars.

    Returns:
        The card (recipe, data, metrics, sha256).
    """
    from ecmm.artifacts import assets_home, read_card
    from ecmm.data import load_source_corpus
    from ecmm.device import seed_everything
    from ecmm.models.clip import ClipConfig, build_offline_clip
    from ecmm.models.image import ImagePreprocess

    config = config or ClipPretrainConfig()
    seed_everything(config.seed)
    frame, images = load_source_corpus()
    names = list(frame["name"])
    model = build_offline_clip(ClipConfig(), pretrained_backbone=True)
    cnn = model.backbone.config
    preprocess = ImagePreprocess(cnn.image_size, cnn.mean, cnn.std)
    history = pretrain_clip(model, preprocess, images, names, config, device=device, progress=progress)
    after = source_zero_shot_accuracy(model, preprocess, images, names, device=device)
    card: dict[str, Any] = {
        "asset": "clip",
        "recipe": {"kind": "contrastive pretraining (MiniLM and first CNN blocks locked)",
                   "version": RECIPE_VERSION, **asdict(config)},
        "data": {"corpus": "source-domain emoji icons (OpenMoji, CC BY-SA 4.0)", "pairs": len(names),
                 "backbone_sha256": _weights_sha256(read_card(assets_home() / "backbone"))},
        "metrics": {
            "source_zero_shot_top1": after,
            "final_loss": float(np.mean(history["step_loss"][-50:])),
            "temperature": history["temperature"][-1],
            "train_seconds": history["seconds"][-1],
        },
        "history": {"step_loss": history["step_loss"][:: max(1, config.steps // 200)]},
    }
    model.cpu().save(output_dir, card)
    return card


def _weights_sha256(card: dict) -> str | None:
    """sha256 of ``model.safetensors`` from a card (its ``files`` list, or an older card's ``sha256``)."""
    return ((card.get("files") or {}).get("model.safetensors") or {}).get("sha256") or card.get("sha256")

