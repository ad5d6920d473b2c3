"""Item content embeddings: what transfer learning hands to the recommender.

The recommenders take item content embeddings as an *input*, a ``(num_items, D)`` array, so any
encoder can feed them. Two sources:

- ``"clip"``: a CLIP-like model, by default the one fine-tuned on the shop's catalog (notebook 04;
  :func:`shop_model_folder` of the catalog and model; ``"auto"`` picks it once it is built):
  the mean image embedding of a SKU's photos and the text embedding of its title and
  description, each L2-normalised, added and normalised again (a simple late fusion);
- ``"text"``: the pretrained all-MiniLM-L6-v2 sentence embedding of title + description (the
  fallback when the CLIP model is not available).

Text embeddings are cached in ``ECMM_HOME/recsys/`` (the weights are sha256-checked, so they
cannot go stale); CLIP embeddings are recomputed, because the fine-tuned model can change.
:func:`build_content_embeddings` is the registry's builder of the ``recommender`` asset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecmm.config import atomic_write, get_settings
from ecmm.device import get_device

__all__ = ["CONTENT_SOURCES", "RECIPE_VERSION", "shop_model_folder", "clip_available", "resolve_content_source",
           "item_texts",
           "item_content_embeddings", "build_content_embeddings"]

RECIPE_VERSION = 1  # of the recommender asset (MiniLM text embeddings of the shop's catalog)

CONTENT_SOURCES: tuple[str, ...] = ("auto", "clip", "text")


def shop_model_folder(source: Any = None, model: str | None = None) -> Path:
    """Folder of the CLIP model fine-tuned on ``source`` from ``model`` (the registry's ``shop_clip``
    of that catalog and model; None: ``open_catalog()`` / ``model_spec()``)."""
    from ecmm.data.catalogs import catalog_scope, open_catalog
    from ecmm.finetune_recipe import shop_model_dir

    return shop_model_dir(scope=catalog_scope(open_catalog() if source is None else source, model))


def clip_available(built: bool = False, folder: str | Path | None = None) -> bool:
    """True when the shop CLIP model can be used (with ``built``: its folder is already built).

    Args:
        built: also require the fine-tuned model to be built already (``ecmm prepare`` or
            notebook 04 builds it; building it here would take minutes).
        folder: the shop model's folder (None: :func:`shop_model_folder` of the environment's shop).
    """
    return not built or (Path(folder if folder is not None else shop_model_folder()) / "card.json").is_file()


def resolve_content_source(source: str = "auto", folder: str | Path | None = None) -> str:
    """``"auto"`` → ``"clip"`` when the shop CLIP model (in ``folder``) is built, else ``"text"`` (MiniLM)."""
    if source not in CONTENT_SOURCES:
        raise ValueError(f"unknown content source {source!r}: use one of {CONTENT_SOURCES}")
    if source == "auto":
        return "clip" if clip_available(built=True, folder=folder) else "text"
    return source


def item_texts(catalog: pd.DataFrame) -> list[str]:
    """``"title. description"`` of every SKU, in catalog order."""
    return (catalog["title"].astype(str) + ". " + catalog["description"].astype(str)).tolist()


def _fingerprint(catalog: pd.DataFrame) -> str:
    text = "\n".join(catalog["sku_id"].astype(str) + "|" + pd.Series(item_texts(catalog), index=catalog.index))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _text_embeddings(catalog: pd.DataFrame, device, progress: bool) -> np.ndarray:
    from ecmm.models import load_text_encoder

    path = get_settings().home / "recsys" / f"text_embeddings_{_fingerprint(catalog)}.npy"
    if path.exists():
        return np.load(path)
    encoder = load_text_encoder(device=device)
    embeddings = encoder.encode(item_texts(catalog), progress=progress).cpu().numpy().astype(np.float32)
    with atomic_write(path) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, embeddings)
    return embeddings


def _as_photo_set(photos: Any):
    """A :class:`~ecmm.data.catalogs.PhotoSet` (an array is wrapped, a PhotoSet passes)."""
    from ecmm.data.catalogs import ArrayPhotos, PhotoSet

    return photos if isinstance(photos, PhotoSet) else ArrayPhotos(np.asarray(photos))


def _clip_embeddings(catalog: pd.DataFrame, photos: Any, model, device, batch_size: int) -> np.ndarray:
    from ecmm.models.clip import move_tokens

    device = get_device(device)
    if model is None:
        from ecmm.models.clip import load_clip_model

        model = load_clip_model(shop_model_folder(), device=device)
    model.to(device).eval()
    preprocess, tokenizer = model.preprocess, model.tokenizer
    num_items, num_photos = photos.shape[:2]
    with torch.no_grad():
        image_sum = None
        for view in range(num_photos):
            chunks, photo_view = [], photos.view(view)  # lazy (N, H, W, 3): read batch by batch
            for start in range(0, num_items, batch_size):
                pixels = preprocess(photo_view[start : start + batch_size]).to(device)
                chunks.append(torch.nn.functional.normalize(model.encode_image(pixels).float(), dim=-1).cpu())
            view_embeddings = torch.cat(chunks)  # (N, D)
            image_sum = view_embeddings if image_sum is None else image_sum + view_embeddings
        texts = item_texts(catalog)
        text_chunks = []
        for start in range(0, num_items, batch_size):
            tokens = move_tokens(tokenizer(texts[start : start + batch_size]), device)
            text_chunks.append(model.encode_text(tokens).float().cpu())
        text = torch.nn.functional.normalize(torch.cat(text_chunks), dim=-1)
        image = torch.nn.functional.normalize(image_sum, dim=-1)
    return torch.nn.functional.normalize(image + text, dim=-1).numpy().astype(np.float32)


def item_content_embeddings(catalog: pd.DataFrame, photos: Any = None, source: str = "auto",
                            device=None, batch_size: int = 64, progress: bool = True, model=None) -> np.ndarray:
    """Transferred content embedding of every SKU, L2-normalised.

    Args:
        catalog: the shop catalog (row order = item index).
        photos: the catalog's photos aligned with ``catalog`` (needed for ``"clip"``): a
            :class:`~ecmm.data.catalogs.PhotoSet` (read in batches, never all at once) or a uint8
            ``(N, P, H, W, 3)`` array.
        source: ``"clip"`` (image + text of the shop CLIP model), ``"text"`` (MiniLM) or
            ``"auto"`` (CLIP when available, else MiniLM).
        device: where to run the encoder (None picks cuda, mps, then cpu).
        batch_size: encoder batch size.
        progress: show progress bars.
        model: the CLIP-like model for ``"clip"`` (None: the built shop model).

    Returns:
        ``(N, D)`` float32 array, rows of unit norm.
    """
    source = resolve_content_source(source)
    if source == "text":
        return _text_embeddings(catalog, device, progress)
    if photos is None or len(photos.shape) != 5 or photos.shape[0] != len(catalog):
        raise ValueError("source='clip' needs photos of shape (num_skus, photos_per_sku, H, W, 3): "
                         "pass the catalog source's photos()")
    return _clip_embeddings(catalog, _as_photo_set(photos), model, device, batch_size)


def build_content_embeddings(folder, progress: bool = True, *, source: Any = None) -> None:
    """The registry's builder: MiniLM content embeddings of the shop's catalog in ``folder``.

    Args:
        folder: where to write.
        progress: show progress bars.
        source: the catalog source (None: ``open_catalog()``).

    Writes ``embeddings.npy`` ``(N, 384)`` float32 (rows in catalog order) and a card with the
    catalog's fingerprint.
    """
    from pathlib import Path

    from ecmm.artifacts import write_artifact

    if source is None:
        from ecmm.data.catalogs import open_catalog

        source = open_catalog()
    catalog = source.table()
    embeddings = _text_embeddings(catalog, None, progress)

    def write_files(target: Path) -> None:
        np.save(target / "embeddings.npy", embeddings)

    write_artifact(Path(folder), write_files, {
        "asset": "recommender", "recipe": {"version": RECIPE_VERSION, "source": "text", "encoder": "all-MiniLM-L6-v2"},
        "data": {"catalog_fingerprint": _fingerprint(catalog), "catalog": source.describe(),
                 "num_items": int(len(catalog))}})
