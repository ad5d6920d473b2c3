"""Classification metrics as small pure functions on label arrays (numpy or torch)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_labels(values: Any, name: str) -> np.ndarray:
    """Convert a 1-D array / tensor / list of integer labels to an int64 numpy array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels, got shape {array.shape}: "
                         "pass logits.argmax(-1) rather than logits.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}.")
    return array.astype(np.int64)


def _pair(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    predicted, true = _as_labels(predictions, "predictions"), _as_labels(labels, "labels")
    if predicted.shape != true.shape:
        raise ValueError(f"predictions and labels differ in length: {predicted.shape[0]} vs "
                         f"{true.shape[0]}.")
    if true.size == 0:
        raise ValueError("Got no labels: pass at least one prediction.")
    return predicted, true


def accuracy(predictions: Any, labels: Any) -> float:
    """Fraction of predictions equal to the labels.

    Args:
        predictions: predicted class ids, shape (N,).
        labels: true class ids, shape (N,).

    Returns:
        Accuracy in [0, 1].
    """
    predicted, true = _pair(predictions, labels)
    return float((predicted == true).mean())


def confusion_matrix(predictions: Any, labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        predictions: predicted class ids, shape (N,).
        labels: true class ids, shape (N,).
        num_classes: K; None uses ``max(id) + 1`` over both arrays.

    Returns:
        int64 matrix (K, K): row = true class, column = predicted class.
    """
    predicted, true = _pair(predictions, labels)
    if min(predicted.min(), true.min()) < 0:
        raise ValueError("Class ids must be non-negative.")
    size = int(max(predicted.max(), true.max())) + 1
    if num_classes is not None:
        if num_classes < size:
            raise ValueError(f"num_classes={num_classes} but a class id {size - 1} was seen: "
                             "pass a larger num_classes.")
        size = num_classes
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def macro_f1(predictions: Any, labels: Any) -> float:
    """Unweighted mean of per-class F1 over every class that appears in labels or predictions.

    A class's F1 is ``2·TP / (2·TP + FP + FN)`` (0 when it has no true or predicted examples
    would divide by zero; such classes are not counted because they do not appear).

    Args:
        predictions: predicted class ids, shape (N,).
        labels: true class ids, shape (N,).

    Returns:
        Macro-F1 in [0, 1].
    """
    predicted, true = _pair(predictions, labels)
    classes = np.union1d(predicted, true)
    scores = []
    for k in classes:
        true_positive = np.sum((predicted == k) & (true == k))
        false_positive = np.sum((predicted == k) & (true != k))
        false_negative = np.sum((predicted != k) & (true == k))
        scores.append(2 * true_positive / (2 * true_positive + false_positive + false_negative))
    return float(np.mean(scores))
