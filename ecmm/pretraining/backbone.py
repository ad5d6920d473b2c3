"""Supervised pretraining of the kit's image backbone on the source-domain icon corpus.

The stand-in for ImageNet pretraining: every emoji identity in
:func:`ecmm.data.load_source_corpus` is one class, and the network learns to recognise random
photo-like views of it (scale, shift, rotation, background tint from
:func:`ecmm.data.augment_photos`, plus a random re-painting of the icon's colours half of the
time). The shop's product photos (recoloured icons) are a different domain the kit transfers to.

:func:`build` is what ``ecmm prepare`` (``ecmm.assets``) calls; it writes ``model.safetensors``
and ``card.json`` (recipe, data, held-out accuracy, wall time, sha256) into a folder.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ecmm.config import atomic_write, write_json
from ecmm.device import get_device
from ecmm.models.heads import Classifier, SoftmaxHead
from ecmm.models.image import CNNConfig, EcmmCNN, cnn_config_dict, file_sha256
from ecmm.train import fit


@dataclass(frozen=True)
class BackbonePretrainingConfig:
    """Recipe of the backbone pretraining (saved in the checkpoint card)."""

    architecture: CNNConfig = field(default_factory=CNNConfig)  # network shape and input size
    steps: int = 500  # optimizer steps in total
    batch_size: int = 128  # augmented views per step
    learning_rate: float = 4e-3  # peak AdamW learning rate (one-cycle schedule)
    weight_decay: float = 5e-4  # AdamW weight decay
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    recolour_probability: float = 0.5  # chance that a view's colours are re-painted
    eval_views: int = 2  # held-out augmented views per class for the reported accuracy
    max_classes: int | None = None  # use only the first N classes (tiny test runs); None = all
    seed: int = 0  # seeds the initialisation and every augmentation

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2.")
        if not 0.0 <= self.recolour_probability <= 1.0:
            raise ValueError("recolour_probability must be in [0, 1].")
        if self.max_classes is not None and self.max_classes < 2:
            raise ValueError("max_classes must be at least 2 (or None for every class).")


def recolour_views(views: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Randomly re-paint views: swap colour channels and blend towards grey.

    Args:
        views: (N, 3, S, S) floats in [0, 1].
        probability: chance per view of being re-painted.
        generator: torch generator (determinism).

    Returns:
        (N, 3, S, S) floats in [0, 1].
    """
    n = views.shape[0]
    chosen = torch.rand(n, generator=generator) < probability  # (N,)
    permutation = torch.argsort(torch.rand(n, 3, generator=generator), dim=1)  # (N, 3)
    permuted = torch.gather(views, 1, permutation[:, :, None, None].expand_as(views))
    grey = views.mean(dim=1, keepdim=True)
    blend = torch.rand(n, 1, 1, 1, generator=generator) * 0.6  # 0 = colour, 0.6 = mostly grey
    painted = (1 - blend) * permuted + blend * grey
    return torch.where(chosen[:, None, None, None], painted, views)


class AugmentedViews:
    """An iterable of ``(views, labels)`` batches of random icon views; deterministic per seed.

    Each pass visits the classes in a fresh random order; one view per class per visit.

    Args:
        images: uint8 icons (C, H, W, 3), one per class.
        config: the pretraining recipe (batch size, input size, recolouring).
        generator: torch generator advanced by every batch.
        steps: batches per pass.
    """

    def __init__(self, images: np.ndarray, config: BackbonePretrainingConfig,
                 generator: torch.Generator, steps: int) -> None:
        from ecmm.models.image import ImagePreprocess

        architecture = config.architecture
        size = architecture.image_size
        pixels = torch.from_numpy(np.array(images, dtype=np.uint8))  # (C, H, W, 3), a copy
        # Downsample once (antialiased) to 1.5x the input side; views are then cut from these.
        self.icons = F.interpolate(pixels.permute(0, 3, 1, 2).float() / 255.0,
                                   size=(size * 3 // 2, size * 3 // 2), mode="bilinear",
                                   antialias=True, align_corners=False)  # (C, 3, 1.5S, 1.5S)
        self.config, self.generator, self.steps = config, generator, steps
        self.normalise = ImagePreprocess(size, architecture.mean, architecture.std)

    def __len__(self) -> int:
        return self.steps

    def make_views(self, labels: torch.Tensor, recolour: bool = True) -> torch.Tensor:
        """Augmented, normalised views of the icons ``labels``: (B,) -> (B, 3, S, S)."""
        from ecmm.data import augment_photos

        size = self.config.architecture.image_size
        views = augment_photos(self.icons[labels], generator=self.generator,
                               image_size=size)  # (B, 3, S, S) in [0, 1]
        if recolour:
            views = recolour_views(views, self.config.recolour_probability, self.generator)
        return self.normalise.normalise_floats(views)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.empty(0, dtype=torch.long)
        for _ in range(self.steps):
            while len(order) < self.config.batch_size:
                order = torch.cat([order, torch.randperm(len(self.icons), generator=self.generator)])
            labels, order = order[: self.config.batch_size], order[self.config.batch_size:]
            yield self.make_views(labels), labels


@torch.no_grad()
def heldout_accuracy(model: Classifier, views: AugmentedViews, num_views: int,
                     device: torch.device, batch_size: int = 256) -> float:
    """Top-1 accuracy on fresh augmented views (``num_views`` per class) in eval mode."""
    model.eval()
    labels = torch.arange(len(views.icons)).repeat(num_views)
    correct = 0
    for start in range(0, len(labels), batch_size):
        batch = labels[start:start + batch_size]
        logits = model(views.make_views(batch).to(device))
        correct += int((logits.argmax(-1).cpu() == batch).sum())
    return correct / len(labels)


def pretrain(config: BackbonePretrainingConfig = BackbonePretrainingConfig(),
             device: str | torch.device | None = None,
             progress: bool = True) -> tuple[Classifier, dict]:
    """Train the backbone (+ a source-class head) on the source corpus.

    Args:
        config: the recipe.
        device: where to train; None picks the best available.
        progress: show a progress bar.

    Returns:
        (trained classifier in eval mode, card dict without the sha256).
    """
    from ecmm.data import load_source_corpus

    device = get_device(device)
    start = time.perf_counter()
    frame, images = load_source_corpus()
    if config.max_classes is not None:
        frame, images = frame.iloc[: config.max_classes], images[: config.max_classes]
    torch.manual_seed(config.seed)
    backbone = EcmmCNN(config.architecture)
    model = Classifier(backbone, SoftmaxHead(backbone.num_features, len(frame))).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    train_views = AugmentedViews(images, config, generator, steps=config.steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                    total_steps=config.steps, pct_start=0.15)

    def loss_fn(model: Classifier, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1], label_smoothing=config.label_smoothing)

    history = fit(model, train_views, epochs=1, optimizer=optimizer, scheduler=scheduler,
                  loss_fn=loss_fn, device=device, progress=progress, description="pretrain backbone")
    heldout = AugmentedViews(images, config, torch.Generator().manual_seed(config.seed + 10_000), 0)
    accuracy = heldout_accuracy(model, heldout, config.eval_views, device)
    card = {
        "name": "ecmm-cnn",
        "recipe": asdict(config),
        "architecture": cnn_config_dict(config.architecture),
        "data": {"corpus": "source (every OpenMoji emoji identity, original colours)",
                 "num_classes": int(len(frame)), "views_seen": config.steps * config.batch_size},
        "metrics": {"heldout_accuracy": round(accuracy, 4),
                    "final_train_loss": round(float(np.mean(history["step_loss"][-20:])), 4),
                    "chance_accuracy": round(1.0 / len(frame), 5)},
        "num_parameters": backbone.num_parameters(),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "device": device.type,
        "torch_version": torch.__version__,
    }
    return model.eval(), card


def build(output_dir: Path, device: str | torch.device | None = None,
          config: BackbonePretrainingConfig | None = None, progress: bool = True) -> dict:
    """Pretrain and write ``model.safetensors`` + ``card.json`` into ``output_dir``.

    Args:
        output_dir: destination folder (created if missing).
        device: where to train; None picks the best available.
        config: the recipe; None uses :class:`BackbonePretrainingConfig` defaults.
        progress: show a progress bar.

    Returns:
        The card (recipe, data, metrics, wall time, sha256 of the weights file).
    """
    from safetensors.torch import save_file

    output_dir = Path(output_dir)
    model, card = pretrain(config or BackbonePretrainingConfig(), device=device, progress=progress)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    weights = output_dir / "model.safetensors"
    with atomic_write(weights) as temporary:
        save_file(state, str(temporary), metadata={"format": "pt", "name": "ecmm-cnn"})
    card["sha256"] = file_sha256(weights)
    write_json(output_dir / "card.json", card)
    return card
