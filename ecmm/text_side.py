"""The text side of catalog search: what text queries need beyond the photo index.

Hybrid search ranks the catalog with signals that need the catalog's text encoded once: title
embeddings and product-type embeddings (under the CLIP text tower and under a separate sentence
encoder such as MiniLM), and zero-shot colour / product-type tags of every photo (for the BM25
documents). Encoding 1,310 titles and tagging 1,310 photos takes seconds on a CPU, so
:func:`ecmm.search_assets.build_catalog_index` computes them once and saves them beside the index:

- ``text_side.safetensors``: ``<encoder>.texts`` ``(N, D)`` and ``<encoder>.type_embeddings``
  ``(T, D)`` for each encoder (``"clip"``: the CLIP text tower; ``"text_encoder"``: the
  sentence encoder), and ``photos`` ``(N, E)``, the index's photo embeddings in row order (so a
  text query needs neither the index nor torch);
- ``text_side.json``: the catalog's digest, the product types, the photo tags and the names of
  the encoders.

:func:`load_text_side` reads them back; the BM25 state is rebuilt from the saved documents'
parts (a sparse count matrix: milliseconds, no model). :func:`catalog_digest` fingerprints the
catalog rows the files were computed for, so a cache of another catalog is never used.

:func:`tower_sentence_encoder`: when the CLIP model's text tower *is* the sentence encoder (the
offline model: the bundled MiniLM, locked, before its projection), the text->text signals can use
the tower's own features, so a hybrid query runs MiniLM once instead of twice (the model memoises
its MiniLM features per batch of tokens, and both calls tokenise the query the same way).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ecmm.lexical import BM25Index

__all__ = ["TEXT_SIDE_TENSORS", "TEXT_SIDE_TABLE", "CLIP_ENCODER", "SENTENCE_ENCODER", "TYPE_PROMPT",
           "CachedTextSide", "catalog_digest", "photo_tags", "bm25_documents", "encode_catalog_texts",
           "save_text_side", "load_text_side", "normalised", "text_side_tables", "same_embedding",
           "fitting_text_side", "cached_encodings", "tower_sentence_encoder"]

TEXT_SIDE_TENSORS = "text_side.safetensors"  # title and product-type embeddings per encoder
TEXT_SIDE_TABLE = "text_side.json"  # digest, product types, photo tags, encoder names
CLIP_ENCODER = "clip"  # embeddings by the CLIP text tower (text_encoder=None)
SENTENCE_ENCODER = "text_encoder"  # embeddings by the separate sentence encoder (MiniLM)
TYPE_PROMPT = "a photo of a {}"  # how the CLIP text tower reads a product type name
DIGEST_COLUMNS = ("sku_id", "title", "description", "product_type", "colour")
AGREEMENT = 1e-4  # largest difference between a cached embedding and a fresh one of the same text


@dataclass(frozen=True)
class CachedTextSide:
    """The saved text side of one catalog under one CLIP model."""

    digest: str  # catalog_digest of the rows it was computed for
    types: tuple[str, ...]  # sorted product types (T)
    tags: pd.DataFrame  # (N, 2): predicted colour and product_type of every photo
    embeddings: Mapping[str, Mapping[str, np.ndarray]]  # encoder -> {"texts" (N, D), "type_embeddings" (T, D)}
    encoder_names: Mapping[str, str]  # encoder -> what made the embeddings, for people
    photos: np.ndarray | None = None  # (N, E) photo embeddings by row; None in an older folder


def catalog_digest(catalog: pd.DataFrame) -> str:
    """16 hex digits that change when any row's id, title, description, type or colour changes."""
    digest = hashlib.sha256()
    for column in DIGEST_COLUMNS:
        digest.update("\x1f".join(catalog[column].astype(str)).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


def as_array(values: Any) -> np.ndarray:
    """A float32 numpy array of a torch tensor (any device) or an array-like."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.ascontiguousarray(values, dtype=np.float32)


def normalised(embeddings: Any) -> np.ndarray:
    """Rows scaled to unit length (float32). Shapes: ``(N, D) -> (N, D)``."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)


def photo_tags(photo_embeddings: Any, model: Any, tokenizer: Any, catalog: pd.DataFrame,
               device: Any = None) -> pd.DataFrame:
    """Zero-shot colour and product type of every photo, among the catalog's own values.

    Shapes:
        ``(N, E)`` photo embeddings -> DataFrame of ``N`` rows (``colour``, ``product_type``).
    """
    import torch

    from ecmm.attributes import predict_tags

    photo_embeddings = torch.as_tensor(as_array(photo_embeddings))
    values = {"colour": sorted(catalog["colour"].astype(str).unique()),
              "product_type": sorted(catalog["product_type"].astype(str).unique())}
    return predict_tags(photo_embeddings, model, tokenizer, values, device)


def bm25_documents(catalog: pd.DataFrame, tags: pd.DataFrame) -> list[str]:
    """One BM25 document per row: title, description and the photo's predicted tags."""
    return [f"{row.title}. {row.description} {tag.colour} {tag.product_type}"
            for row, tag in zip(catalog.itertuples(), tags.itertuples())]


def encode_catalog_texts(encode: Callable[[list[str], str], Any], catalog: pd.DataFrame,
                         types: Sequence[str]) -> dict[str, np.ndarray]:
    """Title and product-type embeddings by one encoder.

    Args:
        encode: ``encode(texts, prompt) -> (n, D)`` normalised embeddings
            (:meth:`ecmm.search.CatalogSearch.encode_texts`).
        catalog: ``N`` rows with a ``title`` column.
        types: ``T`` product type names.

    Returns:
        ``{"texts": (N, D), "type_embeddings": (T, D)}``, float32 numpy arrays.
    """
    return {"texts": as_array(encode(list(catalog["title"].astype(str)), "{}")),
            "type_embeddings": as_array(encode(list(types), TYPE_PROMPT))}


def text_side_tables(catalog: pd.DataFrame, photos: np.ndarray, tags: pd.DataFrame, encoded: Mapping[str, Any],
                     types: Sequence[str], columns: Sequence[str]) -> dict[str, Any]:
    """Everything a text query is scored against, as numpy arrays over the ``N`` catalog rows.

    Args:
        catalog: the rows (``product_type``, ``colour``, ``price`` and ``columns``).
        photos: ``(N, E)`` photo embeddings by row.
        tags: predicted colour / product_type of each photo (the BM25 documents' tags).
        encoded: ``{"texts": (N, D), "type_embeddings": (T, D)}`` under the text->text encoder.
        types: the ``T`` product types, sorted.
        columns: the result columns copied into ``records``.

    Returns:
        ``{"photos", "tags", "bm25" BM25Index, "types", "texts", "type_embeddings", "row_types" (N,)
        type index, "colours", "row_colours" (N,) colour index, "prices" (N,) float, "records" (N,)
        JSON-ready result rows without score}``.
    """
    colours = sorted(catalog["colour"].astype(str).unique())
    return {
        "photos": photos, "tags": tags, "bm25": BM25Index(bm25_documents(catalog, tags)),
        "types": list(types), "texts": encoded["texts"], "type_embeddings": encoded["type_embeddings"],
        "row_types": np.searchsorted(types, catalog["product_type"].astype(str).to_numpy()),
        "colours": colours, "row_colours": np.searchsorted(colours, catalog["colour"].astype(str).to_numpy()),
        "prices": catalog["price"].to_numpy(dtype=np.float64),
        "records": [{key: str(value) for key, value in row.items()} for row in catalog[list(columns)].to_dict("records")],
    }


def save_text_side(folder: str | Path, side: CachedTextSide) -> None:
    """Write ``text_side.safetensors`` and ``text_side.json`` into ``folder`` (an artefact's staging folder)."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    tensors = {f"{encoder}.{name}": as_array(tensor)
               for encoder, parts in side.embeddings.items() for name, tensor in parts.items()}
    if side.photos is not None:
        tensors["photos"] = as_array(side.photos)
    save_file(tensors, str(folder / TEXT_SIDE_TENSORS))
    table = {"digest": side.digest, "types": list(side.types), "encoders": dict(side.encoder_names),
             "tags": {column: side.tags[column].astype(str).tolist() for column in side.tags.columns}}
    (folder / TEXT_SIDE_TABLE).write_text(json.dumps(table, ensure_ascii=False) + "\n", encoding="utf-8")


def load_text_side(folder: str | Path) -> CachedTextSide | None:
    """The text side saved in ``folder``, or None when the folder has none (an older index).

    The files' sha256 are checked by the artefact's card (:func:`ecmm.artifacts.read_card`)
    before this is called; here only their shapes are checked.

    Raises:
        ValueError: the files are there but do not describe a text side.
    """
    from safetensors.numpy import load_file

    folder = Path(folder)
    if not (folder / TEXT_SIDE_TENSORS).is_file() or not (folder / TEXT_SIDE_TABLE).is_file():
        return None
    table = json.loads((folder / TEXT_SIDE_TABLE).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / TEXT_SIDE_TENSORS))
    photos = tensors.pop("photos", None)
    embeddings: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in tensors.items():
        encoder, _, name = key.partition(".")
        embeddings.setdefault(encoder, {})[name] = tensor
    tags = pd.DataFrame(table["tags"])
    types = tuple(table["types"])
    for encoder, parts in embeddings.items():
        if set(parts) != {"texts", "type_embeddings"} or parts["texts"].shape[0] != len(tags) \
                or parts["type_embeddings"].shape[0] != len(types):
            raise ValueError(f"{TEXT_SIDE_TENSORS} in {folder} does not match {TEXT_SIDE_TABLE} ({encoder})")
    if photos is not None and photos.shape[0] != len(tags):
        raise ValueError(f"{TEXT_SIDE_TENSORS} in {folder} holds {photos.shape[0]} photo embeddings for {len(tags)} rows")
    return CachedTextSide(str(table["digest"]), types, tags, embeddings, dict(table.get("encoders", {})), photos)


def same_embedding(cached: Any, fresh: Any) -> bool:
    """Whether a cached ``(D,)`` embedding and a freshly computed one of the same text agree."""
    cached, fresh = as_array(cached).reshape(-1), as_array(fresh).reshape(-1)
    return cached.shape == fresh.shape and float(np.abs(cached - fresh).max()) <= AGREEMENT


def fitting_text_side(cached: CachedTextSide | None, catalog: pd.DataFrame, index_size: int,
                      clip_encode: Callable[[list[str]], Any], folder: Path) -> CachedTextSide | None:
    """``cached`` if it was computed for these catalog rows and this CLIP model, else None.

    The model is checked by embedding one product type prompt again with ``clip_encode`` (texts
    -> ``(n, E)``) and comparing it with the saved one. A line on stderr says why a cache is set
    aside.
    """
    if cached is None:
        return None
    clip = cached.embeddings.get(CLIP_ENCODER)
    if cached.digest != catalog_digest(catalog) or index_size != len(catalog):
        reason = "another catalog"
    elif clip is None or not same_embedding(clip["type_embeddings"][0], clip_encode([TYPE_PROMPT.format(cached.types[0])])):
        reason = "another CLIP model"
    else:
        return cached
    print(f"the text side saved in {folder} was computed for {reason}; computing it again", file=sys.stderr)
    return None


def cached_encodings(cached: CachedTextSide | None, encoder: str,
                     encode: Callable[..., Any]) -> dict[str, np.ndarray] | None:
    """The saved title and type embeddings of ``encoder`` if ``encode`` still makes them, else None.

    Args:
        cached: the saved text side (None: nothing saved).
        encoder: :data:`CLIP_ENCODER` or :data:`SENTENCE_ENCODER`.
        encode: ``encode(texts, prompt=...) -> (n, D)``, the search's text->text encoder; one
            product type is embedded again and compared.
    """
    if cached is None:
        return None
    parts = cached.embeddings.get(encoder)
    if parts is None or not same_embedding(parts["type_embeddings"][0], encode([cached.types[0]], prompt=TYPE_PROMPT)):
        print("the saved title embeddings were made by another text encoder; encoding the titles again",
              file=sys.stderr)
        return None
    return dict(parts)


def tower_sentence_encoder(model: Any, batch_size: int = 64, *,
                           check_weights: bool = True) -> Callable[[list[str]], Any] | None:
    """The sentence encoder inside ``model``'s text tower, when it is the bundled all-MiniLM-L6-v2 unchanged.

    Its embeddings equal ``load_text_encoder().encode(texts)`` (same weights, tokens and mean
    pooling, batches of ``batch_size``) while reusing the model's MiniLM pass of the same text.

    Args:
        model: a CLIP model; only one with ``text_encoder`` (a :class:`ecmm.models.text.TextEncoder`),
            ``text_features`` and ``text_encoder_changed()`` qualifies (the offline model).
        batch_size: texts per MiniLM call.
        check_weights: compare the tower with the bundled weights; False for a copy of a model that
            passed (an int8 quantised copy, whose weights are packed).

    Returns:
        ``texts -> (N, 384)`` normalised embeddings on the CPU, or None when the model's text tower
        is not the bundled MiniLM (another architecture, or fine-tuned text weights).
    """
    tower = getattr(model, "text_encoder", None)
    changed = getattr(model, "text_encoder_changed", None)
    if tower is None or not callable(changed) or not hasattr(model, "text_features") or not hasattr(tower, "tokenize"):
        return None
    if check_weights and changed():
        return None
    import torch

    @torch.no_grad()
    def encode(texts: list[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if tower.training:
            tower.eval()  # dropout off, as load_text_encoder().encode runs it
        device = next(tower.parameters()).device
        chunks = []
        for start in range(0, len(texts), batch_size):
            tokens = {key: value.to(device) for key, value in tower.tokenize(texts[start:start + batch_size]).items()}
            chunks.append(model.text_features(tokens).float().cpu())
        features = torch.cat(chunks) if chunks else torch.empty(0, int(getattr(tower, "embedding_dim", 384)))
        return torch.nn.functional.normalize(features, dim=-1)

    return encode
