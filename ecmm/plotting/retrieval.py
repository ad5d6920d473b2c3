"""Retrieval plots: similarity heat map, result grids, WiSE-FT curve, label-efficiency bars.

Data in, ``ax=None`` (a new figure when None), the axes out; no metric is computed here.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_similarity_matrix", "plot_search_results", "plot_wise_ft_curve",
           "plot_label_efficiency_bars", "plot_loss_curve"]


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def plot_similarity_matrix(similarity: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str],
                           title: str = "cosine similarity", ax: Any = None) -> Any:
    """Heat map of an image x text similarity matrix with the values written in the cells.

    Args:
        similarity: ``(R, C)`` matrix.
        row_labels: ``R`` labels (images).
        column_labels: ``C`` labels (texts).
        title: axes title.
        ax: axes to draw into.

    Returns:
        The axes.
    """
    similarity = np.asarray(similarity, dtype=float)
    if similarity.shape != (len(row_labels), len(column_labels)):
        raise ValueError(f"similarity is {similarity.shape} but got {len(row_labels)} row and "
                         f"{len(column_labels)} column labels")
    ax = _axes(ax, (1.0 + 0.7 * len(column_labels), 0.8 + 0.5 * len(row_labels)))
    image = ax.imshow(similarity, cmap="viridis")
    ax.set_xticks(range(len(column_labels)), column_labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)
    middle = (similarity.max() + similarity.min()) / 2
    for (i, j), value in np.ndenumerate(similarity):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="black" if value > middle else "white")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    return ax


def plot_search_results(query_label: str, images: np.ndarray, captions: Sequence[str],
                        correct: Sequence[bool] | None = None, query_image: np.ndarray | None = None,
                        axes: Any = None) -> Any:
    """One row of search results: optional query photo, then the top-k photos with captions.

    Args:
        query_label: text shown on the left (the query).
        images: uint8 ``(k, H, W, 3)`` result photos, best first.
        captions: ``k`` captions (e.g. title and score).
        correct: optional ``k`` flags; correct results get a green frame.
        query_image: optional uint8 ``(H, W, 3)`` query photo drawn first.
        axes: a flat sequence of ``k`` (+1 with a query image) axes; None makes a new figure.

    Returns:
        The array of axes.
    """
    panels = len(images) + (query_image is not None)
    if axes is None:
        _, axes = plt.subplots(1, panels, figsize=(1.4 * panels, 1.8), constrained_layout=True)
    axes = np.atleast_1d(axes).ravel()
    pictures = ([query_image] if query_image is not None else []) + list(images)
    labels = (["query"] if query_image is not None else []) + list(captions)
    for position, (ax, picture, label) in enumerate(zip(axes, pictures, labels)):
        ax.imshow(picture)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=6)
        result = position - (query_image is not None)
        if correct is not None and result >= 0:
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if correct[result] else "lightgrey")
                spine.set_linewidth(3 if correct[result] else 1)
    axes[0].set_title(query_label, fontsize=8, loc="left")
    return axes


def plot_wise_ft_curve(alphas: Sequence[float], curves: Mapping[str, Sequence[float]],
                       ylabel: str = "Recall@10", ax: Any = None) -> Any:
    """Metrics along the WiSE-FT interpolation ``alpha`` (0 = zero-shot, 1 = fine-tuned).

    Args:
        alphas: mixing weights.
        curves: name -> one value per alpha.
        ylabel: y-axis label.
        ax: axes to draw into.

    Returns:
        The axes.
    """
    ax = _axes(ax, (5.0, 3.5))
    for name, values in curves.items():
        ax.plot(alphas, values, marker="o", label=name)
    ax.set_xlabel("alpha (0 = zero-shot, 1 = fine-tuned)")
    ax.set_ylabel(ylabel)
    ax.set_title("WiSE-FT: interpolating weights")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_label_efficiency_bars(fractions: Sequence[float], results: Mapping[str, Sequence[float]],
                               ylabel: str = "Recall@10", ax: Any = None) -> Any:
    """Grouped bars: one group per label fraction, one bar per model (e.g. pretrained, scratch).

    Args:
        fractions: label fractions (e.g. 0.05, 0.2, 1.0).
        results: model name -> one value per fraction.
        ylabel: y-axis label.
        ax: axes to draw into.

    Returns:
        The axes.
    """
    ax = _axes(ax, (5.0, 3.5))
    width = 0.8 / max(1, len(results))
    positions = np.arange(len(fractions))
    for offset, (name, values) in enumerate(results.items()):
        bars = ax.bar(positions + offset * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(positions + width * (len(results) - 1) / 2, [f"{100 * f:g} %" for f in fractions])
    ax.set_xlabel("share of training pairs")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Label efficiency")
    return ax


def plot_loss_curve(step_loss: Sequence[float], smoothing: int = 20, label: str = "train loss",
                    color: str = "tab:blue", ax: Any = None) -> Any:
    """Per-step loss with a moving average.

    Args:
        step_loss: loss of every step.
        smoothing: moving-average window in steps.
        label: legend label.
        color: line colour (to overlay several runs).
        ax: axes to draw into.

    Returns:
        The axes.
    """
    ax = _axes(ax, (5.0, 3.0))
    losses = np.asarray(step_loss, dtype=float)
    ax.plot(losses, alpha=0.3, color=color)
    window = max(1, min(smoothing, len(losses)))
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(window - 1, len(losses)), smooth, color=color, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("contrastive loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
