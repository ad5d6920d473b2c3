"""Image grids: photos with captions, the figure people look at most in this kit."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def image_grid(images: Sequence[np.ndarray] | np.ndarray, captions: Sequence[str] | None = None,
               columns: int = 8, image_inches: float = 1.4, axes=None, fontsize: float = 7.0):
    """Show images in a grid with optional captions.

    Args:
        images: uint8 arrays (H, W, 3), or one array (N, H, W, 3); float (N, 3, H, W) in [0, 1]
            tensors are accepted too.
        captions: one caption per image (short).
        columns: images per row.
        image_inches: size of each cell in inches (only used when ``axes`` is None).
        axes: a flat sequence of at least N axes to draw into; None makes a new figure.
        fontsize: caption font size.

    Returns:
        numpy array of the axes used (rows × columns when created here).
    """
    pictures = [np.asarray(_to_uint8(image)) for image in images]
    if captions is not None and len(captions) != len(pictures):
        raise ValueError(f"Got {len(pictures)} images but {len(captions)} captions.")
    if axes is None:
        rows = max(1, int(np.ceil(len(pictures) / columns)))
        _, axes = plt.subplots(rows, columns, figsize=(columns * image_inches, rows * image_inches * 1.15),
                               squeeze=False)
    flat = np.asarray(axes).ravel()
    for index, ax in enumerate(flat):
        ax.axis("off")
        if index < len(pictures):
            ax.imshow(pictures[index])
            if captions is not None:
                ax.set_title(captions[index], fontsize=fontsize)
    return np.asarray(axes)


def _to_uint8(image) -> np.ndarray:
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    return array
