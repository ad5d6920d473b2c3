"""The registry's ``search_index`` asset: the photo index and the text side of a catalog.

:func:`build_catalog_index` (re-exported by :mod:`ecmm.search`, where the registry finds it)
embeds photo 0 of every SKU in batches from the source's lazy photos, then computes the text
side (:mod:`ecmm.text_side`) once and writes both through :func:`ecmm.artifacts.write_artifact`:
``index/`` (the :class:`~ecmm.index.EmbeddingIndex`), ``text_side.safetensors`` and
``text_side.json``. :meth:`ecmm.search.CatalogSearch.from_folder` reads them back.

:func:`build_query_encoder` is the ``query_encoder`` asset: the query side of the same search (the
CLIP text tower and the sentence encoder) exported to ONNX (:mod:`ecmm.exported_text`), so that a
text query is answered without torch. A model whose tokenizer cannot be exported (open_clip's)
gets a card that says why, and its queries run on the torch model.
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

__all__ = ["RECIPE_VERSION", "QUERY_ENCODERS", "build_catalog_index", "build_query_encoder", "QueryTextTower",
           "SentenceTower"]

RECIPE_VERSION = 3  # search_index: 1 = photo index only; 2 = + cached text side; 3 = + photo embeddings by row
QUERY_ENCODERS = ("clip", "sentence")  # subfolders of the query_encoder asset, one exported encoder each


class QueryTextTower(torch.nn.Module):
    """The CLIP text tower as a module of token tensors (the offline model's MiniLM + projection).

    Calls MiniLM and the projection directly, never the model's memo of MiniLM outputs, so a
    trace records the network, not a remembered answer.

    Shapes:
        input_ids, attention_mask ``(B, L)`` -> ``(B, E)`` L2-normalised.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "project_text") and hasattr(self.model, "text_encoder"):
            return self.model.project_text(self.model.text_encoder(input_ids, attention_mask))
        return self.model.encode_text({"input_ids": input_ids, "attention_mask": attention_mask})


class SentenceTower(torch.nn.Module):
    """A mean-pooling sentence encoder (:class:`ecmm.models.text.TextEncoder`), normalised.

    Shapes:
        input_ids, attention_mask ``(B, L)`` -> ``(B, D)`` L2-normalised.
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.encoder(input_ids, attention_mask), dim=-1)


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
                          {CLIP_ENCODER: "the model's text tower", SENTENCE_ENCODER: encoder_name})

    side = CachedTextSide(side.digest, side.types, side.tags, side.embeddings, side.encoder_names,
                          search.text_side()["photos"])

    def write_files(temporary: Path) -> None:
        index.save(temporary / "index")
        save_text_side(temporary, side)

    write_artifact(folder, write_files,
                   {"asset": "search_index",
                    "recipe": {"version": RECIPE_VERSION, "photo": GALLERY_PHOTO, "backend": index.backend,
                               "text_side": dict(side.encoder_names)},
                    "data": {"catalog": source.name, "fingerprint": getattr(source, "fingerprint", None),
                             "rows": len(catalog), "digest": side.digest}})


def build_query_encoder(folder: Path, model: Any, progress: bool = True, *, source: Any = None) -> None:
    """The registry's builder of ``query_encoder``: the search's query encoders exported to ONNX.

    ``folder/clip`` holds the CLIP text tower, ``folder/sentence`` the sentence encoder of the
    text->text signals (the model's own MiniLM when unchanged, else the bundled one), each with
    its tokenizer, checked against the torch encoders on probe texts.

    Args:
        folder: where the asset is written.
        model: the shop's CLIP model.
        progress: print a line on stderr when exporting starts.
        source: the catalog (unused: the encoders do not depend on it; kept for the registry).
    """
    from ecmm.artifacts import write_artifact
    from ecmm.exported_text import export_text_encoder, exportable_tokenizer

    del source
    tokenizer = getattr(getattr(model, "tokenizer", None), "hf_tokenizer", None)
    tower = getattr(model, "text_encoder", None)
    reason = ("" if tokenizer is not None and tower is not None else
              f"{type(model).__name__}'s tokenizer is not a Hugging Face tokenizer") or exportable_tokenizer(tokenizer)
    card: dict[str, Any] = {"asset": "query_encoder", "recipe": {"version": RECIPE_VERSION, "encoders": list(QUERY_ENCODERS)}}
    if reason:
        card.update(exported=False, reason=reason)
        write_artifact(folder, lambda temporary: (temporary / "not_exported.txt").write_text(reason + "\n"), card)
        return
    if progress:
        print(f"exporting the query encoders to ONNX into {folder}", file=sys.stderr)
    sentence = tower if tower_sentence_encoder(model) is not None else None
    if sentence is None:
        from ecmm.models.text import load_text_encoder

        sentence = load_text_encoder(device="cpu")
    specs: dict[str, dict] = {}

    def write_files(temporary: Path) -> None:
        was = next(model.parameters()).device
        model.cpu()
        try:
            specs["clip"] = export_text_encoder(QueryTextTower(model), tokenizer, temporary / "clip",
                                                {"clip": int(model.embed_dim)}, int(model.tokenizer.context_length))
            specs["sentence"] = export_text_encoder(SentenceTower(sentence), sentence.tokenizer, temporary / "sentence",
                                                    {"sentence": int(sentence.embedding_dim)}, int(sentence.max_length))
        finally:
            model.to(was)

    write_artifact(folder, write_files, {**card, "exported": True, "specs": specs})
