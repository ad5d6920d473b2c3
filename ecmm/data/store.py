"""Prepared data on disk: build once into ``ECMM_HOME/data``, then load fast.

Each data set is a cached artefact (:mod:`ecmm.artifacts`): ``table.json`` (one row per item),
``images.npy`` (uint8 photos) and a ``card.json`` written last with the size and sha256 of both
files. Loading checks the sizes every time and the sha256s once per process (0.19-0.21 s for the
257,556,608-byte catalog photos), so damaged photos are refused with the repair command, never
used. A folder whose card was written by an older kit (no file list) still loads; ``ecmm
prepare`` rebuilds it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecmm.artifacts import CARD_NAME, REPAIR_COMMAND, ArtifactError, read_card, write_artifact
from ecmm.config import get_settings

__all__ = ["DATA_VERSIONS", "data_dir", "write_catalog", "write_source_corpus", "prepare_catalog",
           "prepare_source_corpus", "offline_catalog", "load_source_corpus", "data_summary"]

DATA_VERSIONS = {"catalog": 2, "source": 1}  # bump when rendering or splits change: caches rebuild
TABLE_NAME, IMAGES_NAME = "table.json", "images.npy"


def data_dir(name: str) -> Path:
    """Folder of one prepared data set, e.g. ``~/.cache/ecmm/data/catalog-v2``."""
    if name not in DATA_VERSIONS:
        raise ValueError(f"Unknown data set {name!r}: choose from {sorted(DATA_VERSIONS)}.")
    return get_settings().home / "data" / f"{name}-v{DATA_VERSIONS[name]}"


def _write(name: str, folder: Path, frame: pd.DataFrame, images: np.ndarray, card: dict) -> Path:
    def write_files(temporary: Path) -> None:
        frame.to_json(temporary / TABLE_NAME, orient="records", force_ascii=False, indent=1)
        with open(temporary / IMAGES_NAME, "wb") as handle:
            np.save(handle, images)

    full_card = {"asset": name, "recipe": {"version": DATA_VERSIONS[name], **card},
                 "rows": len(frame), "images_shape": list(images.shape)}
    written = write_artifact(folder, write_files, full_card)
    _load_folder.cache_clear()
    return written


def write_catalog(folder: str | Path, progress: bool = True, product_types: tuple | None = None) -> Path:
    """Render the offline catalog into ``folder`` (atomically, with a checksummed card).

    Args:
        folder: destination (the registry passes a temporary folder, then swaps it in).
        progress: show a progress bar.
        product_types: render only these :class:`~ecmm.data.catalog.ProductType` (tests); None: all.

    Returns:
        ``folder``.
    """
    from ecmm.data.catalog import PHOTOS_PER_SKU, build_catalog

    frame, photos = build_catalog(seed=0, progress=progress, product_types=product_types)
    card = {"seed": 0, "photos_per_sku": PHOTOS_PER_SKU, "product_types": int(frame["product_type"].nunique()),
            "source": "OpenMoji (CC BY-SA 4.0) rendered with Pillow"}
    return _write("catalog", Path(folder), frame, photos, card)


def write_source_corpus(folder: str | Path, progress: bool = True, limit: int | None = None) -> Path:
    """Render the source-domain corpus into ``folder`` (atomically, with a checksummed card).

    Args:
        folder: destination.
        progress: show a progress bar.
        limit: render only the first ``limit`` emoji (tests); None: all.

    Returns:
        ``folder``.
    """
    from ecmm.data.source import build_source_corpus

    frame, images = build_source_corpus(progress=progress, limit=limit)
    return _write("source", Path(folder), frame, images,
                  {"source": "every fully-qualified emoji drawn by OpenMoji", "limit": limit})


def _prepare(name: str, force: bool, progress: bool) -> Path:
    folder = data_dir(name)
    writer = write_catalog if name == "catalog" else write_source_corpus
    if force:
        return writer(folder, progress=progress)
    try:
        read_card(folder)
    except ArtifactError:  # missing, unfinished or damaged: render again (swapped in when complete)
        writer(folder, progress=progress)
    return folder


def prepare_catalog(force: bool = False, progress: bool = True) -> Path:
    """Render and cache the offline catalog if it is missing or damaged (``force``: always).

    Returns:
        Its folder. The old folder stays in place until the new one is complete.
    """
    return _prepare("catalog", force, progress)


def prepare_source_corpus(force: bool = False, progress: bool = True) -> Path:
    """Render and cache the source-domain corpus if it is missing or damaged (``force``: always).

    Returns:
        Its folder.
    """
    return _prepare("source", force, progress)


@lru_cache(maxsize=4)
def _load_folder(folder: str, card_inode: int, card_mtime: int) -> tuple[pd.DataFrame, np.ndarray]:
    path = Path(folder)
    frame = pd.read_json(path / TABLE_NAME, orient="records", dtype=False)
    images = np.load(path / IMAGES_NAME, mmap_mode="r")
    if len(frame) != images.shape[0]:
        raise ArtifactError(path, f"{TABLE_NAME} has {len(frame)} rows but {IMAGES_NAME} "
                            f"{images.shape[0]} (damaged)")
    return frame, images


def _offline(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """A data set, rendered on first use; a damaged one is refused with the repair command."""
    folder = data_dir(name)
    if not (folder / CARD_NAME).exists() and not folder.exists():
        (write_catalog if name == "catalog" else write_source_corpus)(folder)
    read_card(folder, command=REPAIR_COMMAND)  # sizes always, sha256 once per process
    stat = (folder / CARD_NAME).stat()
    try:
        frame, images = _load_folder(str(folder), stat.st_ino, stat.st_mtime_ns)
    except (ValueError, OSError) as error:  # a legacy folder whose files do not parse
        raise ArtifactError(folder, f"the files do not load ({error.__class__.__name__})") from None
    return frame.copy(), images


def offline_catalog() -> tuple[pd.DataFrame, np.ndarray]:
    """The offline shop as prepared on disk: ``(table, photos)``, rendered on first use.

    Returns:
        (DataFrame with ``CATALOG_COLUMNS``, read-only memory-mapped uint8 photos
        ``(num_skus, photos_per_sku, 128, 128, 3)``).

    Raises:
        ecmm.artifacts.ArtifactError: the cached catalog is damaged (the message names the
            folder and ``ecmm prepare --repair``).
    """
    return _offline("catalog")


def load_source_corpus() -> tuple[pd.DataFrame, np.ndarray]:
    """The source-domain pretraining corpus (both profiles use the offline one).

    Returns:
        (DataFrame[emoji, name, group, label], uint8 images (N, 128, 128, 3) on white).
    """
    return _offline("source")


def data_summary() -> dict:
    """The card of each prepared data set (None when not built or unreadable); builds nothing.

    Sizes are checked, contents are not hashed (cheap, for ``ecmm info``).
    """
    summary = {}
    for name in DATA_VERSIONS:
        try:
            summary[name] = read_card(data_dir(name), verify=False)
        except ArtifactError:
            summary[name] = None
    return summary
