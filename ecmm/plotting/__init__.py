"""Plot functions: data in, ``ax=None`` (a new figure when None), the axes out.

Plotting never computes metrics and never changes global matplotlib settings.
"""

from ecmm.plotting.images import image_grid

__all__: list[str] = ["image_grid"]
