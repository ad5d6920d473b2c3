"""The recommender pipeline on any catalog source: its own events or simulated ones, and the cached fit."""

import numpy as np
import pandas as pd
import pytest
import torch

from ecmm.data.catalogs import ArrayPhotos
from ecmm.recsys.interactions import check_interactions, split_from_arrays, split_to_arrays, time_split


@pytest.fixture()
def temporary_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def folder_source(folder_catalog):
    from ecmm.data.folder import FolderSource

    return FolderSource.open(folder_catalog)


def test_events_of_a_shop_log_are_read_under_their_usual_names():
    catalog = pd.DataFrame({"sku_id": ["a", "b"]})
    log = pd.DataFrame({"user_id": [1, 1, 2], "sku_id": ["a", "b", "b"], "event": ["Purchase", " add_to_cart", "click"],
                        "timestamp": ["2024-01-01", "2024-01-02", "2024-01-03"]})
    checked = check_interactions(log, catalog)
    assert checked["event"].tolist() == ["buy", "cart", "view"] and checked["item_index"].tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="unknown event types"):
        check_interactions(log.assign(event="refund"), catalog)


def test_a_split_survives_its_arrays(folder_source):
    from ecmm.recsys.simulator import SimulatorConfig, simulate_interactions

    catalog = folder_source.table()
    split = time_split(simulate_interactions(catalog, SimulatorConfig(num_users=30, events_per_user=8), progress=False),
                       catalog)
    again = split_from_arrays(split_to_arrays(split))
    for part in ("train", "test"):
        for name in ("user_index", "item_index", "weight", "event", "days"):
            assert np.array_equal(getattr(getattr(again, part), name), getattr(getattr(split, part), name))
    assert again.split_time == split.split_time and np.array_equal(again.user_ids, split.user_ids)
    assert np.array_equal(again.cold_items, split.cold_items) and again.train.num_items == len(catalog)


def test_the_sources_own_log_is_used_and_said(tmp_path, temporary_home, capsys):
    from catalog_fixtures import write_folder_catalog

    from ecmm.data.folder import FolderSource
    from ecmm.recsys.pipeline import SIMULATED_LOG, build_recsys_data

    source = FolderSource.open(write_folder_catalog(tmp_path / "events", rows=60, interactions=True))
    data = build_recsys_data(source=source)
    events = source.interactions()
    assert data.log_origin == f"the shop's own event log ({len(events):,} events)" != SIMULATED_LOG
    assert data.split.train.user_index.size + data.split.test.user_index.size == len(events)
    assert data.split.user_ids.tolist() == sorted(events["user_id"].astype(str).unique())
    assert f"interactions: {data.log_origin}" in capsys.readouterr().out
    simulated = build_recsys_data(source=FolderSource.open(write_folder_catalog(tmp_path / "plain", rows=60)),
                                  progress=False)
    assert simulated.log_origin == SIMULATED_LOG and len(simulated.catalog) == 60


def test_the_cached_fit_recommends_as_the_fresh_fit(folder_source, temporary_home, tmp_path):
    from ecmm.artifacts import read_card
    from ecmm.recsys.pipeline import build_fitted_recommender, build_models, build_recsys_data, load_fitted_recommender

    folder = tmp_path / "fitted"
    build_fitted_recommender(folder, progress=False, source=folder_source)
    data, loaded = load_fitted_recommender(folder, folder_source)
    fresh_data = build_recsys_data(source=folder_source, progress=False)
    fresh = build_models(fresh_data.item_embeddings, quick=True, names=("hybrid",), progress=False)["hybrid"]
    fresh.fit(fresh_data.split.train)
    users = np.arange(min(10, data.split.train.num_users))
    assert np.allclose(loaded.score_users(users), fresh.score_users(users), atol=1e-6)
    cart = data.split.item_indices(list(folder_source.table()["sku_id"].astype(str)[:2]))
    assert loaded.recommend(cart=cart, k=5).tolist() == fresh.recommend(cart=cart, k=5).tolist()
    card = read_card(folder)
    assert card["recipe"]["model"] == "hybrid" and card["metrics"]["fit_seconds"] > 0
    assert card["data"]["catalog"] == folder_source.fingerprint and card["data"]["quick"] is True
    assert data.table is None and data.log_origin == fresh_data.log_origin


class CountingPhotos(ArrayPhotos):
    """Photos that count what is read and refuse to be materialised whole."""

    def __init__(self, array):
        super().__init__(array)
        self.largest_read = 0

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        self.largest_read = max(self.largest_read, len(batch) if batch.ndim == 4 else 1)
        return batch

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the photos were materialised")


def test_clip_content_embeddings_read_a_photo_set_in_batches():
    from ecmm.recsys.embeddings import item_content_embeddings

    class MeanColour(torch.nn.Module):
        def encode_image(self, pixels):
            return pixels.mean(dim=(2, 3))

        def encode_text(self, tokens):
            return torch.ones(len(tokens), 3)

    model = MeanColour()
    model.preprocess = lambda images: torch.as_tensor(np.asarray(images)).float().permute(0, 3, 1, 2) / 255
    model.tokenizer = lambda texts: torch.zeros(len(texts), 1)
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, size=(10, 2, 4, 4, 3), dtype=np.uint8)
    shop = pd.DataFrame({"sku_id": list("abcdefghij"), "title": ["t"] * 10, "description": ["d"] * 10})
    photos = CountingPhotos(array)
    lazy = item_content_embeddings(shop, photos, source="clip", device="cpu", batch_size=4, progress=False, model=model)
    eager = item_content_embeddings(shop, array, source="clip", device="cpu", batch_size=4, progress=False, model=model)
    assert np.allclose(lazy, eager) and photos.largest_read == 4
