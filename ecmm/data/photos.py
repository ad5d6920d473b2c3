"""Photos of a catalog, decoded on access: the lazy ``PhotoSet`` every catalog source returns.

``photos[i]`` is uint8 ``(P, H, W, 3)``, ``photos[rows, k]`` is ``(n, H, W, 3)``, and
``photos.view(k)`` is a lazy ``(N, H, W, 3)`` sequence that code slices in batches, so no source
needs the whole photo array in memory. :func:`photo_loader` decodes batches in DataLoader workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["IMAGE_SIZE", "PhotoSet", "ArrayPhotos", "PhotoView", "photo_loader", "pad_photos"]

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
