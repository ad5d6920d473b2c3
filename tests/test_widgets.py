"""The three widget demos: setting a control's value calls the observer, which redraws the figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

from ecmm import widgets  # noqa: E402


def test_softmax_with_temperature_sharpens_and_flattens():
    logits = [2.0, 1.0, 0.0]
    assert widgets.softmax_with_temperature(logits, 1.0) == pytest.approx(np.exp(logits) / np.exp(logits).sum())
    assert widgets.softmax_with_temperature(logits, 0.05)[0] > 0.999
    assert widgets.softmax_with_temperature(logits, 1000.0) == pytest.approx(np.full(3, 1 / 3), abs=1e-3)


def test_temperature_slider_redraws_the_bars():
    demo = widgets.temperature_demo([2.0, 1.0, 0.0], ["a", "b", "c"], temperature=1.0)
    ax = demo.figure.axes[0]
    heights = lambda: np.array([bar.get_height() for bar in ax.patches])  # noqa: E731
    assert heights() == pytest.approx(widgets.softmax_with_temperature([2, 1, 0], 1.0))
    slider = demo.widget.children[0]
    slider.value = 4.0  # the observer runs as in JupyterLab
    assert heights() == pytest.approx(widgets.softmax_with_temperature([2, 1, 0], 4.0), rel=1e-2)
    assert "T = 4.00" in ax.get_title() or "T = 3.9" in ax.get_title()
    plt.close(demo.figure)


def test_wise_ft_slider_moves_the_marker_and_reads_the_curves():
    alphas = [0.0, 0.5, 1.0]
    demo = widgets.wise_ft_demo(alphas, {"shop": [0.2, 0.6, 0.8], "source": [0.9, 0.8, 0.5]}, alpha=0.5)
    ax = demo.figure.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in ("shop", "source")]
    assert [list(line.get_ydata()) for line in lines] == [[0.2, 0.6, 0.8], [0.9, 0.8, 0.5]]
    demo.widget.children[0].value = 0.25
    marker = [line for line in ax.get_lines() if line not in lines][0]
    assert list(marker.get_xdata()) == [0.25, 0.25]
    assert "shop 0.400" in ax.get_title() and "source 0.850" in ax.get_title()
    plt.close(demo.figure)


class FakeSearch:
    def search_text(self, query, k=10):
        colour = 0 if "red" in query else 2
        return pd.DataFrame({"sku_id": [f"{colour}-{i}" for i in range(k)], "title": [f"{query} {i}" for i in range(k)]})


def photo_of(sku_id):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[..., int(sku_id.split("-")[0])] = 255
    return image


def test_search_box_shows_the_result_photos():
    demo = widgets.search_demo(FakeSearch(), photo_of, query="red bag", k=3)
    shown = lambda: [ax.images[0].get_array() for ax in demo.figure.axes if ax.images]  # noqa: E731
    assert len(shown()) == 3 and all(image[0, 0, 0] == 255 for image in shown())
    demo.widget.children[0].value = "blue bag"
    assert len(shown()) == 3 and all(image[0, 0, 2] == 255 and image[0, 0, 0] == 0 for image in shown())
    assert [ax.get_title() for ax in demo.figure.axes][:1] == ["blue bag 0"]
    demo.update("   ")  # an empty query shows nothing
    assert shown() == [] and "0 results" in demo.figure._suptitle.get_text()
    plt.close(demo.figure)
