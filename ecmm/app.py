"""The wiring shared by the ``ecmm`` command and the web server: limits and loaders.

- :data:`LIMITS`: one table of input limits (text lengths, k, ids, image bytes and pixels,
  formats). :mod:`ecmm.validation` enforces it for the command line and the server alike.
- :func:`load_shop_model`, :func:`load_search`, :func:`load_recommender`, :func:`load_support`:
  the shop's models, loaded from the cache (built the first time through the asset registry).
  Each takes ``source=`` (a catalog source) and ``model=`` (a model spec); None means the
  environment's (``open_catalog()``, ``model_spec()``), so nothing here knows which catalog or
  model it serves.

Cached artefacts are read through :mod:`ecmm.artifacts`, so a damaged file raises
:class:`ecmm.artifacts.ArtifactError`, whose message names the folder and the repair command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["Limits", "LIMITS", "describe_shop", "load_shop_model", "load_query_encoders", "load_search", "load_shop",
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


def describe_shop(*, source: Any = None, model: str | None = None) -> str:
    """One line for people: the catalog (``source.describe()``) and the model a loader would use.

    Raises:
        ecmm.data.folder.CatalogError: the catalog is malformed.
    """
    return _shop(source, model).describe()


def _shop(source: Any, model: str | None) -> Any:
    """The :class:`ecmm.assets.Shop` of ``(source, model)`` (None: the environment's catalog / model)."""
    from ecmm.assets import shop_of

    return shop_of(source, model)


def load_shop_model(device: Any = None, progress: bool = True, *, source: Any = None,
                    model: str | None = None) -> tuple[Any, Any, Any]:
    """The CLIP model fine-tuned on the shop's catalog, from the cache (built through the registry once).

    Args:
        device: where to put the model; None picks the best available.
        progress: show progress bars (on stderr) if it has to be built.
        source: the catalog (None: ``open_catalog()``, i.e. ``ECMM_CATALOG`` / ``ECMM_PROFILE``).
        model: the model spec it is fine-tuned from (None: ``model_spec()``, i.e. ``ECMM_MODEL``).

    Returns:
        ``(model, preprocess, tokenizer)``: ``model.encode_image(preprocess(images))`` and
        ``model.encode_text(tokenizer(texts))`` give normalised ``(N, E)`` embeddings.

    Raises:
        ecmm.artifacts.ArtifactError: the cached model is damaged; the message says what to run.
    """
    from ecmm.assets import ensure_asset
    from ecmm.models.clip import load_clip_model

    shop = _shop(source, model)
    clip = load_clip_model(ensure_asset("shop_clip", progress=progress, source=shop.source, model=shop.model),
                           device=device)
    return clip, clip.preprocess, clip.tokenizer


def load_query_encoders(progress: bool = True, *, source: Any = None, model: str | None = None) -> Mapping:
    """The shop model's query encoders exported to ONNX (the registry's ``query_encoder`` asset).

    Returns:
        ``{"clip": texts -> (n, E), "sentence": texts -> (n, D)}`` (numpy, run by onnxruntime: an
        :class:`ecmm.exported_text.QueryEncoders`, one MiniLM pass for both on the offline model), or
        ``{}`` when the model's tokenizer cannot be exported (open_clip's) or onnxruntime is not
        installed; a line on stderr says which, and queries then run on the torch model.

    Raises:
        ecmm.artifacts.ArtifactError: the exported files are damaged.
    """
    import sys

    from ecmm.artifacts import ArtifactError, read_card
    from ecmm.assets import ensure_asset
    from ecmm.exported_text import ExportedTextEncoder, QueryEncoders, onnxruntime_installed

    if not onnxruntime_installed():
        print("onnxruntime is not installed: queries run on the torch model (pip install onnxruntime)",
              file=sys.stderr)
        return {}
    shop = _shop(source, model)
    folder = ensure_asset("query_encoder", progress=progress, source=shop.source, model=shop.model)
    card = read_card(folder, verify=False)
    if not card.get("exported"):
        return {}
    try:
        encoders = {name: ExportedTextEncoder.load(folder / name, num_threads=1) for name in ("clip", "sentence")}
    except (OSError, ValueError) as error:
        raise ArtifactError(folder, f"the exported encoders do not load ({error.__class__.__name__})") from None
    return QueryEncoders(encoders["clip"], encoders["sentence"])


def load_search(device: Any = None, progress: bool = True, *, source: Any = None, model: str | None = None,
                photos: bool = True) -> Any:
    """The catalog search of the shop's catalog with its fine-tuned model (index and text side cached).

    The index of photo 0 of every SKU and the catalog's encoded text are the registry's
    ``search_index`` asset (built by :func:`ecmm.search_assets.build_catalog_index` on first use, checked
    like every artefact). The text-to-text signals of hybrid search use MiniLM sentence embeddings.
    Text queries are embedded by the exported query encoders (:func:`load_query_encoders`) when the
    model has them: the same networks under onnxruntime, milliseconds per query.

    Args:
        device: where the torch model embeds photos (and queries without exported encoders).
        progress: show progress (on stderr) if something has to be built.
        source, model: the catalog and the model spec (None: the environment's).
        photos: also search by photo (loads the torch model and the index); False opens a search
            for text queries only, which needs neither torch nor the model when the encoders are
            exported (otherwise the model is loaded all the same).

    Returns:
        An :class:`ecmm.search.CatalogSearch` over every SKU of the catalog.
    """
    from ecmm.artifacts import ArtifactError
    from ecmm.assets import ensure_asset
    from ecmm.search import CatalogSearch

    shop = _shop(source, model)
    table = shop.source.table()
    folder = ensure_asset("search_index", progress=progress, source=shop.source, model=shop.model)
    encoders = load_query_encoders(progress, source=shop.source, model=shop.model)
    if not photos and encoders:
        try:
            return CatalogSearch.from_folder(folder, None, table, text_encoder=encoders["sentence"],
                                             query_encoders=encoders)
        except (OSError, KeyError) as error:
            raise ArtifactError(folder, f"the index does not load ({error.__class__.__name__})") from None
        except ValueError:
            pass  # the saved text side needs the model (an older index): open it with the model
    from ecmm.models.text import load_text_encoder
    from ecmm.search import tower_sentence_encoder

    clip, _, _ = load_shop_model(device=device, progress=progress, source=shop.source, model=shop.model)
    text_encoder = tower_sentence_encoder(clip) or load_text_encoder(device=device).encode  # one MiniLM pass
    try:
        return CatalogSearch.from_folder(folder, clip, table, device, text_encoder, query_encoders=encoders)
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(folder, f"the index does not load ({error.__class__.__name__})") from None


def load_shop(*, source: Any = None, model: str | None = None) -> Any:
    """The catalog, interaction log, time split and content embeddings of the shop (a ``RecsysData``).

    The log is the source's own (``source.interactions()``) when it has one, else simulated shoppers.
    """
    from ecmm.recsys.pipeline import build_recsys_data

    return build_recsys_data(progress=False, source=_shop(source, model).source)


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


def load_recommender(check: Callable[[Any], None] | None = None, *, source: Any = None,
                     model: str | None = None) -> ShopRecommender:
    """The shop's hybrid recommender, fitted once on the shop's log and cached (``fitted_recommender``).

    The first call fits it (the log is the source's own, else simulated shoppers) and caches it,
    keyed by the catalog's fingerprint, the seed and quick mode; later calls load it and train nothing.

    Args:
        check: called with the data before it is used (e.g. to refuse an unknown user).
        source, model: the catalog and the model spec (None: the environment's).
    """
    from ecmm.assets import ensure_asset
    from ecmm.recsys.pipeline import load_fitted_recommender

    shop = _shop(source, model)
    folder = ensure_asset("fitted_recommender", progress=False, source=shop.source, model=shop.model)
    data, fitted = load_fitted_recommender(folder, shop.source)
    if check is not None:
        check(data)
    return ShopRecommender(data, fitted)


def load_support(device: Any = None, progress: bool = True, with_photos: bool = True,
                 search_loader: Callable[[], Any] | None = None, *, source: Any = None,
                 model: str | None = None) -> Any:
    """The support assistant: intent classifier, FAQ answers and (optionally) photo lookup.

    The classifier is the exported copy (``support_encoder``, run by onnxruntime) when onnxruntime
    is installed, else the torch one.

    Args:
        device: where the torch classifier runs; None picks the best available.
        progress: show progress (on stderr) if the classifier has to be trained.
        with_photos: identify the product of an attached photo with the catalog search
            (loaded on the first photo).
        search_loader: a zero-argument function giving the catalog search to use for photos
            (None: :func:`load_search` of ``source`` and ``model``).
        source, model: the catalog whose products photos are matched to, and the model spec
            (None: the environment's).

    Returns:
        A :class:`ecmm.service.replies.SupportAssistant`.
    """
    from ecmm.assets import ensure_asset
    from ecmm.data.intents import load_faq
    from ecmm.exported_text import onnxruntime_installed
    from ecmm.service.assistant import load_exported_classifier, load_support_classifier
    from ecmm.service.replies import SupportAssistant

    exported = None
    if onnxruntime_installed():  # the same classifier exported to ONNX: no torch to import
        exported = load_exported_classifier(ensure_asset("support_encoder", progress=progress))
    classifier, threshold = exported or load_support_classifier(ensure_asset("support", progress=progress),
                                                                device=device)
    searches: list[Any] = []

    def find_product(image: np.ndarray) -> str:
        if not searches:
            searches.append(search_loader() if search_loader is not None
                            else load_search(device=device, progress=progress, source=source, model=model))
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
    """A cheap look at every cached artefact the active shop uses: cards and file sizes, no sha256.

    Returns:
        ``{name: "ok" | "not built" | "outdated" | "damaged: <why> in <folder> (run ...)"}``.
    """
    from ecmm import assets
    from ecmm.artifacts import REPAIR_COMMAND, ArtifactError, read_card

    report = {}
    for asset in assets.ASSETS:
        if not assets.asset_in_use(asset.name):
            continue
        try:
            folder = assets.asset_dir(asset.name)
            card = read_card(folder, verify=False)
            report[asset.name] = "outdated" if card.get("legacy") else "ok"
        except ArtifactError as error:
            report[asset.name] = "not built" if error.problem == "not built" else \
                f"damaged: {error.problem} in {error.folder} (run `{REPAIR_COMMAND}`)"
    return report
