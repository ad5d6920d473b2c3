"""Photo + text tickets: "this arrived broken" with a shop photo.

The product comes from the photo (CLIP image search over the catalog, notebook 04), the intent
from the text classifier, the reply from :mod:`ecmm.service.replies`. The evaluation tickets are
generated: a catalog photo that the search index does not hold (photo 1 or later of a SKU; the
index holds photo 0) plus a message written for this evaluation, never seen in training.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["TICKET_MESSAGES", "make_tickets", "ticket_photo", "identify_products", "evaluate_tickets"]

TICKET_MESSAGES: dict[str, tuple[str, ...]] = {  # intent -> messages sent with a product photo
    "complaint": ("this arrived broken", "Look at this, it came damaged and scratched.",
                  "The item in the photo is not what I expected at all, very disappointed"),
    "get_refund": ("I'd like my money back for this one", "please refund me for the item in the picture",
                   "this is faulty, I want a refund"),
    "cancel_order": ("I ordered this by mistake, please cancel the order", "cancel this before it ships"),
    "change_order": ("can you swap this for another colour in my order?",
                     "I want to change this item in my order"),
    "track_order": ("I ordered this last week and it's still not here, where is it?",
                    "when will this get delivered?"),
    "review": ("I love it! where can I leave a review for this?", "I want to rate this product"),
}


def make_tickets(
    catalog: pd.DataFrame,
    photos: Any,
    num_tickets: int,
    seed: int = 0,
    messages: dict[str, Sequence[str]] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw evaluation tickets: a SKU, one of its non-gallery photos, an intent and a message.

    Args:
        catalog: shop catalog aligned with ``photos`` (a catalog source's ``table()``).
        photos: the source's :class:`~ecmm.data.catalogs.PhotoSet` (only the drawn photos are
            decoded) or a uint8 ``(num_skus, photos_per_sku, H, W, 3)`` array; photo 0 is the
            search gallery.
        num_tickets: how many tickets to draw.
        seed: seed of every draw.
        messages: intent -> messages; None uses :data:`TICKET_MESSAGES`.

    Returns:
        ``(tickets, images)``: DataFrame ``sku_id, product_type, colour, photo, message, intent``
        and uint8 images ``(num_tickets, H, W, 3)``.
    """
    messages = TICKET_MESSAGES if messages is None else messages
    if num_tickets < 1:
        raise ValueError(f"num_tickets must be >= 1, got {num_tickets}.")
    shape = tuple(int(size) for size in photos.shape)
    if len(shape) != 5 or shape[0] != len(catalog) or shape[1] < 2 or shape[4] != 3:
        raise ValueError(f"photos must be (num_skus, photos_per_sku >= 2, H, W, 3), aligned with the {len(catalog)} "
                         f"catalog rows; got {shape}.")
    num_skus, photos_per_sku = shape[0], shape[1]
    rng = np.random.default_rng(seed)
    rows = rng.choice(num_skus, size=num_tickets, replace=num_tickets > num_skus)
    views = rng.integers(1, photos_per_sku, size=num_tickets)  # 1 .. P-1: never the gallery photo 0
    intents = rng.choice(sorted(messages), size=num_tickets)
    texts = [str(rng.choice(list(messages[intent]))) for intent in intents]
    tickets = catalog.iloc[rows][["sku_id", "product_type", "colour"]].reset_index(drop=True)
    tickets = tickets.assign(photo=views, message=texts, intent=intents)
    images = np.stack([ticket_photo(photos, int(row), int(view), shape[2:]) for row, view in zip(rows, views)])
    return tickets, images


def ticket_photo(photos: Any, row: int, view: int, image_shape: tuple[int, ...]) -> np.ndarray:
    """Photo ``view`` of SKU ``row``, checked to be what image search accepts.

    One ``photos[row, view]`` read: a :class:`~ecmm.data.catalogs.PhotoSet` decodes that SKU only.

    Args:
        photos: a PhotoSet or uint8 array ``(N, P, H, W, 3)``.
        row: catalog row.
        view: photo index, ``0 <= view < P``.
        image_shape: the expected ``(H, W, 3)``.

    Returns:
        uint8 ``(H, W, 3)``.
    """
    image = np.asarray(photos[row, view])
    if image.shape != tuple(image_shape) or image.dtype != np.uint8:
        raise ValueError(f"photo {view} of catalog row {row} is {image.dtype} {image.shape}; expected uint8 "
                         f"{tuple(image_shape)} (one RGB photo, as image search takes it).")
    return image


def identify_products(search, images: np.ndarray, k: int = 5) -> list[pd.DataFrame]:
    """Top-``k`` catalog matches of every ticket photo.

    Args:
        search: an object with ``search_image(image, k) -> DataFrame`` with a ``sku_id`` column
            (e.g. :class:`ecmm.search.CatalogSearch`).
        images: uint8 ``(N, H, W, 3)`` photos.
        k: matches per photo.

    Returns:
        N DataFrames of matches, best first.
    """
    return [search.search_image(image, k=k) for image in images]


def evaluate_tickets(tickets: pd.DataFrame, matches: list[pd.DataFrame], probabilities: np.ndarray,
                     label_names: Sequence[str]) -> dict:
    """Product identified top-1 / top-5 (the exact SKU) and intent accuracy of the tickets.

    Args:
        tickets: from :func:`make_tickets`.
        matches: from :func:`identify_products` (at least 5 rows each for top-5).
        probabilities: (N, K) intent probabilities of the ticket messages.
        label_names: the K intents.

    Returns:
        ``{"product_top1", "product_top5", "intent_accuracy"}``.
    """
    if not len(tickets) == len(matches) == len(probabilities):
        raise ValueError("tickets, matches and probabilities must describe the same tickets.")
    truth = tickets["sku_id"].astype(str).tolist()
    found = [match["sku_id"].astype(str).tolist() for match in matches]
    predicted = [label_names[i] for i in np.asarray(probabilities).argmax(axis=1)]
    return {
        "product_top1": float(np.mean([skus[:1] == [sku] for sku, skus in zip(truth, found)])),
        "product_top5": float(np.mean([sku in skus[:5] for sku, skus in zip(truth, found)])),
        "intent_accuracy": float(np.mean(np.asarray(predicted) == tickets["intent"].to_numpy())),
    }
