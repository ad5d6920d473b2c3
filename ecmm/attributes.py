"""Attribute recognition: a product's colour, type and category read from its photo.

Three ways, on the same image features ``(N, E)`` of a CLIP image tower:

- **zero-shot**: one text embedding per attribute value from prompts ("a photo of a red
  product"); predict the value whose embedding is most similar to the photo's.
- **linear probe**: a logistic-regression classifier trained on frozen image features of
  labelled photos (the ``train`` split); it can only predict values it has seen.
- **fine-tuned**: either of the two on the features of the shop-fine-tuned model.

Columns are parameters: the offline shop's ``colour`` / ``product_type`` / ``category`` and a
hub catalog's ``baseColour`` / ``articleType`` / ``gender`` / ``usage`` run through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ecmm.metrics.classification import accuracy, confusion_matrix
from ecmm.models.clip import embed_images, embed_texts

__all__ = ["ATTRIBUTE_TEMPLATES", "AttributeResult", "zero_shot_weights", "zero_shot_predict",
           "fit_linear_probe", "attribute_features", "evaluate_attribute", "attribute_table",
           "predict_tags"]

ATTRIBUTE_TEMPLATES: dict[str, tuple[str, ...]] = {  # prompts per attribute; "{}" is the value
    "colour": ("a photo of a {} product", "a {} object", "something {}"),
    "product_type": ("a photo of a {}", "a {}"),
    "category": ("a photo of a product from the {} department", "{}"),
}
DEFAULT_TEMPLATES = ("a photo of a {}", "{}")  # for a column without its own templates


def zero_shot_weights(model: Any, tokenizer: Any, class_names: Sequence[str], templates: Sequence[str],
                      device: str | torch.device | None = None) -> torch.Tensor:
    """Zero-shot classifier weights: one normalised text embedding per class.

    With several templates (``"a photo of a {}"``, ...) the class embedding is the normalised mean
    of the templates' embeddings -- prompt ensembling.

    Args:
        model, tokenizer: a CLIP model and its tokenizer.
        class_names: ``C`` class names.
        templates: format strings with one ``{}``.
        device: where to run; None picks the best available.

    Returns:
        ``(C, E)`` tensor; ``logits = image_emb @ weights.T``.
    """
    if not templates or any("{}" not in template for template in templates):
        raise ValueError("templates must be a non-empty list of strings with one '{}' each")
    texts = [template.format(name) for name in class_names for template in templates]
    embeddings = embed_texts(model, tokenizer, texts, device=device)  # (C * T, E)
    embeddings = embeddings.view(len(class_names), len(templates), -1).mean(dim=1)  # (C, E)
    return torch.nn.functional.normalize(embeddings, dim=-1)


def zero_shot_predict(image_embeddings: torch.Tensor, class_weights: torch.Tensor) -> np.ndarray:
    """Index of the most similar class for every image.

    Shapes:
        ``image_embeddings (N, E)``, ``class_weights (C, E)`` -> ``(N,)`` int array.
    """
    return (image_embeddings @ class_weights.T).argmax(dim=1).cpu().numpy()


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, regularisation: float = 1.0,
                     seed: int = 0) -> Any:
    """A multinomial logistic regression on frozen features (scikit-learn).

    Args:
        features: ``(N, E)`` image features.
        labels: ``(N,)`` class ids or names.
        regularisation: inverse L2 strength ``C``.
        seed: solver seed.

    Returns:
        The fitted ``LogisticRegression``; ``.predict(features)`` gives labels.
    """
    from sklearn.linear_model import LogisticRegression

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("a linear probe needs at least two classes in its training labels")
    return LogisticRegression(C=regularisation, max_iter=2000, random_state=seed).fit(features, labels)


def attribute_features(model: Any, preprocess: Any, photos: np.ndarray,
                       device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised image embeddings of every photo of every SKU.

    Shapes:
        photos ``(N, P, H, W, 3)`` uint8 -> ``(N, P, E)``.
    """
    count, per_sku = photos.shape[:2]
    flat = embed_images(model, preprocess, photos.reshape(count * per_sku, *photos.shape[2:]), device=device)
    return flat.view(count, per_sku, -1)


@dataclass(frozen=True)
class AttributeResult:
    """One attribute recognised one way on one split."""

    column: str  # catalog column, e.g. "colour"
    method: str  # "zero-shot" or "probe"
    split: str  # evaluated split
    accuracy: float  # share of photos whose value is predicted right (NaN if not applicable)
    chance: float  # accuracy of always predicting the split's most frequent value
    classes: tuple[str, ...]  # values, in the order of the confusion matrix
    confusion: np.ndarray  # (C, C) counts: row = true value, column = predicted


def evaluate_attribute(features: torch.Tensor, catalog: pd.DataFrame, column: str, split: str,
                       method: str, model: Any = None, tokenizer: Any = None,
                       templates: Sequence[str] | None = None, train_split: str = "train",
                       device: str | torch.device | None = None) -> AttributeResult:
    """Accuracy and confusion of one attribute on every photo of one split.

    Args:
        features: ``(N, P, E)`` from :func:`attribute_features`, aligned with ``catalog``.
        catalog: rows with ``column`` and ``split``.
        column: the attribute column.
        split: the evaluated split.
        method: ``"zero-shot"`` (needs ``model``, ``tokenizer``) or ``"probe"`` (trained on
            every photo of ``train_split``; NaN accuracy when the split holds values it never saw).
        templates: zero-shot prompts; None uses :data:`ATTRIBUTE_TEMPLATES`.
        train_split: the probe's training split.
        device: where to embed prompts.

    Returns:
        An :class:`AttributeResult`.
    """
    values = catalog[column].astype(str).to_numpy()
    classes = tuple(sorted(set(values)))
    test_rows = np.flatnonzero(catalog["split"].to_numpy() == split)
    if len(test_rows) == 0:
        raise ValueError(f"no rows in split {split!r}")
    per_sku = features.shape[1]
    truth = np.repeat(values[test_rows], per_sku)  # (T * P,)
    test_features = features[test_rows].reshape(len(test_rows) * per_sku, -1)  # (T * P, E)
    if method == "zero-shot":
        if model is None or tokenizer is None:
            raise ValueError("zero-shot needs the model and its tokenizer")
        weights = zero_shot_weights(model, tokenizer, classes,
                                    templates or ATTRIBUTE_TEMPLATES.get(column, DEFAULT_TEMPLATES), device)
        predicted = np.asarray(classes)[zero_shot_predict(test_features, weights.to(test_features.device))]
    elif method == "probe":
        train_rows = np.flatnonzero(catalog["split"].to_numpy() == train_split)
        probe = fit_linear_probe(features[train_rows].reshape(len(train_rows) * per_sku, -1).numpy(),
                                 np.repeat(values[train_rows], per_sku))
        predicted = probe.predict(test_features.numpy()).astype(str)
        if not set(truth) <= set(probe.classes_):
            return _result(column, method, split, truth, predicted, classes, applicable=False)
    else:
        raise ValueError(f"method must be 'zero-shot' or 'probe'; got {method!r}")
    return _result(column, method, split, truth, predicted, classes)


def _result(column: str, method: str, split: str, truth: np.ndarray, predicted: np.ndarray,
            classes: tuple[str, ...], applicable: bool = True) -> AttributeResult:
    index = {name: position for position, name in enumerate(classes)}
    true_ids = np.array([index[name] for name in truth])
    predicted_ids = np.array([index[name] for name in predicted])
    chance = float(pd.Series(truth).value_counts(normalize=True).iloc[0])
    score = accuracy(predicted_ids, true_ids) if applicable else float("nan")
    return AttributeResult(column, method, split, score, chance, classes,
                           confusion_matrix(predicted_ids, true_ids, num_classes=len(classes)))


def attribute_table(results: Sequence[AttributeResult], model_name: str = "") -> pd.DataFrame:
    """Results as rows ``model, column, split, method, accuracy, chance``."""
    return pd.DataFrame([{"model": model_name, "column": r.column, "split": r.split, "method": r.method,
                          "accuracy": r.accuracy, "chance": r.chance} for r in results])


def predict_tags(image_embeddings: torch.Tensor, model: Any, tokenizer: Any,
                 values: Mapping[str, Sequence[str]], device: str | torch.device | None = None) -> pd.DataFrame:
    """Zero-shot tags of every photo: the most similar value of each attribute.

    Args:
        image_embeddings: ``(N, E)`` normalised photo embeddings.
        model, tokenizer: the CLIP model that made them and its tokenizer.
        values: ``{column: candidate values}``, e.g. ``{"colour": COLOURS}``.
        device: where to embed the prompts.

    Returns:
        DataFrame of ``N`` rows, one column per attribute.
    """
    tags = {}
    for column, candidates in values.items():
        weights = zero_shot_weights(model, tokenizer, list(candidates),
                                    ATTRIBUTE_TEMPLATES.get(column, DEFAULT_TEMPLATES), device)
        tags[column] = np.asarray(candidates)[zero_shot_predict(image_embeddings, weights.to(image_embeddings.device))]
    return pd.DataFrame(tags)
