"""``ecmm search/recommend/support/serve/info --catalog CSV --model SPEC`` on a small folder catalog.

The folder fixture (60 products, JPEG files) and the tiny open_clip ViT run through the real
registry in a temporary ``ECMM_HOME``; only the fine-tuning recipe is cut to a few steps (and
the support classifier, which does not depend on the catalog, is a stub), so the module stays quick.
"""

import json
import os
import re
from dataclasses import replace
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import TINY_OPEN_CLIP
from ecmm import assets
from ecmm.artifacts import read_card, write_artifact
from ecmm.cli import main

from conftest import SHOP_VARIABLES  # conftest puts them back after every test


class FixedClassifier:
    """An intent classifier that always says ``complaint`` (the photo part is what is tested)."""

    label_names = ("complaint", "track_order")

    def predict_proba(self, texts):
        return np.array([[0.9, 0.1]] * len(texts))


def _stub_support(folder, progress=True):
    write_artifact(folder, lambda temporary: (temporary / "weights.bin").write_bytes(b"stub"), {"asset": "support"})


@pytest.fixture(scope="module")
def shop(tmp_path_factory, folder_catalog, tiny_open_clip):
    """A temporary ECMM_HOME, the folder catalog's CSV and the tiny model's spec; the environment's
    catalog and model variables are restored afterwards (``main`` writes them)."""
    from ecmm.finetune import build_shop_model, default_config

    model, checkpoint = tiny_open_clip
    spec = f"{checkpoint.parent / (TINY_OPEN_CLIP + '.json')}:{checkpoint}"
    recipe = replace(default_config(model, quick=True), steps=8)
    home = tmp_path_factory.mktemp("shop_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECMM_HOME", str(home))
        for name in SHOP_VARIABLES:
            patch.delenv(name, raising=False)
        builders = {"shop_clip": partial(build_shop_model, config=recipe), "support": _stub_support}
        with assets.override_builders(builders):
            yield SimpleNamespace(home=home, csv=folder_catalog, spec=spec,
                                  argv=["--catalog", str(folder_catalog), "--model", spec])


def _catalog_skus(csv_path):
    import pandas as pd

    return set(pd.read_csv(csv_path)["sku_id"].astype(str))


def test_search_runs_on_the_folder_catalog_in_its_own_cache(shop, capsys):
    assert main(["search", "red t-shirt", "--k", "3", "--json", *shop.argv]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert len(rows) == 3 and {row["sku_id"] for row in rows} <= _catalog_skus(shop.csv)
    announce = captured.err.splitlines()[0]
    assert announce.startswith("ecmm search: catalog: folder catalog ") and str(shop.csv) in announce
    assert announce.endswith(f"model: {shop.spec}")
    built = sorted(path.relative_to(shop.home).as_posix() for path in shop.home.glob("shops/*/assets/*"))
    assert [path.rsplit("/", 1)[1] for path in built] == ["query_encoder", "search_index", "shop_clip"]
    assert built[0].startswith("shops/folder-") and TINY_OPEN_CLIP in built[0]
    assert read_card(shop.home / built[0])["exported"] is False  # open_clip's tokenizer: queries run on torch
    built = built[1:]
    assert not (shop.home / "assets" / "shop_clip").exists() and not (shop.home / "data").exists()  # no offline shop
    card = read_card(shop.home / built[0])
    assert card["shop"]["model"] == shop.spec and card["data"]["rows"] == 60


def test_the_asset_scope_follows_the_catalog_and_the_default_stays(shop, monkeypatch):
    monkeypatch.setenv("ECMM_CATALOG", str(shop.csv))
    monkeypatch.setenv("ECMM_MODEL", shop.spec)
    scoped = assets.asset_dir("shop_clip")
    assert scoped.parent.parent.parent == shop.home / "shops" and scoped.name == "shop_clip"
    assert assets.asset_dir("support") == shop.home / "assets" / "support"
    monkeypatch.delenv("ECMM_CATALOG")
    monkeypatch.delenv("ECMM_MODEL")
    assert assets.asset_dir("shop_clip") == shop.home / "assets" / "shop_clip"  # the offline default layout


def test_recommend_fits_once_then_loads(shop, capsys, monkeypatch):
    from ecmm.recsys.two_tower import HybridTwoTowerRecommender

    assert main(["recommend", "--user", "u00001", "--k", "3", "--json", *shop.argv]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first) == 3 and {row["sku_id"] for row in first} <= _catalog_skus(shop.csv)
    (folder,) = shop.home.glob("shops/*/assets/fitted_recommender*")
    card = read_card(folder)
    assert card["data"]["log_origin"] == "simulated shoppers over the catalog" and card["data"]["items"] == 60
    assert card["key"] == {"catalog": card["built_from"]["catalog"], "seed": 0, "quick": True}

    def no_training(self, train):
        raise AssertionError("a warm `ecmm recommend` must not train")

    monkeypatch.setattr(HybridTwoTowerRecommender, "fit", no_training)
    assert main(["recommend", "--user", "u00001", "--k", "3", "--json", *shop.argv]) == 0
    assert json.loads(capsys.readouterr().out) == first  # the cached model gives the same answer


def test_recommend_uses_the_catalogs_own_events(shop, tmp_path, capsys):
    from catalog_fixtures import write_folder_catalog

    csv_path = write_folder_catalog(tmp_path / "with_events", rows=60, interactions=True)
    user = (csv_path.parent / "interactions.csv").read_text().splitlines()[1].split(",")[0]
    assert main(["recommend", "--user", user, "--k", "2", "--catalog", str(csv_path), "--model", shop.spec]) == 0
    assert "events from interactions.csv" in capsys.readouterr().err
    (folder,) = [path for path in shop.home.glob("shops/*/assets/fitted_recommender*")
                 if read_card(path)["data"]["log_origin"] != "simulated shoppers over the catalog"]
    assert read_card(folder)["data"]["log_origin"].startswith("the shop's own event log (")


def test_support_identifies_a_product_of_the_folder_catalog(shop, capsys, monkeypatch):
    monkeypatch.setattr("ecmm.service.assistant.load_support_classifier",
                        lambda folder, device=None: (FixedClassifier(), 0.5))
    monkeypatch.setattr("ecmm.exported_text.onnxruntime_installed", lambda: False)  # the stub, not an export
    photo = next((shop.csv.parent / "images").glob("*.jpg"))
    assert main(["support", "this arrived broken", "--image", str(photo), "--json", *shop.argv]) == 0
    reply = json.loads(capsys.readouterr().out)
    found = re.fullmatch(r"\w+ [\w -]+ \((?P<sku>[^)]+)\)", reply["product"])
    assert found and found["sku"] in _catalog_skus(shop.csv)


def test_the_server_serves_the_folder_catalogs_photos(shop, monkeypatch):
    from fastapi.testclient import TestClient
    from PIL import Image
    import io

    from ecmm.data.catalogs import open_catalog
    from ecmm.serving import create_app, default_backends

    monkeypatch.setenv("ECMM_CATALOG", str(shop.csv))
    monkeypatch.setenv("ECMM_MODEL", shop.spec)
    source = open_catalog()
    client = TestClient(create_app(default_backends()))
    results = client.get("/search", params={"q": "blue sneaker", "k": 2}).json()
    assert {row["sku_id"] for row in results} <= _catalog_skus(shop.csv)
    row = int(np.flatnonzero(source.table()["sku_id"].astype(str).to_numpy() == results[0]["sku_id"])[0])
    response = client.get(f"/photo/{results[0]['sku_id']}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), source.photos()[row, 0])
    assert client.get("/photo/SKU0000").status_code == 404  # an offline SKU is not in this shop


def test_info_names_the_active_catalog_and_model(shop, capsys):
    assert main(["info", "--json", *shop.argv]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["catalog"].startswith("folder catalog ") and info["model"] == shop.spec
    assert info["shop_cache"].startswith(str(shop.home / "shops")) and info["counts"]["skus"] == 60
    assert "catalog" not in info["prepared"] and "shop_clip" in info["prepared"]  # no offline catalog asset


@pytest.mark.parametrize("command", [["search", "bag"], ["recommend", "--user", "u00001"],
                                     ["support", "is this broken?", "--image", "PHOTO"], ["serve", "--port", "8123"],
                                     ["prepare", "--check"], ["info"]])
def test_a_malformed_catalog_is_one_line_and_exit_2(shop, tmp_path, capsys, command):
    photo = next((shop.csv.parent / "images").glob("*.jpg"))
    command = [str(photo) if part == "PHOTO" else part for part in command]
    bad = tmp_path / "catalog.csv"
    bad.write_text("sku_id,title,price\nA1,red bag,10\n")  # no product_type, category, colour, description, image
    before = sorted(shop.home.rglob("*"))
    assert main([*command, "--catalog", str(bad)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ecmm {command[0]}: error: {bad}")
    assert "Traceback" not in captured.err
    assert "product_type" in lines[0] and captured.out == ""
    assert sorted(shop.home.rglob("*")) == before  # nothing half-built is cached


def test_skip_bad_images_leaves_those_products_out(shop, tmp_path, capsys):
    from catalog_fixtures import write_folder_catalog

    csv_path = write_folder_catalog(tmp_path / "one_bad", rows=20)
    (csv_path.parent / "images" / "sku-0003-a.jpg").write_bytes(b"not a jpeg")
    assert main(["info", "--json", "--catalog", str(csv_path)]) == 2
    error = capsys.readouterr().err
    assert "sku-0003-a.jpg" in error and "--skip-bad-images" in error
    assert main(["info", "--json", "--catalog", str(csv_path), "--skip-bad-images"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"]["skus"] == 19 and "1 left out" in info["catalog"]
    assert os.environ["ECMM_SKIP_BAD_IMAGES"] == "1"  # child processes see the same catalog
