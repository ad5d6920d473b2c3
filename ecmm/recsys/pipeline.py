"""One call that builds what notebook 06, ``ecmm recommend`` and the benchmark share.

:func:`build_recsys_data` reads the catalog from a catalog source
(:func:`ecmm.data.catalogs.open_catalog`), takes the shop's own event log when the source has one
(``source.interactions()``) or simulates shoppers over the catalog otherwise, splits the log by
time and embeds the items; :func:`build_models` and :func:`fit_models` make the five compared
recommenders. :func:`build_fitted_recommender` is the registry's builder of the fitted hybrid
model (``fitted_recommender``), so ``ecmm recommend`` loads it instead of training it each run
(:func:`load_fitted_recommender`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecmm.config import get_settings
from ecmm.recsys.embeddings import item_content_embeddings, resolve_content_source, shop_model_folder
from ecmm.recsys.interactions import RecsysSplit, split_from_arrays, split_to_arrays, time_split
from ecmm.recsys.models import (
    BPRRecommender,
    ContentRecommender,
    CooccurrenceRecommender,
    PopularityRecommender,
    Recommender,
)
from ecmm.recsys.simulator import SimulatorConfig, quick_config, simulate_interactions
from ecmm.recsys.two_tower import HybridTwoTowerRecommender, TwoTowerConfig, TwoTowerNetwork

__all__ = ["MODEL_NAMES", "RECIPE_VERSION", "SIMULATED_LOG", "RecsysData", "load_interactions", "build_recsys_data",
           "build_models", "fit_models", "fitted_recommender_key", "build_fitted_recommender",
           "load_fitted_recommender"]

MODEL_NAMES: tuple[str, ...] = ("popularity", "cooccurrence", "bpr", "content", "hybrid")
RECIPE_VERSION = 1  # of the fitted_recommender asset
SIMULATED_LOG = "simulated shoppers over the catalog"  # RecsysData.log_origin without a real log
SPLIT_FILE, WEIGHTS_FILE, PRIOR_FILE = "split.npz", "two_tower.safetensors", "log_prior.npy"


@dataclass(frozen=True)
class RecsysData:
    """Everything a recommender experiment needs.

    Attributes:
        catalog: the shop catalog (row = item index).
        table: the raw interactions table (None when loaded from a fitted recommender's cache).
        split: its time split.
        item_embeddings: ``(N, D)`` transferred content embeddings.
        content_source: ``"clip"`` or ``"text"``: which encoder made them.
        quick: whether quick-mode sizes were used.
        log_origin: where the log comes from (:data:`SIMULATED_LOG` or the shop's own event log).
    """

    catalog: pd.DataFrame  # one row per SKU
    table: pd.DataFrame | None  # user_id, sku_id, event, timestamp (+ session_id when simulated)
    split: RecsysSplit  # past / future
    item_embeddings: np.ndarray  # (N, D), unit rows
    content_source: str  # "clip" or "text"
    quick: bool  # quick-mode sizes
    log_origin: str = SIMULATED_LOG  # which log the split was made from


def load_interactions(path: str | Path) -> pd.DataFrame:
    """Read a real interactions table (CSV or parquet with ``user_id, sku_id, event, timestamp``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no interactions file at {path}: give a CSV or parquet file")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def build_recsys_data(profile: str | None = None, quick: bool | None = None, seed: int = 0,
                      content: str = "text", interactions: pd.DataFrame | None = None,
                      catalog: pd.DataFrame | None = None, photos: Any = None,
                      simulator: SimulatorConfig | None = None, progress: bool = True, *,
                      source: Any = None, model: Any = None) -> RecsysData:
    """Catalog, interaction log, time split and content embeddings.

    Args:
        profile: opens the catalog when ``source`` is None (``open_catalog(profile)``).
        quick: quick-mode sizes (None reads ``ECMM_QUICK``).
        seed: simulator seed.
        content: content embeddings: "text" (MiniLM, the default: the same on every machine), "clip"
            (the CLIP model fine-tuned on the catalog, notebook 04) or "auto" (CLIP when it is cached).
        interactions: an event log to use; None takes ``source.interactions()``, and when the
            source has none, simulates shoppers over the catalog.
        catalog: a catalog to use instead of ``source.table()`` (tests, fixtures).
        photos: its photos, a :class:`~ecmm.data.catalogs.PhotoSet` or a ``(N, P, H, W, 3)`` array
            (for CLIP embeddings; None: ``source.photos()``, read in batches).
        simulator: simulator config (None: defaults, shrunk in quick mode).
        progress: show progress bars and say which log is used.
        source: a catalog source (None: ``open_catalog(profile)``).
        model: for ``content="clip"``: a CLIP-like model to use as it is, or a model spec (None:
            ``model_spec()``) whose fine-tuned shop model (the registry's ``shop_clip`` of this
            catalog and model) is loaded; it must be built.

    Returns:
        A :class:`RecsysData`.
    """
    settings = get_settings(quick=quick)
    if source is None and (catalog is None or interactions is None):
        from ecmm.data.catalogs import open_catalog

        source = open_catalog(profile)
    catalog = source.table() if catalog is None else catalog
    if content != "text" and not hasattr(model, "encode_image"):  # a spec (or None): the shop model built from it
        folder = shop_model_folder(source, model)
        content = resolve_content_source(content, folder)
        if content == "clip":
            from ecmm.models.clip import load_clip_model

            model = load_clip_model(folder)
    content = resolve_content_source(content)
    if content == "clip" and photos is None:
        photos = source.photos()
    if interactions is None and source is not None:
        interactions = source.interactions()
    if interactions is None:
        config = replace(simulator or SimulatorConfig(), seed=seed)
        config = quick_config(config) if settings.quick and simulator is None else config
        table = simulate_interactions(catalog, config, progress=progress)
        split_time = table["timestamp"].min().normalize() + pd.Timedelta(days=config.launch_day)
        split = time_split(table, catalog, split_time=split_time)
        origin = SIMULATED_LOG
    else:
        table = interactions
        split = time_split(table, catalog)
        origin = f"the shop's own event log ({len(table):,} events)"
    if progress:
        print(f"interactions: {origin}; {split.train.num_users:,} users, {len(catalog):,} items")
    embeddings = item_content_embeddings(catalog, photos, source=content, progress=progress, model=model)
    return RecsysData(catalog=catalog, table=table, split=split, item_embeddings=embeddings,
                      content_source=content, quick=settings.quick, log_origin=origin)


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


def fitted_recommender_key(source: Any) -> dict:
    """What a fitted recommender is built for beyond its recipe: the catalog, the seed, quick mode."""
    settings = get_settings()
    return {"catalog": source.fingerprint, "seed": settings.seed, "quick": settings.quick}


def build_fitted_recommender(folder: str | Path, progress: bool = True, *, source: Any = None) -> None:
    """The registry's builder: fit the hybrid two-tower model on the shop's log and save it in ``folder``.

    Writes ``split.npz`` (the time split as index arrays), ``two_tower.safetensors`` (the network,
    content embeddings ``(N, D)`` included), ``log_prior.npy`` ``(N,)`` and a card with the recipe and
    what it was fitted on (catalog fingerprint, seed, quick mode, log origin).
    """
    from safetensors.torch import save_file

    from ecmm.artifacts import write_artifact

    if source is None:
        from ecmm.data.catalogs import open_catalog

        source = open_catalog()
    settings = get_settings()
    data = build_recsys_data(seed=settings.seed, progress=progress, source=source)
    model = build_models(data.item_embeddings, quick=data.quick, seed=settings.seed, names=("hybrid",),
                         progress=progress)["hybrid"]
    start = time.perf_counter()
    history = model.fit(data.split.train)
    seconds = time.perf_counter() - start

    def write_files(target: Path) -> None:
        np.savez(target / SPLIT_FILE, **split_to_arrays(data.split))
        save_file({key: value.detach().cpu().contiguous() for key, value in model.network.state_dict().items()},
                  str(target / WEIGHTS_FILE))
        np.save(target / PRIOR_FILE, np.asarray(model.log_prior, dtype=np.float64))

    write_artifact(Path(folder), write_files, {
        "asset": "fitted_recommender",
        "recipe": {"version": RECIPE_VERSION, "model": "hybrid", **model.config_dict()},
        "data": {**fitted_recommender_key(source), "log_origin": data.log_origin,
                 "content_source": data.content_source, "catalog_name": source.describe(),
                 "users": int(data.split.train.num_users), "items": int(data.split.train.num_items),
                 "train_events": int(data.split.train.user_index.size),
                 "test_events": int(data.split.test.user_index.size)},
        "metrics": {"fit_seconds": round(seconds, 2),
                    "final_loss": float(history["loss"][-1]) if history.get("loss") else None}})


def load_fitted_recommender(folder: str | Path, source: Any) -> tuple[RecsysData, HybridTwoTowerRecommender]:
    """A fitted recommender saved by :func:`build_fitted_recommender`, ready to recommend (no training).

    Args:
        folder: the asset folder (e.g. from ``ensure_asset``; its files are checked against the card).
        source: the catalog source it was fitted on (``source.table()``: row = item index).

    Returns:
        ``(data, model)``: ``data.table`` is None (the raw log is not kept); ``data.split`` and the
        model are as they were after fitting.
    """
    import torch
    from safetensors.torch import load_file

    from ecmm.artifacts import ArtifactError, read_card

    folder = Path(folder)
    card = read_card(folder)
    catalog = source.table()
    try:
        with np.load(folder / SPLIT_FILE, allow_pickle=False) as arrays:
            split = split_from_arrays(dict(arrays))
        state = load_file(str(folder / WEIGHTS_FILE))
        log_prior = np.load(folder / PRIOR_FILE, allow_pickle=False)
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(folder, f"the fitted recommender does not load ({error.__class__.__name__})") from None
    if split.train.num_items != len(catalog):
        raise ArtifactError(folder, f"fitted on {split.train.num_items} items, the catalog has {len(catalog)}")
    recipe = {key: value for key, value in card["recipe"].items() if key in TwoTowerConfig.__dataclass_fields__}
    config = TwoTowerConfig(**recipe)
    content = state["content"]
    model = HybridTwoTowerRecommender(content.numpy(), config, device="cpu", progress=False)
    model.train, model.histories = split.train, split.train.histories()
    model.history_weights, model.item_seen = split.train.history_weights(), split.train.item_counts() > 0
    model.network = TwoTowerNetwork(content, config)
    model.network.load_state_dict(state)
    model.network.eval()
    with torch.no_grad():
        model.inference_items = model.network.item_vectors(torch.as_tensor(model.item_seen, dtype=torch.float32))
        model.logit_scale = float(model.network.logit_scale.exp())
    model.log_prior = log_prior
    data = RecsysData(catalog=catalog, table=None, split=split, item_embeddings=content.numpy(),
                      content_source=card["data"].get("content_source", "text"), quick=bool(card["data"].get("quick")),
                      log_origin=card["data"].get("log_origin", SIMULATED_LOG))
    return data, model
