"""The customer-service experiments, shared by notebook 07 and ``python -m ecmm.bench support``.

Every function measures; nothing here is hard-coded. Sizes shrink in quick mode through the
arguments (shots, seeds, epochs), never through hidden switches.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from ecmm.service.confidence import (
    TemperatureScaledClassifier,
    choose_threshold,
    fit_temperature,
    rejection_metrics,
)
from ecmm.service.intents import (
    FineTuneConfig,
    FineTunedIntentClassifier,
    FrozenIntentClassifier,
    TfidfIntentClassifier,
    encode_intents,
    evaluate_intents,
    sample_few_shot,
)

__all__ = [
    "split_intents", "compare_classifiers", "few_shot_curve", "out_of_scope_report",
    "CachedClassifier", "calibrate",
]


class CachedClassifier:
    """Remember the probabilities of every message already classified (each text runs once).

    Args:
        classifier: anything with ``label_names`` and ``predict_proba(texts) -> (N, K)``.
    """

    def __init__(self, classifier) -> None:
        self.classifier = classifier
        self.label_names = tuple(classifier.label_names)
        self.memory: dict[str, np.ndarray] = {}

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) texts -> (N, K) probabilities; only unseen texts reach the wrapped classifier."""
        texts = [str(text) for text in texts]
        missing = list(dict.fromkeys(text for text in texts if text not in self.memory))
        if missing:
            self.memory.update(zip(missing, self.classifier.predict_proba(missing)))
        return np.stack([self.memory[text] for text in texts]) if texts else self.classifier.predict_proba(texts)


def calibrate(classifier, splits: dict[str, pd.DataFrame]) -> TemperatureScaledClassifier:
    """Temperature scaling fitted on the validation split (never on test).

    Args:
        classifier: a trained intent classifier.
        splits: output of :func:`split_intents`.

    Returns:
        The classifier wrapped with its validation temperature (``.temperature``).
    """
    validation = splits["validation"]
    probabilities = classifier.predict_proba(validation["text"].tolist())  # (N, K)
    labels = encode_intents(validation["intent"], classifier.label_names)
    return TemperatureScaledClassifier(classifier, fit_temperature(probabilities, labels))


def split_intents(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The four splits of :func:`ecmm.data.load_intents` as a dict of DataFrames.

    Args:
        frame: rows ``text, intent, split, template_id``.

    Returns:
        ``{"train", "validation", "test", "out_of_scope"}`` -> DataFrame.
    """
    splits = {name: frame[frame["split"] == name].reset_index(drop=True)
              for name in ("train", "validation", "test", "out_of_scope")}
    empty = [name for name, part in splits.items() if part.empty]
    if empty:
        raise ValueError(f"The intent data has no {empty} rows: load it with ecmm.data.load_intents().")
    return splits


def compare_classifiers(
    encoder,
    splits: dict[str, pd.DataFrame],
    label_names: Sequence[str],
    fine_tune_config: FineTuneConfig = FineTuneConfig(),
    seed: int = 0,
    device=None,
    embedding_cache: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Train TF-IDF, frozen-MiniLM and fine-tuned-MiniLM classifiers on the train split.

    Args:
        encoder: the pretrained text encoder (left unchanged).
        splits: output of :func:`split_intents`.
        label_names: the K intents.
        fine_tune_config: fine-tuning settings (fewer epochs in quick mode).
        seed: seed of the heads and of the batch order.
        device: None picks the best device.
        embedding_cache: dict text -> frozen embedding, shared with :func:`few_shot_curve`.

    Returns:
        ``(table, classifiers)``: a DataFrame indexed by model (``tfidf, frozen, finetuned``) with
        ``accuracy, macro_f1, train_seconds`` on the test split, and the trained classifiers, each
        wrapped in a :class:`CachedClassifier` (the trained model is its ``.classifier``).
    """
    train, test = splits["train"], splits["test"]
    classifiers = {
        "tfidf": TfidfIntentClassifier(label_names),
        "frozen": FrozenIntentClassifier(encoder, label_names, seed=seed, device=device, cache=embedding_cache),
        "finetuned": FineTunedIntentClassifier(encoder, label_names, fine_tune_config, seed=seed, device=device),
    }
    rows = {}
    for name, classifier in classifiers.items():
        start = time.perf_counter()
        classifier.fit(train["text"].tolist(), train["intent"].tolist())
        seconds = time.perf_counter() - start
        classifiers[name] = CachedClassifier(classifier)  # later evaluations reuse these predictions
        probabilities = classifiers[name].predict_proba(test["text"].tolist())
        rows[name] = {**evaluate_intents(probabilities, test["intent"], label_names), "train_seconds": seconds}
    return pd.DataFrame(rows).T[["accuracy", "macro_f1", "train_seconds"]], classifiers


def few_shot_curve(
    encoder,
    splits: dict[str, pd.DataFrame],
    label_names: Sequence[str],
    shots: Sequence[int] = (1, 5, 10, 20),
    seeds: Sequence[int] = (0, 1, 2),
    device=None,
    embedding_cache: dict | None = None,
) -> pd.DataFrame:
    """Test accuracy of TF-IDF and frozen MiniLM + head trained on k examples per intent.

    The train and test messages are embedded once (or taken from ``embedding_cache``); each
    (shots, seed) run only trains a head.

    Returns:
        DataFrame with one row per run: ``method, shots, seed, accuracy, macro_f1``.
    """
    train, test = splits["train"], splits["test"]
    frozen = FrozenIntentClassifier(encoder, label_names, device=device, cache=embedding_cache)
    train_embeddings = frozen.embed(train["text"].tolist())  # (N, D), once
    test_embeddings = frozen.embed(test["text"].tolist())  # (M, D), once
    position = {text: row for row, text in enumerate(train["text"])}
    rows = []
    for k in shots:
        for seed in seeds:
            sample = sample_few_shot(train, k, seed=seed)
            texts, intents = sample["text"].tolist(), sample["intent"].tolist()
            baseline = TfidfIntentClassifier(label_names).fit(texts, intents)
            scores = evaluate_intents(baseline.predict_proba(test["text"].tolist()), test["intent"], label_names)
            rows.append({"method": "tfidf", "shots": k, "seed": seed, **scores})
            head = FrozenIntentClassifier(encoder, label_names, seed=seed, device=device)
            head.fit_embeddings(train_embeddings[[position[text] for text in texts]], intents)
            scores = evaluate_intents(head.predict_proba_embeddings(test_embeddings), test["intent"], label_names)
            rows.append({"method": "frozen", "shots": k, "seed": seed, **scores})
    return pd.DataFrame(rows)


def out_of_scope_report(classifier, splits: dict[str, pd.DataFrame], min_in_scope_kept: float = 0.95) -> dict:
    """Choose a confidence threshold on validation; measure rejection on test + out-of-scope.

    The threshold is the largest one that still answers ``min_in_scope_kept`` of the in-scope
    validation messages; the out-of-scope messages are never used to choose it.

    Returns:
        ``{"threshold", "precision", "recall", "in_scope_kept", "confidences"}`` where
        ``confidences`` holds the test and out-of-scope confidences for plotting.
    """
    validation = classifier.predict_proba(splits["validation"]["text"].tolist()).max(axis=1)
    threshold = choose_threshold(validation, min_in_scope_kept=min_in_scope_kept)
    in_scope = classifier.predict_proba(splits["test"]["text"].tolist()).max(axis=1)
    out_of_scope = classifier.predict_proba(splits["out_of_scope"]["text"].tolist()).max(axis=1)
    report = rejection_metrics(in_scope, out_of_scope, threshold)
    report["confidences"] = {"in scope (test)": in_scope, "out of scope": out_of_scope}
    return report
