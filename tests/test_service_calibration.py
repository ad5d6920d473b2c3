"""Temperature scaling and the prediction cache, on hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from ecmm.service.confidence import TemperatureScaledClassifier, apply_temperature, fit_temperature
from ecmm.service.evaluation import CachedClassifier, calibrate


def _softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


class _Fixed:
    """A classifier whose logits are [1, 0] for every text; counts the texts it classified."""

    label_names = ("yes", "no")

    def __init__(self):
        self.seen = []

    def predict_proba(self, texts):
        self.seen.extend(texts)
        return _softmax(np.tile([1.0, 0.0], (len(texts), 1)))


def test_apply_temperature_equals_softmax_of_scaled_logits():
    probabilities = _softmax([[2.0, 0.0], [0.0, 1.0]])
    scaled = apply_temperature(probabilities, 2.0)
    assert scaled == pytest.approx(_softmax([[1.0, 0.0], [0.0, 0.5]]))
    assert apply_temperature(probabilities, 1.0) == pytest.approx(probabilities)
    assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(probabilities, 0.0)


def test_fit_temperature_hand_computed():
    # logits [1, 0] everywhere, 3 of 4 labels are class 0: the NLL is smallest when
    # sigmoid(1 / T) = 3/4, i.e. T = 1 / ln 3 = 0.910.
    probabilities = _softmax(np.tile([1.0, 0.0], (4, 1)))
    temperature = fit_temperature(probabilities, [0, 0, 0, 1])
    assert temperature == pytest.approx(1 / np.log(3), rel=0.03)
    # always right -> sharpen (T < 1); right half the time -> flatten (T > 1)
    assert fit_temperature(probabilities, [0, 0, 0, 0]) < 0.1
    assert fit_temperature(probabilities, [0, 1, 0, 1]) > 10
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(probabilities, [0, 1])


def test_temperature_scaled_classifier_and_calibrate():
    wrapped = TemperatureScaledClassifier(_Fixed(), 2.0)
    assert wrapped.label_names == ("yes", "no")
    assert wrapped.predict_proba(["a"]) == pytest.approx(_softmax([[0.5, 0.0]]))
    validation = pd.DataFrame({"text": ["a", "b", "c", "d"], "intent": ["yes", "yes", "yes", "no"]})
    calibrated = calibrate(_Fixed(), {"validation": validation})
    assert calibrated.temperature == pytest.approx(1 / np.log(3), rel=0.03)
    with pytest.raises(ValueError, match="positive"):
        TemperatureScaledClassifier(_Fixed(), -1.0)


def test_cached_classifier_classifies_each_text_once():
    inner = _Fixed()
    cached = CachedClassifier(inner)
    first = cached.predict_proba(["a", "b", "a"])
    second = cached.predict_proba(["b", "c"])
    assert inner.seen == ["a", "b", "c"]
    assert first.shape == (3, 2) and second.shape == (2, 2)
    assert first[0] == pytest.approx(first[2])
