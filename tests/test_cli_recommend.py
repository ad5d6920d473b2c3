"""`ecmm recommend` on a tiny simulated shop (the cached fitted recommender is replaced by a small one)."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import ecmm.app
from ecmm.cli import main
from ecmm.recsys.interactions import time_split
from ecmm.recsys.models import ContentRecommender
from ecmm.recsys.simulator import SimulatorConfig, simulate_interactions


@pytest.fixture(scope="module")
def tiny_shop():
    colours, types = ("red", "blue"), ("tent", "backpack", "lipstick", "dress")
    catalog = pd.DataFrame([
        {"sku_id": f"S{t}{c}", "title": f"{colour} {name}", "product_type": name,
         "category": "beauty" if name == "lipstick" else "outdoor", "colour": colour, "price": 10.0 + t,
         "description": name, "split": "test_products" if name == "dress" else "train", "emoji": "?"}
        for t, name in enumerate(types) for c, colour in enumerate(colours)])
    config = SimulatorConfig(num_users=30, events_per_user=10)
    table = simulate_interactions(catalog, config, progress=False)
    split = time_split(table, catalog, split_time=table["timestamp"].min().normalize() + pd.Timedelta(days=config.launch_day))
    embeddings = np.eye(len(catalog), dtype=np.float32) + 0.1
    model = ContentRecommender(embeddings)
    model.fit(split.train)
    return SimpleNamespace(catalog=catalog, split=split), model


@pytest.fixture(autouse=True)
def small_build(monkeypatch, tiny_shop, tmp_path):
    import ecmm.assets

    monkeypatch.delenv("ECMM_CATALOG", raising=False)
    monkeypatch.delenv("ECMM_MODEL", raising=False)
    import ecmm.recsys.pipeline

    loaded = []
    monkeypatch.setattr(ecmm.assets, "ensure_asset", lambda name, **kwargs: tmp_path / name)
    monkeypatch.setattr(ecmm.recsys.pipeline, "load_fitted_recommender",
                        lambda folder, source: loaded.append(folder.name) or tiny_shop)
    monkeypatch.setattr("ecmm.cli.catalog_line", lambda source: "tiny shop")
    return loaded


def test_user_recommendations_as_json(capsys, tiny_shop):
    user = tiny_shop[0].split.user_ids[0]
    assert main(["recommend", "--user", user, "--k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert 1 <= len(rows) <= 3
    assert set(rows[0]) == {"sku_id", "title", "product_type", "colour", "category", "score", "new_product"}
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)


def test_cart_recommendations_as_text(capsys, small_build):
    assert main(["recommend", "--cart", "S00,S10", "--k", "2"]) == 0
    assert small_build == ["fitted_recommender"]  # the cached fitted model, no training here
    captured = capsys.readouterr()
    assert captured.err.strip() == "ecmm recommend: catalog: tiny shop; model: ecmm-clip"
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("1. ")
    assert "S00" not in "".join(lines) and "S10" not in "".join(lines)  # the cart is not recommended back


@pytest.mark.parametrize("argv, message", [
    (["recommend", "--user", "nobody"], "unknown user"),
    (["recommend", "--cart", "S00,NOPE"], "unknown SKU"),
    (["recommend", "--cart", " , "], "cart is empty"),
    (["recommend", "--user", "u00000", "--k", "0"], "--k must be"),
    (["recommend", "--user", "u00000", "--k", "100000"], "--k must be between 1 and 100"),
    (["recommend", "--user", "   "], "user id is empty"),
])
def test_bad_input_gives_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and errors[0] == lines[-1]
    assert all(line.startswith("ecmm recommend: ") for line in lines)  # the shop's line, then the error


def test_user_ids_are_stripped_like_the_server(capsys, tiny_shop):
    user = tiny_shop[0].split.user_ids[0]
    assert main(["recommend", "--user", f"  {user} ", "--k", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_the_shop_recommender_is_the_servers_backend(tiny_shop):
    recommender = ecmm.app.load_recommender()  # the fixture's tiny shop and model
    user = recommender.user_ids[0]
    assert recommender(user, 2) == recommender.for_user(user, 2) and len(recommender(user, 2)) == 2
    with pytest.raises(ValueError, match="unknown user"):
        recommender("nobody", 2)
