"""Prepared data on disk: build once into ``ECMM_HOME/data``, then load fast.

Files are written atomically, and each folder holds a ``card.json`` written last: a folder
without its card is an interrupted preparation and is rebuilt, never trusted.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecmm.config import atomic_write, get_settings, write_json

DATA_VERSIONS = {"catalog": 2, "source": 1}  # bump when rendering or splits change: caches rebuild


def data_dir(name: str) -> Path:
    """Folder of one prepared data set, e.g. ``~/.cache/ecmm/data/catalog-v2``."""
    if name not in DATA_VERSIONS:
        raise ValueError(f"Unknown data set {name!r}: choose from {sorted(DATA_VERSIONS)}.")
    return get_settings().home / "data" / f"{name}-v{DATA_VERSIONS[name]}"


def _is_ready(folder: Path) -> bool:
    return (folder / "card.json").is_file()


def _save(folder: Path, frame: pd.DataFrame, images: np.ndarray, card: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "table.json") as temporary:
        frame.to_json(temporary, orient="records", force_ascii=False, indent=1)
    with atomic_write(folder / "images.npy") as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, images)
    write_json(folder / "card.json", {**card, "rows": len(frame), "images_shape": list(images.shape)})


def prepare_catalog(force: bool = False, progress: bool = True) -> Path:
    """Render and cache the offline catalog (idempotent; ``force`` rebuilds). Returns its folder."""
    from ecmm.data.catalog import PHOTOS_PER_SKU, build_catalog

    folder = data_dir("catalog")
    if force or not _is_ready(folder):
        (folder / "card.json").unlink(missing_ok=True)
        frame, photos = build_catalog(seed=0, progress=progress)
        _save(folder, frame, photos, {"seed": 0, "photos_per_sku": PHOTOS_PER_SKU,
                                      "source": "OpenMoji (CC BY-SA 4.0) rendered with Pillow"})
        _load_offline.cache_clear()
    return folder


def prepare_source_corpus(force: bool = False, progress: bool = True) -> Path:
    """Render and cache the source-domain corpus (idempotent). Returns its folder."""
    from ecmm.data.source import build_source_corpus

    folder = data_dir("source")
    if force or not _is_ready(folder):
        (folder / "card.json").unlink(missing_ok=True)
        frame, images = build_source_corpus(progress=progress)
        _save(folder, frame, images, {"source": "every fully-qualified emoji drawn by OpenMoji"})
        _load_offline.cache_clear()
    return folder


@lru_cache(maxsize=2)
def _load_offline(name: str, folder: str) -> tuple[pd.DataFrame, np.ndarray]:
    path = Path(folder)
    frame = pd.read_json(path / "table.json", orient="records", dtype=False)
    images = np.load(path / "images.npy", mmap_mode="r")
    return frame, images


def _offline(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    preparers = {"catalog": prepare_catalog, "source": prepare_source_corpus}
    folder = preparers[name]()
    frame, images = _load_offline(name, str(folder))
    return frame.copy(), images


def load_catalog(profile: str | None = None) -> pd.DataFrame:
    """The shop catalog, one row per SKU (rendered and cached on first use).

    Args:
        profile: "offline" (default) or "hub"; None reads ``ECMM_PROFILE``.

    Returns:
        DataFrame with columns sku_id, title, product_type, category, colour, price,
        description, split, emoji. Row i matches ``load_photos()[i]``.
    """
    settings = get_settings(profile)
    if settings.profile == "hub":
        from ecmm.data.hub import load_fashion_catalog

        return load_fashion_catalog()[0]
    return _offline("catalog")[0]


def load_photos(profile: str | None = None) -> np.ndarray:
    """Product photos aligned with :func:`load_catalog` rows.

    Returns:
        uint8 array (num_skus, photos_per_sku, 128, 128, 3) (read-only, memory-mapped offline).
    """
    settings = get_settings(profile)
    if settings.profile == "hub":
        from ecmm.data.hub import load_fashion_catalog

        return load_fashion_catalog()[1]
    return _offline("catalog")[1]


def load_source_corpus() -> tuple[pd.DataFrame, np.ndarray]:
    """The source-domain pretraining corpus (both profiles use the offline one).

    Returns:
        (DataFrame[emoji, name, group, label], uint8 images (N, 128, 128, 3) on white).
    """
    return _offline("source")


def data_summary() -> dict:
    """Counts of what is prepared, for ``ecmm info`` (reads cards only; builds nothing)."""
    summary = {}
    for name in ("catalog", "source"):
        card_path = data_dir(name) / "card.json"
        summary[name] = json.loads(card_path.read_text()) if card_path.is_file() else None
    return summary
