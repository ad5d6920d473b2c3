"""Hand-computed cases for ecmm.metrics.classification."""

import numpy as np
import pytest
import torch

from ecmm.metrics.classification import accuracy, confusion_matrix, macro_f1


def test_accuracy_hand_computed():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    assert accuracy(torch.tensor([1, 1]), torch.tensor([0, 0])) == 0.0


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(predictions=[0, 1, 1, 2], labels=[0, 1, 2, 2])
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(matrix, expected)
    assert confusion_matrix([0], [0], num_classes=4).shape == (4, 4)


def test_macro_f1_hand_computed():
    # class 0: TP=1 FP=0 FN=0 -> F1 = 1
    # class 1: TP=1 FP=1 FN=0 -> F1 = 2/3
    # class 2: TP=1 FP=0 FN=1 -> F1 = 2/3
    score = macro_f1(predictions=[0, 1, 1, 2], labels=[0, 1, 2, 2])
    assert score == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_macro_f1_counts_classes_only_predicted():
    # class 0: TP=1 FN=1 -> 2/3; class 1 (never true): TP=0 FP=1 -> 0
    assert macro_f1(predictions=[0, 1], labels=[0, 0]) == pytest.approx(1 / 3)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="1-D"):
        accuracy(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0, 5], [0, 1], num_classes=3)


def test_macro_f1_agrees_with_scikit_learn():
    from sklearn.metrics import f1_score

    generator = np.random.default_rng(0)
    labels, predictions = generator.integers(0, 5, 50), generator.integers(0, 6, 50)
    assert macro_f1(predictions, labels) == pytest.approx(f1_score(labels, predictions, average="macro"))
