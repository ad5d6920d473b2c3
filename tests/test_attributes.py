"""ecmm.attributes: the linear probe on tiny synthetic features, zero-shot on a fake model."""

import numpy as np
import pandas as pd
import pytest
import torch

from ecmm.attributes import (attribute_columns, attribute_features, attribute_table, evaluate_attribute,
                             evaluate_attributes, fit_linear_probe, predict_tags,
                             zero_shot_predict, zero_shot_weights)
from tests.test_search import FakeClip


def test_probe_separates_two_clusters():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-2, 0.3, (20, 4)), rng.normal(2, 0.3, (20, 4))])
    labels = np.array(["red"] * 20 + ["blue"] * 20)
    probe = fit_linear_probe(features, labels)
    assert (probe.predict(features) == labels).mean() == 1.0
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_probe(features, np.array(["red"] * 40))


def test_zero_shot_predicts_the_nearest_class():
    model = FakeClip()
    weights = zero_shot_weights(model, model.tokenizer, ["red", "blue"], ["a {}", "{}"])
    assert weights.shape == (2, len(model.tokenizer(["x"])[0]))
    images = model.encode_text(model.tokenizer(["blue", "red", "red"]))
    np.testing.assert_array_equal(zero_shot_predict(images, weights), [1, 0, 0])
    tags = predict_tags(images, model, model.tokenizer, {"colour": ["red", "blue"]})
    assert tags["colour"].tolist() == ["blue", "red", "red"]
    with pytest.raises(ValueError, match="templates"):
        zero_shot_weights(model, model.tokenizer, ["red"], ["no slot"])


def test_evaluate_attribute_both_ways_and_unseen_values():
    model = FakeClip()
    catalog = pd.DataFrame({"colour": ["red", "blue", "red", "blue"], "product_type": ["a", "b", "a", "c"],
                            "split": ["train", "train", "test", "test"]})
    features = model.encode_text(model.tokenizer(list(catalog["colour"])))[:, None].repeat(1, 2, 1)  # (4, 2, E)
    probe = evaluate_attribute(features, catalog, "colour", "test", "probe")
    zero_shot = evaluate_attribute(features, catalog, "colour", "test", "zero-shot", model, model.tokenizer)
    assert probe.accuracy == zero_shot.accuracy == 1.0 and probe.chance == 0.5
    assert probe.confusion.sum() == 4 and probe.confusion.trace() == 4
    unseen = evaluate_attribute(features, catalog, "product_type", "test", "probe")
    assert np.isnan(unseen.accuracy)  # the probe never saw type "c"
    table = attribute_table([probe, zero_shot, unseen], "fake")
    assert list(table.columns) == ["model", "column", "split", "method", "accuracy", "chance"] and len(table) == 3
    with pytest.raises(ValueError):
        evaluate_attribute(features, catalog, "colour", "nope", "probe")


def test_attribute_columns_come_from_the_table():
    table = pd.DataFrame({"colour": ["red", "blue"], "product_type": ["a", "a"], "category": ["x", "y"],
                          "gender": ["Men", "Women"], "usage": ["", "Casual"]})
    assert attribute_columns(table, ("gender", "usage", "brand")) == ("colour", "category", "gender")


def _check_pipeline(table, photos, extra_columns, open_clip_model):
    """Zero-shot and probe on two models' features; every accuracy applicable and in [0, 1] or NaN."""
    import copy

    columns = attribute_columns(table, extra_columns)
    tuned = copy.deepcopy(open_clip_model)
    with torch.no_grad():
        tuned.model.visual.proj.mul_(1.1)  # a different image tower stands in for a fine-tuned one
    models = {"pretrained": open_clip_model, "fine-tuned": tuned}
    features = {name: attribute_features(model, photos, 2, batch_size=50) for name, model in models.items()}
    assert features["pretrained"].shape[:2] == (len(table), 2)
    np.testing.assert_allclose(features["pretrained"].norm(dim=-1).numpy(), 1.0, rtol=1e-4)
    results = evaluate_attributes(features, models, table, columns)
    frame = attribute_table(results)
    assert set(frame.model) == set(models) and set(frame.column) == set(columns)
    assert set(frame.method) == {"zero-shot", "probe"}
    for result in results:
        assert result.applicable == np.isfinite(result.accuracy)
        assert result.method == "probe" or result.applicable  # zero-shot always applies
        if result.applicable:
            assert 0.0 <= result.accuracy <= 1.0 and 0.0 < result.chance <= 1.0
        assert result.confusion.shape == (len(result.classes),) * 2
        assert set(result.classes) <= set(table[result.column])  # values from the table, not the offline lists
    return columns, results


def test_synthetic_catalog_attributes_with_a_tiny_open_clip(tiny_open_clip):
    from ecmm.data.catalogs import ArrayPhotos

    rng = np.random.default_rng(0)
    rows = 40
    table = pd.DataFrame({"colour": rng.choice(["Navy Blue", "Olive", "Maroon"], rows),
                          "product_type": rng.choice(["kurta", "sling bag"], rows),
                          "category": rng.choice(["apparel / topwear", "accessories / bags"], rows),
                          "gender": rng.choice(["Men", "Women", "Unisex"], rows),
                          "usage": rng.choice(["Casual", "Ethnic", ""], rows),
                          "split": ["train"] * 24 + ["test_colours"] * 8 + ["test_products"] * 8})
    photos = ArrayPhotos(rng.integers(0, 256, (rows, 3, 32, 32, 3), dtype=np.uint8))
    columns, results = _check_pipeline(table, photos, ("gender", "usage"), tiny_open_clip[0])
    assert columns == ("colour", "product_type", "category", "gender", "usage")
    assert any(r.method == "probe" and r.applicable for r in results)


def test_hub_catalog_attributes_with_a_tiny_open_clip(hub_shard, tiny_open_clip):
    """The hub's schema (baseColour, articleType as colour, product_type; gender, usage as extras)."""
    pytest.importorskip("datasets")
    from ecmm.data.hub import HubSource

    source = HubSource.open(data_files=hub_shard)
    columns, results = _check_pipeline(source.table(), source.photos(), source.attribute_columns, tiny_open_clip[0])
    assert {"colour", "product_type", "gender"} <= set(columns)
    assert any(r.column == "gender" and r.applicable for r in results)
