"""Figures about the data: how the catalog is split."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

SPLIT_COLOURS = {"train": "#4c9be8", "test_colours": "#f5a623", "test_products": "#d0021b"}


def split_matrix(catalog: pd.DataFrame, ax=None, max_types: int | None = 40):
    """Product type × colour matrix coloured by split: the picture of what is held out.

    Args:
        catalog: DataFrame with product_type, colour, split (and category, used for ordering).
        ax: axes to draw into; None makes a new figure.
        max_types: show at most this many product types (spread over categories).

    Returns:
        The axes.
    """
    order = catalog.drop_duplicates("product_type").sort_values(["category", "product_type"])
    types = order["product_type"].tolist()
    if max_types is not None and len(types) > max_types:
        types = [types[i] for i in np.linspace(0, len(types) - 1, max_types).round().astype(int)]
    colours = list(dict.fromkeys(catalog["colour"]))
    codes = {name: index for index, name in enumerate(SPLIT_COLOURS)}
    table = catalog.set_index(["product_type", "colour"])["split"]
    matrix = np.array([[codes[table[(t, c)]] for c in colours] for t in types])
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(colours) + 2.5, 0.22 * len(types) + 1))
    ax.imshow(matrix, cmap=ListedColormap(list(SPLIT_COLOURS.values())), vmin=0,
              vmax=len(SPLIT_COLOURS) - 1, aspect="auto")
    ax.set_xticks(range(len(colours)), colours, rotation=60, fontsize=8)
    ax.set_yticks(range(len(types)), types, fontsize=7)
    ax.legend(handles=[Patch(color=c, label=s) for s, c in SPLIT_COLOURS.items()],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title("Which SKUs each split holds")
    return ax
