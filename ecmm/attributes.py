"""Attribute recognition: a product's colour, type and category read from its photo.

Three ways, on the same image features ``(N, E)`` of a CLIP image tower:

- **zero-shot**: one text embedding per attribute value from prompts ("a photo of a red
  product"); predict the value whose embedding is most similar to the photo's.
- **linear probe**: a logistic-regression classifier trained on frozen image features of
  labelled photos (the ``train`` split); it can only predict values it has seen.
- **fine-tuned**: either of the two on the features of the shop-fine-tuned model.

Columns are parameters and the values come from the table, never from the offline shop's lists:
:func:`attribute_columns` names ``colour`` / ``product_type`` / ``category`` plus a source's own
``attribute_columns`` (the hub's ``gender`` and ``usage``; its ``baseColour`` and ``articleType``
are the table's ``colour`` and ``product_type``). Photos are a :class:`~ecmm.data.catalogs.PhotoSet`
or an in-memory ``(N, P, H, W, 3)`` array, read a batch of SKUs at a time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ecmm.metrics.classification import accuracy, confusion_matrix
from ecmm.models.clip import embed_images, embed_texts

__all__ = ["ATTRIBUTE_TEMPLATES", "METHODS", "AttributeResult", "zero_shot_weights", "zero_shot_predict",
           "fit_linear_probe", "attribute_columns", "attribute_features", "evaluate_attribute",
           "evaluate_attributes", "attribute_table", "predict_tags"]

METHODS = ("zero-shot", "probe")  # ways an attribute is read from image features

ATTRIBUTE_TEMPLATES: dict[str, tuple[str, ...]] = {  # prompts per attribute; "{}" is the value
    "colour": ("a photo of a {} product", "a {} object", "something {}"),
    "product_type": ("a photo of a {}", "a {}"),
    "category": ("a photo of a product from the {} department", "{}"),
    "gender": ("a photo of a product for {}", "{} fashion"),
    "usage": ("a photo of a product for {} use", "{} wear"),
}
BASE_COLUMNS = ("colour", "product_type", "category")  # attribute columns of every catalog
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


def attribute_columns(table: pd.DataFrame, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The attribute columns of a catalog: ``colour``, ``product_type``, ``category`` and ``extra``
    (a source's ``attribute_columns``), those the table has with at least two values."""
    columns = dict.fromkeys([*BASE_COLUMNS, *extra])
    return tuple(column for column in columns if column in table.columns
                 and table[column].astype(str).str.strip().replace("", np.nan).nunique() >= 2)


def attribute_features(model: Any, photos: Any, photos_per_sku: int | None = None, *, preprocess: Any = None,
                       batch_size: int = 64, device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised image embeddings of the first ``photos_per_sku`` photos of every SKU.

    Args:
        model: a CLIP model (``model.preprocess`` unless ``preprocess`` is given).
        photos: a :class:`~ecmm.data.catalogs.PhotoSet` or a uint8 array ``(N, P, H, W, 3)``, read
            ``batch_size`` SKUs at a time (memory scales with the batch, not the catalog).
        photos_per_sku: photos per SKU to embed; None = all.
        preprocess: the model's preprocessing if it has no ``preprocess``.
        device: where to run; None picks the best available.

    Shapes:
        ``(N, P, H, W, 3)`` photos -> ``(N, photos_per_sku, E)``.
    """
    total, available = int(photos.shape[0]), int(photos.shape[1])
    count = available if photos_per_sku is None else min(int(photos_per_sku), available)
    inputs = (model,) if preprocess is None else (model, preprocess)
    chunks = []
    for start in range(0, total, batch_size):  # each SKU's photos are read once
        batch = np.asarray(photos[start:start + batch_size])[:, :count]  # (b, count, H, W, 3)
        flat = embed_images(*inputs, batch.reshape(-1, *batch.shape[2:]), device=device)  # (b * count, E)
        chunks.append(flat.view(len(batch), count, -1))
    return torch.cat(chunks)


@dataclass(frozen=True)
class AttributeResult:
    """One attribute recognised one way on one split."""

    column: str  # catalog column, e.g. "colour"
    method: str  # "zero-shot" or "probe"
    split: str  # evaluated split
    accuracy: float  # share of photos whose value is predicted right (NaN if not applicable)
    applicable: bool  # False: the probe's training rows lack a value of the split (or hold one value)
    chance: float  # accuracy of always predicting the split's most frequent value
    classes: tuple[str, ...]  # values, in the order of the confusion matrix
    confusion: np.ndarray  # (C, C) counts: row = true value, column = predicted
    model: str = ""  # the name of the model whose features were used


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
    values = catalog[column].fillna("").astype(str).str.strip().to_numpy()
    classes = tuple(sorted(set(values) - {""}))
    splits = catalog["split"].to_numpy()
    test_rows = np.flatnonzero((splits == split) & (values != ""))
    if len(test_rows) == 0:
        raise ValueError(f"no rows with a {column!r} value in split {split!r}; the table's splits are {sorted(set(splits))}")
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
        train_rows = np.flatnonzero((splits == train_split) & (values != ""))
        train_values = np.repeat(values[train_rows], per_sku)
        if len(set(train_values)) < 2:
            return _result(column, method, split, truth, truth, classes, applicable=False)
        probe = fit_linear_probe(features[train_rows].reshape(len(train_rows) * per_sku, -1).numpy(), train_values)
        predicted = probe.predict(test_features.numpy()).astype(str)
        if not set(truth) <= set(probe.classes_):
            return _result(column, method, split, truth, predicted, classes, applicable=False)
    else:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    return _result(column, method, split, truth, predicted, classes)


def evaluate_attributes(features: Mapping[str, torch.Tensor], models: Mapping[str, Any], catalog: pd.DataFrame,
                        columns: Sequence[str], splits: Sequence[str] = ("test_colours", "test_products"),
                        methods: Sequence[str] = METHODS, device: str | torch.device | None = None) -> list[AttributeResult]:
    """Every column, split and method for every model (``features[name]`` are ``models[name]``'s).

    Splits without a row holding a value of a column are skipped.

    Returns:
        The :class:`AttributeResult` list, in the order model, column, split, method.
    """
    results = []
    for name, model in models.items():
        for column in columns:
            for split in splits:
                filled = catalog[column].fillna("").astype(str).str.strip().ne("")
                if not (filled & catalog["split"].eq(split)).any():
                    continue
                for method in methods:
                    result = evaluate_attribute(features[name], catalog, column, split, method, model,
                                                model.tokenizer, device=device)
                    results.append(dataclasses.replace(result, model=name))
    return results


def _result(column: str, method: str, split: str, truth: np.ndarray, predicted: np.ndarray,
            classes: tuple[str, ...], applicable: bool = True) -> AttributeResult:
    index = {name: position for position, name in enumerate(classes)}
    true_ids = np.array([index[name] for name in truth])
    predicted_ids = np.array([index[name] for name in predicted])
    chance = float(pd.Series(truth).value_counts(normalize=True).iloc[0])
    score = accuracy(predicted_ids, true_ids) if applicable else float("nan")
    return AttributeResult(column, method, split, score, applicable, chance, classes,
                           confusion_matrix(predicted_ids, true_ids, num_classes=len(classes)))


def attribute_table(results: Sequence[AttributeResult], model_name: str | None = None) -> pd.DataFrame:
    """Results as rows ``model, column, split, method, accuracy, chance`` (``model_name`` overrides
    each result's model name)."""
    return pd.DataFrame([{"model": r.model if model_name is None else model_name, "column": r.column, "split": r.split, "method": r.method,
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
