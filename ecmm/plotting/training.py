"""Plots for training and classification: data in, ``ax=None``, the axes out.

No function here computes a metric or changes global matplotlib settings.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np


def _axes(ax: Any, figsize: tuple[float, float] = (5.0, 3.5)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_training_curves(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] = ("train_loss", "val_loss"),
    ax: Any = None,
    label_prefix: str = "",
) -> Any:
    """Plot per-epoch curves from a :func:`ecmm.train.fit` history.

    Args:
        history: dict with an ``epoch`` list and the lists named in ``keys``.
        keys: which curves to draw; missing keys are skipped.
        ax: matplotlib axes; None creates a figure.
        label_prefix: prepended to each legend label (to overlay several runs).

    Returns:
        The axes.
    """
    ax = _axes(ax)
    for key in keys:
        if key in history and len(history[key]):
            values = list(history[key])
            epochs = list(history.get("epoch", range(1, len(values) + 1)))[: len(values)]
            ax.plot(epochs, values, marker="o", markersize=3, label=f"{label_prefix}{key}")
    ax.set_xlabel("epoch")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_label_efficiency(
    results: Any, ax: Any = None, x: str = "shots", y: str = "accuracy", hue: str = "method"
) -> Any:
    """Accuracy against labelled examples per class, one line per method, error bars over seeds.

    Args:
        results: a DataFrame (or dict of columns) with one row per (method, shots, seed) run.
        ax: matplotlib axes; None creates a figure.
        x, y, hue: column names for the x axis, the score and the method.

    Returns:
        The axes (x axis on a log scale; the ``all`` level may be any number).
    """
    import pandas as pd

    frame = pd.DataFrame(results)
    if frame.empty:
        raise ValueError("No results to plot: pass at least one (method, shots, accuracy) row.")
    ax = _axes(ax)
    for method, group in frame.groupby(hue, sort=False):
        summary = group.groupby(x)[y].agg(["mean", "std"]).sort_index()
        ax.errorbar(summary.index, summary["mean"], yerr=summary["std"].fillna(0.0), marker="o",
                    capsize=3, label=str(method))
    ax.set_xscale("log")
    levels = sorted(frame[x].unique())
    ax.set_xticks(levels)
    ax.set_xticklabels([str(level) for level in levels])
    ax.set_xlabel("labelled photos per class")
    ax.set_ylabel(y)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str] | None = None, ax: Any = None,
    normalize: bool = True,
) -> Any:
    """Show a confusion matrix (rows = true class, columns = predicted class).

    Args:
        matrix: (K, K) counts.
        class_names: K tick labels; None shows indices.
        ax: matplotlib axes; None creates a figure.
        normalize: divide each row by its total (recall per class).

    Returns:
        The axes.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got {matrix.shape}.")
    if normalize:
        matrix = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    ax = _axes(ax, (5.5, 5.0))
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if class_names is not None:
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks)
        ax.set_xticklabels(class_names, rotation=90, fontsize="x-small")
        ax.set_yticks(ticks)
        ax.set_yticklabels(class_names, fontsize="x-small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return ax


def plot_decision_regions(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    points: np.ndarray,
    labels: np.ndarray,
    ax: Any = None,
    class_names: Sequence[str] | None = None,
    resolution: int = 200,
) -> Any:
    """Colour the plane by the class a 2-D classifier predicts, with the points on top.

    Args:
        predict_fn: maps an (M, 2) array of points to (M,) predicted class ids.
        points: (N, 2) features.
        labels: (N,) true class ids.
        ax: matplotlib axes; None creates a figure.
        class_names: legend names per class id.
        resolution: grid points per axis.

    Returns:
        The axes.
    """
    import matplotlib

    points, labels = np.asarray(points, dtype=float), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {points.shape}: project features to 2-D.")
    ax = _axes(ax)
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.1 * (high - low + 1e-9)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    regions = np.asarray(predict_fn(grid)).reshape(grid_x.shape)
    num_classes = int(max(regions.max(), labels.max())) + 1
    cmap = "tab10" if num_classes <= 10 else "tab20"
    ax.contourf(grid_x, grid_y, regions, levels=np.arange(num_classes + 1) - 0.5, cmap=cmap,
                alpha=0.25, vmin=-0.5, vmax=(9.5 if num_classes <= 10 else 19.5))
    for k in np.unique(labels):
        name = class_names[k] if class_names is not None else str(k)
        color = matplotlib.colormaps[cmap](int(k))
        ax.scatter(*points[labels == k].T, s=14, color=color, edgecolor="black", linewidth=0.3,
                   label=name)
    ax.legend(fontsize="x-small")
    return ax


def plot_temperature(
    probabilities: Mapping[float, np.ndarray], class_names: Sequence[str] | None = None,
    ax: Any = None,
) -> Any:
    """Grouped bars: one softmax distribution per temperature.

    Args:
        probabilities: temperature -> (K,) probabilities (each sums to 1).
        class_names: K bar labels; None shows indices.
        ax: matplotlib axes; None creates a figure.

    Returns:
        The axes.
    """
    if not probabilities:
        raise ValueError("Pass at least one temperature -> probabilities entry.")
    ax = _axes(ax)
    temperatures = list(probabilities)
    num_classes = len(np.asarray(probabilities[temperatures[0]]))
    width = 0.8 / len(temperatures)
    positions = np.arange(num_classes)
    for i, temperature in enumerate(temperatures):
        ax.bar(positions + (i - (len(temperatures) - 1) / 2) * width,
               np.asarray(probabilities[temperature]), width=width, label=f"T = {temperature:g}")
    ax.set_xticks(positions)
    ax.set_xticklabels(class_names if class_names is not None else [str(k) for k in positions],
                       rotation=30, ha="right", fontsize="small")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    return ax


def plot_image_grid(
    images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 6, ax: Any = None,
    title_colors: Sequence[str] | None = None,
) -> Any:
    """Tile uint8 images (N, H, W, 3) into one picture with a caption under each tile.

    Args:
        images: (N, H, W, 3) uint8 images of one size.
        titles: N captions (e.g. "true → predicted").
        ncols: tiles per row.
        ax: matplotlib axes; None creates a figure sized to the grid.
        title_colors: N caption colours (e.g. red for errors).

    Returns:
        The axes.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, 3) array, got {images.shape}.")
    count, height, width, _ = images.shape
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    pad, caption = 4, (14 if titles is not None else 0)
    canvas = np.full((nrows * (height + pad + caption), ncols * (width + pad), 3), 255, np.uint8)
    ax = _axes(ax, (1.6 * ncols, 1.8 * nrows))
    for i, image in enumerate(images):
        row, col = divmod(i, ncols)
        top, left = row * (height + pad + caption), col * (width + pad)
        canvas[top:top + height, left:left + width] = image
    ax.imshow(canvas)
    if titles is not None:
        for i, title in enumerate(titles):
            row, col = divmod(i, ncols)
            ax.text(col * (width + pad) + width / 2, row * (height + pad + caption) + height + 2,
                    title, ha="center", va="top", fontsize="x-small",
                    color=title_colors[i] if title_colors is not None else "black")
    ax.set_axis_off()
    return ax
