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
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd
import torch

__all__ = ["CATALOG_ENV", "MODEL_ENV", "DEFAULT_MODEL", "CatalogSource", "PhotoSet", "ArrayPhotos", "PhotoView",
           "OfflineSource", "open_catalog", "model_spec", "catalog_scope", "photo_loader", "pad_photos"]

CATALOG_ENV = "ECMM_CATALOG"  # path to a folder catalog's CSV
MODEL_ENV = "ECMM_MODEL"  # "ecmm-clip", "<open_clip name>[:<tag or checkpoint>]", "<config.json>:<checkpoint>"
DEFAULT_MODEL = "ecmm-clip"
IMAGE_SIZE = 128  # side of every source's photos


class PhotoSet(torch.utils.data.Dataset):
    """Photos of a catalog, decoded on access: ``len(photos) == num_skus``.

    Subclasses implement :meth:`read` (one SKU's photos). Indexing follows numpy for the first two
    axes: ``photos[i]`` -> ``(P, H, W, 3)``, ``photos[rows]`` -> ``(n, P, H, W, 3)``,
    ``photos[rows, k]`` -> ``(n, H, W, 3)``, where ``rows`` is an int, a slice or an index array.
    """

    photos_per_sku: int = 1
    image_size: int = IMAGE_SIZE

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, row: int) -> np.ndarray:
        """uint8 ``(P, H, W, 3)``: every photo of SKU ``row``."""
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """``(N, P, H, W, 3)``, as if it were one array."""
        return (len(self), self.photos_per_sku, self.image_size, self.image_size, 3)

    def _rows(self, index: Any) -> np.ndarray | int:
        if isinstance(index, (int, np.integer)):
            row = int(index)
            if not -len(self) <= row < len(self):
                raise IndexError(f"row {row} is outside a catalog of {len(self)} products")
            return row % len(self)
        if isinstance(index, slice):
            return np.arange(len(self))[index]
        rows = np.asarray(index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return rows.astype(np.int64) % max(len(self), 1)

    def __getitem__(self, index: Any) -> np.ndarray:
        photo = None
        if isinstance(index, tuple):
            if len(index) != 2:
                raise IndexError("index photos with [rows] or [rows, photo]")
            index, photo = index
        rows = self._rows(index)
        if isinstance(rows, int):
            return self.read(rows) if photo is None else self.read(rows)[photo]
        if photo is None:
            stacked = [self.read(int(row)) for row in rows]
            return np.stack(stacked) if stacked else np.zeros((0, *self.shape[1:]), np.uint8)
        stacked = [self.read(int(row))[photo] for row in rows]
        return np.stack(stacked) if stacked else np.zeros((0, *self.shape[2:]), np.uint8)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    def view(self, photo: int = 0) -> "PhotoView":
        """Photo ``photo`` of every SKU as a lazy ``(N, H, W, 3)`` sequence (slice it in batches)."""
        return PhotoView(self, photo)


class ArrayPhotos(PhotoSet):
    """A :class:`PhotoSet` over an array (the offline shop's memory-mapped ``images.npy``)."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 5 or array.shape[-1] != 3:
            raise ValueError(f"photos must be (N, P, H, W, 3); got {array.shape}")
        self.array = array
        self.photos_per_sku, self.image_size = int(array.shape[1]), int(array.shape[2])

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def read(self, row: int) -> np.ndarray:
        return np.array(self.array[row])

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.array(self.array[index])  # numpy indexing, a writable copy


@dataclass(frozen=True)
class PhotoView:
    """Photo ``photo`` of every SKU, lazily: ``view[a:b]`` -> uint8 ``(b - a, H, W, 3)``."""

    photos: PhotoSet
    photo: int = 0

    def __len__(self) -> int:
        return len(self.photos)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.photos), *self.photos.shape[2:])

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.photos[index, self.photo]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)


class _PhotoBatches(torch.utils.data.Dataset):
    def __init__(self, photos: PhotoSet, rows: np.ndarray, photo: int | None) -> None:
        self.photos, self.rows, self.photo = photos, rows, photo

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> torch.Tensor:
        images = self.photos.read(int(self.rows[position]))
        return torch.from_numpy(images if self.photo is None else images[self.photo])


def photo_loader(photos: PhotoSet, rows: Sequence[int] | None = None, photo: int | None = 0, batch_size: int = 64,
                 workers: int | None = None, device: str | torch.device | None = None) -> torch.utils.data.DataLoader:
    """Batches of uint8 photos, decoded by DataLoader workers (pinned memory on CUDA).

    Args:
        photos: the catalog's photos.
        rows: the SKUs to read, in order (None: all).
        photo: which photo of each SKU (None: all ``P``).
        batch_size: SKUs per batch.
        workers: DataLoader workers (None: up to 4 on CUDA, 0 on CPU).
        device: where the batches will go (pins memory when CUDA).

    Shapes:
        yields uint8 ``(B, H, W, 3)`` (or ``(B, P, H, W, 3)`` when ``photo`` is None), in order.
    """
    rows = np.arange(len(photos)) if rows is None else np.asarray(rows, dtype=np.int64)
    cuda = torch.device(device).type == "cuda" if device is not None else False
    workers = (min(4, os.cpu_count() or 1) if cuda else 0) if workers is None else workers
    return torch.utils.data.DataLoader(_PhotoBatches(photos, rows, photo), batch_size=batch_size, shuffle=False,
                                       num_workers=workers, pin_memory=cuda, persistent_workers=False)


def pad_photos(photo: np.ndarray, count: int, seed: Sequence[int], size: int = IMAGE_SIZE) -> np.ndarray:
    """A SKU's photos to exactly ``count``: real photos first, then shifted, shrunk copies of them.

    Args:
        photo: uint8 ``(R, size, size, 3)`` real photos (R >= 1), on a white canvas.
        count: photos wanted.
        seed: seed of the jitter (e.g. ``[catalog seed, row]``): the same SKU gets the same copies.

    Returns:
        uint8 ``(count, size, size, 3)``.
    """
    from PIL import Image

    rng = np.random.default_rng(list(seed))
    photos = [photo[k] for k in range(min(len(photo), count))]
    while len(photos) < count:
        source = Image.fromarray(photo[len(photos) % len(photo)])
        scale = rng.uniform(0.75, 0.95)
        small = source.resize((max(1, int(size * scale)), max(1, int(size * scale))))
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(small, (int(rng.integers(0, size - small.width + 1)), int(rng.integers(0, size - small.height + 1))))
        photos.append(np.asarray(canvas, dtype=np.uint8))
    return np.stack(photos)


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
        from ecmm.artifacts import card_fingerprint, read_card
        from ecmm.data.store import data_dir, load_catalog

        load_catalog("offline")  # renders it on first use
        return card_fingerprint(read_card(data_dir("catalog"), verify=False))

    def table(self) -> pd.DataFrame:
        from ecmm.data.store import load_catalog

        return load_catalog("offline")

    def photos(self) -> PhotoSet:
        from ecmm.data.store import load_photos

        return ArrayPhotos(load_photos("offline"))

    def interactions(self) -> pd.DataFrame | None:
        return None

    def describe(self) -> str:
        photos = self.photos()
        return (f"offline shop (OpenMoji icons, CC BY-SA 4.0, rendered with Pillow): {len(photos):,} products, "
                f"{photos.photos_per_sku} photos each")


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
