"""The wiring shared by the ``ecmm`` command and the web server: limits and loaders.

- :data:`LIMITS`: one table of input limits (text lengths, k, ids, image bytes and pixels,
  formats). :mod:`ecmm.validation` enforces it for the command line and the server alike.
- :func:`load_shop_model`, :func:`load_search`, :func:`load_recommender`, :func:`load_support`:
  the shop's models, loaded from the cache (built the first time through the asset registry).

Cached artefacts are read through :mod:`ecmm.artifacts`, so a damaged file raises
:class:`ecmm.artifacts.ArtifactError`, whose message names the folder and the repair command.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Limits", "LIMITS", "load_shop_model", "load_search", "load_shop", "fit_recommender",
           "ShopRecommender", "load_recommender", "load_support", "reply_record", "check_cache"]


@dataclass(frozen=True)
class Limits:
    """Input limits shared by the command line and the server (every bound is inclusive)."""

    query_characters: int = 200  # a search query has at most this many characters
    message_characters: int = 1_000  # a support message has at most this many characters
    search_k: int = 100  # ecmm search / GET /search return at most this many results
    recommend_k: int = 100  # ecmm recommend / GET /recommend return at most this many products
    user_id_characters: int = 64  # a user id has at most this many characters
    sku_id_characters: int = 64  # a SKU id has at most this many characters
    cart_items: int = 50  # a cart holds at most this many SKUs
    image_bytes: int = 2_000_000  # an image file or upload has at most this many bytes
    image_side: int = 4_096  # an image is at most this many pixels wide and high
    image_pixels: int = 4_096 * 4_096  # an image has at most this many pixels (width x height)
    image_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")  # Pillow format names accepted

    def __post_init__(self) -> None:
        numbers = (self.query_characters, self.message_characters, self.search_k, self.recommend_k,
                   self.user_id_characters, self.sku_id_characters, self.cart_items, self.image_bytes,
                   self.image_side, self.image_pixels)
        if min(numbers) < 1:
            raise ValueError("every limit must be a positive number")
        if not self.image_formats:
            raise ValueError("image_formats must name at least one format, e.g. ('PNG',)")

    @property
    def request_bytes(self) -> int:
        """Largest request body the server reads: a base64 image (4/3 of its bytes) plus a message."""
        return self.image_bytes * 4 // 3 + 4 * self.message_characters + 16_384


LIMITS = Limits()


def _notice(text: str) -> None:
    """A one-line notice for people, on stderr (stdout stays machine-readable)."""
    print(text, file=sys.stderr, flush=True)


def load_shop_model(device: Any = None, progress: bool = True) -> tuple[Any, Any, Any]:
    """The CLIP model fine-tuned on the shop, from the cache (built through the registry once).

    Args:
        device: where to put the model; None picks the best available.
        progress: show progress bars (on stderr) if it has to be built.

    Returns:
        ``(model, preprocess, tokenizer)``: ``model.encode_image(preprocess(images))`` and
        ``model.encode_text(tokenizer(texts))`` give normalised ``(N, E)`` embeddings.

    Raises:
        ecmm.artifacts.ArtifactError: the cached model is damaged; the message says what to run.
    """
    from ecmm.assets import ensure_asset
    from ecmm.models.clip import load_clip_model

    model = load_clip_model(ensure_asset("shop_clip", progress=progress), device=device)
    return model, model.preprocess, model.tokenizer


def load_search(device: Any = None, progress: bool = True) -> Any:
    """The catalog search of the offline shop with the shop model (its index cached).

    The index of photo 0 of every SKU is the registry's ``search_index`` asset (built by
    :func:`ecmm.search.build_catalog_index` on first use, checked like every artefact). The
    text-to-text signals of hybrid search use MiniLM sentence embeddings.

    Returns:
        An :class:`ecmm.search.CatalogSearch` over every SKU of the offline catalog.
    """
    from ecmm.artifacts import ArtifactError
    from ecmm.assets import ensure_asset
    from ecmm.data import load_catalog
    from ecmm.index import EmbeddingIndex
    from ecmm.models.text import load_text_encoder
    from ecmm.search import CatalogSearch

    model, preprocess, tokenizer = load_shop_model(device=device, progress=progress)
    catalog = load_catalog("offline")
    folder = ensure_asset("search_index", progress=progress)
    try:
        index = EmbeddingIndex.load(folder / "index")
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(folder, f"the index does not load ({error.__class__.__name__})") from None
    text_encoder = load_text_encoder(device=device).encode
    return CatalogSearch(model, preprocess, tokenizer, catalog, index, device, text_encoder=text_encoder)


def load_shop() -> Any:
    """The catalog, simulated log, time split and content embeddings of the shop (a ``RecsysData``)."""
    from ecmm.recsys.pipeline import build_recsys_data

    return build_recsys_data(progress=False)


def fit_recommender(data: Any) -> Any:
    """The hybrid two-tower model fitted on ``data.split.train``."""
    from ecmm.recsys.pipeline import build_models

    model = build_models(data.item_embeddings, quick=data.quick, names=("hybrid",), progress=False)["hybrid"]
    model.fit(data.split.train)
    return model


@dataclass(frozen=True)
class ShopRecommender:
    """A fitted recommender with the shop's catalog: top-k products for a user or a cart."""

    data: Any  # RecsysData-like: catalog (DataFrame), split (RecsysSplit)
    model: Any  # Recommender: recommend(user=|cart=, k), score_users([user]), score([cart])

    @property
    def user_ids(self) -> list[str]:
        """The known user ids (for examples in messages)."""
        return [str(user) for user in self.data.split.user_ids]

    def _rows(self, items: Sequence[int], scores: np.ndarray) -> list[dict]:
        catalog, cold = self.data.catalog, set(self.data.split.cold_items.tolist())
        return [{"sku_id": str(catalog["sku_id"].iat[i]), "title": str(catalog["title"].iat[i]),
                 "product_type": str(catalog["product_type"].iat[i]), "colour": str(catalog["colour"].iat[i]),
                 "category": str(catalog["category"].iat[i]), "score": round(float(scores[i]), 4),
                 "new_product": i in cold} for i in items]

    def __call__(self, user_id: str, k: int) -> list[dict]:
        """The same as :meth:`for_user` (the server's ``recommend`` backend is this callable)."""
        return self.for_user(user_id, k)

    def for_user(self, user_id: str, k: int) -> list[dict]:
        """Top-``k`` products for a known user; ValueError naming a valid id otherwise."""
        user = self.data.split.user_index(user_id)
        return self._rows(self.model.recommend(user=user, k=k), self.model.score_users([user])[0])

    def for_cart(self, sku_ids: Sequence[str], k: int) -> list[dict]:
        """Top-``k`` products to complete a cart; ValueError listing unknown SKUs."""
        cart = self.data.split.item_indices(list(sku_ids))
        return self._rows(self.model.recommend(cart=cart, k=k), self.model.score([cart])[0])


def load_recommender(check: Callable[[Any], None] | None = None) -> ShopRecommender:
    """The shop's hybrid recommender, fitted on the simulated log.

    Args:
        check: called with the data before fitting (e.g. to refuse an unknown user early).
    """
    data = load_shop()
    if check is not None:
        check(data)
    return ShopRecommender(data, fit_recommender(data))


def load_support(device: Any = None, progress: bool = True, with_photos: bool = True,
                 search_loader: Callable[[], Any] | None = None) -> Any:
    """The support assistant: intent classifier, FAQ answers and (optionally) photo lookup.

    Args:
        device: where the classifier runs; None picks the best available.
        progress: show progress (on stderr) if the classifier has to be trained.
        with_photos: identify the product of an attached photo with the catalog search
            (loaded on the first photo).
        search_loader: a zero-argument function giving the catalog search to use for photos
            (None: :func:`load_search`).

    Returns:
        A :class:`ecmm.service.replies.SupportAssistant`.
    """
    from ecmm.assets import ensure_asset
    from ecmm.data.intents import load_faq
    from ecmm.service.assistant import load_support_classifier
    from ecmm.service.replies import SupportAssistant

    classifier, threshold = load_support_classifier(ensure_asset("support", progress=progress), device=device)
    searches: list[Any] = []

    def find_product(image: np.ndarray) -> str:
        if not searches:
            searches.append(search_loader() if search_loader is not None
                            else load_search(device=device, progress=progress))
        best = searches[0].search_image(image, k=1).iloc[0]
        return f"{best['colour']} {best['product_type']} ({best['sku_id']})"

    return SupportAssistant(classifier, load_faq(), threshold, product_finder=find_product if with_photos else None)


def reply_record(reply: Any) -> dict:
    """A support reply as the JSON the command and the server print: intent, confidence, in_scope,
    answer, product."""
    record = {key: value for key, value in reply.to_dict().items() if key != "slots"}
    record["confidence"] = round(float(record["confidence"]), 4)
    return record


def check_cache() -> dict[str, str]:
    """A cheap look at every cached artefact of the registry: cards and file sizes, no sha256.

    Returns:
        ``{name: "ok" | "not built" | "outdated" | "damaged: <why> in <folder> (run ...)"}``.
    """
    from ecmm import assets
    from ecmm.artifacts import REPAIR_COMMAND, ArtifactError, read_card

    report = {}
    for asset in assets.ASSETS:
        try:
            folder = assets.asset_dir(asset.name)
            card = read_card(folder, verify=False)
            report[asset.name] = "outdated" if card.get("legacy") else "ok"
        except ArtifactError as error:
            report[asset.name] = "not built" if error.problem == "not built" else \
                f"damaged: {error.problem} in {error.folder} (run `{REPAIR_COMMAND}`)"
    return report
