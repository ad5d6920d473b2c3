"""Tests for ecmm.data.store: data sets written as checksummed artefacts in a temporary ECMM_HOME."""

import numpy as np
import pytest

from ecmm.artifacts import ArtifactError, forget_verified, read_card
from ecmm.data import store
from ecmm.data.catalog import CATEGORIES, PRODUCT_TYPES, assign_splits


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    forget_verified()
    yield tmp_path
    forget_verified()


def test_catalog_card_records_every_file_and_the_recipe(home):
    folder = store.write_catalog(store.data_dir("catalog"), progress=False, product_types=PRODUCT_TYPES[:2])
    card = read_card(folder)
    assert folder == home / "data" / "catalog-v2"
    assert set(card["files"]) == {"table.json", "images.npy"}
    assert card["files"]["images.npy"]["size"] == (folder / "images.npy").stat().st_size
    assert card["rows"] == 20 and card["images_shape"] == [20, 4, 128, 128, 3]
    assert card["recipe"]["version"] == store.DATA_VERSIONS["catalog"] and card["recipe"]["product_types"] == 2
    assert store.offline_catalog()[1].shape == (20, 4, 128, 128, 3)


def test_prepare_rebuilds_only_when_missing_or_damaged(home, monkeypatch):
    calls = []
    real = store.write_source_corpus
    monkeypatch.setattr(store, "write_source_corpus",
                        lambda folder, progress=True: calls.append(folder) or real(folder, progress, limit=5))
    folder = store.prepare_source_corpus(progress=False)
    store.prepare_source_corpus(progress=False)
    assert len(calls) == 1 and len(store.load_source_corpus()[0]) == 5
    (folder / "images.npy").write_bytes(b"short")
    with pytest.raises(ArtifactError, match="ecmm prepare --repair"):
        store.load_source_corpus()
    store.prepare_source_corpus(progress=False)
    assert len(calls) == 2 and store.load_source_corpus()[1].shape == (5, 128, 128, 3)


def test_splits_of_a_reduced_catalog_and_of_the_full_one():
    splits = assign_splits(PRODUCT_TYPES[:3], seed=0)
    assert len(splits) == 30 and set(splits.values()) <= {"train", "test_colours", "test_products"}
    full = assign_splits(PRODUCT_TYPES, seed=0)
    assert {p.category for p in PRODUCT_TYPES} == set(CATEGORIES)
    assert sum(split == "test_products" for split in full.values()) == 250  # the shop's 25 held-out types


def test_unknown_data_set_names_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        store.data_dir("images")


def test_source_corpus_limit_renders_the_first_icons():
    from ecmm.data.source import build_source_corpus, source_emoji

    frame, images = build_source_corpus(progress=False, limit=3)
    assert frame["emoji"].tolist() == [c for c, _ in source_emoji()[:3]]
    assert images.dtype == np.uint8 and images.shape == (3, 128, 128, 3)
