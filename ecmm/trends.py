"""Where the field is going, measured: incremental transfer, transfer + bandits, multimodal fusion.

1. **Incremental transfer** (:func:`make_waves`, :func:`incremental_finetune`): new products
   arrive in waves; the offline CLIP model is fine-tuned wave after wave with the LiT recipe of
   :mod:`ecmm.finetune` (frozen parts cached once), ``"naive"`` (new wave only), with ``"replay"``
   (plus a sample of earlier waves) or ``"wise"`` (naive, then WiSE-FT interpolation with the
   model before the wave, :func:`ecmm.finetune.interpolate_weights`). Recall is measured on
   every wave's held-out colours after every wave: forgetting made visible.
2. **Transfer + reinforcement learning** (:class:`LinUCB`, :func:`run_bandits`): a contextual
   bandit recommends one of a few candidate items to a user; its context is either the
   transferred embeddings (user = mean of their history's item embeddings) or one-hot item IDs.
   The environment (:class:`ShopBanditEnvironment`) draws shoppers with the same taste model as
   :mod:`ecmm.recsys.simulator` (category and colour Dirichlet tastes, a price band, long-tail
   appeal) and answers online: reward 1 with probability ``sigmoid(affinity - offset)``.
3. **Multimodal fusion** (:func:`modality_embeddings`): image-only, text-only and fused item
   embeddings, evaluated for search and cold-start recommendation in the notebook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ecmm.device import get_device, single_thread

__all__ = [
    "make_waves", "WaveInputs", "cache_wave_inputs", "wave_recall", "incremental_finetune", "average_forgetting", "LinUCB",
    "ShopBanditEnvironment", "embedding_features", "id_features", "reduce_dimension", "run_bandits",
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
                      photos: np.ndarray, batch_size: int = 256) -> WaveInputs:
    """Run the frozen CNN blocks over all photos and MiniLM over all titles, once.

    Returns:
        A :class:`WaveInputs` on CPU.
    """
    model = model.cpu().eval()
    frozen = torch.nn.Sequential(*list(model.backbone.blocks)[:-1])
    flat = photos.reshape(-1, *photos.shape[2:])
    maps = torch.cat([frozen(preprocess(np.array(flat[start:start + batch_size])))  # a writable copy of the slice
                      for start in range(0, len(flat), batch_size)])
    titles = list(catalog["title"])
    features = torch.cat([model.text_features(tokenizer(titles[start:start + batch_size]))
                          for start in range(0, len(titles), batch_size)])
    return WaveInputs(maps.reshape(*photos.shape[:2], *maps.shape[1:]), features)



class _TrainablePart(torch.nn.Module):
    """The parts the LiT recipe trains: the CNN's last block, both projections, the temperature."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.last_block = copy.deepcopy(model.backbone.blocks[-1])
        self.image_projection = copy.deepcopy(model.image_projection)
        self.text_projection = copy.deepcopy(model.text_projection)
        self.logit_scale = torch.nn.Parameter(model.logit_scale.detach().clone())

    def images(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` cached maps -> ``(B, E)`` normalised image embeddings."""
        return F.normalize(self.image_projection(self.last_block(maps).mean(dim=(2, 3))), dim=-1)

    def texts(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, 384)`` cached MiniLM features -> ``(B, E)`` normalised text embeddings."""
        return F.normalize(self.text_projection(features), dim=-1)


def _train_wave(part: _TrainablePart, inputs: WaveInputs, rows: np.ndarray, steps: int, batch_size: int,
                learning_rate: float, seed: int) -> _TrainablePart:
    """Fine-tune a copy of ``part`` on the photos and titles of ``rows`` with the CLIP loss."""
    part = copy.deepcopy(part).train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(part.parameters(), lr=learning_rate, weight_decay=1e-4)
    per_sku = inputs.feature_maps.shape[1]
    rows = torch.as_tensor(rows)
    with single_thread():
        for _ in range(steps):
            _train_step(part, optimizer, inputs, rows, per_sku, batch_size, generator)
    return part.eval()


def _train_step(part: _TrainablePart, optimizer: torch.optim.Optimizer, inputs: WaveInputs, rows: torch.Tensor,
                per_sku: int, batch_size: int, generator: torch.Generator) -> None:
    """One CLIP-loss step on a random batch of (photo, title) pairs of ``rows``."""
    from ecmm.losses import clip_loss

    pick = torch.randint(len(rows) * per_sku, (batch_size,), generator=generator)
    sku = rows[pick // per_sku]  # (B,) catalog rows
    image_emb = part.images(inputs.feature_maps[sku, pick % per_sku])  # (B, E)
    text_emb = part.texts(inputs.title_features[sku])  # (B, E)
    loss = clip_loss(image_emb, text_emb, part.logit_scale.exp().clamp(max=100.0), caption_ids=sku)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


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
        gallery = part.images(inputs.feature_maps[rows, 0])  # (G, E)
        queries = part.texts(inputs.title_features[rows])  # (G, E)
    ranks = first_relevant_ranks((queries @ gallery.T).numpy(), np.eye(len(rows), dtype=bool))
    return [recall_at_k(ranks[waves[rows] == wave], k) for wave in range(int(waves.max()) + 1)]


def incremental_finetune(
    model: Any, inputs: WaveInputs, catalog: pd.DataFrame, waves: np.ndarray, strategy: str = "naive",
    steps: int = 150, batch_size: int = 64, learning_rate: float = 1e-3, replay_fraction: float = 0.3,
    wise_alpha: float = 0.5, k: int = 10, seed: int = 0, progress: bool = False,
) -> pd.DataFrame:
    """Fine-tune wave after wave and measure recall on every wave after each one.

    The recipe is :mod:`ecmm.finetune`'s LiT mode (the CNN's last block, both projections and the
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
    for wave in tqdm(range(int(waves.max()) + 1), desc=f"waves ({strategy})", disable=not progress):
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


# --- 2. transfer + reinforcement learning -------------------------------------------------------
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
    def theta(self) -> np.ndarray:
        """Current ridge estimate ``(d,)``."""
        return self.a_inverse @ self.b

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Upper confidence bounds of ``(K, d)`` arm features -> ``(K,)``."""
        features = np.atleast_2d(features)
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
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dimension].T  # (N, dimension)
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)


def embedding_features(user_vectors: np.ndarray, item_vectors: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
    """Bandit features ``vec([u, 1] ⊗ [i, 1])``: user × item interactions, item, user and bias terms.

    Args:
        user_vectors: ``(U, D)`` user embeddings; item_vectors: ``(N, D)`` item embeddings.

    Returns:
        ``features(user, items (K,)) -> (K, (D + 1)²)``.
    """
    users = np.hstack([user_vectors, np.ones((len(user_vectors), 1))])
    items = np.hstack([item_vectors, np.ones((len(item_vectors), 1))])
    return lambda user, candidates: (users[user][None, :, None] * items[candidates][:, None, :]).reshape(len(candidates), -1)


def id_features(item_pool: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
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


# --- 3. multimodal fusion -------------------------------------------------------------------------
def modality_embeddings(model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray,
                        photo_index: int = 0, device: str | torch.device | None = None) -> dict[str, np.ndarray]:
    """Item embeddings of one CLIP model from the image only, the text only, and both fused.

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers.
        catalog, photos: the shop (``photos`` ``(N, P, H, W, 3)``).
        photo_index: which photo stands for the item (the others can serve as customer snapshots).
        device: where to run; None picks the best available.

    Returns:
        ``{"image", "text", "fused"}`` -> ``(N, E)`` float32 unit rows; text = "title. description";
        fused = normalise(image + text) (late fusion in the shared space).
    """
    from ecmm.models.clip import embed_images, embed_texts

    device = get_device(device)
    image = embed_images(model, preprocess, photos[:, photo_index], device=device)
    texts = (catalog["title"].astype(str) + ". " + catalog["description"].astype(str)).tolist()
    text = embed_texts(model, tokenizer, texts, device=device)
    fused = F.normalize(F.normalize(image, dim=1) + F.normalize(text, dim=1), dim=1)
    return {name: F.normalize(value, dim=1).numpy().astype(np.float32)
            for name, value in (("image", image), ("text", text), ("fused", fused))}
