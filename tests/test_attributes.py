"""ecmm.attributes: the linear probe on tiny synthetic features, zero-shot on a fake model."""

import numpy as np
import pandas as pd
import pytest
import torch

from ecmm.attributes import (attribute_table, evaluate_attribute, fit_linear_probe, predict_tags,
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
