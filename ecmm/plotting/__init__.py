"""Plot functions: data in, ``ax=None`` (a new figure when None), the axes out.

Plotting never computes metrics and never changes global matplotlib settings.
"""

from ecmm.plotting.data import split_matrix
from ecmm.plotting.images import image_grid
from ecmm.plotting.service import plot_confidence_histograms, plot_reliability_diagram, plot_ticket

__all__: list[str] = ["image_grid", "split_matrix"]
