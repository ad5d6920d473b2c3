import colorsys

import numpy as np
import pytest

from ecmm.data import CATEGORIES, COLOURS, PRODUCT_TYPES, load_catalog, load_photos
from ecmm.data.catalog import assign_splits, build_catalog
from ecmm.data.render import COLOUR_PAINT, compose_photo, paint_mask, recolour, render_icon

REQUIRED = ("t-shirt", "dress", "jeans", "running shoe", "woman’s hat", "couch and lamp", "umbrella",
            "nesting dolls", "american football", "toolbox", "violin")


def test_product_types_cover_the_brief():
    names = {p.name for p in PRODUCT_TYPES}
    assert len(names) == len(PRODUCT_TYPES) >= 120
    assert set(REQUIRED) <= names
    assert {p.category for p in PRODUCT_TYPES} == set(CATEGORIES) and len(CATEGORIES) == 12
    assert len(COLOURS) == 10


def test_rendering_is_deterministic():
    icon = render_icon(PRODUCT_TYPES[0].emoji)
    assert np.array_equal(np.asarray(icon), np.asarray(render_icon(PRODUCT_TYPES[0].emoji)))
    a = compose_photo(icon, np.random.default_rng(5))
    b = compose_photo(icon, np.random.default_rng(5))
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8 and np.array_equal(a, b)


@pytest.mark.parametrize("colour", ["blue", "green", "red"])
@pytest.mark.parametrize("name", ["t-shirt", "running shoe"])  # saturated paint / grey paint
def test_recolour_sets_hue_and_keeps_outlines(name, colour):
    product = next(p for p in PRODUCT_TYPES if p.name == name)
    icon = np.asarray(render_icon(product.emoji))
    painted = np.asarray(recolour(render_icon(product.emoji), colour))
    mask = paint_mask(icon)
    assert mask.sum() > 200
    hues = [colorsys.rgb_to_hsv(*(painted[y, x, :3] / 255.0))[0] for y, x in np.argwhere(mask)[::25]]
    target = COLOUR_PAINT[colour][0]
    distance = np.minimum(np.abs(np.array(hues) - target), 1 - np.abs(np.array(hues) - target))
    assert np.median(distance) < 0.03
    outline = (icon[..., 3] > 127) & (icon[..., :3].max(-1) < 60)
    assert outline.sum() > 50 and np.array_equal(icon[outline], painted[outline])


def test_unknown_colour_is_a_clear_error():
    with pytest.raises(ValueError, match="use one of"):
        recolour(render_icon(PRODUCT_TYPES[0].emoji), "mauve")


def test_splits_are_disjoint_and_shaped_as_documented():
    splits = assign_splits(PRODUCT_TYPES, seed=0)
    by_type: dict[str, set] = {}
    for (name, _), split in splits.items():
        by_type.setdefault(name, set()).add(split)
    unseen = [n for n, s in by_type.items() if s == {"test_products"}]
    assert 0.15 <= len(unseen) / len(by_type) <= 0.25
    for name, kinds in by_type.items():
        assert kinds in ({"test_products"}, {"train", "test_colours"}), name
    assert splits == assign_splits(PRODUCT_TYPES, seed=0)


def test_cached_catalog_matches_photos_and_schema():
    catalog, photos = load_catalog(), load_photos()
    assert list(catalog.columns[:9]) == ["sku_id", "title", "product_type", "category", "colour",
                                         "price", "description", "split", "emoji"]
    assert catalog["sku_id"].is_unique and len(catalog) == photos.shape[0]
    assert photos.shape[1:] == (photos.shape[1], 128, 128, 3) and photos.shape[1] >= 3
    assert catalog.groupby("product_type")["colour"].nunique().eq(10).all()
    train_types = set(catalog.loc[catalog.split == "train", "product_type"])
    assert train_types.isdisjoint(catalog.loc[catalog.split == "test_products", "product_type"])
    row = catalog.iloc[0]
    assert row["title"].lower() == f"{row['colour']} {row['product_type']}"
    assert row["colour"] in row["description"] and row["price"] > 0


def test_build_catalog_rejects_too_few_photos():
    with pytest.raises(ValueError, match="at least 3"):
        build_catalog(photos_per_sku=1, progress=False)


def test_black_only_icon_is_painted_inside_its_outline():
    pawn = next(p for p in PRODUCT_TYPES if p.name == "chess pawn")
    icon = np.asarray(render_icon(pawn.emoji))
    painted = np.asarray(recolour(render_icon(pawn.emoji), "yellow"))
    mask = paint_mask(icon)
    assert mask.sum() > 0.5 * (icon[..., 3] > 127).sum()
    assert (np.median(painted[mask][:, :2], axis=0) > 180).all()  # yellow: high red and green
    edge = (icon[..., 3] > 127) & ~mask
    assert np.array_equal(icon[edge], painted[edge])
