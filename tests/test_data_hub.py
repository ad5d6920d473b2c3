"""The fashion hub loader on a local parquet fixture with the hub's exact columns."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ecmm.data.hub import FASHION_COLUMNS, HUB_PHOTOS_PER_SKU, read_fashion_parquet


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 80), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def fashion_parquet(tmp_path):
    types = ["Tshirts", "Shirts", "Jeans", "Watches", "Casual Shoes"]
    colours = ["Navy Blue", "Black", "White", "Red"]
    rows = []
    for i in range(40):
        kind, colour = types[i % 5], colours[(i // 5) % 4]
        rows.append({"id": 1000 + i, "gender": "Men", "masterCategory": "Apparel",
                     "subCategory": "Topwear", "articleType": kind, "baseColour": colour,
                     "season": "Summer", "year": 2012.0, "usage": "Casual",
                     "productDisplayName": f"Brand {colour} {kind} {i}",
                     "image": {"bytes": _png((i * 5, 100, 150)), "path": None}})
    path = tmp_path / "train-00000-of-00001.parquet"
    pd.DataFrame(rows, columns=list(FASHION_COLUMNS)).to_parquet(path)
    return path


def test_fashion_columns_map_to_catalog_schema(fashion_parquet):
    catalog, photos = read_fashion_parquet([fashion_parquet])
    assert len(catalog) == 40 and photos.shape == (40, HUB_PHOTOS_PER_SKU, 128, 128, 3)
    first = catalog.iloc[0]
    assert first["title"] == "Brand Navy Blue Tshirts 0" and first["product_type"] == "tshirts"
    assert first["category"] == "apparel / topwear" and first["colour"] == "navy blue"
    assert set(catalog["split"]) <= {"train", "test_colours", "test_products"}
    assert "test_products" in set(catalog["split"])
    assert not np.array_equal(photos[0, 0], photos[0, 1])  # extra photos are jittered views


def test_wrong_parquet_is_a_clear_error(tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(ValueError, match="hub columns"):
        read_fashion_parquet([path])
    with pytest.raises(FileNotFoundError):
        read_fashion_parquet([])
