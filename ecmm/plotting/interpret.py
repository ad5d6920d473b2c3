"""Plots for interpretability and trends: heat-map overlays, attribution bars, regret and
forgetting curves, label efficiency side by side. Data in, ``ax=None``, the axes out; nothing
here computes a metric or changes global matplotlib settings.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd


def _axes(ax: Any, figsize: tuple[float, float] = (5.0, 3.5)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_heatmap_overlay(image: np.ndarray, heat_map: Any, title: str = "", alpha: float = 0.5,
                         ax: Any = None) -> Any:
    """A photo with a heat map laid over it.

    Args:
        image: uint8 ``(H, W, 3)`` photo.
        heat_map: ``(h, w)`` non-negative map in [0, 1] (resized to the photo by imshow's extent).
        title: axes title.
        alpha: opacity of the heat map.
        ax: matplotlib axes; None creates a figure.

    Returns:
        The axes.
    """
    ax = _axes(ax, (2.5, 2.5))
    image = np.asarray(image)
    heat = heat_map.detach().cpu().numpy() if hasattr(heat_map, "detach") else np.asarray(heat_map)
    height, width = image.shape[:2]
    ax.imshow(image, extent=(0, width, height, 0))
    ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1, extent=(0, width, height, 0),
              interpolation="bilinear")
    ax.set_title(title, fontsize="small")
    ax.axis("off")
    return ax


def plot_word_attributions(attributions: pd.DataFrame, title: str = "", ax: Any = None) -> Any:
    """Horizontal bars, one per word in reading order (green pushes towards the class, red away).

    Args:
        attributions: DataFrame with ``word`` and ``attribution`` columns
            (:func:`ecmm.interpret.leave_one_out_attributions`).
        title: axes title (e.g. the predicted intent).
        ax: matplotlib axes; None creates a figure.

    Returns:
        The axes.
    """
    values = attributions["attribution"].to_numpy(dtype=float)
    ax = _axes(ax, (4.0, 0.3 * len(values) + 1.0))
    positions = np.arange(len(values))
    ax.barh(positions, values, color=np.where(values >= 0, "tab:green", "tab:red"))
    ax.set_yticks(positions)
    ax.set_yticklabels(attributions["word"].tolist(), fontsize="small")
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("probability drop when the word is removed")
    ax.set_title(title, fontsize="small")
    return ax


def plot_regret_curves(regret: pd.DataFrame, ax: Any = None, x: str = "round") -> Any:
    """Cumulative regret against rounds, one line per policy (every column but ``x``).

    Args:
        regret: DataFrame from :func:`ecmm.recsys.bandits.run_bandits`.
        ax: matplotlib axes; None creates a figure.
        x: the column holding the round number.

    Returns:
        The axes.
    """
    ax = _axes(ax)
    for column in regret.columns:
        if column != x:
            ax.plot(regret[x], regret[column], label=column)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative regret")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_forgetting_curves(results: pd.DataFrame, axes: Sequence[Any] | None = None) -> Any:
    """Recall of each wave after each training wave, one panel per strategy.

    Args:
        results: long DataFrame ``strategy, after_wave, wave, recall``
            (:func:`ecmm.trends.incremental_finetune`).
        axes: one axes per strategy; None creates a row of panels.

    Returns:
        numpy array of the axes.
    """
    strategies = list(dict.fromkeys(results["strategy"]))
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(strategies), figsize=(3.6 * len(strategies), 3.2), sharey=True,
                               squeeze=False)
    axes = np.asarray(axes).ravel()
    for ax, strategy in zip(axes, strategies):
        frame = results[results["strategy"] == strategy]
        for wave, rows in frame.groupby("wave"):
            rows = rows[rows["after_wave"] >= wave].sort_values("after_wave")  # from its arrival on
            ax.plot(rows["after_wave"], rows["recall"], marker="o", label=f"wave {wave} products")
        ax.set_title(strategy, fontsize="small")
        ax.set_xlabel("after training wave")
        ax.set_xticks(sorted(frame["after_wave"].unique()))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Recall@10 (held-out colours)")
    axes[0].legend(fontsize="x-small")
    return axes


def plot_label_efficiency_panels(results: pd.DataFrame, axes: Sequence[Any] | None = None) -> Any:
    """Label efficiency of several tasks side by side: one panel per ``task``, one line per ``method``.

    Args:
        results: DataFrame with ``task, method, labels, score`` (``labels`` = labelled examples
            per class or share of labels; ``score`` = the task's metric) and optional ``metric``.
        axes: one axes per task; None creates a row of panels.

    Returns:
        numpy array of the axes.
    """
    tasks = list(dict.fromkeys(results["task"]))
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(tasks), figsize=(3.8 * len(tasks), 3.2), squeeze=False)
    axes = np.asarray(axes).ravel()
    for ax, task in zip(axes, tasks):
        frame = results[results["task"] == task]
        for method, rows in frame.groupby("method", sort=False):
            rows = rows.groupby("labels", as_index=False)["score"].mean().sort_values("labels")
            ax.plot(rows["labels"].astype(str), rows["score"], marker="o", label=method)
        ax.set_title(task, fontsize="small")
        ax.set_xlabel("labels per class (or share)")
        metric = frame["metric"].iloc[0] if "metric" in frame else "score"
        ax.set_ylabel(metric)
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    return axes
