"""Product search over the shop catalog.

- :class:`CatalogSearch`: one photo per SKU embedded into an :class:`~ecmm.index.EmbeddingIndex`;
  ``search_text(query, k, mode)`` (``"dense"``: CLIP text->photo; ``"lexical"``: BM25;
  ``"hybrid"``, the default: reciprocal-rank fusion of dense, text->text, BM25 and the query's
  understood attributes, with price limits) and ``search_image(image, k)`` return DataFrames with
  ``sku_id, title, product_type, colour, category, score``; ``understand(query)`` says what the
  query asks for; ``answer(query)`` gives both from one encoding of the query;
  ``search_records(queries, k, modes)`` answers several queries with one encoder call per model
  (what a server batching concurrent requests uses).
- :func:`ecmm.search_assets.build_catalog_index`: the registry's builder of the photo index *and* the text side
  (:mod:`ecmm.text_side`); :meth:`CatalogSearch.from_folder` opens both without re-encoding the
  catalog.
- :func:`zero_shot_weights` (from :mod:`ecmm.attributes`) and the evaluation helpers
  :func:`evaluate_retrieval`, :func:`requests_for`, :func:`request_queries` (from
  :mod:`ecmm.search_evaluation`).

A query costs one call of the CLIP text tower and (hybrid) one of the sentence encoder; the rest
is a ``(1, E) x (E, N)`` product per signal, a sparse BM25 lookup and a rank fusion over ``N``
rows: microseconds to a millisecond for a catalog of thousands.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ecmm.attributes import zero_shot_weights
from ecmm.device import get_device
from ecmm.hybrid import HybridBlend, reciprocal_rank_fusion
from ecmm.index import EmbeddingIndex
from ecmm.lexical import BM25Index
from ecmm.models.clip import embed_images
from ecmm.models.protocol import move_tokens
from ecmm.query import ParsedQuery, QueryVocabulary, corrected_query, parse_query
from ecmm.search_evaluation import (GALLERY_PHOTO, QUERY_PHOTO, REQUEST_TEMPLATES, evaluate_retrieval,
                                    request_queries, requests_for)
from ecmm.text_side import (CLIP_ENCODER, SENTENCE_ENCODER, CachedTextSide, bm25_documents, cached_encodings,
                            catalog_digest, encode_catalog_texts, fitting_text_side, load_text_side, photo_tags,
                            tower_sentence_encoder)

__all__ = ["RESULT_COLUMNS", "REQUEST_TEMPLATES", "CatalogSearch", "EncodedQuery", "requests_for",
           "evaluate_retrieval", "results_to_records", "MAX_QUERY_CHARACTERS", "SEARCH_MODES",
           "DEFAULT_MODE", "zero_shot_weights", "request_queries",
           "tower_sentence_encoder",
           "GALLERY_PHOTO", "QUERY_PHOTO"]

RESULT_COLUMNS = ("sku_id", "title", "product_type", "colour", "category", "score")
SEARCH_MODES = ("dense", "lexical", "hybrid")  # ways search_text can rank the catalog
DEFAULT_MODE = "hybrid"  # the best measured mode on the free-form queries (notebook 05)
MAX_QUERY_CHARACTERS = 200  # longer text queries are refused


@dataclass(frozen=True, eq=False)
class EncodedQuery:
    """A text query read once: parsed, expanded, and embedded by the encoders its mode needs."""

    query: str  # as typed (stripped)
    mode: str  # the mode it was encoded for
    parsed: ParsedQuery  # colours, product types, price limits it names
    expanded: str  # corrected, lower case, plus the understood words: what BM25 and the encoders read
    clip: torch.Tensor | None  # (1, E) CLIP text tower: of `query` (dense) or `expanded` (hybrid)
    sentence: torch.Tensor | None  # (1, D) text->text encoder of `expanded` (hybrid, understand)


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
        vocabulary: the query parser's vocabulary; None = :func:`ecmm.query.vocabulary_for` the catalog.
        text_encoder: texts -> ``(N, D)`` embeddings for the text->text signals (product titles,
            product type names); None = the CLIP text tower.
        cached: a saved text side (:func:`ecmm.text_side.load_text_side`); None computes it on
            first use. :meth:`from_folder` passes it after checking it fits.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame,
                 index: EmbeddingIndex, device: str | torch.device | None = None,
                 blend: HybridBlend = HybridBlend(), default_mode: str = DEFAULT_MODE,
                 vocabulary: QueryVocabulary | None = None,
                 text_encoder: Callable[[list[str]], torch.Tensor] | None = None,
                 cached: CachedTextSide | None = None) -> None:
        if default_mode not in SEARCH_MODES:
            raise ValueError(f"default_mode must be one of {SEARCH_MODES}; got {default_mode!r}")
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.catalog = catalog.reset_index(drop=True)
        self.index = index
        self.device = get_device(device)
        if vocabulary is None:
            from ecmm.query import vocabulary_for

            vocabulary = vocabulary_for(catalog)
        self.blend, self.default_mode, self.vocabulary = blend, default_mode, vocabulary
        self.text_encoder = text_encoder
        self.cached = cached
        self._text_side: dict[str, Any] | None = None

    @classmethod
    def build(cls, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray,
              backend: str = "exact", device: str | torch.device | None = None, **options: Any) -> "CatalogSearch":
        """Embed photo 0 of every row of ``catalog`` and index it (``options`` go to the constructor)."""
        embeddings = embed_images(model, preprocess, photos[:, GALLERY_PHOTO], device=device)
        index = EmbeddingIndex(embeddings.shape[1], backend=backend)
        index.add(embeddings, ids=np.arange(len(catalog)))
        return cls(model, preprocess, tokenizer, catalog, index, device, **options)

    @classmethod
    def from_folder(cls, folder: str | Path, model: Any, catalog_table: pd.DataFrame,
                    device: str | torch.device | None = None,
                    text_encoder: Callable[[list[str]], torch.Tensor] | None = None,
                    **options: Any) -> "CatalogSearch":
        """Open a ``search_index`` folder written by :func:`ecmm.search_assets.build_catalog_index`: index and text side.

        The saved text side is used when it was computed for these catalog rows and these
        encoders (one product type is embedded again and compared: milliseconds); otherwise
        (an older folder, another model or encoder) the part that does not fit is computed on
        first use and a line on stderr says so.

        Args:
            folder: the asset folder (``folder/index`` and the text side files).
            model: the CLIP model the index was built with (``model.preprocess``, ``model.tokenizer``).
            catalog_table: the catalog rows the index holds, in index order.
            device: where queries are embedded.
            text_encoder: the text->text encoder (None = the CLIP text tower).
            options: more constructor arguments (``blend``, ``default_mode``, ``vocabulary``).

        Raises:
            ecmm.artifacts.ArtifactError: the index is missing or damaged.
        """
        folder = Path(folder)
        index = EmbeddingIndex.load(folder / "index")
        search = cls(model, model.preprocess, model.tokenizer, catalog_table, index, device,
                     text_encoder=text_encoder, **options)
        try:
            cached = load_text_side(folder)
        except (OSError, ValueError, KeyError) as error:
            print(f"the saved text side in {folder} does not load ({error}); computing it", file=sys.stderr)
            cached = None
        search.cached = fitting_text_side(cached, search.catalog, len(index), search._clip_embeddings, folder)
        search.text_side()
        return search

    def text_side(self) -> dict[str, Any]:
        """What text search needs beyond the photo index (loaded or built once, on first use).

        Returns:
            ``{"photos" (N, E) photo embeddings by row, "texts" (N, D) title embeddings,
            "tags" DataFrame of predicted colour / product_type per photo, "bm25" BM25Index,
            "types" list of product types, "type_embeddings" (T, D), "row_types" (N,) type index,
            "colours" list of colours, "row_colours" (N,) colour index, "prices" (N,) float,
            "records" (N,) JSON-ready result rows without score}``.
        """
        if self._text_side is None:
            order = torch.argsort(self.index.ids)
            photos = self.index.vectors[order]  # (N, E), row i = catalog row i
            types = sorted(self.catalog["product_type"].astype(str).unique())
            colours = sorted(self.catalog["colour"].astype(str).unique())
            cached = self.cached if self.cached is not None and list(self.cached.types) == types else None
            tags = cached.tags if cached is not None else photo_tags(photos, self.model, self.tokenizer,
                                                                     self.catalog, self.device)
            encoded = cached_encodings(cached, CLIP_ENCODER if self.text_encoder is None else SENTENCE_ENCODER,
                                       self.encode_texts)
            if encoded is None:
                encoded = encode_catalog_texts(lambda texts, prompt: self.encode_texts(texts, prompt=prompt),
                                               self.catalog, types)
            columns = list(RESULT_COLUMNS[:-1])
            self._text_side = {
                "photos": photos, "tags": tags, "bm25": BM25Index(bm25_documents(self.catalog, tags)),
                "types": types, "texts": encoded["texts"], "type_embeddings": encoded["type_embeddings"],
                "row_types": np.searchsorted(types, self.catalog["product_type"].astype(str).to_numpy()),
                "colours": colours,
                "row_colours": np.searchsorted(colours, self.catalog["colour"].astype(str).to_numpy()),
                "prices": self.catalog["price"].to_numpy(dtype=np.float64),
                "records": [{key: str(value) for key, value in row.items()}
                            for row in self.catalog[columns].to_dict("records")],
            }
        return self._text_side

    def with_query_encoders(self, model: Any, text_encoder: Callable[[list[str]], torch.Tensor] | None) -> "CatalogSearch":
        """The same catalog, index and text side, with other query encoders (e.g. int8 copies).

        Args:
            model: the CLIP model that embeds queries (and photos for ``search_image``).
            text_encoder: the text->text encoder of queries (None = ``model``'s text tower).
        """
        other = CatalogSearch(model, self.preprocess, self.tokenizer, self.catalog, self.index, self.device,
                              self.blend, self.default_mode, self.vocabulary, text_encoder, self.cached)
        other._text_side = self.text_side()
        return other

    def saved_text_side(self) -> CachedTextSide:
        """The text side as :func:`ecmm.text_side.save_text_side` writes it (under this search's encoders)."""
        side = self.text_side()
        key = CLIP_ENCODER if self.text_encoder is None else SENTENCE_ENCODER
        embeddings = {key: {"texts": side["texts"], "type_embeddings": side["type_embeddings"]}}
        if key != CLIP_ENCODER:
            embeddings[CLIP_ENCODER] = encode_catalog_texts(
                lambda texts, prompt: self._clip_embeddings([prompt.format(text) for text in texts]),
                self.catalog, side["types"])
        return CachedTextSide(catalog_digest(self.catalog), tuple(side["types"]), side["tags"], embeddings, {})

    def encode_queries(self, queries: Sequence[str], modes: Sequence[str | None] | str | None = None,
                       understand: bool = False) -> list[EncodedQuery]:
        """Read and embed several queries: one call per encoder for all of them.

        Args:
            queries: ``B`` queries as typed.
            modes: one mode for all, or one per query (None = ``default_mode``).
            understand: also embed the expanded query for :meth:`understand` in every mode.

        Returns:
            ``B`` :class:`EncodedQuery`.

        Raises:
            ValueError: a query is empty or too long, or a mode is unknown.
        """
        checked = [self._checked(query) for query in queries]
        modes = [self._mode(modes if modes is None or isinstance(modes, str) else modes[i])
                 for i in range(len(checked))]
        parsed = [parse_query(query, self.vocabulary) for query in checked]
        expanded = [" ".join([corrected_query(query, reading), *reading.colours, *reading.product_types])
                    for query, reading in zip(checked, parsed)]
        clip_rows = {i: (checked[i] if mode == "dense" else expanded[i])
                     for i, mode in enumerate(modes) if mode in ("dense", "hybrid")}
        sentence_rows = [i for i, mode in enumerate(modes) if mode == "hybrid" or understand]
        clip = self._clip_embeddings(list(clip_rows.values())) if clip_rows else None  # (B1, E)
        sentence = self.encode_texts([expanded[i] for i in sentence_rows]) if sentence_rows else None  # (B2, D)
        clip_at = {row: position for position, row in enumerate(clip_rows)}
        sentence_at = {row: position for position, row in enumerate(sentence_rows)}
        return [EncodedQuery(checked[i], modes[i], parsed[i], expanded[i],
                             clip[clip_at[i]:clip_at[i] + 1] if i in clip_at else None,
                             sentence[sentence_at[i]:sentence_at[i] + 1] if i in sentence_at else None)
                for i in range(len(checked))]

    def understand(self, query: str | EncodedQuery, nearest: int = 3) -> dict:
        """The constraints a query names, plus the text encoder's nearest product types.

        The nearest types are read from the expanded query (corrected, with the understood words),
        the same text hybrid search embeds, so :meth:`answer` needs one encoding for both.

        Returns:
            ``{"colours": [...], "product_types": [...], "max_price": float | None, "min_price": ...,
            "corrections": {typo: word}, "remainder": str, "nearest_product_types": [{"product_type", "score"}]}``.
        """
        encoded = query if isinstance(query, EncodedQuery) and query.sentence is not None \
            else self.encode_queries([query.query if isinstance(query, EncodedQuery) else query], "lexical",
                                     understand=True)[0]  # "lexical": no CLIP embedding needed
        understood = encoded.parsed.as_dict()
        side = self.text_side()
        similarity = (encoded.sentence @ side["type_embeddings"].T)[0]  # (T,)
        top = torch.topk(similarity, min(nearest, len(side["types"])))
        understood["nearest_product_types"] = [{"product_type": side["types"][i], "score": round(float(v), 4)}
                                               for v, i in zip(top.values.tolist(), top.indices.tolist())]
        return understood

    def signals(self, query: str | EncodedQuery) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every signal's scores for a text query, and which rows break a price limit it names.

        Returns:
            ``({signal: (N,) scores, NaN = not retrieved}, (N,) bool outside the price range)``.
        """
        encoded = query if isinstance(query, EncodedQuery) and query.mode == "hybrid" \
            else self.encode_queries([query.query if isinstance(query, EncodedQuery) else query], "hybrid")[0]
        side, parsed = self.text_side(), encoded.parsed
        dense_image = (encoded.clip @ side["photos"].T.to(encoded.clip.device))[0].cpu().numpy()  # (N,)
        type_rows = [i for i, name in enumerate(side["types"]) if name in parsed.product_types]
        colour_rows = [i for i, name in enumerate(side["colours"]) if name in parsed.colours]
        matches = (2.0 * np.isin(side["row_types"], type_rows) + np.isin(side["row_colours"], colour_rows))  # (N,)
        signals = {
            "dense_image": dense_image,
            "dense_text": (encoded.sentence @ side["texts"].T)[0].numpy(),
            "nearest_types": (encoded.sentence @ side["type_embeddings"].T)[0].numpy()[side["row_types"]]
                             + 1e-3 * dense_image,
            "lexical": side["bm25"].scores(encoded.expanded),
            "attributes": np.where(matches > 0, matches + 1e-3 * dense_image, np.nan),
        }
        price = side["prices"]
        outside = (price > (np.inf if parsed.max_price is None else parsed.max_price)) | \
                  (price < (-np.inf if parsed.min_price is None else parsed.min_price))
        return signals, outside

    def scores(self, query: str | EncodedQuery, mode: str | None = None) -> np.ndarray:
        """Score of every catalog row for a text query (higher is better).

        Returns:
            ``(N,)`` float array aligned with ``self.catalog``.
        """
        encoded = query if isinstance(query, EncodedQuery) and query.mode == self._mode(mode) \
            else self.encode_queries([query.query if isinstance(query, EncodedQuery) else query], mode)[0]
        if encoded.mode == "dense":  # the query as typed, CLIP text->photo only
            return (encoded.clip @ self.text_side()["photos"].T.to(encoded.clip.device))[0].cpu().numpy()
        if encoded.mode == "lexical":
            return self.text_side()["bm25"].scores(encoded.expanded)
        signals, outside = self.signals(encoded)
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
        top, scores = self._top(self.scores(query, mode), k)
        return self._results(torch.from_numpy(scores)[None], torch.from_numpy(top)[None])

    def answer(self, query: str, k: int = 10, mode: str | None = None) -> tuple[pd.DataFrame, dict]:
        """``(search_text(query, k, mode), understand(query))`` from one encoding of the query."""
        encoded = self.encode_queries([query], mode, understand=True)[0]
        top, scores = self._top(self.scores(encoded, mode), k)
        return self._results(torch.from_numpy(scores)[None], torch.from_numpy(top)[None]), self.understand(encoded)

    def search_records(self, queries: Sequence[str], k: int | Sequence[int] = 10,
                       modes: Sequence[str | None] | str | None = None) -> list[list[dict]]:
        """Top-``k`` results of several queries as JSON-ready dicts (one encoder call per model).

        Each query's results equal ``results_to_records(search_text(query, k, mode))`` up to the
        encoders' batching (padding can move an embedding by ~1e-7).

        Args:
            queries: ``B`` queries as typed.
            k: results per query, one for all or one per query.
            modes: one mode for all or one per query (None = ``default_mode``).

        Returns:
            ``B`` lists of dicts with ``RESULT_COLUMNS``.
        """
        side = self.text_side()
        counts = [k] * len(queries) if isinstance(k, int) else list(k)
        answers = []
        for encoded, count in zip(self.encode_queries(queries, modes), counts):
            top, scores = self._top(self.scores(encoded, encoded.mode), count)
            answers.append([{**side["records"][row], "score": round(float(score), 4)}
                            for row, score in zip(top.tolist(), scores.round(4).tolist())])
        return answers

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
            return self._clip_embeddings([prompt.format(t) for t in texts])
        return torch.nn.functional.normalize(torch.as_tensor(self.text_encoder(list(texts))).float().cpu(), dim=-1)

    def _clip_embeddings(self, texts: list[str]) -> torch.Tensor:
        """``N`` texts -> ``(N, E)`` normalised CLIP text-tower embeddings on the CPU.

        What :func:`ecmm.models.clip.embed_texts` computes, without moving the model and setting
        eval mode on every call (a walk over every module: milliseconds per query); both are
        done only when the model is not on ``self.device`` in eval mode.
        """
        first = next(self.model.parameters(), None)
        if self.model.training or (first is not None and first.device != torch.device(self.device)):
            self.model.to(self.device).eval()
        with torch.no_grad():
            chunks = [self.model.encode_text(move_tokens(self.tokenizer(texts[start:start + 256]), self.device)).cpu()
                      for start in range(0, len(texts), 256)]
        return torch.cat(chunks) if chunks else torch.empty(0, self.model.embed_dim)

    def _mode(self, mode: str | None) -> str:
        mode = self.default_mode if mode is None else mode
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}; got {mode!r}")
        return mode

    @staticmethod
    def _top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``k`` best scores (ties keep catalog order) and their scores."""
        top = np.argsort(-scores, kind="stable")[:k]
        return top, scores[top]

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


def results_to_records(frame: pd.DataFrame) -> list[dict]:
    """Search results as a list of plain dicts (JSON-ready)."""
    return [{key: (round(float(value), 4) if key == "score" else str(value)) for key, value in row.items()}
            for row in frame[list(RESULT_COLUMNS)].to_dict("records")]
