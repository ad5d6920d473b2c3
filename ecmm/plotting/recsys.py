"""Plots for recommendation: the long tail, user timelines, recommendation thumbnail rows.

Every function takes data (counts, photos, item indices), draws on ``ax`` (a new one when
``None``) and returns it; none computes a metric or changes global matplotlib settings.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_long_tail", "plot_user_timeline", "plot_item_row"]

_EVENT_ROWS = {"view": 0, "cart": 1, "buy": 2}


def _axis(ax, size: tuple[float, float]):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_long_tail(item_counts: np.ndarray, head_fraction: float = 0.2, ax=None):
    """Items sorted by interaction count, with the share of events the top ``head_fraction`` takes.

    Args:
        item_counts: ``(N,)`` events (or users) per item.
        head_fraction: size of the highlighted "head" as a fraction of items with events.
        ax: matplotlib axes, or None for a new figure.

    Returns:
        The axes.
    """
    ax = _axis(ax, (7, 3.2))
    counts = np.sort(np.asarray(item_counts, dtype=np.float64))[::-1]
    counts = counts[counts > 0]
    if counts.size == 0:
        raise ValueError("item_counts has no positive entry: nothing to plot")
    head = max(1, int(round(head_fraction * counts.size)))
    ranks = np.arange(1, counts.size + 1)
    ax.fill_between(ranks[:head], counts[:head], color="tab:red", alpha=0.6,
                    label=f"head: top {head_fraction:.0%} of items = {counts[:head].sum() / counts.sum():.0%} of events")
    ax.fill_between(ranks[head - 1 :], counts[head - 1 :], color="tab:blue", alpha=0.4, label="long tail")
    ax.set_xlabel("item rank by popularity")
    ax.set_ylabel("events")
    ax.set_title("Long-tail popularity")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_user_timeline(days: Sequence[float], events: Sequence[str], thumbnails: np.ndarray,
                       split_day: float | None = None, title: str = "", ax=None):
    """One user's events over time as item thumbnails, one lane per event type.

    Args:
        days: event times in days.
        events: ``"view"``, ``"cart"`` or ``"buy"`` per event.
        thumbnails: ``(E, H, W, 3)`` uint8 image of each event's item.
        split_day: draw the train/test boundary here (None: no line).
        title: axes title.
        ax: matplotlib axes, or None for a new figure.

    Returns:
        The axes.
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    ax = _axis(ax, (10, 2.2))
    days = np.asarray(days, dtype=np.float64)
    if len(days) != len(events) or len(days) != len(thumbnails):
        raise ValueError("days, events and thumbnails must have one entry per event")
    for day, event, image in zip(days, events, thumbnails):
        box = AnnotationBbox(OffsetImage(image, zoom=0.18), (day, _EVENT_ROWS[event]), frameon=False)
        ax.add_artist(box)
    span = max(days.max() - days.min(), 1.0) if days.size else 1.0
    ax.set_xlim((days.min() if days.size else 0) - 0.05 * span, (days.max() if days.size else 1) + 0.05 * span)
    ax.set_ylim(-0.6, 2.6)
    ax.set_yticks(range(3), list(_EVENT_ROWS))
    ax.set_xlabel("day")
    if split_day is not None:
        ax.axvline(split_day, color="black", linestyle="--", linewidth=1)
        ax.text(split_day, 2.55, " split: past | future", fontsize=8, va="top")
    ax.set_title(title, fontsize=10)
    return ax


def plot_item_row(thumbnails: np.ndarray, captions: Sequence[str], title: str = "",
                  highlight: Sequence[bool] | None = None, ax=None):
    """A row of item thumbnails with captions (e.g. a recommendation list).

    Args:
        thumbnails: ``(K, H, W, 3)`` uint8 images.
        captions: ``K`` short captions shown under the images.
        title: text at the left of the row.
        highlight: ``K`` flags; flagged items get a green frame (e.g. a hit or a cold-start item).
        ax: matplotlib axes, or None for a new figure.

    Returns:
        The axes.
    """
    ax = _axis(ax, (1.3 * max(len(thumbnails), 1), 1.8))
    if len(thumbnails) != len(captions):
        raise ValueError("thumbnails and captions must have the same length")
    size = thumbnails.shape[1] if len(thumbnails) else 1
    for position, (image, caption) in enumerate(zip(thumbnails, captions)):
        left = position * size * 1.1
        ax.imshow(image, extent=(left, left + size, size, 0))
        if highlight is not None and highlight[position]:
            ax.add_patch(plt.Rectangle((left, 0), size, size, fill=False, edgecolor="tab:green", linewidth=3))
        ax.text(left + size / 2, size * 1.08, caption, ha="center", va="top", fontsize=7, wrap=True)
    ax.set_xlim(-0.05 * size, max(len(thumbnails), 1) * size * 1.1)
    ax.set_ylim(size * 1.35, 0)
    ax.set_title(title, loc="left", fontsize=10)
    ax.axis("off")
    return ax
