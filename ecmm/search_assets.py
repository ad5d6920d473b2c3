"""The registry's ``search_index`` asset: the photo index and the text side of a catalog.

:func:`build_catalog_index` (re-exported by :mod:`ecmm.search`, where the registry finds it)
embeds photo 0 of every SKU in batches from the source's lazy photos, then computes the text
side (:mod:`ecmm.text_side`) once and writes both through :func:`ecmm.artifacts.write_artifact`:
``index/`` (the :class:`~ecmm.index.EmbeddingIndex`), ``text_side.safetensors`` and
``text_side.json``. :meth:`ecmm.search.CatalogSearch.from_folder` reads them back.

The query side of the same search, exported to ONNX, is the ``query_encoder`` asset
(:mod:`ecmm.query_encoder_asset`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ecmm.index import EmbeddingIndex
from ecmm.models.clip import embed_images
from ecmm.search_evaluation import GALLERY_PHOTO
from ecmm.text_side import CLIP_ENCODER, SENTENCE_ENCODER, CachedTextSide, save_text_side, tower_sentence_encoder

__all__ = ["RECIPE_VERSION", "build_catalog_index"]

RECIPE_VERSION = 3  # search_index: 1 = photo index only; 2 = + cached text side; 3 = + photo embeddings by row


def build_catalog_index(folder: Path, model: Any, progress: bool = True, *, source: Any = None,
                        text_encoder: Callable[[list[str]], torch.Tensor] | None = None) -> None:
    """The registry's builder: the photo index and the text side of a catalog, into ``folder``.

    Photo 0 of every SKU is embedded in batches straight from the source's lazy photos (never all
    in memory); then the text side (:mod:`ecmm.text_side`: title and type embeddings under the
    CLIP text tower and the sentence encoder, the photos' zero-shot tags) is computed once and
    saved beside the index, so :meth:`CatalogSearch.from_folder` does no catalog encoding.

    Args:
        folder: where the asset is written (``folder/index`` and the text side files).
        model: a CLIP model (its ``preprocess`` embeds the photos, ``tokenizer`` the texts).
        progress: print a line on stderr when indexing starts.
        source: a :class:`ecmm.data.catalogs.CatalogSource`; None = ``open_catalog()``.
        text_encoder: the sentence encoder of the text->text signals; None = all-MiniLM-L6-v2
            (:func:`ecmm.text_side.tower_sentence_encoder` when it is the model's own text tower).
    """
    from ecmm.artifacts import write_artifact
    from ecmm.data.catalogs import open_catalog

    source = open_catalog() if source is None else source
    catalog = source.table().reset_index(drop=True)
    if progress:
        print(f"indexing {len(catalog)} catalog photos and their text into {folder}", file=sys.stderr)
    embeddings = embed_images(model, source.photos().view(GALLERY_PHOTO))  # (N, E), batched
    index = EmbeddingIndex(embeddings.shape[1])
    index.add(embeddings, ids=np.arange(len(catalog)))
    encoder_name = "given"
    if text_encoder is None:
        from ecmm.models.text import OFFLINE_TEXT_MODEL, load_text_encoder

        text_encoder, encoder_name = tower_sentence_encoder(model), f"{OFFLINE_TEXT_MODEL} (the model's text tower)"
        if text_encoder is None:
            text_encoder, encoder_name = load_text_encoder().encode, OFFLINE_TEXT_MODEL
    from ecmm.search import CatalogSearch

    search = CatalogSearch(model, model.preprocess, model.tokenizer, catalog, index, text_encoder=text_encoder)
    side = search.saved_text_side()
    side = CachedTextSide(side.digest, side.types, side.tags, side.embeddings,
                          {CLIP_ENCODER: "the model's text tower", SENTENCE_ENCODER: encoder_name}, side.photos)

    def write_files(temporary: Path) -> None:
        index.save(temporary / "index")
        save_text_side(temporary, side)

    write_artifact(folder, write_files,
                   {"asset": "search_index",
                    "recipe": {"version": RECIPE_VERSION, "photo": GALLERY_PHOTO, "backend": index.backend,
                               "text_side": dict(side.encoder_names)},
                    "data": {"catalog": source.name, "fingerprint": getattr(source, "fingerprint", None),
                             "rows": len(catalog), "digest": side.digest}})
