"""Product search over the shop catalog, and its evaluation.

- :class:`CatalogSearch`: one photo per SKU embedded into an :class:`~ecmm.index.EmbeddingIndex`;
  ``search_text(query, k, mode)`` (``"dense"``: CLIP text->photo; ``"lexical"``: BM25;
  ``"hybrid"``, the default: reciprocal-rank fusion of dense, text->text, BM25 and the query's
  understood attributes, with price limits) and ``search_image(image, k)`` return DataFrames with
  ``sku_id, title, product_type, colour, category, score``; ``understand(query)`` says what the
  query asks for. :func:`build_catalog_index` is the registry's builder of the photo index
  (``ecmm.app.load_search`` opens the shop's search with it).
- :func:`zero_shot_weights` (from :mod:`ecmm.attributes`): a zero-shot classifier from class names
  and prompt templates (prompt ensembling).
- :func:`evaluate_retrieval`: text->image (query = title or a paraphrased request) and
  image->image (query = another photo of the SKU) on one split, with Recall@k / MRR;
  :func:`request_queries`: paraphrased requests labelled like the free-form query set.

Gallery convention for evaluation: photo 0 of every SKU of the split; image queries use photo 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ecmm.attributes import predict_tags, zero_shot_weights
from ecmm.device import get_device
from ecmm.hybrid import HybridBlend, reciprocal_rank_fusion
from ecmm.index import EmbeddingIndex
from ecmm.lexical import BM25Index
from ecmm.metrics.retrieval import retrieval_report
from ecmm.models.clip import embed_images, embed_texts
from ecmm.query import QueryVocabulary, corrected_query, parse_query

__all__ = ["RESULT_COLUMNS", "REQUEST_TEMPLATES", "CatalogSearch", "requests_for",
           "evaluate_retrieval", "results_to_records", "MAX_QUERY_CHARACTERS", "SEARCH_MODES",
           "DEFAULT_MODE", "zero_shot_weights", "request_queries", "build_catalog_index"]

RESULT_COLUMNS = ("sku_id", "title", "product_type", "colour", "category", "score")
SEARCH_MODES = ("dense", "lexical", "hybrid")  # ways search_text can rank the catalog
DEFAULT_MODE = "hybrid"  # the best measured mode on the free-form queries (notebook 05)
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

    Text search ranks the catalog one of three ways (``mode``): ``"dense"`` (CLIP text->photo
    similarity), ``"lexical"`` (BM25 over title, description and the photo's predicted tags, with
    the query's understood words added) or ``"hybrid"`` (reciprocal-rank fusion of text->photo,
    text->product text, BM25 and the attributes the query names; price limits filter).

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers.
        catalog: the catalog rows that the index holds (index id = row position).
        index: an :class:`EmbeddingIndex` of one photo per row.
        device: where queries are embedded.
        blend: how ``"hybrid"`` fuses its signals.
        default_mode: the mode used when ``search_text`` gets ``mode=None``.
        vocabulary: the query parser's vocabulary; None = the offline shop's.
        text_encoder: texts -> ``(N, D)`` embeddings for the text->text signals (product titles,
            product type names); None = the CLIP text tower.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame,
                 index: EmbeddingIndex, device: str | torch.device | None = None,
                 blend: HybridBlend = HybridBlend(), default_mode: str = DEFAULT_MODE,
                 vocabulary: QueryVocabulary | None = None,
                 text_encoder: Callable[[list[str]], torch.Tensor] | None = None) -> None:
        if default_mode not in SEARCH_MODES:
            raise ValueError(f"default_mode must be one of {SEARCH_MODES}; got {default_mode!r}")
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.catalog = catalog.reset_index(drop=True)
        self.index = index
        self.device = get_device(device)
        self.blend, self.default_mode, self.vocabulary = blend, default_mode, vocabulary
        self.text_encoder = text_encoder
        self._text_side: dict[str, Any] | None = None

    @classmethod
    def build(cls, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray,
              backend: str = "exact", device: str | torch.device | None = None, **options: Any) -> "CatalogSearch":
        """Embed photo 0 of every row of ``catalog`` and index it (``options`` go to the constructor)."""
        embeddings = embed_images(model, preprocess, photos[:, GALLERY_PHOTO], device=device)
        index = EmbeddingIndex(embeddings.shape[1], backend=backend)
        index.add(embeddings, ids=np.arange(len(catalog)))
        return cls(model, preprocess, tokenizer, catalog, index, device, **options)

    def text_side(self) -> dict[str, Any]:
        """What text search needs beyond the photo index (built once, on first use).

        Returns:
            ``{"photos" (N, E) photo embeddings by row, "texts" (N, D) title embeddings,
            "tags" DataFrame of predicted colour / product_type per photo, "bm25" BM25Index,
            "types" list of product types, "type_embeddings" (T, D), "row_types" (N,) type index}``.
        """
        if self._text_side is None:
            order = torch.argsort(self.index.ids)
            photos = self.index.vectors[order]  # (N, E), row i = catalog row i
            types = sorted(self.catalog["product_type"].astype(str).unique())
            colours = sorted(self.catalog["colour"].astype(str).unique())
            tags = predict_tags(photos, self.model, self.tokenizer, {"colour": colours, "product_type": types},
                                self.device)
            documents = [f"{row.title}. {row.description} {tag.colour} {tag.product_type}"
                         for row, tag in zip(self.catalog.itertuples(), tags.itertuples())]
            self._text_side = {
                "photos": photos, "tags": tags, "bm25": BM25Index(documents), "types": types,
                "texts": self.encode_texts(list(self.catalog["title"])),
                "type_embeddings": self.encode_texts(types, prompt="a photo of a {}"),
                "row_types": np.searchsorted(types, self.catalog["product_type"].astype(str).to_numpy()),
            }
        return self._text_side

    def understand(self, query: str, nearest: int = 3) -> dict:
        """The constraints a query names, plus the text tower's nearest product types.

        Returns:
            ``{"colours": [...], "product_types": [...], "max_price": float | None, "min_price": ...,
            "corrections": {typo: word}, "remainder": str, "nearest_product_types": [{"product_type", "score"}]}``.
        """
        understood = parse_query(self._checked(query), self.vocabulary).as_dict()
        side = self.text_side()
        similarity = (self.encode_texts([query]) @ side["type_embeddings"].T)[0]  # (T,)
        top = torch.topk(similarity, min(nearest, len(side["types"])))
        understood["nearest_product_types"] = [{"product_type": side["types"][i], "score": round(float(v), 4)}
                                               for v, i in zip(top.values.tolist(), top.indices.tolist())]
        return understood

    def signals(self, query: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every signal's scores for a text query, and which rows break a price limit it names.

        Returns:
            ``({signal: (N,) scores, NaN = not retrieved}, (N,) bool outside the price range)``.
        """
        query = self._checked(query)
        side = self.text_side()
        parsed = parse_query(query, self.vocabulary)
        query = " ".join([corrected_query(query, parsed), *parsed.colours, *parsed.product_types])  # + understood words
        embedding = embed_texts(self.model, self.tokenizer, [query], device=self.device)  # (1, E)
        dense_image = (embedding @ side["photos"].T.to(embedding.device))[0].cpu().numpy()  # (N,)
        lexical = side["bm25"].scores(query)  # (N,)
        matches = (2.0 * self.catalog["product_type"].isin(parsed.product_types).to_numpy()
                   + self.catalog["colour"].isin(parsed.colours).to_numpy())  # (N,) attribute matches
        text_embedding = self.encode_texts([query])  # (1, D)
        signals = {
            "dense_image": dense_image,
            "dense_text": (text_embedding @ side["texts"].T)[0].numpy(),
            "nearest_types": (text_embedding @ side["type_embeddings"].T)[0].numpy()[side["row_types"]]
                             + 1e-3 * dense_image,
            "lexical": lexical,
            "attributes": np.where(matches > 0, matches + 1e-3 * dense_image, np.nan),
        }
        price = self.catalog["price"].to_numpy(dtype=np.float64)
        outside = (price > (np.inf if parsed.max_price is None else parsed.max_price)) | \
                  (price < (-np.inf if parsed.min_price is None else parsed.min_price))
        return signals, outside

    def scores(self, query: str, mode: str | None = None) -> np.ndarray:
        """Score of every catalog row for a text query (higher is better).

        Returns:
            ``(N,)`` float array aligned with ``self.catalog``.
        """
        mode = self._mode(mode)
        if mode == "dense":  # the query as typed, CLIP text->photo only
            embedding = embed_texts(self.model, self.tokenizer, [self._checked(query)], device=self.device)
            return (embedding @ self.text_side()["photos"].T.to(embedding.device))[0].cpu().numpy()
        signals, outside = self.signals(query)
        if mode == "lexical":
            return signals["lexical"]
        signals["lexical"] = np.where(signals["lexical"] > 0, signals["lexical"], np.nan)
        fused = reciprocal_rank_fusion(signals, self.blend.weights(), self.blend.rrf_k)
        if self.blend.price_filter:
            fused = np.where(outside, fused - 1.0, fused)  # RRF scores are < 1: outside goes last
        return fused

    def search_text(self, query: str, k: int = 10, mode: str | None = None) -> pd.DataFrame:
        """Top-``k`` SKUs for a text query (DataFrame with ``RESULT_COLUMNS``).

        Args:
            query: what the shopper typed.
            k: number of results.
            mode: ``"dense"``, ``"lexical"`` or ``"hybrid"``; None = ``self.default_mode``.
        """
        scores = self.scores(query, mode)
        top = np.argsort(-scores, kind="stable")[:k]
        return self._results(torch.from_numpy(scores[top])[None], torch.from_numpy(top)[None])

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

    def encode_texts(self, texts: list[str], prompt: str = "{}") -> torch.Tensor:
        """Normalised embeddings of ``texts`` by the text->text encoder (CPU).

        Args:
            texts: ``N`` strings.
            prompt: wraps each text when the CLIP text tower is the encoder (``"a photo of a {}"``).

        Shapes:
            ``N`` strings -> ``(N, D)``.
        """
        if self.text_encoder is None:
            return embed_texts(self.model, self.tokenizer, [prompt.format(t) for t in texts], device=self.device)
        return torch.nn.functional.normalize(torch.as_tensor(self.text_encoder(list(texts))).float().cpu(), dim=-1)

    def _mode(self, mode: str | None) -> str:
        mode = self.default_mode if mode is None else mode
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}; got {mode!r}")
        return mode

    @staticmethod
    def _checked(query: str) -> str:
        query = (query or "").strip()
        if not query:
            raise ValueError("the query is empty: type what you are looking for, e.g. 'red backpack'")
        if len(query) > MAX_QUERY_CHARACTERS:
            raise ValueError(f"the query has {len(query)} characters; keep it under {MAX_QUERY_CHARACTERS}")
        return query

    def _results(self, scores: torch.Tensor, ids: torch.Tensor) -> pd.DataFrame:
        frame = self.catalog.iloc[ids[0].numpy()][list(RESULT_COLUMNS[:-1])].reset_index(drop=True)
        frame["score"] = scores[0].numpy().round(4)
        return frame

def build_catalog_index(folder: Path, model: Any, progress: bool = True) -> None:
    """The registry's builder: index photo 0 of every offline SKU with ``model`` into ``folder``.

    Args:
        folder: where the index is written (``folder/index``, through ``EmbeddingIndex.save``).
        model: a CLIP model (its ``preprocess`` embeds the photos).
        progress: print a line on stderr when indexing starts.
    """
    from ecmm.artifacts import write_artifact
    from ecmm.data import load_catalog, load_photos

    catalog = load_catalog("offline")
    if progress:
        print(f"indexing {len(catalog)} catalog photos into {folder}", file=sys.stderr)
    embeddings = embed_images(model, model.preprocess, load_photos("offline")[:, GALLERY_PHOTO])
    index = EmbeddingIndex(embeddings.shape[1])
    index.add(embeddings, ids=np.arange(len(catalog)))
    write_artifact(folder, lambda temporary: index.save(temporary / "index"),
                   {"asset": "search_index", "recipe": {"photo": GALLERY_PHOTO, "backend": index.backend},
                    "data": {"catalog": "offline", "rows": len(catalog)}})


def results_to_records(frame: pd.DataFrame) -> list[dict]:
    """Search results as a list of plain dicts (JSON-ready)."""
    return [{key: (round(float(value), 4) if key == "score" else str(value)) for key, value in row.items()}
            for row in frame[list(RESULT_COLUMNS)].to_dict("records")]



def request_queries(catalog: pd.DataFrame, split: str = "test_colours", count: int = 100, seed: int = 0) -> list[dict]:
    """The kit's paraphrased requests for ``count`` SKUs of one split, labelled like the free-form set.

    Returns:
        Dicts with ``query``, ``kind="request"``, ``product_types`` and ``colours`` of the SKU.
    """
    rows = np.flatnonzero(catalog["split"].to_numpy() == split)
    rows = np.random.default_rng(seed).permutation(rows)[:count]
    requests = requests_for(catalog, seed)
    return [{"query": requests[i], "kind": "request", "product_types": [catalog["product_type"].iloc[i]],
             "colours": [catalog["colour"].iloc[i]]} for i in sorted(rows)]
