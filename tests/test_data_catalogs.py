"""The catalog interface: PhotoSet indexing and views, loaders, padding, source choice, cache scopes."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from ecmm.artifacts import forget_verified
from ecmm.data.catalog import CATALOG_COLUMNS, PRODUCT_TYPES
from ecmm.data.catalogs import (
    DEFAULT_MODEL,
    ArrayPhotos,
    CatalogSource,
    OfflineSource,
    PhotoSet,
    catalog_scope,
    model_spec,
    open_catalog,
    pad_photos,
    photo_loader,
)
from ecmm.data.folder import FolderSource


class CountingPhotos(PhotoSet):
    """``read(row)`` is photo ``k`` filled with ``row * 10 + k``; remembers every row it read."""

    photos_per_sku = 3
    image_size = 4

    def __init__(self, rows: int) -> None:
        self.rows, self.reads = rows, []

    def __len__(self) -> int:
        return self.rows

    def read(self, row: int) -> np.ndarray:
        self.reads.append(row)
        values = row * 10 + np.arange(self.photos_per_sku, dtype=np.uint8)
        return np.broadcast_to(values[:, None, None, None], (3, 4, 4, 3)).copy()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    for name in ("ECMM_CATALOG", "ECMM_PROFILE", "ECMM_MODEL", "ECMM_SKIP_BAD_IMAGES", "ECMM_HUB_DATA"):
        monkeypatch.delenv(name, raising=False)
    forget_verified()
    yield tmp_path / "home"
    forget_verified()


def test_indexing_follows_numpy_and_reads_only_what_is_asked():
    photos = CountingPhotos(6)
    assert photos.shape == (6, 3, 4, 4, 3) and len(photos) == 6 and photos.reads == []
    one = photos[2]
    assert one.shape == (3, 4, 4, 3) and one[1, 0, 0, 0] == 21 and photos.reads == [2]
    assert photos[-1][0, 0, 0, 0] == 50 and photos[1, 2].shape == (4, 4, 3) and photos[1, 2][0, 0, 0] == 12
    photos.reads.clear()
    assert photos[1:4].shape == (3, 3, 4, 4, 3) and photos.reads == [1, 2, 3]
    picked = photos[[4, 0], 1]
    assert picked.shape == (2, 4, 4, 3) and picked[:, 0, 0, 0].tolist() == [41, 1]
    mask = np.array([True, False, False, False, False, True])
    assert photos[mask][:, 0, 0, 0, 0].tolist() == [0, 50]
    assert photos[np.array([], dtype=np.int64)].shape == (0, 3, 4, 4, 3) and photos[[], 0].shape == (0, 4, 4, 3)
    with pytest.raises(IndexError, match="outside a catalog of 6"):
        photos[6]
    with pytest.raises(IndexError):
        photos[0, 1, 2]


def test_view_is_lazy_and_slices_in_batches():
    photos = CountingPhotos(5)
    view = photos.view(2)
    assert len(view) == 5 and view.shape == (5, 4, 4, 3) and photos.reads == []
    batch = view[1:3]
    assert batch.shape == (2, 4, 4, 3) and batch[:, 0, 0, 0].tolist() == [12, 22] and photos.reads == [1, 2]
    everything = np.asarray(view)
    assert everything.shape == (5, 4, 4, 3) and everything[:, 0, 0, 0].tolist() == [2, 12, 22, 32, 42]
    assert np.asarray(photos).shape == (5, 3, 4, 4, 3) and np.asarray(view, dtype=np.float32).dtype == np.float32


def test_array_photos_index_like_the_array():
    array = np.random.default_rng(0).integers(0, 255, (4, 3, 8, 8, 3), dtype=np.uint8)
    photos = ArrayPhotos(array)
    assert photos.shape == array.shape and photos.photos_per_sku == 3 and photos.image_size == 8
    assert np.array_equal(photos[[3, 1], 2], array[[3, 1], 2]) and np.array_equal(photos.read(2), array[2])
    assert np.array_equal(photos.view(1)[0:2], array[0:2, 1])
    photos[0][0, 0, 0, 0] = 0 if array[0, 0, 0, 0, 0] else 1  # a copy: the array is unchanged
    assert np.array_equal(photos[0], array[0])
    with pytest.raises(ValueError, match=r"\(N, P, H, W, 3\)"):
        ArrayPhotos(array[:, 0])


def test_photo_loader_batches_in_order():
    photos = CountingPhotos(7)
    batches = list(photo_loader(photos, photo=1, batch_size=3, workers=0))
    assert [tuple(b.shape) for b in batches] == [(3, 4, 4, 3), (3, 4, 4, 3), (1, 4, 4, 3)]
    assert batches[0].dtype == torch.uint8 and torch.cat(batches)[:, 0, 0, 0].tolist() == [1, 11, 21, 31, 41, 51, 61]
    every = list(photo_loader(photos, rows=[5, 2], photo=None, batch_size=8, workers=0))
    assert len(every) == 1 and tuple(every[0].shape) == (2, 3, 4, 4, 3) and every[0][:, 0, 0, 0, 0].tolist() == [50, 20]


def test_pad_photos_keeps_the_real_ones_then_jitters_copies():
    rng = np.random.default_rng(0)
    real = np.full((2, 128, 128, 3), 255, np.uint8)
    real[:, 40:90, 30:100] = rng.integers(0, 200, (2, 50, 70, 3), dtype=np.uint8)
    padded = pad_photos(real, 4, seed=[0, 3])
    assert padded.shape == (4, 128, 128, 3) and padded.dtype == np.uint8
    assert np.array_equal(padded[:2], real) and not np.array_equal(padded[2], real[0])
    assert np.array_equal(padded, pad_photos(real, 4, seed=[0, 3]))
    assert not np.array_equal(padded[2:], pad_photos(real, 4, seed=[0, 4])[2:])
    assert (padded[2] < 255).any(axis=-1).mean() < (real[0] < 255).any(axis=-1).mean()  # a shrunk copy
    assert np.array_equal(pad_photos(real, 1, seed=[0]), real[:1])


def test_open_catalog_chooses_the_source(home, folder_catalog, monkeypatch):
    assert isinstance(open_catalog(), OfflineSource) and isinstance(open_catalog("offline", ""), OfflineSource)
    chosen = open_catalog(catalog=folder_catalog)
    assert isinstance(chosen, FolderSource) and isinstance(chosen, CatalogSource) and len(chosen.table()) == 60
    monkeypatch.setenv("ECMM_CATALOG", str(folder_catalog))
    assert isinstance(open_catalog(), FolderSource) and isinstance(open_catalog("offline"), FolderSource)
    assert isinstance(open_catalog(catalog=""), OfflineSource)  # "" means no folder catalog


def test_skip_bad_images_comes_from_the_environment(home, tmp_path, monkeypatch):
    from catalog_fixtures import write_folder_catalog

    from ecmm.data.folder import CatalogError

    csv_path = write_folder_catalog(tmp_path / "shop", rows=12)
    (csv_path.parent / "images" / "sku-0004-a.jpg").unlink()
    with pytest.raises(CatalogError, match="line 6"):
        open_catalog(catalog=csv_path)
    monkeypatch.setenv("ECMM_SKIP_BAD_IMAGES", "1")
    assert open_catalog(catalog=csv_path).skipped == 1
    with pytest.raises(CatalogError):
        open_catalog(catalog=csv_path, skip_bad_images=False)


def test_model_spec_reads_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("ECMM_MODEL", raising=False)
    assert model_spec() == DEFAULT_MODEL == "ecmm-clip"
    monkeypatch.setenv("ECMM_MODEL", " ViT-B-32:laion2b_s34b_b79k ")
    assert model_spec() == "ViT-B-32:laion2b_s34b_b79k" and model_spec("RN50") == "RN50"


@dataclass(frozen=True)
class NamedSource:
    name: str
    fingerprint: str = "0123456789abcdef"


def test_catalog_scope_names_one_folder_per_catalog_and_model(monkeypatch):
    monkeypatch.delenv("ECMM_MODEL", raising=False)
    assert catalog_scope(NamedSource("offline")) == "" and catalog_scope(NamedSource("offline"), "ecmm-clip") == ""
    scope = catalog_scope(NamedSource("folder"), "ViT-B-32:laion2b_s34b_b79k")
    assert scope.startswith("shops/folder-0123456789ab-ViT-B-32-") and len(scope.rsplit("-", 1)[1]) == 8
    assert scope != catalog_scope(NamedSource("folder"), "ViT-B-32:openai")
    assert scope != catalog_scope(NamedSource("folder", "fedcba9876543210"), "ViT-B-32:laion2b_s34b_b79k")
    assert catalog_scope(NamedSource("offline"), "RN50").startswith("shops/offline-")
    assert catalog_scope(NamedSource("hub")).startswith("shops/hub-0123456789ab-ecmm-clip-")
    assert "/" not in catalog_scope(NamedSource("folder"), "/tmp/my models/cfg.json:/tmp/ckpt.pt")[6:]


def test_every_source_gives_the_same_schema(home, folder_catalog, hub_shard, monkeypatch):
    """Offline (a two-type shop rendered into a temporary home), folder and hub: same columns and dtypes."""
    from ecmm.data import store

    store.write_catalog(store.data_dir("catalog"), progress=False, product_types=PRODUCT_TYPES[:2])
    sources = [OfflineSource(), FolderSource.open(folder_catalog)]
    try:
        import datasets  # noqa: F401

        from ecmm.data.hub import HubSource

        sources.append(HubSource.open(data_files=hub_shard))
    except ImportError:
        pass  # without the datasets library the hub source is checked by tests/test_data_hub.py's skips
    tables = [source.table() for source in sources]
    for source, table in zip(sources, tables):
        assert list(table.columns) == [*CATALOG_COLUMNS, *source.attribute_columns], source.name
        assert table.loc[:, list(CATALOG_COLUMNS)].dtypes.tolist() == tables[0].dtypes.tolist(), source.name
        assert set(table["split"]) <= {"train", "test_colours", "test_products"} and table["sku_id"].is_unique
        photos = source.photos()
        assert len(photos) == len(table) and photos.photos_per_sku >= 3 and photos.shape[2:] == (128, 128, 3)
        assert photos[0].dtype == np.uint8 and photos[0].shape == photos.shape[1:]
        assert len(source.fingerprint) == 16 and int(source.fingerprint, 16) >= 0 and source.describe()
    from ecmm.data.catalog import split_table

    assert split_table(tables[0]).tolist() == tables[0]["split"].tolist()  # the rendered shop's own splits


def offline_rows(product_types) -> pd.DataFrame:
    """The offline shop's (product_type, category, colour) rows in ``build_catalog``'s order, unrendered."""
    from ecmm.data.catalog import COLOURS

    return pd.DataFrame([(p.name, p.category, c) for p in product_types for c in COLOURS],
                        columns=["product_type", "category", "colour"])


@pytest.mark.parametrize("count", [len(PRODUCT_TYPES), 12])
def test_split_table_reproduces_the_offline_splits(count):
    from ecmm.data.catalog import assign_splits, split_table

    types = PRODUCT_TYPES[:count]
    frame = offline_rows(types)
    expected = assign_splits(types, seed=0)
    split = split_table(frame, seed=0)
    assert split.tolist() == [expected[pair] for pair in zip(frame["product_type"], frame["colour"])]
    assert split_table(frame, seed=1).tolist() != split.tolist()
    shuffled_index = frame.set_axis(np.arange(len(frame))[::-1] + 100)
    assert split_table(shuffled_index).index.equals(shuffled_index.index)
    assert split_table(shuffled_index).tolist() == split.tolist()


def test_split_table_keeps_small_types_and_lone_categories_in_training():
    from ecmm.data.catalog import split_table

    frame = pd.DataFrame({
        "product_type": ["mug"] * 3 + ["lamp"] * 2 + ["kite"] * 6 + ["ball"] * 6 + ["yo-yo"] * 6,
        "category": ["home"] * 5 + ["toys"] * 18,
        "colour": ["red", "blue", "red", "red", "blue", "red", "blue", "green", "pink", "black", "red",
                   "red", "blue", "green", "pink", "black", "white", "a", "b", "c", "d", "e", "f"],
    })
    split = split_table(frame)
    by_type = split.groupby(frame["product_type"]).agg(set)
    assert sum(kinds == {"test_products"} for kinds in by_type) == 1 + 1  # one of home's two types, one of toys' three
    held = [name for name, kinds in by_type.items() if kinds == {"test_products"}]
    assert {frame.loc[frame.product_type == name, "category"].iloc[0] for name in held} == {"home", "toys"}
    assert not split[frame["product_type"].isin(["mug", "lamp"])].eq("test_colours").any()  # 2 and 3 colours
    for name in set(frame["product_type"]) - set(held) - {"mug", "lamp"}:
        rows = frame["product_type"] == name
        assert split[rows].eq("test_colours").sum() == 2 and split[rows].eq("train").sum() == 4
    alone = pd.DataFrame({"product_type": ["mug"] * 4, "category": ["home"] * 4, "colour": list("abcd")})
    assert split_table(alone).eq("train").sum() == 2  # a lone type is never held out entirely
    with pytest.raises(ValueError, match="colour"):
        split_table(alone.drop(columns="colour"))
