"""Where the field is going, measured: incremental transfer, transfer + bandits, multimodal fusion.

1. **Incremental transfer** (:func:`make_waves`, :func:`incremental_finetune`): new products
   arrive in waves; the offline CLIP model is fine-tuned wave after wave with the text-locked recipe of
   :mod:`ecmm.finetune` (frozen parts cached once), ``"naive"`` (new wave only), with ``"replay"``
   (plus a sample of earlier waves) or ``"wise"`` (naive, then WiSE-FT interpolation with the
   model before the wave, :func:`ecmm.finetune.interpolate_weights`). Recall is measured on
   every wave's held-out colours after every wave: forgetting made visible.
2. **Transfer + reinforcement learning** lives in :mod:`ecmm.recsys.bandits` (a contextual bandit
   whose context is the transferred embedding, against the shoppers of :mod:`ecmm.recsys.simulator`).
3. **Multimodal fusion** (:func:`modality_embeddings`): image-only, text-only and fused item
   embeddings, evaluated for search and cold-start recommendation in the notebook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ecmm.data.photos import PhotoSet
from ecmm.device import get_device, single_thread
from ecmm.progress import progress_bar
from ecmm.train import clip_step, fit

__all__ = [
    "make_waves", "WaveInputs", "cache_wave_inputs", "wave_recall", "incremental_finetune", "average_forgetting",
    "modality_embeddings", "STRATEGIES",
]

STRATEGIES: tuple[str, ...] = ("naive", "replay", "wise")


# --- 1. incremental transfer -----------------------------------------------------------------
def make_waves(catalog: pd.DataFrame, num_waves: int = 3, seed: int = 0) -> np.ndarray:
    """Assign the non-``test_products`` SKUs to arrival waves, whole categories at a time.

    Args:
        catalog: the shop catalog (``category``, ``split``).
        num_waves: number of waves.
        seed: seed of the category shuffle.

    Returns:
        ``(num_skus,)`` int array: wave index, or -1 for ``test_products`` rows (not used).
    """
    categories = sorted(catalog["category"].unique())
    if not 1 <= num_waves <= len(categories):
        raise ValueError(f"num_waves must be between 1 and {len(categories)} (one category at least per wave)")
    order = np.random.default_rng(seed).permutation(len(categories))
    wave_of = {categories[c]: position % num_waves for position, c in enumerate(order)}
    waves = catalog["category"].map(wave_of).to_numpy().astype(int)
    waves[catalog["split"].to_numpy() == "test_products"] = -1
    return waves


@dataclass(frozen=True)
class WaveInputs:
    """What the frozen parts of the CLIP model compute, cached once for every wave and strategy.

    Attributes:
        feature_maps: ``(N, P, C, h, w)`` CNN feature maps before the last block, every SKU and photo.
        title_features: ``(N, 384)`` MiniLM features of every SKU's title (the text tower is locked).
    """

    feature_maps: torch.Tensor  # (N, P, C, h, w)
    title_features: torch.Tensor  # (N, 384)


@torch.no_grad()
def cache_wave_inputs(model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame,
                      photos: PhotoSet | np.ndarray, batch_size: int = 256,
                      rows: np.ndarray | None = None) -> WaveInputs:
    """Run the frozen CNN blocks over all photos and MiniLM over all titles, once.

    Photos are read a batch of SKUs at a time (a :class:`~ecmm.data.photos.PhotoSet` decodes only
    that batch); only the feature maps stay in memory.

    Args:
        model, preprocess, tokenizer: the kit's CLIP model (its CNN's blocks but the last run here).
        catalog: the products, one row per SKU in ``rows``.
        photos: uint8 ``(num_skus, P, H, W, 3)``: a PhotoSet or an array.
        batch_size: photos per CNN batch (about ``batch_size / P`` SKUs).
        rows: which SKUs of ``photos`` to read, aligned with ``catalog`` rows; None: all.

    Returns:
        A :class:`WaveInputs` on CPU: maps ``(len(catalog), P, C, h, w)``, titles ``(len(catalog), 384)``.
    """
    rows = np.arange(len(photos)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) != len(catalog):
        raise ValueError(f"{len(rows)} photo rows for a catalog of {len(catalog)} products: pass one row per product")
    model = model.cpu().eval()
    frozen = torch.nn.Sequential(*list(model.backbone.blocks)[:-1])
    photos_per_sku = int(photos.shape[1])
    skus_per_batch = max(1, batch_size // photos_per_sku)
    maps = []
    for start in range(0, len(rows), skus_per_batch):
        batch = np.asarray(photos[rows[start:start + skus_per_batch]])  # (b, P, H, W, 3), a fresh copy
        flat = frozen(preprocess(batch.reshape(-1, *batch.shape[2:])))  # (b * P, C, h, w)
        maps.append(flat.reshape(len(batch), photos_per_sku, *flat.shape[1:]))
    titles = list(catalog["title"])
    features = torch.cat([model.text_features(tokenizer(titles[start:start + batch_size]))
                          for start in range(0, len(titles), batch_size)])
    return WaveInputs(torch.cat(maps), features)


class _TrainablePart(torch.nn.Module):
    """The parts the text-locked recipe trains: the CNN's last block, both projections, the temperature."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.last_block = copy.deepcopy(model.backbone.blocks[-1])
        self.image_projection = copy.deepcopy(model.image_projection)
        self.text_projection = copy.deepcopy(model.text_projection)
        self.logit_scale = torch.nn.Parameter(model.logit_scale.detach().clone())

    def encode_image(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` cached maps -> ``(B, E)`` normalised image embeddings."""
        return F.normalize(self.image_projection(self.last_block(maps).mean(dim=(2, 3))), dim=-1)

    def encode_text(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, 384)`` cached MiniLM features -> ``(B, E)`` normalised text embeddings."""
        return F.normalize(self.text_projection(features), dim=-1)

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to 100 (CLIP's cap)."""
        return self.logit_scale.exp().clamp(max=100.0)


class _WaveBatches:
    """Endless seeded batches of (cached photo maps, title features) of the SKUs ``rows``."""

    def __init__(self, inputs: WaveInputs, rows: np.ndarray, batch_size: int, seed: int) -> None:
        self.inputs, self.rows, self.batch_size = inputs, torch.as_tensor(rows), batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        per_sku = self.inputs.feature_maps.shape[1]
        while True:
            pick = torch.randint(len(self.rows) * per_sku, (self.batch_size,), generator=self.generator)
            sku = self.rows[pick // per_sku]  # (B,) catalog rows
            yield {"images": self.inputs.feature_maps[sku, pick % per_sku], "tokens": self.inputs.title_features[sku],
                   "caption_ids": sku}


def _train_wave(part: _TrainablePart, inputs: WaveInputs, rows: np.ndarray, steps: int, batch_size: int,
                learning_rate: float, seed: int) -> _TrainablePart:
    """Fine-tune a copy of ``part`` on the photos and titles of ``rows`` (:func:`ecmm.train.clip_step` in ``fit``)."""
    part = copy.deepcopy(part)
    with single_thread():
        fit(part, _WaveBatches(inputs, rows, batch_size, seed), loss_fn=clip_step, steps=steps,
            learning_rate=learning_rate, weight_decay=1e-4, device="cpu", progress=False)
    return part.eval()


@torch.no_grad()
def wave_recall(part: _TrainablePart, inputs: WaveInputs, catalog: pd.DataFrame, waves: np.ndarray,
                k: int = 10) -> list[float]:
    """Text→image Recall@k of each wave's ``test_colours`` SKUs against one shared gallery.

    The gallery is photo 0 of every ``test_colours`` SKU of every wave; the query is the title.

    Returns:
        One Recall@k per wave.
    """
    from ecmm.metrics.retrieval import first_relevant_ranks, recall_at_k

    rows = np.flatnonzero((catalog["split"].to_numpy() == "test_colours") & (waves >= 0))
    with single_thread():
        gallery = part.encode_image(inputs.feature_maps[rows, 0])  # (G, E)
        queries = part.encode_text(inputs.title_features[rows])  # (G, E)
    ranks = first_relevant_ranks((queries @ gallery.T).numpy(), np.eye(len(rows), dtype=bool))
    return [recall_at_k(ranks[waves[rows] == wave], k) for wave in range(int(waves.max()) + 1)]


def incremental_finetune(
    model: Any, inputs: WaveInputs, catalog: pd.DataFrame, waves: np.ndarray, strategy: str = "naive",
    steps: int = 150, batch_size: int = 64, learning_rate: float = 1e-3, replay_fraction: float = 0.3,
    wise_alpha: float = 0.5, k: int = 10, seed: int = 0, progress: bool = False,
) -> pd.DataFrame:
    """Fine-tune wave after wave and measure recall on every wave after each one.

    The recipe is :mod:`ecmm.finetune`'s ``text_locked`` mode (the CNN's last block, both projections and the
    temperature train with :func:`ecmm.losses.clip_loss`; MiniLM is locked), with the frozen parts'
    outputs cached once in ``inputs`` so that nine runs fit a laptop; captions are the titles.

    Args:
        model: the starting (pretrained) offline CLIP model (left unchanged).
        inputs: its cached frozen outputs (:func:`cache_wave_inputs`).
        catalog: the shop; ``waves`` from :func:`make_waves` aligned with it.
        strategy: ``"naive"`` (new wave only), ``"replay"`` (new wave + ``replay_fraction`` of the
            earlier waves' training SKUs) or ``"wise"`` (naive, then weights
            ``(1 - wise_alpha) * before + wise_alpha * after``).
        steps, batch_size, learning_rate: optimisation per wave (AdamW).
        replay_fraction: share of earlier training SKUs replayed (``"replay"`` only).
        wise_alpha: interpolation weight of the new model (``"wise"`` only).
        k: Recall@k.
        seed: seed of the replay sample and the batches.
        progress: show a progress bar over waves.

    Returns:
        Long DataFrame ``strategy, after_wave, wave, recall`` (``after_wave`` 0 = before any).
    """
    from ecmm.finetune import interpolate_weights

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
    generator = np.random.default_rng(seed)
    train = catalog["split"].to_numpy() == "train"
    part = _TrainablePart(model)
    records = [{"strategy": strategy, "after_wave": 0, "wave": wave + 1, "recall": recall}
               for wave, recall in enumerate(wave_recall(part, inputs, catalog, waves, k))]
    for wave in progress_bar(range(int(waves.max()) + 1), desc=f"waves ({strategy})", disable=not progress):
        rows = np.flatnonzero(train & (waves == wave))
        if strategy == "replay" and wave > 0:
            earlier = np.flatnonzero(train & (waves >= 0) & (waves < wave))
            count = max(1, int(round(replay_fraction * len(earlier))))
            rows = np.union1d(rows, generator.choice(earlier, size=count, replace=False))
        tuned = _train_wave(part, inputs, rows, steps, batch_size, learning_rate, seed + wave)
        part = interpolate_weights(part, tuned, wise_alpha) if strategy == "wise" else tuned
        records += [{"strategy": strategy, "after_wave": wave + 1, "wave": index + 1, "recall": recall}
                    for index, recall in enumerate(wave_recall(part, inputs, catalog, waves, k))]
    return pd.DataFrame(records)


def average_forgetting(results: pd.DataFrame) -> pd.Series:
    """Average forgetting per strategy: for each wave but the last, best recall ever minus final recall.

    Args:
        results: output of :func:`incremental_finetune` (one or several strategies).

    Returns:
        Series indexed by strategy (higher = more forgetting).
    """
    final_wave = int(results["after_wave"].max())
    values = {}
    for strategy, frame in results.groupby("strategy", sort=False):
        drops = []
        for wave in range(1, final_wave):
            seen = frame[(frame["wave"] == wave) & (frame["after_wave"] >= wave)]
            best = seen["recall"].max()
            final = seen.loc[seen["after_wave"] == final_wave, "recall"].iloc[0]
            drops.append(best - final)
        values[strategy] = float(np.mean(drops)) if drops else 0.0
    return pd.Series(values, name="forgetting")


# --- 3. multimodal fusion -------------------------------------------------------------------------
def modality_embeddings(model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame,
                        photos: PhotoSet | np.ndarray, photo_index: int = 0,
                        device: str | torch.device | None = None) -> dict[str, np.ndarray]:
    """Item embeddings of one CLIP model from the image only, the text only, and both fused.

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers.
        catalog, photos: the shop (``photos`` uint8 ``(N, P, H, W, 3)``, a PhotoSet read in batches, or an array).
        photo_index: which photo stands for the item (the others can serve as customer snapshots).
        device: where to run; None picks the best available.

    Returns:
        ``{"image", "text", "fused"}`` -> ``(N, E)`` float32 unit rows; text = "title. description";
        fused = normalise(image + text) (late fusion in the shared space).
    """
    from ecmm.models.clip import embed_images, embed_texts

    device = get_device(device)
    gallery = photos.view(photo_index) if isinstance(photos, PhotoSet) else photos[:, photo_index]  # (N, H, W, 3)
    image = embed_images(model, preprocess, gallery, device=device)
    texts = (catalog["title"].astype(str) + ". " + catalog["description"].astype(str)).tolist()
    text = embed_texts(model, tokenizer, texts, device=device)
    fused = F.normalize(F.normalize(image, dim=1) + F.normalize(text, dim=1), dim=1)
    return {name: F.normalize(value, dim=1).numpy().astype(np.float32)
            for name, value in (("image", image), ("text", text), ("fused", fused))}
