"""Hub profile: ``ashraq/fashion-product-images-small`` mapped to the offline catalog schema.

Column mapping: ``productDisplayName`` -> title, ``articleType`` -> product_type,
``masterCategory``/``subCategory`` -> category ("Apparel / Topwear"), ``baseColour`` -> colour.
The data set has no price: a deterministic price is drawn per row from its id, labelled as
synthetic in the description. It has one photo per product: the extra "photos" are random
crops and shifts of that photo, so image-to-image queries still differ from the gallery photo.
Splits follow the offline rules (20 % of product types held out; 2 colours per type held out).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

FASHION_REPO = "ashraq/fashion-product-images-small"
FASHION_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
                   "season", "year", "usage", "productDisplayName", "image")
HUB_PHOTOS_PER_SKU = 3


def _photo(image_bytes: bytes, rng: np.random.Generator, jitter: bool, size: int = 128) -> np.ndarray:
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    image.thumbnail((size, size))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    if jitter:
        scale = rng.uniform(0.75, 1.0)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    offset = ((size - image.width) // 2, (size - image.height) // 2)
    if jitter:
        offset = (int(rng.integers(0, size - image.width + 1)), int(rng.integers(0, size - image.height + 1)))
    canvas.paste(image, offset)
    return np.asarray(canvas, dtype=np.uint8)


def read_fashion_parquet(paths: Sequence[str | Path], max_rows: int | None = None,
                         seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Read the hub's parquet shards into (catalog, photos) in the offline schema.

    Args:
        paths: parquet files with the hub's columns (FASHION_COLUMNS; ``image`` is a struct
            with ``bytes``).
        max_rows: keep only the first rows (quick runs).
        seed: seed for splits, prices and photo jitter.

    Returns:
        (catalog DataFrame, uint8 photos (N, HUB_PHOTOS_PER_SKU, 128, 128, 3)).
    """
    if not paths:
        raise FileNotFoundError("No parquet files given for the fashion catalog.")
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    missing = [c for c in FASHION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"Parquet lacks the hub columns {missing}: is this {FASHION_REPO}?")
    frame = frame.dropna(subset=["productDisplayName", "articleType", "baseColour"])
    if max_rows is not None:
        frame = frame.head(max_rows)
    rng = np.random.default_rng(seed)
    types = sorted(frame["articleType"].unique())
    held_types = set(rng.choice(types, size=max(1, round(0.2 * len(types))), replace=False).tolist())
    split = []
    held_colours = {t: set(rng.permutation(sorted(frame.loc[frame.articleType == t, "baseColour"].unique()))[:2])
                    for t in types}
    for row in frame.itertuples():
        if row.articleType in held_types:
            split.append("test_products")
        elif row.baseColour in held_colours[row.articleType] and frame.articleType.eq(row.articleType).sum() > 2:
            split.append("test_colours")
        else:
            split.append("train")
    prices = [round(float(np.random.default_rng([seed, int(i)]).lognormal(3.3, 0.5)), 2) for i in frame["id"]]
    catalog = pd.DataFrame({
        "sku_id": frame["id"].astype(str).to_numpy(),
        "title": frame["productDisplayName"].to_numpy(),
        "product_type": frame["articleType"].str.lower().to_numpy(),
        "category": (frame["masterCategory"] + " / " + frame["subCategory"]).str.lower().to_numpy(),
        "colour": frame["baseColour"].str.lower().to_numpy(),
        "price": prices,
        "description": [f"{r.gender} {r.usage} {r.articleType.lower()} for {r.season} {r.year} "
                        "(synthetic price)." for r in frame.itertuples()],
        "split": split,
        "emoji": "",
    })
    photos = np.stack([
        np.stack([_photo(img["bytes"], np.random.default_rng([seed, index, k]), jitter=k > 0)
                  for k in range(HUB_PHOTOS_PER_SKU)])
        for index, img in enumerate(frame["image"])
    ])
    return catalog, photos


@lru_cache(maxsize=1)
def load_fashion_catalog(max_rows: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Download (hub profile only) and read the fashion catalog; cached per process."""
    from huggingface_hub import snapshot_download

    from ecmm.config import get_settings

    settings = get_settings()
    folder = snapshot_download(FASHION_REPO, repo_type="dataset", allow_patterns=["*.parquet"],
                               cache_dir=str(settings.home / "hub"))
    paths = sorted(Path(folder).rglob("*.parquet"))
    rows = max_rows if max_rows is not None else (2000 if settings.quick else None)
    return read_fashion_parquet(paths, max_rows=rows)
