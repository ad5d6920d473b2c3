"""Transfer + reinforcement learning: a contextual bandit that recommends online.

Each round a shopper arrives, the policy shows one of a few candidate items and learns from whether
the shopper buys. :class:`LinUCB` is the learner; its context is either

- :func:`similarity_features`: **transferred** features: how close each candidate is to the
  shopper's past items in every embedding space of a pretrained model (image, text, fused), plus
  where the item sits in that space (a few principal components). Twelve numbers that mean the
  same thing for every item and every shopper, so what the bandit learns about one item carries
  over to all the others, or
- :func:`id_features`: one-hot item IDs: the bandit must try every item to learn anything.

:class:`ShopBanditEnvironment` draws shoppers with the taste model of :mod:`ecmm.recsys.simulator`
(category and colour Dirichlet tastes, a price band, long-tail appeal) and answers online: reward 1
with probability ``sigmoid(affinity - offset)``. :func:`run_bandits` plays several policies on the
same shoppers, candidates and coin flips and records their cumulative regret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

__all__ = ["LinUCB", "ShopBanditEnvironment", "history_profiles", "id_features", "reduce_dimension",
           "run_bandits", "similarity_features"]

FeatureMap = Callable[[int, np.ndarray], np.ndarray]  # (user, candidates (K,)) -> (K, d)


class LinUCB:
    """LinUCB with one shared linear model (Li et al., 2010, disjoint form with shared weights).

    Ridge estimate ``θ = A⁻¹ b`` with ``A = λI + Σ x xᵀ`` and ``b = Σ r x``; an arm's score is
    ``xᵀθ + α sqrt(xᵀ A⁻¹ x)``. ``A⁻¹`` is updated with the Sherman–Morrison formula.

    Args:
        dimension: feature size ``d``.
        alpha: exploration weight.
        ridge: ``λ``, the prior precision.
    """

    def __init__(self, dimension: int, alpha: float = 1.0, ridge: float = 1.0) -> None:
        if dimension < 1 or alpha < 0 or ridge <= 0:
            raise ValueError(f"need dimension >= 1, alpha >= 0, ridge > 0; got {dimension}, {alpha}, {ridge}")
        self.alpha = float(alpha)
        self.a_inverse = np.eye(dimension) / ridge  # (d, d)
        self.b = np.zeros(dimension)  # (d,)

    @property
    def dimension(self) -> int:
        """Feature size ``d``."""
        return len(self.b)

    @property
    def theta(self) -> np.ndarray:
        """Current ridge estimate ``(d,)``."""
        return self.a_inverse @ self.b

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Upper confidence bounds of ``(K, d)`` arm features -> ``(K,)``."""
        features = np.atleast_2d(features)
        if features.shape[1] != self.dimension:
            raise ValueError(f"features have {features.shape[1]} columns; this bandit expects {self.dimension}")
        width = np.sqrt(((features @ self.a_inverse) * features).sum(axis=1).clip(min=0))  # (K,)
        return features @ self.theta + self.alpha * width

    def select(self, features: np.ndarray) -> int:
        """Index of the arm with the highest upper confidence bound (first on ties)."""
        return int(np.argmax(self.scores(features)))

    def update(self, feature: np.ndarray, reward: float) -> None:
        """Add one observation ``(x (d,), r)``."""
        x = np.asarray(feature, dtype=float)
        a_x = self.a_inverse @ x  # (d,)
        self.a_inverse -= np.outer(a_x, a_x) / (1.0 + x @ a_x)
        self.b += reward * x


def reduce_dimension(embeddings: np.ndarray, dimension: int) -> np.ndarray:
    """Project ``(N, D)`` embeddings on their top ``dimension`` principal components, unit rows."""
    if not 1 <= dimension <= min(embeddings.shape):
        raise ValueError(f"dimension must lie in [1, {min(embeddings.shape)}]; got {dimension}")
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dimension].T  # (N, dimension)
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)


def history_profiles(item_vectors: np.ndarray, histories: np.ndarray) -> np.ndarray:
    """A shopper's profile: the normalised mean of their past items' vectors.

    Args:
        item_vectors: ``(N, D)`` item embeddings; histories: ``(U, H)`` item indices.

    Returns:
        ``(U, D)`` unit rows.
    """
    profiles = item_vectors[histories].mean(axis=1)  # (U, D)
    return profiles / np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-12)


def similarity_features(item_embeddings: Mapping[str, np.ndarray], histories: np.ndarray,
                        item_dimensions: int = 8, position_space: str = "fused") -> FeatureMap:
    """Transferred bandit features: ``[cos(u_m, i_m) for each space m, 1, PCA_k(i)]``.

    Args:
        item_embeddings: ``{space: (N, D) unit rows}`` from a pretrained model (e.g. image, text, fused).
        histories: ``(U, H)`` items each shopper touched before (their profile is the mean).
        item_dimensions: principal components of ``position_space`` appended per item (0: none).
        position_space: which embedding the item position comes from.

    Returns:
        ``features(user, items (K,)) -> (K, len(item_embeddings) + 1 + item_dimensions)``.
    """
    if not item_embeddings:
        raise ValueError("item_embeddings is empty: pass at least one {name: (N, D) array}")
    similarities = [history_profiles(vectors, histories) @ vectors.T for vectors in item_embeddings.values()]  # (U, N)
    position = (reduce_dimension(item_embeddings[position_space], item_dimensions) if item_dimensions
                else np.zeros((similarities[0].shape[1], 0)))  # (N, k)

    def features(user: int, candidates: np.ndarray) -> np.ndarray:
        columns = [similarity[user, candidates][:, None] for similarity in similarities]
        return np.hstack([*columns, np.ones((len(candidates), 1)), position[candidates]])

    return features


def id_features(item_pool: np.ndarray) -> FeatureMap:
    """Bandit features: one-hot item ID over ``item_pool`` -> ``(K, len(item_pool))``.

    A user one-hot would only add a per-user constant, which never changes the chosen item in a
    linear model, so it is left out.
    """
    position = {int(item): index for index, item in enumerate(np.asarray(item_pool))}

    def features(user: int, candidates: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(candidates), len(position)))
        onehot[np.arange(len(candidates)), [position[int(item)] for item in candidates]] = 1.0
        return onehot

    return features


@dataclass(frozen=True)
class ShopBanditEnvironment:
    """Online shoppers with the taste model of :mod:`ecmm.recsys.simulator`.

    Attributes:
        affinity: ``(U, N)`` each user's affinity for each item (category taste, colour taste,
            price band, long-tail appeal; the simulator's formula).
        histories: ``(U, H)`` items each user touched before the bandit starts (drawn ∝ exp(affinity)).
        offset: reward probability is ``sigmoid(affinity - offset)``.
    """

    affinity: np.ndarray  # (U, N)
    histories: np.ndarray  # (U, H) int
    offset: float  # shifts affinities so that only well-matched items are bought

    @classmethod
    def create(cls, catalog: pd.DataFrame, num_users: int = 200, history_length: int = 5,
               simulator_config: Any = None, seed: int = 0) -> "ShopBanditEnvironment":
        """Draw ``num_users`` shoppers over ``catalog`` (simulator defaults unless given a config)."""
        from ecmm.recsys.simulator import SimulatorConfig

        if num_users < 1 or not 1 <= history_length <= len(catalog):
            raise ValueError(f"need num_users >= 1 and 1 <= history_length <= {len(catalog)}")
        config = simulator_config or SimulatorConfig()
        rng = np.random.default_rng(seed)
        categories, category = np.unique(catalog["category"].to_numpy(), return_inverse=True)
        colours, colour = np.unique(catalog["colour"].to_numpy(), return_inverse=True)
        types, product_type = np.unique(catalog["product_type"].to_numpy(), return_inverse=True)
        log_price = np.log(catalog["price"].to_numpy(dtype=float))
        appeal = rng.normal(0, config.appeal_spread, len(types))[product_type] + rng.normal(
            0, config.appeal_spread / 2, len(catalog))
        category_taste = rng.dirichlet(np.full(len(categories), config.category_concentration), num_users)
        colour_taste = rng.dirichlet(np.full(len(colours), config.colour_concentration), num_users)
        price_taste = rng.normal(log_price.mean(), log_price.std(), num_users)
        affinity = (np.log(category_taste[:, category] + 1e-4)
                    + config.colour_weight * np.log(colour_taste[:, colour] + 1e-3)
                    - 0.5 * ((log_price[None] - price_taste[:, None]) / config.price_tolerance) ** 2
                    + config.popularity_weight * appeal[None])  # (U, N)
        weights = np.exp(affinity - affinity.max(axis=1, keepdims=True))
        histories = np.stack([rng.choice(len(catalog), history_length, replace=False, p=w / w.sum())
                              for w in weights])
        return cls(affinity, histories, float(np.quantile(affinity, 0.98)))

    def reward_probability(self, user: int, items: np.ndarray) -> np.ndarray:
        """``(K,)`` probability that ``user`` buys each of ``items``."""
        return 1.0 / (1.0 + np.exp(-(self.affinity[user, items] - self.offset)))


def run_bandits(environment: ShopBanditEnvironment, policies: Mapping[str, Any], num_rounds: int = 2000,
                num_candidates: int = 20, item_pool: np.ndarray | None = None, seed: int = 0,
                progress: bool = True) -> pd.DataFrame:
    """Run policies on the same users, candidates and reward noise; record cumulative regret.

    Args:
        environment: the shoppers.
        policies: ``{name: policy}``; a policy is a :class:`LinUCB` paired with a feature
            function as ``(LinUCB, features)``, or a fixed score array ``(N,)`` (popularity), or
            ``None`` (uniformly random).
        num_rounds: recommendations per policy.
        num_candidates: items offered to choose from in each round.
        item_pool: item indices candidates are drawn from; None uses every item.
        seed: seed of users, candidates, reward noise and the random policy.
        progress: tqdm bar over rounds.

    Returns:
        DataFrame with one row per round: ``round`` and, per policy, its cumulative expected regret
        (best candidate's reward probability minus the chosen one's, summed).
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    pool = np.arange(environment.affinity.shape[1]) if item_pool is None else np.asarray(item_pool)
    if num_candidates > len(pool):
        raise ValueError(f"num_candidates ({num_candidates}) exceeds the item pool ({len(pool)})")
    regret = {name: np.zeros(num_rounds) for name in policies}
    with threadpool_limits(limits=1):  # tiny matrices: one BLAS thread is ~30x faster than many
        for step in tqdm(range(num_rounds), desc="bandit rounds", disable=not progress):
            _play_round(environment, policies, regret, step, pool, num_candidates, rng)
    return pd.DataFrame({"round": np.arange(1, num_rounds + 1),
                         **{name: np.cumsum(values) for name, values in regret.items()}})


def _play_round(environment: ShopBanditEnvironment, policies: Mapping[str, Any], regret: dict[str, np.ndarray],
                step: int, pool: np.ndarray, num_candidates: int, rng: np.random.Generator) -> None:
    """One round: a user arrives, every policy picks a candidate, regret is recorded."""
    user = int(rng.integers(environment.affinity.shape[0]))
    candidates = rng.choice(pool, num_candidates, replace=False)
    probabilities = environment.reward_probability(user, candidates)
    noise, random_pick = rng.random(), int(rng.integers(num_candidates))
    for name, policy in policies.items():
        if policy is None:
            choice = random_pick
        elif isinstance(policy, np.ndarray):
            choice = int(np.argmax(policy[candidates]))
        else:
            bandit, features = policy
            x = features(user, candidates)  # (K, d)
            choice = bandit.select(x)
            bandit.update(x[choice], float(noise < probabilities[choice]))
        regret[name][step] = probabilities.max() - probabilities[choice]
