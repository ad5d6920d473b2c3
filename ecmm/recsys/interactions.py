"""Interaction tables, their time split, and the index arrays every recommender trains on.

An interactions table has one row per event with the columns ``user_id``, ``sku_id``, ``event``
(``view``, ``cart`` or ``buy``; common synonyms such as ``purchase`` or ``add_to_cart`` are read as
those, see :data:`EVENT_ALIASES`) and ``timestamp`` (a pandas datetime). The simulator of
:mod:`ecmm.recsys.simulator` writes such a table; a shop's own log in the same four columns (a
catalog source's ``interactions()``) goes through exactly the same :func:`time_split`.

Time split (:func:`time_split`): events before ``split_time`` are the past a model trains on, the
rest is each user's future that it must predict. Two groups are defined by that split:

- **cold-start items**: items with events after the split but none before it (new products);
- **new users**: users with at most ``new_user_max_events`` (default 3) events before the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "EVENT_ALIASES",
    "EVENT_WEIGHTS",
    "INTERACTION_COLUMNS",
    "Interactions",
    "RecsysSplit",
    "check_interactions",
    "time_split",
    "split_to_arrays",
    "split_from_arrays",
]

INTERACTION_COLUMNS: tuple[str, ...] = ("user_id", "sku_id", "event", "timestamp")
# how much one event says about a user's taste: a purchase says more than a glance
EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "cart": 2.0, "buy": 4.0}
# other names shop logs use for the same three events (compared in lower case)
EVENT_ALIASES: dict[str, str] = {"click": "view", "detail_view": "view", "page_view": "view", "add_to_cart": "cart",
                                 "addtocart": "cart", "add": "cart", "purchase": "buy", "order": "buy",
                                 "transaction": "buy"}


def check_interactions(table: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """Validate an interactions table against a catalog and sort it by time.

    Args:
        table: events with columns ``user_id, sku_id, event, timestamp``.
        catalog: the shop catalog (a catalog source's ``table()``); its row order is the item index.

    Returns:
        A copy sorted by ``timestamp`` with ``user_id``/``sku_id`` as strings, ``timestamp`` as
        datetime, and an added ``item_index`` column (row of the SKU in ``catalog``).
    """
    missing = [column for column in INTERACTION_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"interactions table lacks columns {missing}: it needs {list(INTERACTION_COLUMNS)}"
        )
    table = table.loc[:, list(INTERACTION_COLUMNS)].copy()
    table["user_id"] = table["user_id"].astype(str)
    table["sku_id"] = table["sku_id"].astype(str)
    table["timestamp"] = pd.to_datetime(table["timestamp"])
    events = table["event"].astype(str).str.strip().str.lower()
    table["event"] = events.map(lambda event: EVENT_ALIASES.get(event, event))
    bad_events = sorted(set(table["event"]) - set(EVENT_WEIGHTS))
    if bad_events:
        raise ValueError(f"unknown event types {bad_events}: use {sorted(EVENT_WEIGHTS)}")
    item_of_sku = pd.Series(np.arange(len(catalog)), index=catalog["sku_id"].astype(str))
    unknown = sorted(set(table["sku_id"]) - set(item_of_sku.index))
    if unknown:
        raise ValueError(
            f"{len(unknown)} sku_id values are not in the catalog (e.g. {unknown[:3]}): "
            "load the catalog the interactions were logged against"
        )
    table["item_index"] = item_of_sku.loc[table["sku_id"]].to_numpy()
    return table.sort_values("timestamp", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Interactions:
    """Events as integer index arrays, the form every recommender's ``fit`` takes.

    Attributes:
        user_index: ``(E,)`` row of the user in ``RecsysSplit.user_ids``.
        item_index: ``(E,)`` row of the item in the catalog.
        weight: ``(E,)`` event strength from :data:`EVENT_WEIGHTS`.
        event: ``(E,)`` event names.
        days: ``(E,)`` time in days since the first event of the whole log.
        num_users: number of users (rows of the user table).
        num_items: number of items (rows of the catalog).
    """

    user_index: np.ndarray  # (E,) int64
    item_index: np.ndarray  # (E,) int64
    weight: np.ndarray  # (E,) float32
    event: np.ndarray  # (E,) str
    days: np.ndarray  # (E,) float64, chronological
    num_users: int  # users in the log
    num_items: int  # items in the catalog

    def histories(self) -> list[np.ndarray]:
        """Chronological item indices of every user (empty array for users without events)."""
        order = np.lexsort((self.days, self.user_index))
        items, users = self.item_index[order], self.user_index[order]
        bounds = np.searchsorted(users, np.arange(self.num_users + 1))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.num_users)]

    def history_weights(self) -> list[np.ndarray]:
        """Event weights aligned with :meth:`histories`."""
        order = np.lexsort((self.days, self.user_index))
        weights, users = self.weight[order], self.user_index[order]
        bounds = np.searchsorted(users, np.arange(self.num_users + 1))
        return [weights[bounds[u] : bounds[u + 1]] for u in range(self.num_users)]

    def item_counts(self) -> np.ndarray:
        """``(num_items,)`` number of distinct users who touched each item."""
        pairs = np.unique(self.user_index * self.num_items + self.item_index)
        return np.bincount(pairs % self.num_items, minlength=self.num_items)


@dataclass(frozen=True)
class RecsysSplit:
    """A time split of an interactions table.

    Attributes:
        train: events before ``split_time`` (the past).
        test: events at or after ``split_time`` (each user's future).
        user_ids: ``(U,)`` user ids; position = user index.
        sku_ids: ``(N,)`` SKU ids in catalog order; position = item index.
        cold_items: item indices with test events but no train event.
        new_users: user indices with at most ``new_user_max_events`` train events.
        split_time: the boundary timestamp.
    """

    train: Interactions  # the past, as index arrays
    test: Interactions  # the future, as index arrays
    user_ids: np.ndarray  # (U,) str
    sku_ids: np.ndarray  # (N,) str
    cold_items: np.ndarray  # (C,) int64
    new_users: np.ndarray  # (M,) int64
    split_time: pd.Timestamp  # train < split_time <= test

    def user_index(self, user_id: str) -> int:
        """Index of ``user_id``; a ValueError that names a valid example when unknown."""
        matches = np.flatnonzero(self.user_ids == str(user_id))
        if matches.size == 0:
            raise ValueError(f"unknown user {user_id!r}: use an id such as {str(self.user_ids[0])!r}")
        return int(matches[0])

    def item_indices(self, sku_ids: list[str]) -> np.ndarray:
        """Item indices of ``sku_ids``; a ValueError listing the unknown ones."""
        position = {sku: i for i, sku in enumerate(self.sku_ids)}
        unknown = [sku for sku in sku_ids if sku not in position]
        if unknown:
            raise ValueError(f"unknown SKU {', '.join(map(repr, unknown))}: use ids such as {str(self.sku_ids[0])!r}")
        return np.array([position[sku] for sku in sku_ids], dtype=np.int64)


def _to_arrays(table: pd.DataFrame, user_position: pd.Series, origin: pd.Timestamp,
               num_users: int, num_items: int) -> Interactions:
    return Interactions(
        user_index=user_position.loc[table["user_id"]].to_numpy().astype(np.int64),
        item_index=table["item_index"].to_numpy().astype(np.int64),
        weight=table["event"].map(EVENT_WEIGHTS).to_numpy().astype(np.float32),
        event=table["event"].to_numpy().astype(str),
        days=((table["timestamp"] - origin) / pd.Timedelta(days=1)).to_numpy().astype(np.float64),
        num_users=num_users,
        num_items=num_items,
    )


def time_split(
    table: pd.DataFrame,
    catalog: pd.DataFrame,
    split_time: pd.Timestamp | str | None = None,
    train_fraction: float = 0.8,
    new_user_max_events: int = 3,
) -> RecsysSplit:
    """Split an interactions table by time and find cold-start items and new users.

    Args:
        table: events with columns ``user_id, sku_id, event, timestamp``.
        catalog: the shop catalog the SKUs belong to.
        split_time: the boundary; None puts it at ``train_fraction`` of the time range.
        train_fraction: where the boundary falls when ``split_time`` is None, in ``(0, 1)``.
        new_user_max_events: users with at most this many events before the split are "new".

    Returns:
        A :class:`RecsysSplit`; users with no event after the split stay in ``user_ids`` (they
        are simply not evaluated).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1); got {train_fraction}")
    table = check_interactions(table, catalog)
    if table.empty:
        raise ValueError("the interactions table is empty: simulate or load some events first")
    origin = table["timestamp"].min()
    if split_time is None:
        split_time = origin + (table["timestamp"].max() - origin) * train_fraction
    split_time = pd.Timestamp(split_time)
    user_ids = np.array(sorted(table["user_id"].unique()))
    user_position = pd.Series(np.arange(len(user_ids)), index=user_ids)
    past = table[table["timestamp"] < split_time]
    future = table[table["timestamp"] >= split_time]
    train = _to_arrays(past, user_position, origin, len(user_ids), len(catalog))
    test = _to_arrays(future, user_position, origin, len(user_ids), len(catalog))
    seen_items = np.bincount(train.item_index, minlength=len(catalog)) > 0
    future_items = np.bincount(test.item_index, minlength=len(catalog)) > 0
    events_before = np.bincount(train.user_index, minlength=len(user_ids))
    return RecsysSplit(
        train=train,
        test=test,
        user_ids=user_ids,
        sku_ids=catalog["sku_id"].astype(str).to_numpy(),
        cold_items=np.flatnonzero(future_items & ~seen_items),
        new_users=np.flatnonzero(events_before <= new_user_max_events),
        split_time=split_time,
    )


_INTERACTION_ARRAYS = ("user_index", "item_index", "weight", "event", "days")


def split_to_arrays(split: RecsysSplit) -> dict[str, np.ndarray]:
    """A split as plain arrays (``np.savez`` them; :func:`split_from_arrays` reads them back).

    Returns:
        ``{"train.user_index" (E,), ..., "test.days" (E',), "user_ids" (U,), "sku_ids" (N,),
        "cold_items" (C,), "new_users" (M,), "sizes" [num_users, num_items], "split_time" [ns]}``;
        strings as numpy unicode, so no pickle is needed to read them.
    """
    arrays: dict[str, np.ndarray] = {}
    for part_name, part in (("train", split.train), ("test", split.test)):
        for name in _INTERACTION_ARRAYS:
            value = getattr(part, name)
            arrays[f"{part_name}.{name}"] = value.astype(str) if name == "event" else value
    arrays.update(user_ids=split.user_ids.astype(str), sku_ids=split.sku_ids.astype(str),
                  cold_items=split.cold_items, new_users=split.new_users,
                  sizes=np.array([split.train.num_users, split.train.num_items], dtype=np.int64),
                  split_time=np.array([split.split_time.value], dtype=np.int64))
    return arrays


def split_from_arrays(arrays: dict[str, np.ndarray]) -> RecsysSplit:
    """The :class:`RecsysSplit` that :func:`split_to_arrays` wrote."""
    num_users, num_items = (int(size) for size in arrays["sizes"])
    parts = {}
    for part_name in ("train", "test"):
        columns = {name: np.asarray(arrays[f"{part_name}.{name}"]) for name in _INTERACTION_ARRAYS}
        parts[part_name] = Interactions(**columns, num_users=num_users, num_items=num_items)
    return RecsysSplit(train=parts["train"], test=parts["test"], user_ids=np.asarray(arrays["user_ids"]),
                       sku_ids=np.asarray(arrays["sku_ids"]), cold_items=np.asarray(arrays["cold_items"]),
                       new_users=np.asarray(arrays["new_users"]),
                       split_time=pd.Timestamp(int(arrays["split_time"][0])))
