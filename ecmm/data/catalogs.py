"""Catalog sources: one interface for the offline shop, the hub's fashion data and your own folder.

Every source gives the same thing, so nothing downstream knows which one it holds:

- :meth:`CatalogSource.table`: one row per SKU with ``CATALOG_COLUMNS`` (``sku_id, title,
  product_type, category, colour, price, description, split, emoji``) plus its own attribute
  columns (hub: ``gender``, ``usage``); splits follow one rule (:func:`ecmm.data.catalog.split_table`);
- :meth:`CatalogSource.photos`: a :class:`PhotoSet`, a torch ``Dataset`` that decodes photos on
  access. ``photos[i]`` is uint8 ``(P, H, W, 3)``, ``photos[rows, k]`` is ``(n, H, W, 3)``, and
  ``photos.view(k)`` is a lazy ``(N, H, W, 3)`` sequence that code can slice in batches, so no
  source needs the whole photo array in memory;
- :meth:`CatalogSource.interactions`: the shop's own event log (``user_id, sku_id, event,
  timestamp``) or None, in which case shoppers are simulated over the catalog;
- :meth:`CatalogSource.describe`: one line for people ("offline shop ...: 1,310 products").

:func:`open_catalog` chooses the source: ``catalog=path/to/catalog.csv`` (or ``ECMM_CATALOG``)
is a folder catalog, else ``profile="hub"`` (or ``ECMM_PROFILE=hub``) the hub's fashion data,
else the offline shop. :func:`model_spec` reads the model the same way (``ECMM_MODEL``).
:func:`catalog_scope` names the cache folder of everything built from one (catalog, model).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

__all__ = ["CATALOG_ENV", "MODEL_ENV", "DEFAULT_MODEL", "IMAGE_SIZE", "CatalogSource", "PhotoSet", "ArrayPhotos",
           "PhotoView", "OfflineSource", "open_catalog", "load_catalog", "load_photos", "model_spec", "catalog_scope", "photo_loader", "pad_photos"]

_PHOTO_NAMES = ("IMAGE_SIZE", "ArrayPhotos", "PhotoSet", "PhotoView", "pad_photos", "photo_loader")


def __getattr__(name: str) -> Any:
    """The photo types re-exported from :mod:`ecmm.data.photos`, imported on first use (torch)."""
    if name in _PHOTO_NAMES:
        from ecmm.data import photos

        return getattr(photos, name)
    raise AttributeError(f"module 'ecmm.data.catalogs' has no attribute {name!r}")


CATALOG_ENV = "ECMM_CATALOG"  # path to a folder catalog's CSV
MODEL_ENV = "ECMM_MODEL"  # "ecmm-clip", "<open_clip name>[:<tag or checkpoint>]", "<config.json>:<checkpoint>"
DEFAULT_MODEL = "ecmm-clip"


@runtime_checkable
class CatalogSource(Protocol):
    """A shop catalog: its table, its photos and (maybe) its event log.

    Attributes:
        name: ``"offline"``, ``"hub"`` or ``"folder"`` (for people and cache folders only).
        fingerprint: 16 hex characters that change when the table or the photos change.
        attribute_columns: extra attribute columns of the table (hub: ``("gender", "usage")``).
    """

    name: str
    fingerprint: str
    attribute_columns: tuple[str, ...]

    def table(self) -> pd.DataFrame:
        """One row per SKU: ``CATALOG_COLUMNS`` + ``attribute_columns``; row i is ``photos()[i]``."""

    def photos(self) -> PhotoSet:
        """The SKUs' photos, decoded on access: ``(N, P, H, W, 3)`` uint8."""

    def interactions(self) -> pd.DataFrame | None:
        """The shop's events (``user_id, sku_id, event, timestamp``) or None (simulate shoppers)."""

    def describe(self) -> str:
        """One line: which catalog, how many products and photos, and its licence where it has one."""


@dataclass(frozen=True)
class OfflineSource:
    """The offline shop: OpenMoji icons rendered with Pillow (prepared by ``ecmm prepare``)."""

    name: str = "offline"
    attribute_columns: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        import json

        from ecmm.artifacts import CARD_NAME, card_fingerprint
        from ecmm.data.store import data_dir, offline_catalog

        card_path = data_dir("catalog") / CARD_NAME
        if not card_path.is_file():
            offline_catalog()  # renders it on first use
        try:  # the card names the files; whether they match it is the loaders' and `prepare --check`'s job
            return card_fingerprint(json.loads(card_path.read_text()))
        except (OSError, ValueError):
            return "unreadable-card"

    def table(self) -> pd.DataFrame:
        from ecmm.data.store import offline_catalog

        return offline_catalog()[0]

    def photos(self) -> PhotoSet:
        from ecmm.data.photos import ArrayPhotos
        from ecmm.data.store import offline_catalog

        return ArrayPhotos(offline_catalog()[1])

    def interactions(self) -> pd.DataFrame | None:
        return None

    def describe(self) -> str:
        from ecmm.data.store import offline_catalog

        photos = offline_catalog()[1]  # (N, photos per SKU, H, W, 3), memory-mapped: no photo is read
        return (f"offline shop (OpenMoji icons, CC BY-SA 4.0, rendered with Pillow): {photos.shape[0]:,} products, "
                f"{photos.shape[1]} photos each")


def open_catalog(profile: str | None = None, catalog: str | Path | None = None, *,
                 skip_bad_images: bool | None = None, max_rows: int | None = None) -> CatalogSource:
    """The catalog to run on.

    Args:
        profile: ``"offline"`` or ``"hub"``; None reads ``ECMM_PROFILE`` (default offline).
        catalog: path to a folder catalog's CSV; None reads ``ECMM_CATALOG``; ``""`` means none.
            It wins over the profile.
        skip_bad_images: folder catalogs: drop SKUs whose images are missing or corrupt (and say how
            many) instead of refusing the catalog; None reads ``ECMM_SKIP_BAD_IMAGES=1``.
        max_rows: hub: read only the first rows (None: 2,000 in quick mode, else all).

    Returns:
        A :class:`CatalogSource`.

    Raises:
        ecmm.data.folder.CatalogError: a folder catalog is malformed (the message names the row
            and file, and what to do).
    """
    from ecmm.config import get_settings

    if catalog is None:
        catalog = os.environ.get(CATALOG_ENV, "")
    if str(catalog).strip():
        from ecmm.data.folder import FolderSource

        if skip_bad_images is None:
            skip_bad_images = os.environ.get("ECMM_SKIP_BAD_IMAGES", "0") == "1"
        return FolderSource.open(Path(catalog).expanduser(), skip_bad_images=skip_bad_images)
    settings = get_settings(profile)
    if settings.profile == "hub":
        from ecmm.data.hub import HubSource

        return HubSource.open(max_rows=max_rows if max_rows is not None else (2000 if settings.quick else None))
    return OfflineSource()


def model_spec(model: str | None = None) -> str:
    """The model to run: ``model`` or ``ECMM_MODEL`` (default ``"ecmm-clip"``)."""
    spec = model if model else os.environ.get(MODEL_ENV, "")
    return spec.strip() or DEFAULT_MODEL


def catalog_scope(source: CatalogSource, model: str | None = None) -> str:
    """The cache sub-folder of what is built from ``(source, model)``: ``""`` for the offline shop
    with ``ecmm-clip`` (the default cache layout), else ``"shops/<source>-<fingerprint>-<model>"``."""
    spec = model_spec(model)
    if source.name == "offline" and spec == DEFAULT_MODEL:
        return ""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(spec.split(":")[0]).stem)[:40]
    digest = hashlib.sha256(spec.encode()).hexdigest()[:8]
    return f"shops/{source.name}-{source.fingerprint[:12]}-{readable}-{digest}"


def load_catalog(profile: str | None = None) -> pd.DataFrame:
    """The table of the catalog :func:`ecmm.data.catalogs.open_catalog` chooses (prefer that).

    Args:
        profile: "offline" or "hub"; None reads ``ECMM_PROFILE`` (a folder catalog is not read here).

    Returns:
        DataFrame with columns sku_id, title, product_type, category, colour, price,
        description, split, emoji. Row i matches ``load_photos()[i]``.
    """
    return open_catalog(profile, catalog="").table()


def load_photos(profile: str | None = None) -> Any:
    """Photos aligned with :func:`load_catalog` rows (prefer ``open_catalog(...).photos()``).

    Returns:
        uint8 ``(num_skus, photos_per_sku, 128, 128, 3)``: the memory-mapped array of the offline
        shop, a lazy :class:`ecmm.data.photos.PhotoSet` for other catalogs.
    """
    photos = open_catalog(profile, catalog="").photos()
    return getattr(photos, "array", photos)
