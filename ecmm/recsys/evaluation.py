"""Per-segment evaluation of recommenders on a time split.

Every evaluated user gets one ranked list over the whole catalog (new products included: they
are on sale after the split), with the items they already touched removed. The list is then
scored against different slices of the user's future:

- ``overall``: every user with a future event; relevant = every new item they touched later;
- ``warm``: established users (more than three past events), relevant = later items that had
  training events (the classic setting);
- ``cold_items``: every user who later touched a cold-start item; relevant = those cold items only;
- ``new_users``: users with at most three past events; relevant = every item they touched later.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ecmm.metrics.ranking import (
    catalog_coverage,
    mean_average_precision_at_k,
    ndcg_at_k,
    novelty,
    set_recall_at_k,
    top_k_items,
)
from ecmm.recsys.interactions import RecsysSplit
from ecmm.recsys.models import Recommender

__all__ = ["SEGMENTS", "METRIC_NAMES", "segment_relevance", "evaluate_recommenders", "metrics_by_segment"]

SEGMENTS: tuple[str, ...] = ("warm", "cold_items", "new_users", "overall")
METRIC_NAMES: tuple[str, ...] = ("Recall@10", "nDCG@10", "MAP@10", "coverage", "novelty")


def segment_relevance(split: RecsysSplit) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Evaluated users and, per segment, which of them count and which items are relevant.

    Args:
        split: a :class:`RecsysSplit`.

    Returns:
        ``users (U,)`` user indices with at least one new future item, and
        ``{segment: (row_mask (U,), relevance (U, N))}``.
    """
    train, test = split.train, split.test
    seen = np.zeros((train.num_users, train.num_items), dtype=bool)
    seen[train.user_index, train.item_index] = True
    future = np.zeros_like(seen)
    future[test.user_index, test.item_index] = True
    future &= ~seen
    users = np.flatnonzero(future.any(axis=1))
    relevance = future[users]  # (U, N)
    cold = np.zeros(train.num_items, dtype=bool)
    cold[split.cold_items] = True
    is_new = np.isin(users, split.new_users)
    segments = {
        "overall": (np.ones(len(users), dtype=bool), relevance),
        "warm": (~is_new, relevance & ~cold[None, :]),
        "cold_items": (np.ones(len(users), dtype=bool), relevance & cold[None, :]),
        "new_users": (is_new, relevance),
    }
    return users, {name: (rows & relevant.any(axis=1), relevant) for name, (rows, relevant) in segments.items()}


def _masked_scores(model: Recommender, split: RecsysSplit, users: np.ndarray, batch_size: int = 256) -> np.ndarray:
    blocks = []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = model.score_users(batch).astype(np.float64)
        for row, user in enumerate(batch):
            scores[row, model.histories[user]] = -np.inf  # never re-recommend what they touched
        blocks.append(scores)
    return np.concatenate(blocks)


def evaluate_recommenders(models: Mapping[str, Recommender], split: RecsysSplit, k: int = 10,
                          progress: bool = True) -> dict[str, dict[str, dict[str, float]]]:
    """Recall@k, nDCG@k, MAP@k, catalog coverage and novelty per segment and model.

    Args:
        models: fitted recommenders by name.
        split: the split they were fitted on (``split.train``).
        k: list length.
        progress: tqdm bar over models.

    Returns:
        ``{segment: {model: {"Recall@10", "nDCG@10", "MAP@10", "coverage", "novelty"}}}`` (the
        names carry the actual ``k``); segments are :data:`SEGMENTS`.
    """
    users, segments = segment_relevance(split)
    counts = split.train.item_counts().astype(np.float64)
    popularity = (counts + 1.0) / (split.train.num_users + 1.0)  # smoothed p(user touched item)
    results: dict[str, dict[str, dict[str, float]]] = {segment: {} for segment in SEGMENTS}
    for name, model in tqdm(models.items(), desc="evaluating", disable=not progress):
        scores = _masked_scores(model, split, users)
        top = top_k_items(scores, k)
        top_finite = np.take_along_axis(np.isfinite(scores), top, axis=1)
        for segment in SEGMENTS:
            rows, relevance = segments[segment]
            chosen = top[rows][top_finite[rows]]  # only items the model really ranked
            results[segment][name] = {
                f"Recall@{k}": set_recall_at_k(scores[rows], relevance[rows], k),
                f"nDCG@{k}": ndcg_at_k(scores[rows], relevance[rows], k) if rows.any() else 0.0,
                f"MAP@{k}": mean_average_precision_at_k(scores[rows], relevance[rows], k),
                "coverage": catalog_coverage(chosen, split.train.num_items) if chosen.size else 0.0,
                "novelty": novelty(chosen, popularity) if chosen.size else 0.0,
            }
    return results


def metrics_by_segment(results: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """The nested results of :func:`evaluate_recommenders` as one table (rows: segment, model)."""
    frames = {segment: pd.DataFrame(by_model).T for segment, by_model in results.items()}
    return pd.concat(frames, names=["segment", "model"])
