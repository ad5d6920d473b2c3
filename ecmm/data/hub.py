"""Hub catalog: ``ashraq/fashion-product-images-small`` read through the ``datasets`` library.

The parquet shards are loaded with ``datasets.load_dataset("parquet", data_files=...)``, so the rows
live in its memory-mapped Arrow cache (``ECMM_HOME/hub/arrow``), not in this process's memory.
The table is built from the text columns only; a photo is decoded from its PNG bytes when it is
read, so no process ever holds the catalog's decoded photos.

Column mapping: ``productDisplayName`` -> title, ``articleType`` -> product_type,
``masterCategory``/``subCategory`` -> category ("apparel / topwear"), ``baseColour`` -> colour;
``gender`` and ``usage`` are attribute columns. Rows without a name, type or colour are left out.
The data set has no price: a deterministic price is drawn per product id, and the description
says it is synthetic. It has one photo per product: photo 0 is that photo centred, photos 1 and 2
are shrunk, shifted copies, so image-to-image queries still differ from the gallery photo.
Splits follow the offline rules (:func:`ecmm.data.catalog.split_table`).

The shards come from ``data_files``, else ``ECMM_HUB_DATA`` (a parquet path, folder or glob of local
shards: tests and offline copies), else a download of the data set into ``ECMM_HOME/hub``.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ecmm.data.catalog import CATALOG_COLUMNS, split_table
from ecmm.data.photos import IMAGE_SIZE, PhotoSet

__all__ = ["FASHION_REPO", "FASHION_COLUMNS", "HUB_ATTRIBUTE_COLUMNS", "HUB_DATA_ENV", "HUB_PHOTOS_PER_SKU",
           "HubPhotos", "HubSource", "hub_data_files", "hub_photos"]

FASHION_REPO = "ashraq/fashion-product-images-small"
FASHION_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
                   "season", "year", "usage", "productDisplayName", "image")
HUB_ATTRIBUTE_COLUMNS = ("gender", "usage")
HUB_DATA_ENV = "ECMM_HUB_DATA"  # local parquet shards instead of the download
HUB_PHOTOS_PER_SKU = 3
REQUIRED_VALUES = ("productDisplayName", "articleType", "baseColour")  # rows without one are left out


def hub_photos(image_bytes: bytes, seed: Sequence[int], count: int = HUB_PHOTOS_PER_SKU,
               size: int = IMAGE_SIZE) -> np.ndarray:
    """A product's photos from its one image: photo 0 centred, the others shrunk and shifted.

    Args:
        image_bytes: the encoded image (PNG or JPEG).
        seed: e.g. ``[catalog seed, row]``; photo ``k`` uses ``default_rng([*seed, k])``.
        count: photos wanted.

    Returns:
        uint8 ``(count, size, size, 3)`` on white.
    """
    with Image.open(io.BytesIO(image_bytes)) as opened:
        image = opened.convert("RGB")
    image.thumbnail((size, size))
    photos = []
    for k in range(count):
        canvas, picture = Image.new("RGB", (size, size), (255, 255, 255)), image
        offset = ((size - image.width) // 2, (size - image.height) // 2)
        if k > 0:
            rng = np.random.default_rng([*seed, k])
            scale = rng.uniform(0.75, 1.0)
            picture = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
            offset = (int(rng.integers(0, size - picture.width + 1)), int(rng.integers(0, size - picture.height + 1)))
        canvas.paste(picture, offset)
        photos.append(np.asarray(canvas, dtype=np.uint8))
    return np.stack(photos)


class HubPhotos(PhotoSet):
    """Photos decoded from the Arrow cache on access: ``read(row)`` -> uint8 ``(3, 128, 128, 3)``.

    Args:
        images: a ``datasets.Dataset`` with one column ``image`` cast to ``Image(decode=False)``.
        rows: ``(N,)`` row of each SKU in ``images``.
        seed: seed of the jittered copies.
    """

    photos_per_sku = HUB_PHOTOS_PER_SKU

    def __init__(self, images: Any, rows: np.ndarray, seed: int = 0) -> None:
        self.images, self.rows, self.seed = images, np.asarray(rows, dtype=np.int64), seed

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, row: int) -> np.ndarray:
        record = self.images[int(self.rows[row])]["image"]
        data = record["bytes"] if record.get("bytes") is not None else Path(record["path"]).read_bytes()
        return hub_photos(data, [self.seed, int(row)], self.photos_per_sku, self.image_size)


def hub_data_files(data_files: str | Path | Sequence[str | Path] | None = None) -> tuple[str, ...]:
    """The parquet shards to read: ``data_files``, else ``ECMM_HUB_DATA``, else the download.

    Args:
        data_files: parquet paths, folders (every ``*.parquet`` below) or globs.

    Returns:
        Absolute paths, sorted within each pattern.

    Raises:
        FileNotFoundError: a pattern matches no parquet file.
    """
    if data_files is None:
        data_files = os.environ.get(HUB_DATA_ENV, "").strip() or None
    if data_files is None:
        return download_fashion_parquet()
    patterns = [data_files] if isinstance(data_files, (str, Path)) else list(data_files)
    files: list[str] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            matched = sorted(str(p) for p in path.rglob("*.parquet"))
        elif glob.has_magic(str(path)):
            matched = sorted(glob.glob(str(path), recursive=True))
        else:
            matched = [str(path)] if path.is_file() else []
        if not matched:
            raise FileNotFoundError(f"{pattern} matches no parquet file: point data_files (or {HUB_DATA_ENV}) at "
                                    f"the shards of {FASHION_REPO}, a folder of them or a glob such as data/*.parquet.")
        files.extend(str(Path(p).resolve()) for p in matched)
    return tuple(files)


def download_fashion_parquet() -> tuple[str, ...]:
    """Download the data set's parquet shards into ``ECMM_HOME/hub`` (once) and return their paths."""
    from huggingface_hub import snapshot_download

    from ecmm.config import get_settings

    folder = snapshot_download(FASHION_REPO, repo_type="dataset", allow_patterns=["*.parquet"],
                               cache_dir=str(get_settings().home / "hub"))
    return tuple(sorted(str(p) for p in Path(folder).rglob("*.parquet")))


def _check_columns(files: Sequence[str]) -> None:
    import pyarrow.parquet as pq

    for file in files:
        names = pq.read_schema(file).names
        missing = [column for column in FASHION_COLUMNS if column not in names]
        if missing:
            raise ValueError(f"{file} lacks the hub columns {missing} (it has {names}): the hub catalog needs the "
                             f"parquet shards of {FASHION_REPO} with the columns {list(FASHION_COLUMNS)}.")


def _text(values: pd.Series) -> pd.Series:
    return values.fillna("").astype(str).str.strip()


def hub_table(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The hub's text columns in the catalog schema (``CATALOG_COLUMNS`` + gender, usage).

    Args:
        frame: rows of the hub data set without ``image`` (all with name, type and colour).
        seed: seed of the splits and the synthetic prices.
    """
    master, sub = _text(frame["masterCategory"]), _text(frame["subCategory"])
    year = pd.to_numeric(frame["year"], errors="coerce")
    when = [" ".join(part for part in (season, "" if np.isnan(y) else str(int(y))) if part)
            for season, y in zip(_text(frame["season"]), year.to_numpy(dtype=float))]
    kind = _text(frame["articleType"]).str.lower()
    gender, usage = _text(frame["gender"]), _text(frame["usage"])
    descriptions = [" ".join(part for part in (g, u, k) if part) + (f" for {w}" if w else "") + " (synthetic price)."
                    for g, u, k, w in zip(gender, usage, kind, when)]
    table = pd.DataFrame({
        "sku_id": frame["id"].astype("int64").astype(str).to_numpy(),
        "title": _text(frame["productDisplayName"]).to_numpy(),
        "product_type": kind.to_numpy(),
        "category": [f"{m} / {s}".lower() if s else m.lower() for m, s in zip(master, sub)],
        "colour": _text(frame["baseColour"]).str.lower().to_numpy(),
        "price": np.array([round(float(np.random.default_rng([seed, int(i)]).lognormal(3.3, 0.5)), 2)
                           for i in frame["id"]], dtype=np.float64),
        "description": descriptions,
        "split": "",
        "emoji": "",
        "gender": gender.to_numpy(),
        "usage": usage.to_numpy(),
    }, columns=[*CATALOG_COLUMNS, *HUB_ATTRIBUTE_COLUMNS])
    table["split"] = split_table(table, seed=seed)
    return table


@dataclass(frozen=True, eq=False)
class HubSource:
    """The hub's fashion catalog (see the module docstring).

    Attributes:
        data_files: the parquet shards read.
        frame: the table (``CATALOG_COLUMNS`` + gender, usage).
        images: the ``datasets.Dataset`` of the ``image`` column (undecoded bytes, memory-mapped).
        rows: ``(N,)`` row of each SKU in ``images``.
        fingerprint: 16 hex of the shards' names and sizes, ``max_rows`` and the seed.
        left_out: rows without a name, type or colour.
        max_rows: rows kept (None: all).
        seed: seed of splits, prices and photo jitter.
    """

    data_files: tuple[str, ...]
    frame: pd.DataFrame = field(repr=False)
    images: Any = field(repr=False)
    rows: np.ndarray = field(repr=False)
    fingerprint: str
    left_out: int = 0
    max_rows: int | None = None
    seed: int = 0
    name: str = "hub"
    attribute_columns: tuple[str, ...] = HUB_ATTRIBUTE_COLUMNS

    @classmethod
    def open(cls, max_rows: int | None = None, data_files: str | Path | Sequence[str | Path] | None = None, *,
             seed: int = 0) -> "HubSource":
        """Load the shards into the ``datasets`` Arrow cache and build the table from their text columns.

        Args:
            max_rows: keep only the first usable rows (quick runs); None: all.
            data_files: parquet paths, folders or globs; None reads ``ECMM_HUB_DATA``, else downloads.
            seed: seed of splits, prices and photo jitter.

        Raises:
            FileNotFoundError: ``data_files`` matches nothing.
            ValueError: a shard lacks the hub's columns (they are named).
        """
        from ecmm.config import get_settings

        files = hub_data_files(data_files)
        stats = tuple((file, os.stat(file).st_size, os.stat(file).st_mtime_ns) for file in files)
        return _open_cached(stats, max_rows, seed, str(get_settings().home / "hub" / "arrow"))

    def table(self) -> pd.DataFrame:
        """One row per product: ``CATALOG_COLUMNS`` + gender, usage; row i is ``photos()[i]``."""
        return self.frame.copy()

    def photos(self) -> HubPhotos:
        """The products' photos, decoded on access: ``(N, 3, 128, 128, 3)`` uint8."""
        return HubPhotos(self.images, self.rows, self.seed)

    def interactions(self) -> pd.DataFrame | None:
        """None: the data set has no event log (shoppers are simulated)."""
        return None

    def describe(self) -> str:
        """One line: the data set, its products and photos, the synthetic prices and the licence."""
        left_out = f", {self.left_out:,} rows without a name, type or colour left out" if self.left_out else ""
        limit = f" (first {self.max_rows:,} rows)" if self.max_rows is not None else ""
        return (f"hub fashion catalog {FASHION_REPO}{limit} from {len(self.data_files)} parquet file(s): "
                f"{len(self.frame):,} products{left_out}, {HUB_PHOTOS_PER_SKU} photos each (the product photo, then "
                "shifted copies); prices are synthetic (drawn per product id); the hub card declares no licence: the "
                "Kaggle Fashion Product Images terms apply")


def _scan_options() -> dict:
    """Read the shards row group by row group: pyarrow's pre-buffering would hold a whole shard in memory
    while ``datasets`` converts it (+220 MB for a 190 MB shard of 20,000 rows, +71 MB without)."""
    from dataclasses import fields

    import pyarrow.dataset as pyarrow_dataset
    from datasets.packaged_modules.parquet.parquet import ParquetConfig

    if "fragment_scan_options" not in {option.name for option in fields(ParquetConfig)}:
        return {}  # older datasets versions read with their own defaults
    return {"fragment_scan_options": pyarrow_dataset.ParquetFragmentScanOptions(pre_buffer=False)}


@lru_cache(maxsize=4)
def _open_cached(stats: tuple[tuple[str, int, int], ...], max_rows: int | None, seed: int, cache_dir: str) -> HubSource:
    files = [file for file, _, _ in stats]
    _check_columns(files)
    import datasets

    loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir, **_scan_options())
    text_columns = [column for column in FASHION_COLUMNS if column != "image"]
    frame = loaded.select_columns(text_columns).to_pandas()
    usable = frame[list(REQUIRED_VALUES)].notna().all(axis=1)
    usable &= frame[list(REQUIRED_VALUES)].astype(str).apply(lambda column: column.str.strip().ne("")).all(axis=1)
    rows = np.flatnonzero(usable.to_numpy())
    left_out = int(len(frame) - len(rows))
    if max_rows is not None:
        rows = rows[:max_rows]
        left_out = int(np.count_nonzero(~usable.to_numpy()[:rows[-1] + 1])) if len(rows) else left_out
    if not len(rows):
        raise ValueError(f"{files[0]}: no row has a productDisplayName, articleType and baseColour.")
    images = loaded.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    digest = hashlib.sha256()
    for file, size, _ in stats:
        digest.update(f"{Path(file).name}\t{size}\n".encode())
    digest.update(f"max_rows={max_rows} seed={seed}".encode())
    return HubSource(data_files=tuple(files), frame=hub_table(frame.iloc[rows].reset_index(drop=True), seed),
                     images=images, rows=rows, fingerprint=digest.hexdigest()[:16], left_out=left_out,
                     max_rows=max_rows, seed=seed)
