"""Hybrid two-tower recommender: transferred content + item IDs, trained like CLIP.

Item tower: ``v_i = normalise(MLP(e_i) + m_i * id_i)`` where ``e_i`` is the item's transferred
content embedding (CLIP image + text, or MiniLM text), ``id_i`` a learned ID embedding and
``m_i`` a mask. During training ``m_i`` is dropped to 0 with probability ``id_dropout`` (ID
dropout, as in DropoutNet), so the content path alone must already place items well. At
inference ``m_i = 1`` for items with training events and ``0`` for new items: a cold-start item
is represented by its content alone, which the model has learned to use.

User tower: the weighted mean of the item-tower vectors of the user's last ``history_length``
items (or of a cart) and the vector of the most recent one (co-purchases follow the last item),
plus a residual MLP over both, normalised. There is no user-ID embedding, so new
users and carts use the same tower.

Loss: in-batch softmax over the batch's (history, next item) pairs -- **the same contrastive
loss as CLIP**: ``ecmm.losses.clip_loss(user_vectors, item_vectors, logit_scale,
caption_ids=item_ids)``, where the user plays the image and the next item the caption, and a
batch that holds the same item twice counts both as positives.

Popularity prior: in-batch negatives are drawn in proportion to popularity ``q(i)``, so an
in-batch softmax learns ``log p(i | user) - log q(i)`` (popular items are pushed down as often as
they are positives; Yi et al. 2019, "sampling-bias-corrected" retrieval). At inference we add
``log q(i)`` back (``popularity_prior=True``). A new item has no ``q``: it gets ``log`` of the
mean ``q`` of the known items (an average item), so only its content decides its rank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ecmm.device import get_device, single_thread
from ecmm.losses import clip_loss
from ecmm.recsys.interactions import Interactions
from ecmm.recsys.models import Recommender
from ecmm.train import fit

__all__ = ["TwoTowerConfig", "TwoTowerNetwork", "HybridTwoTowerRecommender", "next_item_examples"]


@dataclass(frozen=True)
class TwoTowerConfig:
    """Hyper-parameters of the hybrid two-tower model."""

    dimension: int = 64  # width of both towers' output
    id_dropout: float = 0.5  # probability of hiding an item's ID embedding in a training step
    history_length: int = 20  # most recent items the user tower reads
    num_epochs: int = 10  # passes over the (history, next item) pairs
    batch_size: int = 512  # in-batch negatives per positive = batch_size - 1
    learning_rate: float = 3e-3  # Adam
    weight_decay: float = 1e-5  # Adam L2
    initial_temperature: float = 0.1  # softmax temperature at start (learned afterwards)
    popularity_prior: bool = True  # add back log q(item) at inference (see module docstring)
    seed: int = 0  # initialisation and batch order

    def __post_init__(self) -> None:
        if not 0.0 <= self.id_dropout <= 1.0:
            raise ValueError(f"id_dropout must lie in [0, 1]; got {self.id_dropout}")
        if min(self.dimension, self.history_length, self.num_epochs, self.batch_size) < 1:
            raise ValueError("dimension, history_length, num_epochs and batch_size must be >= 1")


class TwoTowerNetwork(nn.Module):
    """The two towers. Shapes: content ``(N, Dc)`` → item vectors ``(N, d)``; histories ``(B, L)`` → ``(B, d)``."""

    def __init__(self, content: torch.Tensor, config: TwoTowerConfig) -> None:
        super().__init__()
        self.register_buffer("content", content)  # (N, Dc), fixed transferred embeddings
        width = config.dimension
        self.content_mlp = nn.Sequential(nn.Linear(content.shape[1], width), nn.GELU(), nn.Linear(width, width))
        self.id_embedding = nn.Embedding(content.shape[0], width)
        nn.init.normal_(self.id_embedding.weight, std=0.01)
        self.user_mlp = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, width))
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1.0 / config.initial_temperature))))

    def item_vectors(self, id_mask: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` normalised item vectors; ``id_mask`` ``(N,)`` is 1 where the ID is used."""
        return F.normalize(self.content_mlp(self.content) + id_mask[:, None] * self.id_embedding.weight, dim=-1)

    def user_vectors(self, items: torch.Tensor, history: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` normalised user vectors.

        Args:
            items: ``(N, d)`` item vectors from :meth:`item_vectors`.
            history: ``(B, L)`` item indices, most recent last, left-aligned (padding after).
            weights: ``(B, L)`` event weights, 0 for padding.
        """
        pooled = (weights[..., None] * items[history]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)  # (B, d)
        last_position = (weights > 0).sum(1).clamp_min(1) - 1  # (B,)
        last = items[history.gather(1, last_position[:, None]).squeeze(1)]  # (B, d): the most recent item
        return F.normalize(pooled + last + self.user_mlp(torch.cat([pooled, last], dim=-1)), dim=-1)



def _pad(histories: list[np.ndarray], weights: list[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = np.zeros((len(histories), length), dtype=np.int64)
    mass = np.zeros((len(histories), length), dtype=np.float32)
    for row, (history, weight) in enumerate(zip(histories, weights)):
        history, weight = history[-length:], weight[-length:]
        items[row, : len(history)], mass[row, : len(history)] = history, weight
    return torch.as_tensor(items), torch.as_tensor(mass)


def next_item_examples(train: Interactions, history_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(history, next item) training pairs from every user's chronological distinct items.

    Args:
        train: training interactions.
        history_length: keep at most this many previous items.

    Returns:
        ``histories (P, L)`` item indices, ``weights (P, L)`` event weights (0 = padding),
        ``targets (P,)`` the next new item the user touched.
    """
    histories, weights, targets = [], [], []
    for items, mass in zip(train.histories(), train.history_weights()):
        distinct, first = np.unique(items, return_index=True)
        order = np.argsort(first)
        items_in_order = distinct[order]
        strongest = np.array([mass[items == item].max() for item in items_in_order], dtype=np.float32)
        for t in range(1, len(items_in_order)):
            histories.append(items_in_order[:t])
            weights.append(strongest[:t])
            targets.append(items_in_order[t])
    if not targets:
        raise ValueError("no user has two distinct training items: simulate more events")
    padded, mass = _pad(histories, weights, history_length)
    return padded, mass, torch.as_tensor(np.array(targets, dtype=np.int64))


class _NextItemBatches:
    """One pass of shuffled next-item batches; every batch draws a fresh item-ID dropout mask.

    Yields ``(seen * keep (N,), histories (B, L), weights (B, L), targets (B,))``.
    """

    def __init__(self, histories: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor,
                 config: TwoTowerConfig, generator: torch.Generator) -> None:
        self.histories, self.weights, self.targets, self.seen = histories, weights, targets, seen
        self.config, self.generator = config, generator

    def __len__(self) -> int:
        return -(-len(self.targets) // self.config.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.targets), generator=self.generator)
        for start in range(0, len(order), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            keep = (torch.rand(self.seen.shape, generator=self.generator).to(self.seen.device)
                    >= self.config.id_dropout).float()
            yield self.seen * keep, self.histories[batch], self.weights[batch], self.targets[batch]


def _next_item_loss(network: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The CLIP loss between user vectors and their next items (items sharing an id are positives)."""
    seen, histories, weights, target = batch
    items = network.item_vectors(seen)  # (N, d)
    users = network.user_vectors(items, histories, weights)  # (B, d)
    return clip_loss(users, items[target], network.logit_scale.exp(), caption_ids=target)


class HybridTwoTowerRecommender(Recommender):
    """Hybrid two-tower recommender (see the module docstring); same ``fit``/``recommend`` as the rest."""

    name = "hybrid"

    def __init__(self, item_embeddings: np.ndarray, config: TwoTowerConfig | None = None, device=None,
                 progress: bool = True) -> None:
        super().__init__()
        self.progress = progress
        embeddings = np.asarray(item_embeddings, dtype=np.float32)
        if embeddings.ndim != 2:
            raise ValueError(f"item_embeddings must be (num_items, D); got shape {embeddings.shape}")
        self.item_embeddings = embeddings
        self.config = config or TwoTowerConfig()
        self.device = device

    def _fit(self, train: Interactions) -> dict[str, list[float]]:
        with single_thread():
            return self._train(train)

    def _train(self, train: Interactions) -> dict[str, list[float]]:
        if self.item_embeddings.shape[0] != train.num_items:
            raise ValueError(f"item_embeddings has {self.item_embeddings.shape[0]} rows, the catalog {train.num_items}")
        config, device = self.config, get_device(self.device)
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        self.network = TwoTowerNetwork(torch.as_tensor(self.item_embeddings), config).to(device)
        histories, weights, targets = next_item_examples(train, config.history_length)
        seen = torch.as_tensor(self.item_seen, dtype=torch.float32, device=device)  # (N,)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        batches = _NextItemBatches(histories, weights, targets, seen, config, generator)
        fitted = fit(self.network, batches, loss_fn=_next_item_loss, epochs=config.num_epochs, optimizer=optimizer,
                     device=device, progress=self.progress, description="two-tower")
        history: dict[str, list[float]] = {"loss": fitted["train_loss"]}
        self.network.eval()
        with torch.no_grad():
            self.inference_items = self.network.item_vectors(seen)  # IDs only where they were learned
            self.logit_scale = float(self.network.logit_scale.exp())
        counts = np.bincount(targets.numpy(), minlength=train.num_items).astype(np.float64)
        log_q = np.log(np.maximum(counts, 1.0) / counts.sum())
        log_q[counts == 0] = np.log(np.exp(log_q[counts > 0]).mean())  # an average known item
        self.log_prior = log_q if self.config.popularity_prior else np.zeros(train.num_items)
        return history

    def score(self, histories, weights=None, users=None) -> np.ndarray:
        self._require_fit()
        if weights is None:
            weights = [np.ones(len(history), dtype=np.float32) for history in histories]
        padded, mass = _pad(list(histories), list(weights), self.config.history_length)
        with torch.no_grad():
            device = self.inference_items.device
            vectors = self.network.user_vectors(self.inference_items, padded.to(device), mass.to(device))
            scores = self.logit_scale * (vectors @ self.inference_items.T).double().cpu().numpy()
        scores = scores + self.log_prior[None, :]
        return self._popularity_fallback(scores, histories)

    def config_dict(self) -> dict:
        """The config as a plain dict, to save beside trained weights."""
        return asdict(self.config)
