"""Plots for the customer-service notebook: data in, ``ax=None``, the axes out.

No function here computes a metric or changes global matplotlib settings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def _axes(ax: Any, figsize: tuple[float, float] = (4.5, 4.0)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_reliability_diagram(tables: Mapping[str, Any], ax: Any = None) -> Any:
    """Accuracy against mean confidence per confidence bin, one line per model.

    Args:
        tables: model name -> DataFrame from :func:`ecmm.service.confidence.reliability_table`
            (columns ``confidence, accuracy, count``).
        ax: matplotlib axes; None creates a figure.

    Returns:
        The axes; the diagonal marks perfect calibration, marker area grows with the bin count.
    """
    if not tables:
        raise ValueError("No reliability tables to plot: pass {model_name: reliability_table(...)}.")
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, table in tables.items():
        sizes = 10 + 200 * np.asarray(table["count"]) / max(1, int(np.sum(table["count"])))
        line = ax.plot(table["confidence"], table["accuracy"], marker="", label=str(name))[0]
        ax.scatter(table["confidence"], table["accuracy"], s=sizes, color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (max class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_confidence_histograms(
    confidences: Mapping[str, Sequence[float]], threshold: float | None = None, ax: Any = None,
    bins: int = 20,
) -> Any:
    """Overlaid histograms of confidence for groups of messages (e.g. in-scope vs out-of-scope).

    Args:
        confidences: group name -> confidences in [0, 1].
        threshold: draw the rejection threshold as a vertical line; None draws none.
        ax: matplotlib axes; None creates a figure.
        bins: number of equal-width bins on [0, 1].

    Returns:
        The axes (densities, so groups of different sizes compare).
    """
    if not confidences:
        raise ValueError("No confidences to plot: pass {group_name: confidences}.")
    ax = _axes(ax, (5.0, 3.5))
    edges = np.linspace(0, 1, bins + 1)
    for name, values in confidences.items():
        ax.hist(np.asarray(values, dtype=float), bins=edges, density=True, alpha=0.5, label=str(name))
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("confidence (max class probability)")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax


def plot_ticket(image: np.ndarray, title: str, ax: Any = None) -> Any:
    """Show a ticket's photo with a short caption (the message, or what was identified).

    Args:
        image: (H, W, 3) uint8 photo.
        title: caption; long captions are wrapped.
        ax: matplotlib axes; None creates a figure.

    Returns:
        The axes.
    """
    import textwrap

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}.")
    ax = _axes(ax, (3.0, 3.4))
    ax.imshow(image)
    ax.set_title("\n".join(textwrap.wrap(title, 34)), fontsize="small")
    ax.axis("off")
    return ax
