"""A documented user-behaviour simulator over the shop catalog.

The offline profile has products but no shoppers, so this module invents them, with the
structure real shop logs have. Every random draw comes from one ``numpy`` generator seeded by
``SimulatorConfig.seed``: the same config gives the same table.

How a simulated user behaves:

- **Latent tastes.** Each user draws a preference over the 12 categories (a sparse Dirichlet:
  most users love two or three), over the 10 colours, and a price band (a preferred log-price
  with a tolerance). Nothing else drives their choices.
- **Long-tail popularity.** Each product type and each SKU has a hidden appeal drawn from a
  log-normal; a few items are hits, most are rarely touched.
- **Sessions.** A user visits in sessions spread over the log's ``num_days``. A session has an
  intent category (drawn from the category taste, sometimes anything), views a few items of that
  category with probability ``∝ exp(affinity)``, where ``affinity = log taste(category) +
  colour_weight · log taste(colour) − price mismatch² + popularity_weight · log appeal``; each view
  may become a cart add, each cart add a purchase.
- **Co-purchases.** Product types come in companion pairs (tent with backpack, laptop with mouse,
  ...; the rest get a random companion). After a purchase, the companion is often viewed and
  bought in the same session.
- **Repeat purchases.** Consumables (beauty, books & stationery) are re-bought some weeks later.
- **New products.** SKUs of the catalog's ``test_products`` split (and a share of
  ``test_colours``) launch on ``launch_day``: nobody can see them before, so after a time split at
  that day they are the **cold-start items**. Fresh launches get a temporary attention boost, as
  "new arrivals" do in a shop.
- **New users.** A share of users arrive just before ``launch_day`` with at most three events.

The output is an interactions table (``user_id, sku_id, event, timestamp, session_id``) that
:func:`ecmm.recsys.interactions.time_split` splits like a real log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

__all__ = ["SimulatorConfig", "simulate_interactions", "companion_product_types", "quick_config"]

# hand-written complements; pairs whose names are not in the catalog are ignored
_COMPANIONS: tuple[tuple[str, str], ...] = (
    ("tent", "backpack"), ("hiking boot", "backpack"), ("laptop", "computer mouse"),
    ("desktop computer", "keyboard"), ("mobile phone", "headphone"), ("camera", "video camera"),
    ("running shoe", "socks"), ("dress", "high-heeled shoe"), ("bikini", "sunglasses"),
    ("one-piece swimsuit", "goggles"), ("coat", "scarf"), ("scarf", "gloves"),
    ("teapot", "spoon"), ("cooking", "fork and knife"), ("bed", "candle"),
    ("notebook", "pen"), ("pen", "pencil"), ("open book", "closed book"),
    ("guitar", "microphone"), ("drum", "long drum"), ("hammer", "nut and bolt"),
    ("screwdriver", "toolbox"), ("basketball", "running shoe"), ("tennis", "socks"),
    ("lipstick", "mirror"), ("nail polish", "lotion bottle"), ("soap", "sponge"),
    ("toothbrush", "razor"), ("handbag", "purse"), ("luggage", "briefcase"),
    ("video game", "television"), ("teddy bear", "wrapped gift"), ("balloon", "piñata"),
)
_CONSUMABLE_CATEGORIES: tuple[str, ...] = ("beauty", "books & stationery")
EVENT_NAMES: tuple[str, ...] = ("view", "cart", "buy")


@dataclass(frozen=True)
class SimulatorConfig:
    """Sizes and behaviour of the simulated shop log (override with ``dataclasses.replace``)."""

    num_users: int = 2000  # shoppers in the log
    events_per_user: float = 25.0  # mean events per user (about num_users * this in total)
    num_days: float = 90.0  # length of the log in days
    launch_day: float = 72.0  # day the new products launch (use it as the time split)
    new_user_fraction: float = 0.15  # share of users who arrive just before launch_day
    new_colour_fraction: float = 0.3  # share of test_colours SKUs that also launch on launch_day
    cold_splits: tuple[str, ...] = ("test_products",)  # catalog splits that launch on launch_day
    category_concentration: float = 0.25  # Dirichlet alpha of category tastes (small = focused)
    colour_concentration: float = 0.6  # Dirichlet alpha of colour tastes
    colour_weight: float = 1.0  # how much colour taste counts in the affinity
    price_tolerance: float = 0.6  # std of a user's price band in log-price units
    popularity_weight: float = 1.0  # how much hidden appeal counts (the long tail)
    appeal_spread: float = 1.0  # sigma of the log-normal item appeal
    views_per_session: float = 3.0  # mean items viewed in a session
    explore_probability: float = 0.1  # chance that a session ignores the category taste
    cart_probability: float = 0.3  # chance that a view becomes a cart add
    buy_probability: float = 0.6  # chance that a cart add becomes a purchase
    companion_probability: float = 0.5  # chance to also buy the companion after a purchase
    repeat_probability: float = 0.4  # chance to re-buy a consumable later
    launch_boost: float = 1.0  # extra log-appeal of items in their first weeks after launch
    launch_boost_days: float = 14.0  # how long the launch boost lasts
    seed: int = 0  # everything random derives from this

    def __post_init__(self) -> None:
        if self.num_users < 1 or self.events_per_user <= 0:
            raise ValueError("num_users must be >= 1 and events_per_user > 0")
        if not 0 < self.launch_day < self.num_days:
            raise ValueError(f"launch_day must lie in (0, num_days={self.num_days}); got {self.launch_day}")
        for name in ("new_user_fraction", "new_colour_fraction", "explore_probability",
                     "cart_probability", "buy_probability", "companion_probability",
                     "repeat_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {getattr(self, name)}")


def quick_config(config: SimulatorConfig | None = None) -> SimulatorConfig:
    """The same behaviour at quick-mode size (500 users, about 10,000 events)."""
    config = config or SimulatorConfig()
    return replace(config, num_users=500, events_per_user=20.0)


def companion_product_types(product_types: list[str], seed: int = 0) -> dict[str, str]:
    """Companion product type of every product type (hand-written pairs first, then random).

    Args:
        product_types: distinct product type names of the catalog.
        seed: seed for the random companions of types without a hand-written pair.

    Returns:
        ``{product_type: companion_product_type}`` with no type its own companion.
    """
    names = sorted(set(product_types))
    if len(names) < 2:
        raise ValueError("companions need at least two product types in the catalog")
    present = set(names)
    companions = {a: b for a, b in _COMPANIONS if a in present and b in present}
    generator = np.random.default_rng(seed)
    for name in names:
        if name not in companions:
            others = [other for other in names if other != name]
            companions[name] = others[int(generator.integers(len(others)))]
    return companions


def _launch_days(catalog: pd.DataFrame, config: SimulatorConfig, generator: np.random.Generator) -> np.ndarray:
    launch = np.zeros(len(catalog))
    split = catalog["split"].to_numpy()
    launch[np.isin(split, config.cold_splits)] = config.launch_day
    new_colours = (split == "test_colours") & (generator.random(len(catalog)) < config.new_colour_fraction)
    launch[new_colours] = config.launch_day
    return launch


def _affinity(catalog: pd.DataFrame, codes: dict[str, np.ndarray], taste: dict[str, np.ndarray],
              log_appeal: np.ndarray, config: SimulatorConfig) -> np.ndarray:
    price_gap = (codes["log_price"] - taste["log_price"]) / config.price_tolerance
    return (
        np.log(taste["category"][codes["category"]] + 1e-4)
        + config.colour_weight * np.log(taste["colour"][codes["colour"]] + 1e-3)
        - 0.5 * price_gap**2
        + config.popularity_weight * log_appeal
    )


def _pick(weights: np.ndarray, generator: np.random.Generator, size: int = 1) -> np.ndarray:
    total = weights.sum()
    if total <= 0 or size < 1:
        return np.empty(0, dtype=np.int64)
    size = min(size, int((weights > 0).sum()))
    return generator.choice(weights.size, size=size, replace=False, p=weights / total)


def simulate_interactions(catalog: pd.DataFrame, config: SimulatorConfig | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """Simulate a shop's interaction log over ``catalog``.

    Args:
        catalog: the shop catalog (``ecmm.data.load_catalog()``).
        config: sizes and behaviour; None uses :class:`SimulatorConfig` defaults.
        progress: show a tqdm bar over users.

    Returns:
        DataFrame with columns ``user_id, sku_id, event, timestamp, session_id``, sorted by time.
    """
    config = config or SimulatorConfig()
    needed = {"sku_id", "product_type", "category", "colour", "price", "split"}
    if not needed <= set(catalog.columns):
        raise ValueError(f"catalog lacks columns {sorted(needed - set(catalog.columns))}: use ecmm.data.load_catalog()")
    generator = np.random.default_rng(config.seed)
    categories = sorted(catalog["category"].unique())
    colours = sorted(catalog["colour"].unique())
    types = sorted(catalog["product_type"].unique())
    codes = {
        "category": catalog["category"].map({c: i for i, c in enumerate(categories)}).to_numpy(),
        "colour": catalog["colour"].map({c: i for i, c in enumerate(colours)}).to_numpy(),
        "log_price": np.log(catalog["price"].to_numpy().astype(float)),
    }
    type_code = catalog["product_type"].map({t: i for i, t in enumerate(types)}).to_numpy()
    log_appeal = generator.normal(0, config.appeal_spread, len(types))[type_code] + generator.normal(
        0, config.appeal_spread / 2, len(catalog))
    launch = _launch_days(catalog, config, generator)
    launch_values = np.unique(launch)
    companions = companion_product_types(types, seed=config.seed)
    type_names = catalog["product_type"].to_numpy()
    items_of_type = {t: np.flatnonzero(catalog["product_type"].to_numpy() == t) for t in types}
    consumable = np.isin(catalog["category"].to_numpy(), _CONSUMABLE_CATEGORIES)
    price_mean, price_std = codes["log_price"].mean(), codes["log_price"].std() + 1e-9

    rows: list[tuple[int, int, int, float, int]] = []  # (user, item, event code, day, session)
    session_counter = 0
    new_users = generator.random(config.num_users) < config.new_user_fraction
    for user in tqdm(range(config.num_users), desc="simulating users", disable=not progress):
        taste = {
            "category": generator.dirichlet(np.full(len(categories), config.category_concentration)),
            "colour": generator.dirichlet(np.full(len(colours), config.colour_concentration)),
            "log_price": generator.normal(price_mean, price_std),
        }
        affinity = _affinity(catalog, codes, taste, log_appeal, config)
        first_row = len(rows)
        activity = generator.lognormal(0.0, 0.6)
        if new_users[user]:
            start = config.launch_day - generator.uniform(0.05, 1.0)
        else:
            start = generator.uniform(0.0, config.launch_day * 0.6)
        num_sessions = 1 + generator.poisson(max(config.events_per_user * activity / 5.0 - 1, 0.1))
        days = np.sort(generator.uniform(start, config.num_days, num_sessions))
        days[0] = start
        appeal = np.exp(affinity)  # (N,)
        regimes: dict[tuple[bool, ...], np.ndarray] = {}  # weights depend on day only via launches
        for day in days:
            regime = tuple((day >= value, day - value < config.launch_boost_days) for value in launch_values)
            if regime not in regimes:
                boost = config.launch_boost * ((launch > 0) & (day - launch < config.launch_boost_days))
                regimes[regime] = appeal * np.exp(boost) * (launch <= day)
            weights = regimes[regime]
            if generator.random() >= config.explore_probability:
                session_category = generator.choice(len(categories), p=taste["category"])
                weights = weights * (codes["category"] == session_category)
            num_views = 1 + generator.poisson(config.views_per_session - 1)
            minute = 0.0
            for item in _pick(weights, generator, num_views):
                bought = False
                for event in range(3):
                    rows.append((user, int(item), event, day + minute / 1440, session_counter))
                    minute += generator.uniform(0.5, 5)
                    chance = config.cart_probability if event == 0 else config.buy_probability
                    if event == 2:
                        bought = True
                    if event == 2 or generator.random() >= chance:
                        break
                if not bought:
                    continue
                if consumable[item] and generator.random() < config.repeat_probability:
                    later = day + generator.uniform(14, 40)
                    if later < config.num_days:
                        rows.append((user, int(item), 0, later, -1))
                        rows.append((user, int(item), 2, later + 0.002, -1))
                if generator.random() < config.companion_probability:
                    partner = items_of_type[companions[type_names[item]]]
                    partner = partner[launch[partner] <= day]
                    partner_weights = np.exp(affinity[partner])
                    for chosen in _pick(partner_weights, generator, 1):
                        for event in (0, 1, 2):
                            rows.append((user, int(partner[chosen]), event, day + minute / 1440, session_counter))
                            minute += generator.uniform(0.5, 3)
            session_counter += 1
        if new_users[user]:  # keep at most three events before the launch
            mine = sorted(rows[first_row:], key=lambda row: row[3])
            before = [row for row in mine if row[3] < config.launch_day][:3]
            rows[first_row:] = before + [row for row in mine if row[3] >= config.launch_day]
    return _to_table(rows, catalog)


def _to_table(rows: list[tuple[int, int, int, float, int]], catalog: pd.DataFrame) -> pd.DataFrame:
    array = np.array(rows, dtype=np.float64).reshape(-1, 5)
    origin = pd.Timestamp("2026-01-01")
    table = pd.DataFrame({
        "user_id": [f"u{int(u):05d}" for u in array[:, 0]],
        "sku_id": catalog["sku_id"].astype(str).to_numpy()[array[:, 1].astype(int)],
        "event": np.array(EVENT_NAMES)[array[:, 2].astype(int)],
        "timestamp": origin + pd.to_timedelta(array[:, 3], unit="D"),
        "session_id": array[:, 4].astype(int),
    })
    return table.sort_values(["timestamp", "user_id"], kind="stable").reset_index(drop=True)
