"""The folder catalog: a CSV and its images, every malformed case refused with its file and line."""

import shutil

import numpy as np
import pandas as pd
import pytest
from catalog_fixtures import write_folder_catalog

from ecmm.data import folder as folder_module
from ecmm.data.catalog import CATALOG_COLUMNS
from ecmm.data.folder import SCHEMA, CatalogError, FolderSource, fit_photo


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A fresh ECMM_HOME that must stay empty: the folder source writes nothing."""
    path = tmp_path / "home"
    monkeypatch.setenv("ECMM_HOME", str(path))
    yield path
    assert not path.exists() or not any(path.iterdir()), "the folder source wrote into ECMM_HOME"


@pytest.fixture()
def shop(tmp_path, folder_catalog):
    """A private copy of the folder fixture that a test may break; returns its CSV path."""
    copy = shutil.copytree(folder_catalog.parent, tmp_path / "shop")
    return copy / "catalog.csv"


def lines_of(csv_path):
    return csv_path.read_text(encoding="utf-8").splitlines()


def write_lines(csv_path, lines):
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def refused(csv_path, **options) -> CatalogError:
    with pytest.raises(CatalogError) as caught:
        FolderSource.open(csv_path, **options)
    error = caught.value
    assert str(error.path) in str(error) and error.problem in str(error)
    return error


def test_fixture_catalog_opens_with_the_shared_schema(home, folder_catalog):
    source = FolderSource.open(folder_catalog)
    table = source.table()
    assert source.name == "folder" and len(source.fingerprint) == 16
    assert list(table.columns) == [*CATALOG_COLUMNS, "brand"] and source.attribute_columns == ("brand",)
    assert len(table) == 60 and table["sku_id"].is_unique and table["price"].dtype == np.float64
    assert set(table["split"]) == {"train", "test_colours", "test_products"}
    assert table.loc[0, "title"] == "Red t-shirt, classic cut" and table["emoji"].eq("").all()
    assert source.interactions() is None and "60 products" in source.describe()
    assert "shoppers are simulated" in source.describe()


def test_photos_are_real_images_then_copies(home, folder_catalog):
    photos = FolderSource.open(folder_catalog).photos()
    assert photos.shape == (60, 3, 128, 128, 3)
    first = photos[0]  # SKU-0000 has two images
    assert first.dtype == np.uint8 and first.shape == (3, 128, 128, 3)
    folder = folder_catalog.parent / "images"
    assert np.array_equal(first[0], fit_photo(folder / "sku-0000-a.jpg"))
    assert np.array_equal(first[1], fit_photo(folder / "sku-0000-b.jpg"))
    single = photos[1]  # one image: photos 1 and 2 are shifted copies of it
    assert not np.array_equal(single[0], single[1]) and np.array_equal(photos[1], single)
    assert (first[0] == 255).all(axis=-1).mean() > 0.1  # fitted on a white canvas


def test_photos_decode_only_the_rows_asked_for(home, folder_catalog, monkeypatch):
    source = FolderSource.open(folder_catalog)
    opened = []
    real = folder_module.fit_photo
    monkeypatch.setattr(folder_module, "fit_photo", lambda path, size=128: opened.append(path) or real(path, size))
    photos = source.photos()
    assert opened == []
    batch = photos.view(2)[3:5]
    assert batch.shape == (2, 128, 128, 3)
    assert sorted(opened) == sorted(str(p) for row in (3, 4) for p in source.image_paths[row])


def test_missing_column_names_it_and_the_schema(home, shop):
    lines = lines_of(shop)
    header = lines[0].split(",")
    position = header.index("colour")
    write_lines(shop, [",".join(c for i, c in enumerate(line.split(",")) if i != position) if n == 0 else line
                       for n, line in enumerate(lines)])
    error = refused(shop)
    assert error.row == 1 and "['colour']" in error.problem and SCHEMA in str(error)


def test_missing_image_names_the_line_and_file(home, shop):
    (shop.parent / "images" / "sku-0007-a.jpg").unlink()
    error = refused(shop)
    assert error.row == 9 and "sku-0007-a.jpg" in str(error) and "is missing" in error.problem
    assert "skip-bad-images" in str(error)


def test_corrupt_and_truncated_images_are_refused(home, shop):
    (shop.parent / "images" / "sku-0003-a.jpg").write_bytes(b"not a jpeg at all")
    error = refused(shop)
    assert error.row == 5 and "does not decode" in error.problem
    (shop.parent / "images" / "sku-0003-a.jpg").write_bytes((shop.parent / "images" / "sku-0004-a.jpg").read_bytes())
    whole = (shop.parent / "images" / "sku-0008-a.jpg").read_bytes()
    (shop.parent / "images" / "sku-0008-a.jpg").write_bytes(whole[:len(whole) // 2])
    error = refused(shop)
    assert error.row == 10 and "does not decode" in error.problem


def test_skip_bad_images_counts_what_it_leaves_out(home, shop):
    (shop.parent / "images" / "sku-0007-a.jpg").unlink()
    (shop.parent / "images" / "sku-0010-b.jpg").write_bytes(b"\xff\xd8 broken")  # the second image of SKU-0010
    assert "1 more products have bad images" in str(refused(shop))
    source = FolderSource.open(shop, skip_bad_images=True)
    assert source.skipped == 2 and source.skipped_skus == ("SKU-0007", "SKU-0010")
    table = source.table()
    assert len(table) == 58 and not table["sku_id"].isin(["SKU-0007", "SKU-0010"]).any()
    assert len(source.photos()) == 58 and "2 left out" in source.describe()


def test_every_image_bad_is_refused_even_when_skipping(home, shop):
    shutil.rmtree(shop.parent / "images")
    error = refused(shop, skip_bad_images=True)
    assert error.row is None and "every product" in error.problem


def test_duplicate_sku_names_both_lines(home, shop):
    lines = lines_of(shop)
    lines[6] = lines[6].replace("SKU-0005", "SKU-0002")
    write_lines(shop, lines)
    error = refused(shop)
    assert error.row == 7 and "also on line 4" in error.problem and "SKU-0002" in error.problem


def test_empty_and_header_only_csv(home, shop):
    shop.write_bytes(b"")
    assert "is empty" in refused(shop).problem
    shop.write_text(" \n\n", encoding="utf-8")
    assert "is empty" in refused(shop).problem
    write_lines(shop, [SCHEMA])
    assert "no products" in refused(shop).problem
    error = refused(shop.parent / "nowhere.csv")
    assert "does not exist" in error.problem and error.row is None


def test_non_utf8_csv_names_line_and_byte(home, shop):
    data = shop.read_bytes().split(b"\n")
    data[3] = data[3].replace(b"Green", "Grün".encode("latin-1"), 1)  # SKU-0002, line 4
    shop.write_bytes(b"\n".join(data))
    error = refused(shop)
    assert error.row == 4 and "is not UTF-8" in error.problem and "Save the file as UTF-8" in str(error)
    offset = int(error.problem.split()[1])
    assert shop.read_bytes()[offset] == 0xFC


def test_bad_price_empty_cell_and_field_count(home, shop):
    lines = lines_of(shop)
    write_lines(shop, [line.replace(lines[3].split(",")[-4], "€12", 1) if n == 3 else line for n, line in enumerate(lines)])
    error = refused(shop)
    assert error.row == 4 and "'€12' is not a number" in error.problem
    broken = list(lines)
    broken[5] = broken[5].replace(broken[5].split(",")[-3], "", 1)
    write_lines(shop, broken)
    error = refused(shop)
    assert error.row == 6 and "'description' is empty" in error.problem
    write_lines(shop, lines[:2] + [lines[2] + ",extra"])
    error = refused(shop)
    assert error.row == 3 and "fields" in error.problem and "quotes" in str(error)


def test_split_column_is_kept_or_refused(home, shop):
    table = pd.read_csv(shop, dtype=str, keep_default_na=False)
    table["split"] = ["train" if i % 4 else "test_products" for i in range(len(table))]
    table.to_csv(shop, index=False)
    source = FolderSource.open(shop)
    assert source.table()["split"].tolist() == table["split"].tolist() and source.attribute_columns == ("brand",)
    table.loc[4, "split"] = "validation"
    table.to_csv(shop, index=False)
    error = refused(shop)
    assert error.row == 6 and "'validation'" in error.problem


def test_interactions_are_read_and_checked(home, tmp_path):
    csv_path = write_folder_catalog(tmp_path / "events", rows=20, interactions=True)
    source = FolderSource.open(csv_path)
    events = source.interactions()
    assert list(events.columns) == ["user_id", "sku_id", "event", "timestamp"] and len(events) == 100
    assert pd.api.types.is_datetime64_any_dtype(events["timestamp"]) and set(events["event"]) <= {"view", "cart", "buy"}
    assert events["sku_id"].isin(source.table()["sku_id"]).all() and "events from interactions.csv" in source.describe()
    path = csv_path.parent / "interactions.csv"
    good = path.read_text(encoding="utf-8").splitlines()
    cases = [(3, lambda line: line.replace("SKU-", "XYZ-"), "is not in the catalog"),
             (4, lambda line: ",".join(line.split(",")[:2] + ["like"] + line.split(",")[3:]), "'like' is unknown"),
             (5, lambda line: ",".join(line.split(",")[:3] + ["yesterday"]), "'yesterday' is not a date")]
    for row, change, problem in cases:
        write_lines(path, [change(line) if n == row - 1 else line for n, line in enumerate(good)])
        with pytest.raises(CatalogError) as caught:
            FolderSource.open(csv_path).interactions()
        assert caught.value.row == row and problem in caught.value.problem and "interactions.csv" in str(caught.value)
    write_lines(path, ["user_id,sku_id,when"] + good[1:])
    with pytest.raises(CatalogError, match=r"lacks the columns \['event', 'timestamp'\]"):
        FolderSource.open(csv_path).interactions()


def test_events_of_skipped_products_are_dropped(home, tmp_path):
    csv_path = write_folder_catalog(tmp_path / "events", rows=20, interactions=True)
    (csv_path.parent / "images" / "sku-0003-a.jpg").unlink()
    source = FolderSource.open(csv_path, skip_bad_images=True)
    everything = pd.read_csv(csv_path.parent / "interactions.csv")
    assert len(source.interactions()) == int((everything["sku_id"] != "SKU-0003").sum()) < len(everything)


def test_fingerprint_follows_the_files(home, shop):
    first = FolderSource.open(shop).fingerprint
    assert FolderSource.open(shop).fingerprint == first
    image = shop.parent / "images" / "sku-0001-a.jpg"
    image.write_bytes((shop.parent / "images" / "sku-0002-a.jpg").read_bytes())
    assert FolderSource.open(shop).fingerprint != first


def test_event_names_match_the_recommender():
    from ecmm.recsys.interactions import EVENT_WEIGHTS

    assert set(folder_module.INTERACTION_EVENTS) == set(EVENT_WEIGHTS)
    assert folder_module.INTERACTION_COLUMNS == ("user_id", "sku_id", "event", "timestamp")
