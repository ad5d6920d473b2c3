"""Plot functions: data in, ax out, nothing global changed."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ecmm.plotting.training import (  # noqa: E402
    plot_confusion_matrix, plot_decision_regions, plot_image_grid, plot_label_efficiency,
    plot_temperature, plot_training_curves,
)


@pytest.fixture
def ax():
    before = dict(matplotlib.rcParams)
    figure, axes = plt.subplots()
    yield axes
    plt.close(figure)
    assert dict(matplotlib.rcParams) == before


def test_training_curves(ax):
    history = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}
    assert plot_training_curves(history, ax=ax) is ax
    assert len(ax.get_lines()) == 2


def test_label_efficiency(ax):
    frame = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 4, "shots": [1, 1, 5, 5] * 2,
                          "accuracy": [0.1, 0.2, 0.5, 0.6, 0.3, 0.4, 0.7, 0.8], "seed": [0, 1] * 4})
    assert plot_label_efficiency(frame, ax=ax) is ax
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a", "b"]
    with pytest.raises(ValueError):
        plot_label_efficiency(pd.DataFrame(columns=["method", "shots", "accuracy"]), ax=ax)


def test_confusion_matrix_normalised(ax):
    assert plot_confusion_matrix(np.array([[2, 2], [0, 3]]), ["x", "y"], ax=ax) is ax
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError):
        plot_confusion_matrix(np.zeros((2, 3)), ax=ax)


def test_decision_regions(ax):
    points = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    labels = np.array([0, 1, 2])
    out = plot_decision_regions(lambda grid: (grid[:, 0] > 0.5).astype(int), points, labels,
                                ax=ax, resolution=20)
    assert out is ax and len(ax.collections) >= 3
    with pytest.raises(ValueError, match="2-D"):
        plot_decision_regions(lambda g: g, np.zeros((3, 3)), labels, ax=ax)


def test_temperature_and_image_grid(ax):
    probabilities = {0.5: np.array([0.9, 0.1]), 2.0: np.array([0.6, 0.4])}
    assert plot_temperature(probabilities, ["a", "b"], ax=ax) is ax
    assert len(ax.patches) == 4
    figure, other = plt.subplots()
    images = np.zeros((5, 8, 8, 3), np.uint8)
    assert plot_image_grid(images, titles=list("abcde"), ncols=3, ax=other) is other
    assert len(other.texts) == 5
    plt.close(figure)
    with pytest.raises(ValueError):
        plot_image_grid(np.zeros((8, 8, 3)), ax=ax)
