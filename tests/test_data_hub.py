"""The hub catalog on a local shard in the fashion data set's exact schema (``datasets`` Arrow cache)."""

import pickle

import numpy as np
import pandas as pd
import pytest

from ecmm.data import hub
from ecmm.data.catalog import CATALOG_COLUMNS
from ecmm.data.hub import FASHION_COLUMNS, HUB_DATA_ENV, HUB_PHOTOS_PER_SKU, HubSource, hub_photos, hub_table


@pytest.fixture()
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("ECMM_HOME", str(path))
    monkeypatch.delenv(HUB_DATA_ENV, raising=False)
    return path


@pytest.fixture()
def shard_frame(hub_shard):
    """The shard's text columns as the hub data set has them (read without ``datasets``)."""
    frame = pd.read_parquet(hub_shard, columns=[c for c in FASHION_COLUMNS if c != "image"])
    return frame


@pytest.fixture()
def source(home, hub_shard):
    pytest.importorskip("datasets", reason="the hub catalog reads through the datasets library")
    return HubSource.open(data_files=hub_shard)


def test_shard_has_the_hub_schema(hub_shard):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(hub_shard)
    assert tuple(schema.names) == FASHION_COLUMNS
    assert schema.field("id").type == pa.int64() and schema.field("year").type == pa.float64()
    assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert b"huggingface" in schema.metadata


def test_columns_map_to_the_catalog_schema(shard_frame):
    usable = shard_frame.dropna(subset=["productDisplayName", "articleType", "baseColour"]).reset_index(drop=True)
    table = hub_table(usable)
    assert list(table.columns) == [*CATALOG_COLUMNS, "gender", "usage"]
    first = table.iloc[0]
    assert first["sku_id"] == "10000" and first["title"] == usable.loc[0, "productDisplayName"]
    assert first["product_type"] == "tshirts" and first["category"] == "apparel / topwear"
    assert first["colour"] == usable.loc[0, "baseColour"].lower() and first["emoji"] == ""
    assert "synthetic price" in first["description"] and str(int(usable.loc[0, "year"])) in first["description"]
    assert table["price"].gt(0).all() and table["price"].dtype == np.float64
    assert table["usage"].eq("").sum() == usable["usage"].isna().sum() > 0  # missing usage is an empty attribute
    assert set(table["split"]) == {"train", "test_colours", "test_products"}
    assert hub_table(usable)["price"].tolist() == table["price"].tolist()  # deterministic per product id


def test_photos_of_one_image_are_centred_then_jittered(hub_shard):
    import pyarrow.parquet as pq

    image = pq.read_table(hub_shard, columns=["image"]).column("image")[0].as_py()["bytes"]
    photos = hub_photos(image, [0, 0])
    assert photos.shape == (HUB_PHOTOS_PER_SKU, 128, 128, 3) and photos.dtype == np.uint8
    assert not np.array_equal(photos[0], photos[1]) and not np.array_equal(photos[1], photos[2])
    assert np.array_equal(photos, hub_photos(image, [0, 0])) and not np.array_equal(photos[1], hub_photos(image, [0, 1])[1])
    assert (photos[0, :, :10] == 255).all()  # a 60 x 80 photo is not enlarged: centred on white


def test_open_reads_the_shard_through_the_arrow_cache(source, hub_shard, home):
    table = source.table()
    assert source.name == "hub" and source.attribute_columns == ("gender", "usage") and len(source.fingerprint) == 16
    assert len(table) == 297 and source.left_out == 3  # rows 96, 193 and 290 have no productDisplayName
    assert list(table.columns) == [*CATALOG_COLUMNS, "gender", "usage"]
    assert (home / "hub" / "arrow").is_dir() and "297 products" in source.describe()
    assert "synthetic" in source.describe() and source.interactions() is None
    frame = pd.read_parquet(hub_shard, columns=["id"])
    assert table["sku_id"].tolist() == frame["id"].astype(str).to_numpy()[source.rows].tolist()


def test_photos_decode_only_the_rows_asked_for(source, hub_shard, monkeypatch):
    import pyarrow.parquet as pq

    decoded = []
    real = hub.hub_photos
    monkeypatch.setattr(hub, "hub_photos", lambda data, seed, *args: decoded.append(seed[1]) or real(data, seed, *args))
    photos = source.photos()
    assert photos.shape == (297, HUB_PHOTOS_PER_SKU, 128, 128, 3) and decoded == []
    batch = photos[[5, 200], 1]
    assert batch.shape == (2, 128, 128, 3) and batch.dtype == np.uint8 and sorted(decoded) == [5, 200]
    raw = pq.read_table(hub_shard, columns=["image"]).column("image")[int(source.rows[200])].as_py()["bytes"]
    assert np.array_equal(photos[200], real(raw, [0, 200]))  # row 200 of the table is its Arrow row's image
    assert np.array_equal(pickle.loads(pickle.dumps(photos)).read(7), photos.read(7))  # DataLoader workers


def test_env_glob_and_max_rows(home, hub_shard, monkeypatch, source):
    monkeypatch.setenv(HUB_DATA_ENV, str(hub_shard.parent / "*.parquet"))
    from_env = HubSource.open()
    assert from_env.fingerprint == source.fingerprint and from_env.data_files == (str(hub_shard.resolve()),)
    small = HubSource.open(max_rows=50)
    assert len(small.table()) == len(small.photos()) == 50 and small.fingerprint != source.fingerprint
    assert small.table()["sku_id"].tolist() == source.table()["sku_id"].tolist()[:50]


def test_open_catalog_chooses_the_hub_profile(home, hub_shard, monkeypatch):
    pytest.importorskip("datasets", reason="the hub catalog reads through the datasets library")
    from ecmm.data.catalogs import open_catalog

    monkeypatch.setenv(HUB_DATA_ENV, str(hub_shard))
    monkeypatch.delenv("ECMM_CATALOG", raising=False)
    chosen = open_catalog("hub", max_rows=40)
    assert isinstance(chosen, HubSource) and len(chosen.table()) == 40


def test_wrong_parquet_names_the_missing_columns(home, tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"id": [1], "title": ["x"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"lacks the hub columns \['gender', 'masterCategory'"):
        HubSource.open(data_files=path)
    with pytest.raises(FileNotFoundError, match="matches no parquet file"):
        HubSource.open(data_files=tmp_path / "missing-*.parquet")
    assert not home.exists()  # nothing cached for a refused shard
