"""Three ipywidgets demos for JupyterLab, each with a static figure for the book.

Every function draws its figure for the default value with matplotlib (what the book shows, where
no widget frontend runs) and returns a :class:`Demo`: the widget (a control above the figure) and
``update(value)``, the observer the control calls, which redraws the same axes. Tests call
``update`` or set the control's value and read the axes' artists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["Demo", "softmax_with_temperature", "temperature_demo", "wise_ft_demo", "search_demo"]


@dataclass(frozen=True)
class Demo:
    """A widget, the figure it redraws, and the observer that redraws it."""

    widget: Any  # ipywidgets.VBox: the control and an Output holding the figure
    figure: Any  # matplotlib Figure, drawn for the default value
    update: Callable[[Any], None]  # redraws the figure for a new value


def softmax_with_temperature(logits: Sequence[float], temperature: float) -> np.ndarray:
    """``softmax(z / T)``. Shapes: logits (C,) -> (C,) probabilities."""
    z = np.asarray(logits, dtype=float) / float(temperature)
    z = np.exp(z - z.max())
    return z / z.sum()


def _wrap(control: Any, figure: Any, update: Callable[[Any], None]) -> Demo:
    """Put ``control`` above an Output showing ``figure``; redraw on every change of its value."""
    import ipywidgets
    from IPython.display import display

    output = ipywidgets.Output()

    def observe(change: dict) -> None:
        update(change["new"])
        with output:
            output.clear_output(wait=True)
            display(figure)

    control.observe(observe, names="value")
    return Demo(widget=ipywidgets.VBox([control, output]), figure=figure, update=update)


def temperature_demo(logits: Sequence[float], labels: Sequence[str], temperature: float = 1.0,
                     temperatures: tuple[float, float] = (0.05, 5.0)) -> Demo:
    """A temperature slider over ``softmax(logits / T)``, drawn as one bar per class.

    Args:
        logits: (C,) scores of one example.
        labels: C class names.
        temperature: the default T, drawn for the static figure.
        temperatures: the slider's (min, max).
    """
    import ipywidgets

    figure, ax = plt.subplots(figsize=(6, 3))
    bars = ax.bar(list(labels), softmax_with_temperature(logits, temperature), color="tab:blue")
    ax.set(ylim=(0, 1), ylabel="probability")
    ax.tick_params(axis="x", labelrotation=30)

    def update(value: float) -> None:
        for bar, height in zip(bars, softmax_with_temperature(logits, value)):
            bar.set_height(height)
        ax.set_title(f"softmax(z / T), T = {value:.2f}")

    update(temperature)
    figure.tight_layout()
    slider = ipywidgets.FloatLogSlider(value=temperature, base=10, min=np.log10(temperatures[0]),
                                       max=np.log10(temperatures[1]), step=0.02, description="T")
    return _wrap(slider, figure, update)


def wise_ft_demo(alphas: Sequence[float], curves: dict[str, Sequence[float]], alpha: float = 0.5) -> Demo:
    """An α slider over precomputed WiSE-FT curves (e.g. shop recall and source recall against α).

    Args:
        alphas: (A,) interpolation weights, 0 = the model before fine-tuning, 1 = fine-tuned.
        curves: name -> (A,) metric at each α.
        alpha: the default α, marked on the static figure.
    """
    import ipywidgets

    alphas = np.asarray(alphas, dtype=float)
    figure, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in curves.items():
        ax.plot(alphas, values, marker="o", label=name)
    marker = ax.axvline(alpha, color="grey", linestyle="--")
    ax.set(xlabel="α (0 = before, 1 = fine-tuned)", ylabel="metric")
    ax.legend(loc="best", fontsize="small")

    def update(value: float) -> None:
        marker.set_xdata([value, value])
        readings = ", ".join(f"{name} {np.interp(value, alphas, values):.3f}" for name, values in curves.items())
        ax.set_title(f"α = {value:.2f}: {readings}", fontsize="small")

    update(alpha)
    figure.tight_layout()
    slider = ipywidgets.FloatSlider(value=alpha, min=float(alphas.min()), max=float(alphas.max()),
                                    step=0.05, description="α")
    return _wrap(slider, figure, update)


def search_demo(search: Any, photo: Callable[[str], np.ndarray], query: str = "red backpack", k: int = 6) -> Demo:
    """A search box that shows the photos of the top-k results.

    Args:
        search: anything with ``search_text(query, k) -> DataFrame`` with ``sku_id`` and ``title``
            (a ``CatalogSearch``).
        photo: sku_id -> (H, W, 3) uint8 photo.
        query: the default query, drawn for the static figure.
        k: how many results to show.
    """
    import ipywidgets

    figure, axes = plt.subplots(1, k, figsize=(1.8 * k, 2.3))
    axes = np.atleast_1d(axes)

    def update(value: str) -> None:
        results = search.search_text(value, k=k) if value.strip() else None
        rows = [] if results is None else list(results.itertuples())
        for ax in axes:
            ax.clear()
            ax.axis("off")
        for ax, row in zip(axes, rows):
            ax.imshow(photo(row.sku_id))
            ax.set_title(str(row.title)[:22], fontsize=7)
        figure.suptitle(f'"{value}": {len(rows)} results', fontsize="small")

    update(query)
    box = ipywidgets.Text(value=query, description="query", continuous_update=False)
    return _wrap(box, figure, update)
