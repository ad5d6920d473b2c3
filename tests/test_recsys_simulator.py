"""The interaction simulator and the time split, on a tiny catalog."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ecmm.recsys.interactions import check_interactions, time_split
from ecmm.recsys.simulator import SimulatorConfig, companion_product_types, simulate_interactions

COLOURS = ("red", "blue", "green")
TYPES = (("tent", "sports & outdoors"), ("backpack", "bags"), ("lipstick", "beauty"),
         ("laptop", "electronics"), ("computer mouse", "electronics"), ("dress", "apparel"))


def tiny_catalog() -> pd.DataFrame:
    rows = []
    for t, (name, category) in enumerate(TYPES):
        for c, colour in enumerate(COLOURS):
            split = "test_products" if name == "dress" else ("test_colours" if c == 2 else "train")
            rows.append({"sku_id": f"s{t}{c}", "title": f"{colour} {name}", "product_type": name,
                         "category": category, "colour": colour, "price": 10.0 * (t + 1),
                         "description": f"a {colour} {name}", "split": split, "emoji": "?"})
    return pd.DataFrame(rows)


CONFIG = SimulatorConfig(num_users=60, events_per_user=12, new_colour_fraction=0.0)


def simulate(config=CONFIG):
    catalog = tiny_catalog()
    table = simulate_interactions(catalog, config, progress=False)
    split_time = table["timestamp"].min().normalize() + pd.Timedelta(days=config.launch_day)
    return catalog, table, time_split(table, catalog, split_time=split_time)


def test_simulator_is_deterministic_by_seed():
    catalog = tiny_catalog()
    first = simulate_interactions(catalog, CONFIG, progress=False)
    again = simulate_interactions(catalog, CONFIG, progress=False)
    other = simulate_interactions(catalog, replace(CONFIG, seed=1), progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert list(first.columns) == ["user_id", "sku_id", "event", "timestamp", "session_id"]
    assert set(first["event"]) <= {"view", "cart", "buy"}


def test_cold_products_appear_only_after_the_split():
    catalog, table, split = simulate()
    dress_items = np.flatnonzero(catalog["product_type"].to_numpy() == "dress")
    assert not np.isin(split.train.item_index, dress_items).any()
    assert set(split.cold_items) <= set(dress_items)
    assert np.isin(split.test.item_index, dress_items).any()


def test_new_users_have_at_most_three_past_events():
    _, _, split = simulate()
    past = np.bincount(split.train.user_index, minlength=split.train.num_users)
    assert split.new_users.size > 0
    assert (past[split.new_users] <= 3).all()
    assert (past[np.setdiff1d(np.arange(split.train.num_users), split.new_users)] > 3).all()


def test_purchases_follow_carts_and_companions_exist():
    _, table, _ = simulate()
    counts = table["event"].value_counts()
    assert counts["view"] > counts["cart"] > 0 and counts["buy"] > 0
    companions = companion_product_types([name for name, _ in TYPES])
    assert companions["tent"] == "backpack" and companions["laptop"] == "computer mouse"
    assert all(a != b for a, b in companions.items())


def test_real_interaction_table_goes_through_the_same_split():
    # hub path: a real log in the four-column format
    catalog = tiny_catalog()
    log = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "b", "a", "b"],
        "sku_id": ["s00", "s10", "s11", "s00", "s20", "s50", "s10"],
        "event": ["view", "cart", "buy", "view", "buy", "view", "buy"],
        "timestamp": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04",
                                     "2026-01-05", "2026-01-20", "2026-01-21"]),
    })
    split = time_split(log, catalog, split_time="2026-01-10")
    assert split.user_ids.tolist() == ["a", "b"]
    assert split.train.user_index.size == 5 and split.test.user_index.size == 2
    assert split.cold_items.tolist() == [15]  # s50: first seen after the split
    assert split.new_users.tolist() == [0, 1]  # both have <= 3 past events
    with pytest.raises(ValueError, match="not in the catalog"):
        check_interactions(log.assign(sku_id="nope"), catalog)
    with pytest.raises(ValueError, match="lacks columns"):
        check_interactions(log.drop(columns="event"), catalog)
    with pytest.raises(ValueError, match="unknown user"):
        split.user_index("zed")


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="launch_day"):
        SimulatorConfig(launch_day=200.0)
    with pytest.raises(ValueError, match="cart_probability"):
        SimulatorConfig(cart_probability=1.5)


def test_pipeline_accepts_a_real_log_instead_of_simulating():
    from ecmm.recsys.pipeline import build_models, build_recsys_data

    catalog = tiny_catalog()
    log = simulate_interactions(catalog, CONFIG, progress=False).drop(columns="session_id")
    data = build_recsys_data(interactions=log, catalog=catalog, content="text", progress=False)
    assert data.content_source == "text"
    assert data.item_embeddings.shape == (len(catalog), 384)
    assert data.table is log and data.split.train.user_index.size + data.split.test.user_index.size == len(log)
    model = build_models(data.item_embeddings, quick=True, names=("content",))["content"]
    model.fit(data.split.train)
    assert model.recommend(user=0, k=3).size == 3
