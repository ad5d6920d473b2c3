"""Product search over the shop catalog, and its evaluation.

- :class:`CatalogSearch`: one photo per SKU embedded into an :class:`~ecmm.index.EmbeddingIndex`;
  ``search_text(query, k)`` and ``search_image(image, k)`` return DataFrames with
  ``sku_id, title, product_type, colour, category, score``.  :func:`load_catalog_search` builds it
  with the fine-tuned shop model (cached index).
- :func:`zero_shot_weights`: a zero-shot classifier from class names and prompt templates
  (prompt ensembling = averaging the normalised text embeddings of several templates).
- :func:`evaluate_retrieval`: text->image (query = title or a paraphrased request) and
  image->image (query = another photo of the SKU) on one split, with Recall@k / MRR.

Gallery convention for evaluation: photo 0 of every SKU of the split; image queries use photo 1.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ecmm.device import get_device
from ecmm.index import EmbeddingIndex
from ecmm.metrics.retrieval import retrieval_report
from ecmm.models.clip import embed_images, embed_texts

__all__ = ["RESULT_COLUMNS", "REQUEST_TEMPLATES", "CatalogSearch", "load_catalog_search", "requests_for",
           "evaluate_retrieval", "results_to_records", "MAX_QUERY_CHARACTERS", "SEARCH_MODES",
           "zero_shot_weights"]

RESULT_COLUMNS = ("sku_id", "title", "product_type", "colour", "category", "score")
SEARCH_MODES = ("dense", "lexical", "hybrid")  # ways search_text can rank the catalog
MAX_QUERY_CHARACTERS = 200  # longer text queries are refused
GALLERY_PHOTO, QUERY_PHOTO = 0, 1  # photo positions used as gallery and as customer snapshot
REQUEST_TEMPLATES = (  # paraphrased customer requests, never used in training
    "I'm looking for a {colour} {product_type}",
    "do you sell {product_type}s in {colour}?",
    "{colour} {product_type} please",
    "show me a {product_type}, {colour} if possible",
    "need a new {product_type} in {colour}",
)


def requests_for(catalog: pd.DataFrame, seed: int = 0) -> list[str]:
    """One paraphrased customer request per catalog row (seeded template choice)."""
    rng = np.random.default_rng(seed)
    choice = rng.integers(len(REQUEST_TEMPLATES), size=len(catalog))
    return [REQUEST_TEMPLATES[c].format(colour=row.colour, product_type=row.product_type)
            for c, row in zip(choice, catalog.itertuples())]


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


def evaluate_retrieval(
    model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray, split: str,
    direction: str = "text", queries: str = "title", device: str | torch.device | None = None,
) -> dict[str, float]:
    """Retrieval metrics for the SKUs of one split.

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers.
        catalog: shop catalog aligned with ``photos``.
        photos: uint8 ``(num_skus, photos_per_sku, H, W, 3)``.
        split: ``"test_colours"``, ``"test_products"``, ``"train"`` or ``"all"``.
        direction: ``"text"`` (text->image) or ``"image"`` (image->image).
        queries: for text, ``"title"`` or ``"request"`` (paraphrased).
        device: where to run; None picks the best available.

    Returns:
        ``{"R@1", "R@5", "R@10", "MRR", "nDCG@10", "mean_rank", "median_rank"}``.
    """
    rows = np.arange(len(catalog)) if split == "all" else np.flatnonzero(catalog["split"].to_numpy() == split)
    if len(rows) == 0:
        raise ValueError(f"no SKUs in split {split!r}; use one of {sorted(catalog['split'].unique())} or 'all'")
    device = get_device(device)
    gallery = embed_images(model, preprocess, photos[rows, GALLERY_PHOTO], device=device)  # (N, E)
    if direction == "text":
        if queries == "title":
            texts = list(catalog["title"].iloc[rows])
        elif queries == "request":
            all_requests = requests_for(catalog)
            texts = [all_requests[i] for i in rows]
        else:
            raise ValueError(f"queries must be 'title' or 'request'; got {queries!r}")
        query = embed_texts(model, tokenizer, texts, device=device)  # (N, E)
    elif direction == "image":
        query = embed_images(model, preprocess, photos[rows, QUERY_PHOTO], device=device)
    else:
        raise ValueError(f"direction must be 'text' or 'image'; got {direction!r}")
    scores = (query @ gallery.T).numpy()  # (N, N)
    return retrieval_report(scores, np.eye(len(rows), dtype=bool))


class CatalogSearch:
    """Search the catalog by text or by photo.

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers.
        catalog: the catalog rows that the index holds (index id = row position).
        index: an :class:`EmbeddingIndex` of one photo per row.
        device: where queries are embedded.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame,
                 index: EmbeddingIndex, device: str | torch.device | None = None) -> None:
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.catalog = catalog.reset_index(drop=True)
        self.index = index
        self.device = get_device(device)

    @classmethod
    def build(cls, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray,
              backend: str = "exact", device: str | torch.device | None = None) -> "CatalogSearch":
        """Embed photo 0 of every row of ``catalog`` and index it."""
        embeddings = embed_images(model, preprocess, photos[:, GALLERY_PHOTO], device=device)
        index = EmbeddingIndex(embeddings.shape[1], backend=backend)
        index.add(embeddings, ids=np.arange(len(catalog)))
        return cls(model, preprocess, tokenizer, catalog, index, device)

    def _results(self, scores: torch.Tensor, ids: torch.Tensor) -> pd.DataFrame:
        frame = self.catalog.iloc[ids[0].numpy()][list(RESULT_COLUMNS[:-1])].reset_index(drop=True)
        frame["score"] = scores[0].numpy().round(4)
        return frame

    def search_text(self, query: str, k: int = 10, mode: str | None = None) -> pd.DataFrame:
        """Top-``k`` SKUs for a text query (DataFrame with ``RESULT_COLUMNS``).

        Args:
            query: what the shopper typed.
            k: number of results.
            mode: ``"dense"`` (CLIP text->image); None = the default (dense for now).
        """
        mode = mode or "dense"
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}; got {mode!r}")
        if mode != "dense":
            raise NotImplementedError(f"mode {mode!r} is not available yet; use 'dense'")
        query = (query or "").strip()
        if not query:
            raise ValueError("the query is empty: type what you are looking for, e.g. 'red backpack'")
        if len(query) > MAX_QUERY_CHARACTERS:
            raise ValueError(f"the query has {len(query)} characters; keep it under {MAX_QUERY_CHARACTERS}")
        embedding = embed_texts(self.model, self.tokenizer, [query], device=self.device)
        return self._results(*self.index.search(embedding, k))

    def search_image(self, image: Any, k: int = 10) -> pd.DataFrame:
        """Top-``k`` SKUs for a photo (uint8 ``(H, W, 3)`` array or PIL image)."""
        from PIL import Image

        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError("pass one RGB image: a uint8 array shaped (H, W, 3) or a PIL image")
        embedding = embed_images(self.model, self.preprocess, image[None], device=self.device)
        return self._results(*self.index.search(embedding, k))


def load_catalog_search(device: str | torch.device | None = None, progress: bool = True) -> CatalogSearch:
    """The catalog search of the offline shop with the fine-tuned shop model (index cached).

    Returns:
        A :class:`CatalogSearch` over every SKU of the offline catalog.
    """
    from ecmm.data import load_catalog, load_photos
    from ecmm.finetune import get_shop_model, shop_model_dir

    model, preprocess, tokenizer = get_shop_model(device=device, progress=progress)
    catalog = load_catalog("offline")
    weights = shop_model_dir() / "model.safetensors"
    tag = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    path = shop_model_dir() / f"catalog_index_{tag}"
    if Path(f"{path}.json").is_file():
        index = EmbeddingIndex.load(path)
        return CatalogSearch(model, preprocess, tokenizer, catalog, index, device)
    search = CatalogSearch.build(model, preprocess, tokenizer, catalog, load_photos("offline"), device=device)
    search.index.save(path)
    return search


def results_to_records(frame: pd.DataFrame) -> list[dict]:
    """Search results as a list of plain dicts (JSON-ready)."""
    return [{key: (round(float(value), 4) if key == "score" else str(value)) for key, value in row.items()}
            for row in frame[list(RESULT_COLUMNS)].to_dict("records")]

