"""Recommenders on a tiny hand-made log: shapes, cold items, carts, repeats, the two-tower loss."""

import numpy as np
import pandas as pd
import pytest

from ecmm.recsys.evaluation import SEGMENTS, evaluate_recommenders, metrics_by_segment, segment_relevance
from ecmm.recsys.interactions import time_split
from ecmm.recsys.models import (
    BPRRecommender,
    ContentRecommender,
    CooccurrenceRecommender,
    PopularityRecommender,
    RepeatPurchaseRecommender,
)
from ecmm.recsys.two_tower import HybridTwoTowerRecommender, TwoTowerConfig, next_item_examples

NUM_ITEMS = 6  # items 0-2 "outdoor", 3-4 "beauty", 5 a new outdoor item (cold)


def catalog() -> pd.DataFrame:
    return pd.DataFrame({"sku_id": [f"s{i}" for i in range(NUM_ITEMS)]})


def embeddings() -> np.ndarray:
    outdoor, beauty = np.array([1.0, 0.0, 0.1]), np.array([0.0, 1.0, 0.1])
    rows = [outdoor, outdoor + [0, 0.1, 0], outdoor + [0.1, 0, 0], beauty, beauty + [0.1, 0, 0], outdoor + [0, 0, 0.2]]
    return np.stack(rows).astype(np.float32)


def split():
    events = []  # (user, sku, event, day)
    for user in range(8):
        outdoor = user % 2 == 0
        base = [0, 1, 2] if outdoor else [3, 4, 3]
        for step, item in enumerate(base):
            events.append((f"u{user}", f"s{item}", "buy" if step == 2 else "view", 1 + step + user * 0.1))
        events.append((f"u{user}", "s5" if outdoor else "s4", "view", 20 + user * 0.1))
    table = pd.DataFrame(events, columns=["user_id", "sku_id", "event", "timestamp"])
    table["timestamp"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(table["timestamp"], unit="D")
    return time_split(table, catalog(), split_time="2026-01-15")


def test_split_has_one_cold_item():
    data = split()
    assert data.cold_items.tolist() == [5]


@pytest.mark.parametrize("model", [PopularityRecommender(), CooccurrenceRecommender(), BPRRecommender(num_epochs=5)])
def test_id_only_models_never_recommend_cold_items(model):
    data = split()
    model.fit(data.train)
    scores = model.score_users(np.arange(data.train.num_users))
    assert scores.shape == (8, NUM_ITEMS)
    assert np.isneginf(scores[:, 5]).all()
    assert 5 not in model.recommend(user=0, k=NUM_ITEMS).tolist()


def test_content_model_recommends_the_new_outdoor_item_to_outdoor_users():
    data = split()
    model = ContentRecommender(embeddings())
    model.fit(data.train)
    top = model.recommend(user=0, k=1)  # user 0 touched 0, 1, 2: only 3, 4, 5 are left
    assert top.tolist() == [5]
    assert model.recommend(cart=[3], k=1).tolist() == [4]  # complete a beauty cart with beauty


def test_recommend_validates_its_input():
    data = split()
    model = PopularityRecommender()
    with pytest.raises(ValueError, match="not fitted"):
        model.recommend(user=0)
    model.fit(data.train)
    with pytest.raises(ValueError, match="exactly one"):
        model.recommend(user=0, cart=[1])
    with pytest.raises(ValueError, match="empty"):
        model.recommend(cart=[])
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(user=0, k=0)


def test_cooccurrence_completes_the_cart_with_co_bought_items():
    data = split()
    model = CooccurrenceRecommender()
    model.fit(data.train)
    assert set(model.recommend(cart=[0], k=2).tolist()) == {1, 2}


def test_repeat_purchase_returns_bought_items_only():
    data = split()
    model = RepeatPurchaseRecommender()
    model.fit(data.train)
    assert model.recommend(user=0, k=5, exclude_seen=False).tolist() == [2]  # user u0 bought s2
    assert model.recommend(user=1, k=5, exclude_seen=False).tolist() == [3]


def test_two_tower_examples_and_training():
    data = split()
    histories, weights, targets = next_item_examples(data.train, history_length=2)
    assert histories.shape == (len(targets), 2) and weights.shape == histories.shape
    assert targets.tolist()[:2] == [1, 2]  # user u0: 0 -> 1, then (0, 1) -> 2
    model = HybridTwoTowerRecommender(embeddings(), TwoTowerConfig(dimension=8, num_epochs=20, batch_size=32, id_dropout=0.0))
    history = model.fit(data.train)
    assert history["loss"][-1] < history["loss"][0]
    scores = model.score_users([0])
    assert np.isfinite(scores).all()  # the cold item is scored through its content
    assert model.recommend(cart=[0], k=NUM_ITEMS).size == NUM_ITEMS - 1


def test_evaluation_segments_and_table():
    data = split()
    users, segments = segment_relevance(data)
    assert set(segments) == set(SEGMENTS)
    rows, relevance = segments["cold_items"]
    assert relevance[:, 5].sum() == 4 and relevance[:, :5].sum() == 0
    models = {"popularity": PopularityRecommender(), "content": ContentRecommender(embeddings())}
    for model in models.values():
        model.fit(data.train)
    results = evaluate_recommenders(models, data, k=2, progress=False)
    assert results["cold_items"]["popularity"]["Recall@2"] == 0.0
    assert results["cold_items"]["content"]["Recall@2"] == 1.0
    table = metrics_by_segment(results)
    assert table.shape == (len(SEGMENTS) * 2, 5)


def test_clip_content_embeddings_fuse_image_and_text():
    import torch

    from ecmm.recsys.embeddings import item_content_embeddings

    class FakeClip(torch.nn.Module):  # stands in for the shop model: 3-d image and text embeddings
        def encode_image(self, pixels):
            return pixels.mean(dim=(2, 3))  # (B, 3): mean colour

        def encode_text(self, tokens):
            return torch.nn.functional.one_hot(tokens["input_ids"] % 3, 3).float()

    def preprocess(images):
        return torch.as_tensor(images).float().permute(0, 3, 1, 2) / 255

    def tokenizer(texts):
        return {"input_ids": torch.tensor([len(text) for text in texts])}

    model = FakeClip()
    model.preprocess, model.tokenizer = preprocess, tokenizer
    shop = pd.DataFrame({"sku_id": ["a", "b"], "title": ["Red hat", "Blue hat"], "description": ["x", "y"]})
    photos = np.zeros((2, 2, 4, 4, 3), dtype=np.uint8)
    photos[0, ..., 0] = 255  # red photos
    photos[1, ..., 2] = 255  # blue photos
    embeddings = item_content_embeddings(shop, photos, source="clip", device="cpu", progress=False, model=model)
    assert embeddings.shape == (2, 3)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embeddings[0, 0] > embeddings[1, 0] and embeddings[1, 2] > embeddings[0, 2]  # the image part shows
    with pytest.raises(ValueError, match="photos"):
        item_content_embeddings(shop, None, source="clip")
