"""Product search over the shop catalog.

- :class:`CatalogSearch`: one photo per SKU embedded into an :class:`~ecmm.index.EmbeddingIndex`;
  ``search_text(query, k, mode)`` (``"dense"``: CLIP text->photo; ``"lexical"``: BM25; ``"hybrid"``,
  the default: reciprocal-rank fusion of dense, text->text, BM25 and the query's understood
  attributes, with price limits: :mod:`ecmm.search_signals`) and ``search_image(image, k)`` return
  DataFrames with ``RESULT_COLUMNS``; ``understand(query)`` says what the query asks for;
  ``answer(query)`` gives both from one encoding; ``search_records(queries, k, modes)`` answers
  several queries with one encoder call per model (what a server batching requests uses).
- :func:`ecmm.search_assets.build_catalog_index` builds the photo index *and* the text side
  (:mod:`ecmm.text_side`); :meth:`CatalogSearch.from_folder` opens both without re-encoding.
- Re-exported: :func:`zero_shot_weights` (:mod:`ecmm.attributes`) and the evaluation helpers
  :func:`evaluate_retrieval`, :func:`requests_for`, :func:`request_queries` (:mod:`ecmm.search_evaluation`).

A query costs one call of the CLIP text tower and (hybrid) one of the sentence encoder; the rest
is a ``(1, E) x (E, N)`` product per signal, a BM25 lookup and a rank fusion over ``N`` rows. The
catalog side is numpy and torch is imported only where a torch model runs: a search opened with
exported ``query_encoders`` (:mod:`ecmm.exported_text`) and a saved text side needs no torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ecmm.hybrid import HybridBlend
from ecmm.query import QueryVocabulary, parse_query
from ecmm.search_signals import (MAX_QUERY_CHARACTERS, EncodedQuery, checked_query, expanded_query, fused_scores,
                                 query_signals, top_rows)
from ecmm.text_side import (CLIP_ENCODER, SENTENCE_ENCODER, CachedTextSide, as_array, cached_encodings,
                            catalog_digest, encode_catalog_texts, fitting_text_side, load_text_side, normalised,
                            photo_tags, text_side_tables, tower_sentence_encoder)

__all__ = ["RESULT_COLUMNS", "REQUEST_TEMPLATES", "CatalogSearch", "EncodedQuery", "requests_for",
           "evaluate_retrieval", "results_to_records", "MAX_QUERY_CHARACTERS", "SEARCH_MODES",
           "DEFAULT_MODE", "zero_shot_weights", "request_queries", "tower_sentence_encoder", "GALLERY_PHOTO",
           "QUERY_PHOTO"]

RESULT_COLUMNS = ("sku_id", "title", "product_type", "colour", "category", "score")
SEARCH_MODES = ("dense", "lexical", "hybrid")  # ways search_text can rank the catalog
DEFAULT_MODE = "hybrid"  # the best measured mode on the free-form queries (notebook 05)
_REEXPORTED = {"zero_shot_weights": "ecmm.attributes", "GALLERY_PHOTO": "ecmm.search_evaluation",
               "QUERY_PHOTO": "ecmm.search_evaluation", "REQUEST_TEMPLATES": "ecmm.search_evaluation",
               "evaluate_retrieval": "ecmm.search_evaluation", "request_queries": "ecmm.search_evaluation",
               "requests_for": "ecmm.search_evaluation"}


def __getattr__(name: str) -> Any:
    """The evaluation helpers re-exported here, imported on first use (they import torch)."""
    if name in _REEXPORTED:
        import importlib

        return getattr(importlib.import_module(_REEXPORTED[name]), name)
    raise AttributeError(f"module 'ecmm.search' has no attribute {name!r}")


class CatalogSearch:
    """Search the catalog by text or by photo.

    Text search ranks the catalog one of three ways (``mode``): ``"dense"`` (CLIP text->photo
    similarity), ``"lexical"`` (BM25 over title, description and the photo's predicted tags, with
    the query's understood words added) or ``"hybrid"`` (reciprocal-rank fusion of text->photo,
    text->product text, BM25 and the attributes the query names; price limits filter).

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers (None: text queries only, with
            ``query_encoders`` and a ``cached`` text side that holds the photo embeddings).
        catalog: the catalog rows that the index holds (index id = row position).
        index: an :class:`~ecmm.index.EmbeddingIndex` of one photo per row (None: text queries only).
        device: where queries are embedded.
        blend: how ``"hybrid"`` fuses its signals.
        default_mode: the mode used when ``search_text`` gets ``mode=None``.
        vocabulary: the query parser's vocabulary; None = :func:`ecmm.query.vocabulary_for` the catalog.
        text_encoder: texts -> ``(N, D)`` embeddings for the text->text signals (product titles,
            product type names); None = the CLIP text tower.
        cached: a saved text side (:func:`ecmm.text_side.load_text_side`); None computes it on
            first use. :meth:`from_folder` passes it after checking it fits.
        query_encoders: ``{"clip": texts -> (n, E), "sentence": texts -> (n, D)}`` normalised
            numpy embeddings that replace the torch encoders for queries (exported copies of the
            same networks, :mod:`ecmm.exported_text`); either key may be missing.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame,
                 index: Any, device: Any = None,
                 blend: HybridBlend = HybridBlend(), default_mode: str = DEFAULT_MODE,
                 vocabulary: QueryVocabulary | None = None,
                 text_encoder: Callable[[list[str]], Any] | None = None,
                 cached: CachedTextSide | None = None,
                 query_encoders: Mapping[str, Callable[[list[str]], np.ndarray]] | None = None) -> None:
        if default_mode not in SEARCH_MODES:
            raise ValueError(f"default_mode must be one of {SEARCH_MODES}; got {default_mode!r}")
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.catalog = catalog.reset_index(drop=True)
        self.index = index
        self.query_encoders = query_encoders if query_encoders is not None else {}  # a mapping, kept as given
        if model is not None:
            from ecmm.device import get_device

            device = get_device(device)
        self.device = device
        if vocabulary is None:
            from ecmm.query import vocabulary_for

            vocabulary = vocabulary_for(catalog)
        self.blend, self.default_mode, self.vocabulary = blend, default_mode, vocabulary
        self.text_encoder = text_encoder
        self.cached = cached
        self._text_side: dict[str, Any] | None = None

    @classmethod
    def build(cls, model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray,
              backend: str = "exact", device: Any = None, **options: Any) -> "CatalogSearch":
        """Embed photo 0 of every row of ``catalog`` and index it (``options`` go to the constructor)."""
        from ecmm.index import EmbeddingIndex
        from ecmm.models.clip import embed_images
        from ecmm.search_evaluation import GALLERY_PHOTO

        embeddings = embed_images(model, preprocess, photos[:, GALLERY_PHOTO], device=device)
        index = EmbeddingIndex(embeddings.shape[1], backend=backend)
        index.add(embeddings, ids=np.arange(len(catalog)))
        return cls(model, preprocess, tokenizer, catalog, index, device, **options)

    @classmethod
    def from_folder(cls, folder: str | Path, model: Any, catalog_table: pd.DataFrame,
                    device: Any = None,
                    text_encoder: Callable[[list[str]], Any] | None = None,
                    **options: Any) -> "CatalogSearch":
        """Open a ``search_index`` folder written by :func:`ecmm.search_assets.build_catalog_index`: index and text side.

        The saved text side is used when it was computed for these catalog rows and these
        encoders (one product type is embedded again and compared: milliseconds); otherwise
        (an older folder, another model or encoder) the part that does not fit is computed on
        first use and a line on stderr says so.

        Args:
            folder: the asset folder (``folder/index`` and the text side files).
            model: the CLIP model the index was built with (``model.preprocess``, ``model.tokenizer``);
                None opens a search for text queries only (give ``query_encoders``): the index is
                not loaded when the text side holds the photo embeddings.
            catalog_table: the catalog rows the index holds, in index order.
            device: where queries are embedded.
            text_encoder: the text->text encoder (None = the CLIP text tower).
            options: more constructor arguments (``blend``, ``default_mode``, ``vocabulary``,
                ``query_encoders``).

        Raises:
            ecmm.artifacts.ArtifactError: the index is missing or damaged.
            ValueError: ``model`` is None and the folder's text side cannot be used without it.
        """
        folder = Path(folder)
        try:
            cached = load_text_side(folder)
        except (OSError, ValueError, KeyError) as error:
            print(f"the saved text side in {folder} does not load ({error}); computing it", file=sys.stderr)
            cached = None
        index = None
        if model is not None or cached is None or cached.photos is None:
            from ecmm.index import EmbeddingIndex

            index = EmbeddingIndex.load(folder / "index")
        search = cls(model, getattr(model, "preprocess", None), getattr(model, "tokenizer", None), catalog_table,
                     index, device, text_encoder=text_encoder, **options)
        size = len(index) if index is not None else len(cached.photos)
        search.cached = fitting_text_side(cached, search.catalog, size, search._clip_embeddings, folder)
        if model is None and (search.cached is None or search.cached.photos is None):
            raise ValueError(f"the text side in {folder} does not fit this catalog and model; open the search "
                             "with the model to compute it")
        search.text_side()
        return search

    def text_side(self) -> dict[str, Any]:
        """What text search needs beyond the photo index (loaded or built once, on first use).

        Returns (numpy arrays):
            ``{"photos" (N, E) photo embeddings by row, "texts" (N, D) title embeddings,
            "tags" DataFrame of predicted colour / product_type per photo, "bm25" BM25Index,
            "types" list of product types, "type_embeddings" (T, D), "row_types" (N,) type index,
            "colours" list of colours, "row_colours" (N,) colour index, "prices" (N,) float,
            "records" (N,) JSON-ready result rows without score}``.
        """
        if self._text_side is None:
            types = sorted(self.catalog["product_type"].astype(str).unique())
            cached = self.cached if self.cached is not None and list(self.cached.types) == types else None
            if cached is not None and cached.photos is not None:
                photos = as_array(cached.photos)  # (N, E), row i = catalog row i
            else:
                import torch

                photos = as_array(self.index.vectors[torch.argsort(self.index.ids)])  # (N, E) by row
            tags = cached.tags if cached is not None else photo_tags(photos, self.model, self.tokenizer,
                                                                     self.catalog, self.device)
            encoded = cached_encodings(cached, CLIP_ENCODER if self.text_encoder is None else SENTENCE_ENCODER,
                                       self.encode_texts)
            if encoded is None:
                encoded = encode_catalog_texts(lambda texts, prompt: self.encode_texts(texts, prompt=prompt),
                                               self.catalog, types)
            self._text_side = text_side_tables(self.catalog, photos, tags, encoded, types, list(RESULT_COLUMNS[:-1]))
        return self._text_side

    def with_query_encoders(self, model: Any, text_encoder: Callable[[list[str]], Any] | None) -> "CatalogSearch":
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
        return CachedTextSide(catalog_digest(self.catalog), tuple(side["types"]), side["tags"], embeddings, {},
                              side["photos"])

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
        checked = [checked_query(query) for query in queries]
        modes = [self._mode(modes if modes is None or isinstance(modes, str) else modes[i])
                 for i in range(len(checked))]
        parsed = [parse_query(query, self.vocabulary) for query in checked]
        expanded = [expanded_query(query, reading) for query, reading in zip(checked, parsed)]
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
        top = np.argsort(-similarity, kind="stable")[:min(nearest, len(side["types"]))]
        understood["nearest_product_types"] = [{"product_type": side["types"][i], "score": round(float(similarity[i]), 4)}
                                               for i in top.tolist()]
        return understood

    def signals(self, query: str | EncodedQuery) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every signal's scores for a text query, and which rows break a price limit it names.

        Returns:
            ``({signal: (N,) scores, NaN = not retrieved}, (N,) bool outside the price range)``.
        """
        encoded = query if isinstance(query, EncodedQuery) and query.mode == "hybrid" \
            else self.encode_queries([query.query if isinstance(query, EncodedQuery) else query], "hybrid")[0]
        return query_signals(self.text_side(), encoded)

    def scores(self, query: str | EncodedQuery, mode: str | None = None) -> np.ndarray:
        """Score of every catalog row for a text query (higher is better).

        Returns:
            ``(N,)`` float array aligned with ``self.catalog``.
        """
        encoded = query if isinstance(query, EncodedQuery) and query.mode == self._mode(mode) \
            else self.encode_queries([query.query if isinstance(query, EncodedQuery) else query], mode)[0]
        if encoded.mode == "dense":  # the query as typed, CLIP text->photo only
            return (encoded.clip @ self.text_side()["photos"].T)[0]
        if encoded.mode == "lexical":
            return self.text_side()["bm25"].scores(encoded.expanded)
        return fused_scores(*self.signals(encoded), self.blend)

    def search_text(self, query: str, k: int = 10, mode: str | None = None) -> pd.DataFrame:
        """Top-``k`` SKUs for a text query (DataFrame with ``RESULT_COLUMNS``).

        Args:
            query: what the shopper typed.
            k: number of results.
            mode: ``"dense"``, ``"lexical"`` or ``"hybrid"``; None = ``self.default_mode``.
        """
        top, scores = top_rows(self.scores(query, mode), k)
        return self._results(scores, top)

    def answer(self, query: str, k: int = 10, mode: str | None = None) -> tuple[pd.DataFrame, dict]:
        """``(search_text(query, k, mode), understand(query))`` from one encoding of the query."""
        encoded = self.encode_queries([query], mode, understand=True)[0]
        top, scores = top_rows(self.scores(encoded, mode), k)
        return self._results(scores, top), self.understand(encoded)

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
            top, scores = top_rows(self.scores(encoded, encoded.mode), count)
            answers.append([{**side["records"][row], "score": round(float(score), 4)}
                            for row, score in zip(top.tolist(), scores.round(4).tolist())])
        return answers

    def search_image(self, image: Any, k: int = 10) -> pd.DataFrame:
        """Top-``k`` SKUs for a photo (uint8 ``(H, W, 3)`` array or PIL image)."""
        from PIL import Image

        from ecmm.models.clip import embed_images

        if self.model is None or self.index is None:
            raise ValueError("this search was opened for text queries only: open it with the model "
                             "(ecmm.app.load_search()) to search by photo")
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError("pass one RGB image: a uint8 array shaped (H, W, 3) or a PIL image")
        embedding = embed_images(self.model, self.preprocess, image[None], device=self.device)
        scores, ids = self.index.search(embedding, k)  # (1, k) each
        return self._results(scores[0].numpy(), ids[0].numpy())

    def encode_texts(self, texts: list[str], prompt: str = "{}") -> np.ndarray:
        """Normalised embeddings of ``texts`` by the text->text encoder (float32 numpy).

        Args:
            texts: ``N`` strings.
            prompt: wraps each text when the CLIP text tower is the encoder (``"a photo of a {}"``).

        Shapes:
            ``N`` strings -> ``(N, D)``.
        """
        if self.text_encoder is None:
            return self._clip_embeddings([prompt.format(t) for t in texts])
        if "sentence" in self.query_encoders:
            return normalised(self.query_encoders["sentence"](list(texts)))
        return normalised(as_array(self.text_encoder(list(texts))))

    def _clip_embeddings(self, texts: list[str]) -> np.ndarray:
        """``N`` texts -> ``(N, E)`` normalised CLIP text-tower embeddings (float32 numpy).

        What :func:`ecmm.models.clip.embed_texts` computes, without moving the model and setting
        eval mode on every call (a walk over every module: milliseconds per query); both are
        done only when the model is not on ``self.device`` in eval mode.
        """
        if "clip" in self.query_encoders:
            return normalised(self.query_encoders["clip"](list(texts)))
        if self.model is None:
            raise ValueError("this search has no CLIP query encoder: open it with the model")
        import torch

        from ecmm.models.protocol import move_tokens

        first = next(self.model.parameters(), None)
        if self.model.training or (first is not None and first.device != torch.device(self.device)):
            self.model.to(self.device).eval()
        with torch.no_grad():
            chunks = [self.model.encode_text(move_tokens(self.tokenizer(texts[start:start + 256]), self.device)).cpu()
                      for start in range(0, len(texts), 256)]
        return as_array(torch.cat(chunks)) if chunks else np.empty((0, self.model.embed_dim), dtype=np.float32)

    def _mode(self, mode: str | None) -> str:
        mode = self.default_mode if mode is None else mode
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}; got {mode!r}")
        return mode

    def _results(self, scores: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        """``k`` scores and catalog rows -> the results table."""
        frame = self.catalog.iloc[np.asarray(rows)][list(RESULT_COLUMNS[:-1])].reset_index(drop=True)
        frame["score"] = np.asarray(scores, dtype=np.float64).round(4)
        return frame


def results_to_records(frame: pd.DataFrame) -> list[dict]:
    """Search results as a list of plain dicts (JSON-ready)."""
    return [{key: (round(float(value), 4) if key == "score" else str(value)) for key, value in row.items()}
            for row in frame[list(RESULT_COLUMNS)].to_dict("records")]
