"""One call that builds what notebook 06, ``ecmm recommend`` and the benchmark share.

:func:`build_recsys_data` loads the catalog, simulates (offline) or reads (hub: a real
interactions table) the log, splits it by time and embeds the items; :func:`build_models` and
:func:`fit_models` make the five compared recommenders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ecmm.config import get_settings
from ecmm.recsys.embeddings import item_content_embeddings, resolve_content_source
from ecmm.recsys.interactions import RecsysSplit, time_split
from ecmm.recsys.models import (
    BPRRecommender,
    ContentRecommender,
    CooccurrenceRecommender,
    PopularityRecommender,
    Recommender,
)
from ecmm.recsys.simulator import SimulatorConfig, quick_config, simulate_interactions
from ecmm.recsys.two_tower import HybridTwoTowerRecommender, TwoTowerConfig

__all__ = ["MODEL_NAMES", "RecsysData", "load_interactions", "build_recsys_data", "build_models", "fit_models"]

MODEL_NAMES: tuple[str, ...] = ("popularity", "cooccurrence", "bpr", "content", "hybrid")


@dataclass(frozen=True)
class RecsysData:
    """Everything a recommender experiment needs.

    Attributes:
        catalog: the shop catalog (row = item index).
        table: the raw interactions table.
        split: its time split.
        item_embeddings: ``(N, D)`` transferred content embeddings.
        content_source: ``"clip"`` or ``"text"``: which encoder made them.
        quick: whether quick-mode sizes were used.
    """

    catalog: pd.DataFrame  # one row per SKU
    table: pd.DataFrame  # user_id, sku_id, event, timestamp (+ session_id when simulated)
    split: RecsysSplit  # past / future
    item_embeddings: np.ndarray  # (N, D), unit rows
    content_source: str  # "clip" or "text"
    quick: bool  # quick-mode sizes


def load_interactions(path: str | Path) -> pd.DataFrame:
    """Read a real interactions table (CSV or parquet with ``user_id, sku_id, event, timestamp``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no interactions file at {path}: give a CSV or parquet file")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def build_recsys_data(profile: str | None = None, quick: bool | None = None, seed: int = 0,
                      source: str = "text", interactions: pd.DataFrame | None = None,
                      catalog: pd.DataFrame | None = None, photos: np.ndarray | None = None,
                      simulator: SimulatorConfig | None = None, progress: bool = True) -> RecsysData:
    """Catalog, interaction log, time split and content embeddings.

    Args:
        profile: "offline" or "hub" (None reads ``ECMM_PROFILE``).
        quick: quick-mode sizes (None reads ``ECMM_QUICK``).
        seed: simulator seed.
        source: content embeddings: "text" (MiniLM, the default: the same on every machine), "clip"
            (the shop CLIP model of notebook 04) or "auto" (CLIP when it is cached).
        interactions: a real log (hub path); None simulates one over the catalog.
        catalog: a catalog to use instead of ``load_catalog(profile)`` (tests, fixtures).
        photos: its photos (needed for CLIP embeddings; None loads them when needed).
        simulator: simulator config (None: defaults, shrunk in quick mode).
        progress: show tqdm bars.

    Returns:
        A :class:`RecsysData`.
    """
    settings = get_settings(profile=profile, quick=quick)
    if catalog is None:
        from ecmm.data import load_catalog

        catalog = load_catalog(profile=settings.profile)
    source = resolve_content_source(source)
    if source == "clip" and photos is None:
        from ecmm.data import load_photos

        photos = load_photos(profile=settings.profile)
    if interactions is None:
        config = replace(simulator or SimulatorConfig(), seed=seed)
        config = quick_config(config) if settings.quick and simulator is None else config
        table = simulate_interactions(catalog, config, progress=progress)
        split_time = table["timestamp"].min().normalize() + pd.Timedelta(days=config.launch_day)
        split = time_split(table, catalog, split_time=split_time)
    else:
        table = interactions
        split = time_split(table, catalog)
    embeddings = item_content_embeddings(catalog, photos, source=source, progress=progress)
    return RecsysData(catalog=catalog, table=table, split=split, item_embeddings=embeddings,
                      content_source=source, quick=settings.quick)


def build_models(item_embeddings: np.ndarray, quick: bool = False, seed: int = 0,
                 names: tuple[str, ...] = MODEL_NAMES, device=None, progress: bool = True) -> dict[str, Recommender]:
    """The compared recommenders, unfitted, by name (see :data:`MODEL_NAMES`).

    Args:
        item_embeddings: ``(N, D)`` content embeddings for the content and hybrid models.
        quick: fewer epochs.
        seed: seeds of the trained models.
        names: which models to build.
        device: device of the two-tower model.
        progress: show tqdm bars while training.

    Returns:
        ``{name: model}`` in the order of ``names``.
    """
    unknown = set(names) - set(MODEL_NAMES)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}: use names from {MODEL_NAMES}")
    factories = {
        "popularity": lambda: PopularityRecommender(),
        "cooccurrence": lambda: CooccurrenceRecommender(),
        "bpr": lambda: BPRRecommender(num_epochs=15 if quick else 30, seed=seed, progress=progress),
        "content": lambda: ContentRecommender(item_embeddings),
        "hybrid": lambda: HybridTwoTowerRecommender(
            item_embeddings, TwoTowerConfig(num_epochs=8 if quick else 10, seed=seed), device=device,
            progress=progress),
    }
    return {name: factories[name]() for name in names}


def fit_models(models: dict[str, Recommender], split: RecsysSplit) -> dict[str, dict]:
    """Fit every model on ``split.train``.

    Returns:
        ``{name: {"seconds": fit time, "history": the model's history dict}}``.
    """
    report = {}
    for name, model in models.items():
        start = time.perf_counter()
        history = model.fit(split.train)
        report[name] = {"seconds": time.perf_counter() - start, "history": history}
    return report
