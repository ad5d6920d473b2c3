"""Contrastive (CLIP-style) pretraining of the offline model on the source-domain icon corpus.

The recipe is LiT ("locked-image tuning", Zhai et al. 2022) with a locked text encoder too: the
kit's supervised-pretrained CNN and MiniLM both stay frozen, so the CNN features of a few augmented
views of every icon and the MiniLM features of every emoji name are computed once; then the two
projections and the temperature are trained with the symmetric InfoNCE loss on (view, name)
pairs.  Nearly all the time goes into the one pass of the CNN over the views.  Deterministic
for a given seed; a couple of minutes on 2 CPU cores.

``build(output_dir)`` is what ``ecmm.assets`` calls for the asset ``"clip"``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ecmm.device import get_device
from ecmm.losses import clip_loss

__all__ = ["ClipPretrainConfig", "pretrain_clip", "build", "normalise_views", "source_zero_shot_accuracy"]


@dataclass(frozen=True)
class ClipPretrainConfig:
    """Recipe of the source-domain contrastive pretraining."""

    steps: int = 3000  # optimiser steps (cheap: only the projections train)
    batch_size: int = 256  # pairs per step
    learning_rate: float = 2e-3  # projections and temperature
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_steps: int = 100  # linear warm-up, then cosine decay
    views_per_image: int = 4  # augmented views of every icon (the CNN pass is the main cost)
    work_size: int = 64  # icons are downsampled to this side before augmentation
    caption_template: str = "{name}"  # how an emoji name becomes a caption
    seed: int = 0  # seed of the views and the batch order

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2 (a contrastive batch needs negatives).")


def normalise_views(views: torch.Tensor, preprocess: Any) -> torch.Tensor:
    """Normalise ``[0, 1]`` views ``(N, 3, S, S)`` with the preprocessing's mean and std."""
    mean = torch.tensor(preprocess.mean, device=views.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std, device=views.device).view(1, 3, 1, 1)
    return (views - mean) / std


def downsample(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, size, size)`` in ``[0, 1]`` (antialiased)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def cosine_schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + np.cos(np.pi * min(1.0, progress)))


@torch.no_grad()
def view_features(
    backbone: torch.nn.Module, preprocess: Any, images: np.ndarray, views_per_image: int,
    generator: torch.Generator, work_size: int = 64, batch_size: int = 256,
    device: str | torch.device | None = None, progress: bool = True,
) -> torch.Tensor:
    """Frozen-backbone features of augmented views of every image.

    Returns:
        ``(views_per_image, N, num_features)`` float tensor on CPU.
    """
    from ecmm.data import augment_photos

    device = get_device(device)
    backbone.to(device).eval()
    icons = downsample(images, work_size)  # (N, 3, s, s)
    features = []
    bar = tqdm(total=views_per_image * len(icons), desc="icon views", disable=not progress, leave=False)
    for _ in range(views_per_image):
        chunks = []
        for start in range(0, len(icons), batch_size):
            views = augment_photos(icons[start:start + batch_size], generator, image_size=preprocess.image_size)
            chunks.append(backbone(normalise_views(views, preprocess).to(device)).cpu())
            bar.update(len(views))
        features.append(torch.cat(chunks))
    bar.close()
    return torch.stack(features)


def pretrain_clip(
    model: torch.nn.Module,
    preprocess: Any,
    images: np.ndarray,
    captions: list[str],
    config: ClipPretrainConfig = ClipPretrainConfig(),
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train the projections and temperature of a :class:`~ecmm.models.clip.ClipModel` in place.

    Args:
        model: offline CLIP model; its CNN and MiniLM stay locked (LiT).
        preprocess: the model's image preprocessing (gives ``image_size``, ``mean``, ``std``).
        images: uint8 ``(N, H, W, 3)`` icons.
        captions: ``N`` captions.
        config: the recipe.
        device: where to train; None picks the best available.
        progress: show tqdm bars.

    Returns:
        History with ``step_loss`` and ``temperature`` per step and ``seconds`` (total).
    """
    if len(images) != len(captions) or len(images) < 2:
        raise ValueError("need one caption per image and at least two images")
    device = get_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    model.to(device).lock_text_tower().lock_image_tower()
    features = view_features(model.backbone, preprocess, images, config.views_per_image, generator,
                             config.work_size, device=device, progress=progress).to(device)  # (V, N, F)
    text_features = model.text_encoder.encode(captions, normalize=False).to(device)  # (N, 384)
    _, caption_ids = np.unique(captions, return_inverse=True)
    caption_ids = torch.as_tensor(caption_ids, device=device)
    parameters = [*model.image_projection.parameters(), *model.text_projection.parameters(), model.logit_scale]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    history: dict[str, list[float]] = {"step_loss": [], "temperature": [], "seconds": []}
    batch_size = min(config.batch_size, len(captions))
    for step in tqdm(range(config.steps), desc="pretrain clip", disable=not progress):
        batch = torch.randperm(len(captions), generator=generator)[:batch_size].to(device)
        view = torch.randint(config.views_per_image, (batch_size,), generator=generator).to(device)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * cosine_schedule(step, config.steps, config.warmup_steps)
        image_emb = F.normalize(model.image_projection(features[view, batch]), dim=-1)  # (B, E)
        text_emb = model.project_text(text_features[batch])  # (B, E)
        loss = clip_loss(image_emb, text_emb, model.scale(), caption_ids=caption_ids[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["step_loss"].append(loss.item())
        history["temperature"].append(1.0 / model.scale().item())
    history["seconds"].append(time.perf_counter() - start)
    model.eval()
    return history


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
        output_dir: the asset folder (``ecmm.assets`` passes it).
        device: where to train; None picks the best available.
        config: recipe (default :class:`ClipPretrainConfig`).
        progress: show progress bars.

    Returns:
        The card (recipe, data, metrics, sha256).
    """
    from ecmm.assets import asset_card
    from ecmm.data import load_source_corpus
    from ecmm.device import seed_everything
    from ecmm.models.clip import ClipConfig, _build_offline, save_clip_checkpoint
    from ecmm.models.image import ImagePreprocess

    config = config or ClipPretrainConfig()
    seed_everything(config.seed)
    frame, images = load_source_corpus()
    captions = [config.caption_template.format(name=name) for name in frame["name"]]
    model = _build_offline(ClipConfig(), pretrained_backbone=True)
    cnn = model.backbone.config
    preprocess = ImagePreprocess(cnn.image_size, cnn.mean, cnn.std)
    history = pretrain_clip(model, preprocess, images, captions, config, device=device, progress=progress)
    after = source_zero_shot_accuracy(model, preprocess, images, captions, device=device)
    card: dict[str, Any] = {
        "asset": "clip",
        "recipe": {"kind": "LiT-style contrastive pretraining (MiniLM locked)", **asdict(config)},
        "data": {"corpus": "source-domain emoji icons (OpenMoji, CC BY-SA 4.0)", "pairs": len(captions),
                 "backbone_sha256": (asset_card("backbone") or {}).get("sha256")},
        "metrics": {
            "source_zero_shot_top1": after,
            "final_loss": float(np.mean(history["step_loss"][-50:])),
            "temperature": history["temperature"][-1],
            "train_seconds": history["seconds"][-1],
        },
        "history": {"step_loss": history["step_loss"][:: max(1, config.steps // 200)]},
    }
    save_clip_checkpoint(model.cpu(), output_dir, card)
    return card

