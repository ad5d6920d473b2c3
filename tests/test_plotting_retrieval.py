"""Smoke tests for ecmm.plotting.retrieval: each function draws and returns its axes."""

import matplotlib
import numpy as np
import pytest

from ecmm.plotting.retrieval import (
    plot_label_efficiency_bars,
    plot_loss_curve,
    plot_search_results,
    plot_similarity_matrix,
    plot_wise_ft_curve,
)


def test_plots_return_axes_with_content():
    ax = plot_similarity_matrix(np.eye(2), ["a", "b"], ["x", "y"])
    assert len(ax.texts) == 4
    ax = plot_wise_ft_curve([0, 0.5, 1], {"R@10": [0.2, 0.6, 0.7]})
    assert len(ax.lines) == 1
    ax = plot_label_efficiency_bars([0.05, 1.0], {"pretrained": [0.5, 0.9], "scratch": [0.1, 0.3]})
    assert len(ax.patches) == 4
    ax = plot_loss_curve(np.linspace(3, 1, 50), color="tab:orange")
    assert len(ax.lines) == 2
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    axes = plot_search_results("query", images, ["a", "b", "c"], [True, False, False], query_image=images[0])
    assert len(axes) == 4 and isinstance(axes[0], matplotlib.axes.Axes)


def test_label_mismatch_raises():
    with pytest.raises(ValueError, match="labels"):
        plot_similarity_matrix(np.eye(2), ["a"], ["x", "y"])
