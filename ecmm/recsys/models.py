"""Recommenders with one shape: ``fit(train)`` then ``recommend(user=... or cart=..., k=...)``.

Every model scores a *history* (a sequence of item indices, optionally weighted), so the same
call serves the seed's three scenarios:

- **a user** (history-based): the items the user touched before;
- **a new user**: the one to three items they touched so far;
- **a cart** ("complete the cart"): the items in the cart.

Models that learn only from item IDs (popularity, co-occurrence, BPR) give ``-inf`` to items that
had no training event: they cannot know a new product exists. Content-based models read the
item's transferred embedding instead, so a new product is scored like any other.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ecmm.progress import progress_bar

from ecmm.recsys.interactions import Interactions

__all__ = [
    "Recommender",
    "PopularityRecommender",
    "CooccurrenceRecommender",
    "BPRRecommender",
    "ContentRecommender",
    "RepeatPurchaseRecommender",
]


class Recommender:
    """Base class: stores the training histories and turns scores into top-k lists.

    Subclasses implement ``_fit(train)`` and ``score(histories, weights, users)``.
    """

    name = "base"

    def __init__(self) -> None:
        self.train: Interactions | None = None
        self.histories: list[np.ndarray] = []
        self.history_weights: list[np.ndarray] = []
        self.item_seen = np.zeros(0, dtype=bool)  # (N,) items with any training event, set by fit

    def fit(self, train: Interactions) -> dict[str, list[float]]:
        """Learn from past events.

        Args:
            train: the training :class:`Interactions` of a time split.

        Returns:
            A history dict (e.g. ``{"loss": [...]}``; empty for models without training loop).
        """
        self.train = train
        self.histories = train.histories()
        self.history_weights = train.history_weights()
        self.item_seen = train.item_counts() > 0  # (N,) items with any training event
        return self._fit(train)

    def _fit(self, train: Interactions) -> dict[str, list[float]]:
        return {}

    def _require_fit(self) -> Interactions:
        if self.train is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit(split.train) first")
        return self.train

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None,
              users: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item for each history (higher is better; ``-inf`` = cannot score).

        Args:
            histories: ``B`` arrays of item indices (a user's past, or a cart).
            weights: ``B`` arrays of event weights aligned with ``histories`` (None = all 1).
            users: ``(B,)`` user indices when the histories are known users' (None for carts).

        Returns:
            ``(B, N)`` float array.
        """
        raise NotImplementedError

    def score_users(self, users: Sequence[int]) -> np.ndarray:
        """``(B, N)`` scores for training users, from their own histories."""
        self._require_fit()
        users = np.asarray(users, dtype=np.int64)
        return self.score([self.histories[u] for u in users], [self.history_weights[u] for u in users], users)

    def recommend(self, user: int | None = None, cart: Sequence[int] | None = None, k: int = 10,
                  exclude_seen: bool = True) -> np.ndarray:
        """Top-``k`` item indices for a user (by index) or for a cart (item indices).

        Args:
            user: user index (see ``RecsysSplit.user_index``); give this or ``cart``.
            cart: item indices in the cart ("complete the cart").
            k: how many items.
            exclude_seen: drop items the user already touched (or already in the cart).

        Returns:
            ``(<= k,)`` item indices, best first; items scored ``-inf`` are never returned.
        """
        self._require_fit()
        if (user is None) == (cart is None):
            raise ValueError("give exactly one of user=INDEX or cart=[ITEM, ...]")
        if k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        if user is not None:
            if not 0 <= user < len(self.histories):
                raise ValueError(f"user index {user} is out of range 0..{len(self.histories) - 1}")
            scores, seen = self.score_users([user])[0], self.histories[user]
        else:
            seen = np.asarray(cart, dtype=np.int64)
            if seen.size == 0:
                raise ValueError("the cart is empty: give at least one item")
            scores = self.score([seen])[0]
        scores = scores.astype(np.float64).copy()
        if exclude_seen:
            scores[seen] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        return order[np.isfinite(scores[order])]

    def _popularity_fallback(self, scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Rows with an empty history get the popularity ranking (nothing else is known)."""
        counts = self._require_fit().item_counts().astype(np.float64)
        for row, history in enumerate(histories):
            if len(history) == 0:
                scores[row] = np.where(counts > 0, counts, -np.inf)
        return scores


class PopularityRecommender(Recommender):
    """Most-touched items first (distinct users per item). The same list for everyone."""

    name = "popularity"

    def score(self, histories, weights=None, users=None) -> np.ndarray:
        counts = self._require_fit().item_counts().astype(np.float64)
        row = np.where(counts > 0, counts, -np.inf)
        return np.tile(row, (len(histories), 1))


class CooccurrenceRecommender(Recommender):
    """Item-item collaborative filtering: items touched by the same users as the history.

    ``similarity[i, j] = co-users(i, j) / sqrt(users(i) * users(j))`` (cosine on the binary
    user-item matrix); a history scores item ``j`` by ``sum_i weight_i * similarity[i, j]``. A tiny
    popularity term breaks ties among items never co-touched.
    """

    name = "cooccurrence"

    def _fit(self, train: Interactions) -> dict[str, list[float]]:
        matrix = np.zeros((train.num_users, train.num_items), dtype=np.float32)
        matrix[train.user_index, train.item_index] = 1.0
        co = matrix.T @ matrix  # (N, N) co-users
        counts = np.diag(co).copy()
        norm = np.sqrt(np.maximum(counts, 1.0))
        self.similarity = co / norm[:, None] / norm[None, :]
        np.fill_diagonal(self.similarity, 0.0)
        self.tie_break = 1e-6 * counts / max(counts.max(), 1.0)
        return {}

    def score(self, histories, weights=None, users=None) -> np.ndarray:
        self._require_fit()
        scores = np.zeros((len(histories), self.similarity.shape[0]))
        for row, history in enumerate(histories):
            w = np.ones(len(history)) if weights is None else np.asarray(weights[row], dtype=np.float64)
            if len(history):
                scores[row] = w @ self.similarity[history]
        scores = np.where(self.item_seen, scores + self.tie_break, -np.inf)
        return self._popularity_fallback(scores, histories)


class BPRRecommender(Recommender):
    """Matrix factorisation on IDs with the BPR loss (Rendle et al. 2009); no content at all.

    ``score(u, i) = p_u · q_i + b_i``; trained by mini-batch SGD on (user, touched item, random
    item) triples to minimise ``-log sigmoid(score(u, i+) - score(u, i-)) + L2``. Written in
    numpy with hand-derived gradients (it is small and fast that way). A cart (or an unknown
    user) is folded in as the mean factor of its items.
    """

    name = "bpr"

    def __init__(self, dimension: int = 32, num_epochs: int = 30, learning_rate: float = 0.05,
                 regularisation: float = 1e-3, batch_size: int = 256, seed: int = 0, progress: bool = True) -> None:
        super().__init__()
        self.progress = progress
        self.dimension, self.num_epochs, self.learning_rate = dimension, num_epochs, learning_rate
        self.regularisation, self.batch_size, self.seed = regularisation, batch_size, seed

    def _fit(self, train: Interactions) -> dict[str, list[float]]:
        generator = np.random.default_rng(self.seed)
        pairs = np.unique(np.stack([train.user_index, train.item_index], axis=1), axis=0)  # distinct (u, i)
        seen_items = np.flatnonzero(self.item_seen)
        self.user_factors = 0.1 * generator.standard_normal((train.num_users, self.dimension))
        self.item_factors = 0.1 * generator.standard_normal((train.num_items, self.dimension))
        self.item_bias = np.zeros(train.num_items)
        rate, reg = self.learning_rate, self.regularisation
        history: dict[str, list[float]] = {"loss": []}
        for _ in progress_bar(range(self.num_epochs), desc="BPR epochs", leave=False, disable=not self.progress):
            order, total = generator.permutation(len(pairs)), 0.0
            for start in range(0, len(order), self.batch_size):
                u, positive = pairs[order[start : start + self.batch_size]].T
                negative = seen_items[generator.integers(len(seen_items), size=len(u))]
                p, q_pos, q_neg = self.user_factors[u], self.item_factors[positive], self.item_factors[negative]
                margin = (p * (q_pos - q_neg)).sum(1) + self.item_bias[positive] - self.item_bias[negative]  # (B,)
                total += float(np.logaddexp(0.0, -margin).sum())
                g = 1.0 / (1.0 + np.exp(margin))  # (B,) = sigmoid(-margin) = -dloss/dmargin
                np.add.at(self.user_factors, u, rate * (g[:, None] * (q_pos - q_neg) - reg * p))
                np.add.at(self.item_factors, positive, rate * (g[:, None] * p - reg * q_pos))
                np.add.at(self.item_factors, negative, rate * (-g[:, None] * p - reg * q_neg))
                np.add.at(self.item_bias, positive, rate * g)
                np.add.at(self.item_bias, negative, -rate * g)
            history["loss"].append(total / len(order))
        return history

    def score(self, histories, weights=None, users=None) -> np.ndarray:
        self._require_fit()
        rows = []
        for row, history in enumerate(histories):
            if users is not None:
                rows.append(self.user_factors[int(users[row])])
            else:
                rows.append(self.item_factors[history].mean(0) if len(history) else np.zeros(self.dimension))
        scores = np.stack(rows) @ self.item_factors.T + self.item_bias[None, :]
        scores = np.where(self.item_seen, scores, -np.inf)
        return self._popularity_fallback(scores, histories)


class ContentRecommender(Recommender):
    """Content-based: the user is the weighted mean of the transferred embeddings they touched.

    ``profile = normalise(sum_i weight_i * decay_i * e_i)``, ``score(j) = profile · e_j``, where
    ``e`` are L2-normalised item content embeddings (CLIP image + text, or MiniLM text) and
    ``decay_i = 0.5 ** (age_rank_i / half_life)`` favours recent events. Needs no interaction
    data about item ``j`` at all, so new products are scored like old ones.
    """

    name = "content"

    def __init__(self, item_embeddings: np.ndarray, half_life: float = 10.0) -> None:
        super().__init__()
        embeddings = np.asarray(item_embeddings, dtype=np.float32)
        if embeddings.ndim != 2:
            raise ValueError(f"item_embeddings must be (num_items, D); got shape {embeddings.shape}")
        self.item_embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        self.half_life = half_life

    def _fit(self, train: Interactions) -> dict[str, list[float]]:
        if self.item_embeddings.shape[0] != train.num_items:
            raise ValueError(
                f"item_embeddings has {self.item_embeddings.shape[0]} rows but the catalog has "
                f"{train.num_items} items: embed the same catalog")
        return {}

    def profiles(self, histories, weights=None) -> np.ndarray:
        """``(B, D)`` L2-normalised taste vectors of the histories (zeros when empty)."""
        result = np.zeros((len(histories), self.item_embeddings.shape[1]), dtype=np.float32)
        for row, history in enumerate(histories):
            if len(history) == 0:
                continue
            w = np.ones(len(history)) if weights is None else np.asarray(weights[row], dtype=np.float64)
            decay = 0.5 ** (np.arange(len(history))[::-1] / self.half_life)
            vector = (w * decay) @ self.item_embeddings[history]
            result[row] = vector / max(np.linalg.norm(vector), 1e-12)
        return result

    def score(self, histories, weights=None, users=None) -> np.ndarray:
        self._require_fit()
        scores = self.profiles(histories, weights) @ self.item_embeddings.T
        return self._popularity_fallback(scores.astype(np.float64), histories)


class RepeatPurchaseRecommender(Recommender):
    """History-based "buy it again": items the user bought before, most often and most recently first.

    ``score(i) = purchases(i) + 0.01 * last_purchase_day(i) / max_day``; items never bought by the
    user get ``-inf``. Use ``recommend(user=u, exclude_seen=False)``: repeats are the point.
    """

    name = "repeat"

    def score(self, histories, weights=None, users=None) -> np.ndarray:
        train = self._require_fit()
        scores = np.full((len(histories), train.num_items), -np.inf)
        if users is None:
            return scores
        bought = train.event == "buy"
        last_day = max(float(train.days.max()), 1.0)
        for row, user in enumerate(np.asarray(users)):
            mine = bought & (train.user_index == user)
            items, counts = np.unique(train.item_index[mine], return_counts=True)
            if items.size:
                latest = np.array([train.days[mine][train.item_index[mine] == i].max() for i in items])
                scores[row, items] = counts + 0.01 * latest / last_day
        return scores
