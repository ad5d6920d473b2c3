"""How far to trust a classifier's confidence: calibration and out-of-scope rejection.

The confidence of a message is its largest class probability ``max_k p(k|x)``. A calibrated
classifier is right on about 80 % of the messages it gives confidence 0.8. Out-of-scope messages
("tell me a joke") belong to no intent; a classifier must still put them in *some* intent, so we
reject a message when its confidence falls below a threshold chosen on the validation split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "reliability_table", "expected_calibration_error", "choose_threshold", "rejection_metrics",
    "apply_temperature", "fit_temperature", "TemperatureScaledClassifier",
]


def _confidences(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError(f"{name} is empty: pass at least one confidence.")
    if np.any((values < 0) | (values > 1)) or np.any(np.isnan(values)):
        raise ValueError(f"{name} must be probabilities in [0, 1] (the max softmax probability).")
    return values


def reliability_table(confidences, correct, num_bins: int = 10) -> pd.DataFrame:
    """Group predictions into equal-width confidence bins; compare mean confidence and accuracy.

    Args:
        confidences: (N,) max class probability of each prediction.
        correct: (N,) booleans, True where the arg-max class was right.
        num_bins: number of equal-width bins on [0, 1].

    Returns:
        DataFrame with one row per non-empty bin: ``lower, upper, confidence, accuracy, count``.
    """
    confidences = _confidences("confidences", confidences)
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if correct.shape != confidences.shape:
        raise ValueError(f"Got {confidences.size} confidences but {correct.size} correctness flags.")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}.")
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.digitize(confidences, edges[1:-1], right=True), 0, num_bins - 1)  # (N,)
    rows = []
    for b in range(num_bins):
        members = bins == b
        if members.any():
            rows.append({
                "lower": edges[b], "upper": edges[b + 1],
                "confidence": float(confidences[members].mean()),
                "accuracy": float(correct[members].mean()),
                "count": int(members.sum()),
            })
    return pd.DataFrame(rows, columns=["lower", "upper", "confidence", "accuracy", "count"])


def expected_calibration_error(confidences, correct, num_bins: int = 10) -> float:
    """ECE: the count-weighted mean gap ``|accuracy - confidence|`` over confidence bins.

    Args:
        confidences: (N,) max class probabilities.
        correct: (N,) booleans.
        num_bins: equal-width bins on [0, 1].

    Returns:
        ECE in [0, 1]; 0 for a perfectly calibrated classifier.
    """
    table = reliability_table(confidences, correct, num_bins)
    gaps = (table["accuracy"] - table["confidence"]).abs()
    return float((gaps * table["count"]).sum() / table["count"].sum())


def rejection_metrics(in_scope_confidences, out_of_scope_confidences, threshold: float) -> dict:
    """Precision and recall of "reject when confidence < threshold" (rejected = positive).

    Args:
        in_scope_confidences: (N,) confidences on messages that have an intent.
        out_of_scope_confidences: (M,) confidences on messages that have none.
        threshold: messages with a confidence strictly below it are rejected.

    Returns:
        ``{"precision", "recall", "in_scope_kept", "threshold"}``: precision = share of rejected
        messages that really were out of scope; recall = share of out-of-scope messages rejected;
        in_scope_kept = share of in-scope messages that still get an answer.
    """
    inside = _confidences("in_scope_confidences", in_scope_confidences)
    outside = _confidences("out_of_scope_confidences", out_of_scope_confidences)
    true_rejections = int((outside < threshold).sum())
    false_rejections = int((inside < threshold).sum())
    rejected = true_rejections + false_rejections
    return {
        "precision": true_rejections / rejected if rejected else 1.0,
        "recall": true_rejections / outside.size,
        "in_scope_kept": 1.0 - false_rejections / inside.size,
        "threshold": float(threshold),
    }


def choose_threshold(
    in_scope_confidences, out_of_scope_confidences=None, min_in_scope_kept: float = 0.95
) -> float:
    """Pick the rejection threshold on validation data.

    With out-of-scope validation messages, the threshold maximises the F1 of rejection among the
    thresholds that still answer at least ``min_in_scope_kept`` of the in-scope messages. Without
    them, it is the largest threshold that answers that share (a quantile of in-scope confidence).

    Args:
        in_scope_confidences: (N,) validation confidences of in-scope messages.
        out_of_scope_confidences: (M,) validation confidences of out-of-scope messages, or None.
        min_in_scope_kept: share of in-scope messages that must keep their answer, in (0, 1].

    Returns:
        The threshold (reject when confidence < threshold).
    """
    if not 0.0 < min_in_scope_kept <= 1.0:
        raise ValueError(f"min_in_scope_kept must be in (0, 1], got {min_in_scope_kept}.")
    inside = np.sort(_confidences("in_scope_confidences", in_scope_confidences))
    allowed_rejections = int(np.floor((1.0 - min_in_scope_kept) * inside.size))
    ceiling = float(inside[allowed_rejections])  # thresholds <= this keep enough in-scope messages
    if out_of_scope_confidences is None:
        return ceiling
    outside = _confidences("out_of_scope_confidences", out_of_scope_confidences)
    candidates = np.unique(np.concatenate([inside, outside, [ceiling]]))
    candidates = candidates[candidates <= ceiling]
    best_threshold, best_f1 = ceiling, -1.0
    for threshold in candidates:
        scores = rejection_metrics(inside, outside, threshold)
        total = scores["precision"] + scores["recall"]
        f1 = 2 * scores["precision"] * scores["recall"] / total if total else 0.0
        if f1 > best_f1:
            best_threshold, best_f1 = float(threshold), f1
    return best_threshold


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """Rescale class probabilities by a temperature: ``softmax(log p / T)``.

    ``log p`` equals the logits up to a per-row constant, so this is exactly ``softmax(logits / T)``:
    T > 1 flattens the distribution, T < 1 sharpens it, and the arg-max never changes.

    Args:
        probabilities: (N, K) rows that sum to 1.
        temperature: T > 0.

    Returns:
        (N, K) rescaled probabilities.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)) / temperature  # (N, K)
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities, labels, candidates=None) -> float:
    """Temperature scaling: the T that minimises the negative log-likelihood of validation labels.

    Args:
        probabilities: (N, K) validation probabilities of the uncalibrated classifier.
        labels: (N,) integer validation labels.
        candidates: temperatures to try; None tries 400 values spaced logarithmically in [0.005, 20].

    Returns:
        The best temperature.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or len(labels) == 0:
        raise ValueError("Pass (N, K) probabilities and N integer labels of the same validation messages.")
    candidates = np.logspace(np.log10(0.005), np.log10(20.0), 400) if candidates is None else candidates
    rows = np.arange(len(labels))

    def negative_log_likelihood(temperature: float) -> float:
        return float(-np.log(apply_temperature(probabilities, temperature)[rows, labels] + 1e-12).mean())

    return float(min(candidates, key=negative_log_likelihood))


class TemperatureScaledClassifier:
    """Wrap an intent classifier so that its probabilities are ``softmax(logits / T)``.

    Args:
        classifier: anything with ``label_names`` and ``predict_proba(texts) -> (N, K)``.
        temperature: T from :func:`fit_temperature` (chosen on validation, never on test).
    """

    def __init__(self, classifier, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.classifier = classifier
        self.temperature = float(temperature)
        self.label_names = tuple(classifier.label_names)

    def predict_proba(self, texts) -> np.ndarray:
        """(N,) texts -> (N, K) calibrated probabilities (same arg-max as the wrapped classifier)."""
        return apply_temperature(self.classifier.predict_proba(texts), self.temperature)
