"""Small catalogs on disk for tests: a parquet shard in the hub's schema and a folder catalog.

- :func:`write_hub_shard`: ``ashraq/fashion-product-images-small``'s columns and types (``image`` a
  struct of PNG ``bytes`` and ``path``, the ``huggingface`` features metadata of a hub upload),
  simple drawn products in their ``baseColour``, a few rows with missing values as in the real data.
- :func:`write_folder_catalog`: ``catalog.csv`` + JPEG files (some products with two images), an
  extra ``brand`` attribute column, and optionally ``interactions.csv``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HUB_COLOURS = {"Navy Blue": (20, 30, 110), "Black": (15, 15, 15), "White": (245, 245, 240), "Red": (200, 30, 30),
               "Blue": (40, 90, 210), "Green": (40, 150, 60), "Grey": (130, 130, 130), "Brown": (120, 75, 35),
               "Pink": (235, 130, 170), "Yellow": (240, 210, 40)}
HUB_TYPES = (  # (articleType, masterCategory, subCategory, drawn shape)
    ("Tshirts", "Apparel", "Topwear", "top"), ("Shirts", "Apparel", "Topwear", "top"),
    ("Tops", "Apparel", "Topwear", "top"), ("Sweatshirts", "Apparel", "Topwear", "top"),
    ("Jackets", "Apparel", "Topwear", "top"), ("Jeans", "Apparel", "Bottomwear", "legs"),
    ("Trousers", "Apparel", "Bottomwear", "legs"), ("Shorts", "Apparel", "Bottomwear", "legs"),
    ("Casual Shoes", "Footwear", "Shoes", "shoe"), ("Sports Shoes", "Footwear", "Shoes", "shoe"),
    ("Formal Shoes", "Footwear", "Shoes", "shoe"), ("Heels", "Footwear", "Shoes", "shoe"),
    ("Sandals", "Footwear", "Sandal", "shoe"), ("Watches", "Accessories", "Watches", "round"),
    ("Handbags", "Accessories", "Bags", "bag"), ("Backpacks", "Accessories", "Bags", "bag"),
    ("Perfume and Body Mist", "Personal Care", "Fragrance", "bottle"),
)
HUB_STRING_COLUMNS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage",
                      "productDisplayName")


def draw_product(shape: str, colour: tuple[int, int, int], size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A simple product drawing: ``shape`` in ``colour`` on a light background, slightly moved by ``rng``."""
    width, height = size
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    dx, dy = (int(v) for v in rng.integers(-4, 5, size=2))
    outline = (40, 40, 40)
    if shape == "top":
        draw.polygon([(12 + dx, 18 + dy), (24 + dx, 12 + dy), (36 + dx, 12 + dy), (48 + dx, 18 + dy), (44 + dx, 30 + dy),
                      (40 + dx, 28 + dy), (40 + dx, 66 + dy), (20 + dx, 66 + dy), (20 + dx, 28 + dy), (16 + dx, 30 + dy)],
                     fill=colour, outline=outline)
    elif shape == "legs":
        draw.polygon([(18 + dx, 10 + dy), (42 + dx, 10 + dy), (46 + dx, 70 + dy), (33 + dx, 70 + dy), (30 + dx, 30 + dy),
                      (27 + dx, 70 + dy), (14 + dx, 70 + dy)], fill=colour, outline=outline)
    elif shape == "shoe":
        draw.polygon([(8 + dx, 50 + dy), (22 + dx, 40 + dy), (34 + dx, 46 + dy), (52 + dx, 52 + dy), (52 + dx, 60 + dy),
                      (8 + dx, 60 + dy)], fill=colour, outline=outline)
    elif shape == "round":
        draw.ellipse([14 + dx, 24 + dy, 46 + dx, 56 + dy], fill=colour, outline=outline, width=3)
        draw.rectangle([26 + dx, 8 + dy, 34 + dx, 72 + dy], outline=outline)
    elif shape == "bag":
        draw.arc([20 + dx, 14 + dy, 40 + dx, 38 + dy], 180, 360, fill=outline, width=3)
        draw.rectangle([12 + dx, 26 + dy, 48 + dx, 66 + dy], fill=colour, outline=outline)
    else:  # bottle
        draw.rectangle([26 + dx, 14 + dy, 34 + dx, 26 + dy], fill=outline)
        draw.rounded_rectangle([16 + dx, 26 + dy, 44 + dx, 68 + dy], radius=6, fill=colour, outline=outline)
    return image.resize((width, height)) if image.size != (width, height) else image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def hub_features() -> dict:
    """The ``huggingface`` schema metadata of the hub's parquet files (features of every column)."""
    features = {"id": {"dtype": "int64", "_type": "Value"}}
    features.update({name: {"dtype": "string", "_type": "Value"} for name in HUB_STRING_COLUMNS})
    features["year"] = {"dtype": "float64", "_type": "Value"}
    features["image"] = {"_type": "Image"}
    order = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year",
             "usage", "productDisplayName", "image")
    return {"info": {"features": {name: features[name] for name in order}}}


def write_hub_shard(path: str | Path, rows: int = 300, seed: int = 0) -> Path:
    """A parquet file with the hub data set's exact columns and types.

    Columns: ``id`` int64; ``gender, masterCategory, subCategory, articleType, baseColour, season``
    strings; ``year`` float64; ``usage, productDisplayName`` strings; ``image``
    ``struct<bytes: binary, path: string>`` holding a 60 x 80 PNG; row groups of 100 rows. Every 97th row lacks its
    ``productDisplayName`` and every 89th its ``usage`` (the real data has such gaps).

    Returns:
        ``path``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    colours = list(HUB_COLOURS)
    columns: dict[str, list] = {name: [] for name in ("id", *HUB_STRING_COLUMNS, "year", "image")}
    for row in range(rows):
        article, master, sub, shape = HUB_TYPES[row % len(HUB_TYPES)]
        colour = colours[int(rng.integers(len(colours)))]
        gender = ("Men", "Women", "Unisex")[int(rng.integers(3))]
        usage = ("Casual", "Sports", "Formal")[int(rng.integers(3))]
        columns["id"].append(10000 + row)
        columns["gender"].append(gender)
        columns["masterCategory"].append(master)
        columns["subCategory"].append(sub)
        columns["articleType"].append(article)
        columns["baseColour"].append(colour)
        columns["season"].append(("Summer", "Fall", "Winter", "Spring")[int(rng.integers(4))])
        columns["year"].append(float(2011 + int(rng.integers(7))))
        columns["usage"].append(None if row % 89 == 88 else usage)
        columns["productDisplayName"].append(None if row % 97 == 96 else f"Brand{row % 7} {gender} {colour} {article}")
        picture = draw_product(shape, HUB_COLOURS[colour], (60, 80), rng)
        columns["image"].append({"bytes": _png(picture), "path": None})
    schema = pa.schema([("id", pa.int64()), *[(name, pa.string()) for name in HUB_STRING_COLUMNS[:6]],
                        ("year", pa.float64()), *[(name, pa.string()) for name in HUB_STRING_COLUMNS[6:]],
                        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))],
                       metadata={"huggingface": json.dumps(hub_features())})
    table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=100)  # as the hub's image shards: 100 rows per row group
    return path


FOLDER_TYPES = (  # (product_type, category, drawn shape)
    ("t-shirt", "apparel", "top"), ("hoodie", "apparel", "top"), ("jeans", "apparel", "legs"),
    ("sneaker", "footwear", "shoe"), ("boot", "footwear", "shoe"), ("sandal", "footwear", "shoe"),
    ("handbag", "bags", "bag"), ("backpack", "bags", "bag"), ("watch", "accessories", "round"),
    ("perfume", "accessories", "bottle"),
)
FOLDER_COLOURS = {"red": (200, 30, 30), "blue": (40, 90, 210), "green": (40, 150, 60), "black": (15, 15, 15),
                  "yellow": (240, 210, 40), "pink": (235, 130, 170), "brown": (120, 75, 35), "grey": (130, 130, 130)}


def write_folder_catalog(folder: str | Path, rows: int = 60, seed: int = 0, interactions: bool = False) -> Path:
    """A folder catalog: ``catalog.csv``, JPEG images under ``images/`` and maybe ``interactions.csv``.

    Row ``i`` is product type ``i % 10`` in colour ``(i // 10 + i) % 8`` (so every type has several
    colours); every fifth product has two images (``a.jpg;b.jpg``); titles contain commas (quoted
    CSV fields); an extra column ``brand`` is an attribute.

    Args:
        folder: where to write (created).
        rows: number of products.
        seed: seed of prices, drawings and events.
        interactions: also write ``interactions.csv`` (about 5 events per product).

    Returns:
        The path of ``catalog.csv``.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = list(FOLDER_COLOURS)
    lines = []
    for row in range(rows):
        kind, category, shape = FOLDER_TYPES[row % len(FOLDER_TYPES)]
        colour = colours[(row // len(FOLDER_TYPES) + row) % len(colours)]
        sku = f"SKU-{row:04d}"
        names = [f"images/{sku.lower()}-a.jpg", f"images/{sku.lower()}-b.jpg"][:2 if row % 5 == 0 else 1]
        for name in names:
            draw_product(shape, FOLDER_COLOURS[colour], (96, 120), rng).save(folder / name, format="JPEG", quality=90)
        lines.append({"sku_id": sku, "title": f"{colour.capitalize()} {kind}, {('classic', 'new')[row % 2]} cut",
                      "product_type": kind, "category": category, "colour": colour,
                      "price": f"{rng.uniform(5, 120):.2f}", "description": f"A {colour} {kind} from our {category} range.",
                      "image": ";".join(names), "brand": f"brand{row % 3}"})
    path = folder / "catalog.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lines[0]) if lines else
                                ["sku_id", "title", "product_type", "category", "colour", "price", "description", "image"])
        writer.writeheader()
        writer.writerows(lines)
    if interactions:
        start = np.datetime64("2024-01-01T00:00:00")
        with open(folder / "interactions.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["user_id", "sku_id", "event", "timestamp"])
            for event in range(5 * rows):
                seconds = int(rng.integers(0, 60 * 86400))
                writer.writerow([f"user{int(rng.integers(max(rows // 3, 1)))}", f"SKU-{int(rng.integers(rows)):04d}",
                                 ("view", "view", "view", "cart", "buy")[int(rng.integers(5))],
                                 str(start + np.timedelta64(seconds, "s"))])
    return path
