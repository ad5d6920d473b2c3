"""One input-validation layer for the ``ecmm`` command and the web server.

Every function takes what a person typed or uploaded, returns it cleaned, or raises
:class:`InputError` (a ``ValueError``) whose message says what is wrong and what to send
instead, with the limit from :data:`ecmm.app.LIMITS`. The command prints the message and exits
with status 2; the server answers ``InputError.status`` with the message as JSON ``detail``. So
the same input gets the same answer from both.

- text: valid UTF-8 (no unpaired surrogates, no undecodable bytes), NFC-normalised, stripped,
  at most N characters;
- images: at most N bytes, a PNG, JPEG or WebP file, its declared size read from the header
  before any pixel is decoded (sides and pixel count capped), decoded to uint8 ``(H, W, 3)``;
- k between 1 and the maximum; user and SKU ids stripped, bounded; carts of known length.
"""

from __future__ import annotations

import base64
import binascii
import io
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ecmm.app import LIMITS, Limits

__all__ = ["InputError", "check_text", "check_query", "check_message", "check_k", "check_user_id",
           "check_sku_ids", "check_mode", "check_image_bytes", "check_image_file", "check_base64_image", "image_format_names"]


class InputError(ValueError):
    """Input a person can fix; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _undecodable(text: str) -> str | None:
    """Why ``text`` is not valid UTF-8 text, or None when it is."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    for position, character in enumerate(text):
        if "\udc80" <= character <= "\udcff":  # a byte the OS could not decode (surrogateescape)
            return f"byte 0x{ord(character) - 0xDC00:02x} at character {position}"
        if "\ud800" <= character <= "\udfff":
            return f"an unpaired surrogate U+{ord(character):04X} at character {position}"
    return None


def check_text(text: Any, what: str, limit: int, example: str) -> str:
    """Clean a piece of text: valid UTF-8, NFC-normalised, stripped, at most ``limit`` characters.

    Args:
        text: a ``str`` (or UTF-8 ``bytes``); None counts as empty.
        what: what it is, for messages, e.g. ``"query"``.
        limit: largest number of characters after cleaning.
        example: what to type instead of an empty text, e.g. ``'"red backpack"'``.

    Returns:
        The cleaned text.
    """
    if text is None:
        text = ""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"the {what} is not valid UTF-8 (byte {error.start}); send UTF-8 text") from None
    if not isinstance(text, str):
        raise InputError(f"the {what} must be text, not {type(text).__name__}")
    problem = _undecodable(text)
    if problem is not None:
        raise InputError(f"the {what} is not valid UTF-8 text ({problem}); type it again as UTF-8")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise InputError(f"the {what} is empty: type {example}")
    if len(text) > limit:
        raise InputError(f"the {what} has {len(text)} characters; use at most {limit}")
    return text


def check_query(text: Any, limits: Limits = LIMITS) -> str:
    """A search query (at most ``limits.query_characters`` characters)."""
    return check_text(text, "query", limits.query_characters, 'what you are looking for, e.g. "red backpack"')


def check_message(text: Any, limits: Limits = LIMITS) -> str:
    """A customer-service message (at most ``limits.message_characters`` characters)."""
    return check_text(text, "message", limits.message_characters,
                      'what the customer asked, e.g. "where is my order?"')


def check_k(k: Any, maximum: int, name: str = "k") -> int:
    """A number of results between 1 and ``maximum`` (422 on the server)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        try:
            k = int(str(k).strip())
        except ValueError:
            raise InputError(f"{name} must be a whole number between 1 and {maximum}", status=422) from None
    if not 1 <= int(k) <= maximum:
        raise InputError(f"{name} must be between 1 and {maximum}; got {int(k)}", status=422)
    return int(k)


def check_user_id(user_id: Any, limits: Limits = LIMITS) -> str:
    """A user id, stripped (at most ``limits.user_id_characters`` characters)."""
    return check_text(user_id, "user id", limits.user_id_characters, "a user id such as u00042")


def check_sku_ids(sku_ids: Any, limits: Limits = LIMITS) -> list[str]:
    """A cart: comma-separated SKU ids (or a list), each stripped; empty entries dropped."""
    if isinstance(sku_ids, str):
        sku_ids = sku_ids.split(",")
    if not isinstance(sku_ids, Sequence) or isinstance(sku_ids, bytes):
        raise InputError("the cart must be comma-separated SKU ids")
    cleaned = [check_text(sku, "SKU id", limits.sku_id_characters, "a SKU id")
               for sku in sku_ids if not (isinstance(sku, str) and not sku.strip())]
    if not cleaned:
        raise InputError("the cart is empty: give comma-separated SKU ids")
    if len(cleaned) > limits.cart_items:
        raise InputError(f"the cart has {len(cleaned)} SKUs; use at most {limits.cart_items}")
    return cleaned


def check_mode(mode: Any) -> str | None:
    """A text-search mode of :data:`ecmm.search.SEARCH_MODES` (None = the search's default)."""
    if mode is None:
        return None
    from ecmm.search import SEARCH_MODES

    cleaned = str(mode).strip().lower()
    if cleaned not in SEARCH_MODES:
        raise InputError(f"mode must be one of {', '.join(SEARCH_MODES)}; got {str(mode)[:20]!r}", status=422)
    return cleaned


def image_format_names(limits: Limits = LIMITS) -> str:
    """The accepted formats for messages, e.g. ``"PNG, JPEG or WebP"``."""
    names = [{"WEBP": "WebP"}.get(name, name) for name in limits.image_formats]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_image_bytes(payload: bytes, limits: Limits = LIMITS) -> np.ndarray:
    """Decode an uploaded image after checking its size, format and declared dimensions.

    The header is read first (Pillow's ``Image.open`` decodes no pixels); sides and pixel count
    are checked before ``convert`` decodes anything, so a small file that claims a huge image
    (a decompression bomb) is refused without allocating it.

    Args:
        payload: the file's bytes.
        limits: the limits to enforce.

    Returns:
        uint8 ``(H, W, 3)`` RGB array.
    """
    from PIL import Image

    formats = image_format_names(limits)
    if not payload:
        raise InputError(f"the image is empty: attach a {formats} photo")
    if len(payload) > limits.image_bytes:
        raise InputError(f"the image has {len(payload)} bytes; send at most {limits.image_bytes}", status=413)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our caps are lower; checked below
        try:
            image = Image.open(io.BytesIO(payload), formats=limits.image_formats)
        except Image.DecompressionBombError:
            raise InputError(f"the image declares too many pixels; send at most {limits.image_side}x"
                             f"{limits.image_side}") from None
        except Exception:  # Pillow's parsers raise many types on hostile bytes; all mean "not one of ours"
            raise InputError(f"the file is not a readable {formats} image; send a photo in one of those formats",
                             status=415) from None
        with image:
            width, height = image.size
            if max(width, height) > limits.image_side or width * height > limits.image_pixels or min(width, height) < 1:
                raise InputError(f"the image is {width}x{height} pixels; send at most {limits.image_side}x"
                                 f"{limits.image_side} ({limits.image_pixels} pixels)")
            try:
                pixels = np.asarray(image.convert("RGB"))
            except Exception:  # truncated or corrupt pixel data (OSError, SyntaxError, ValueError, ...)
                raise InputError(f"the {image.format} image is damaged and cannot be decoded; send another photo") \
                    from None
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def check_image_file(path: str | Path, limits: Limits = LIMITS) -> np.ndarray:
    """Read and check an image file (the command's ``--image PATH``), like an upload."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such image file: {path.name!r}")
    size = path.stat().st_size
    if size > limits.image_bytes:
        raise InputError(f"the image has {size} bytes; send at most {limits.image_bytes}", status=413)
    try:
        with open(path, "rb") as handle:
            payload = handle.read(limits.image_bytes + 1)
    except OSError as error:
        raise InputError(f"cannot read image {path.name!r}: {error.strerror or error.__class__.__name__}") from None
    try:
        return check_image_bytes(payload, limits)
    except InputError as error:
        raise InputError(f"cannot read image {path.name!r}: {error}", error.status) from None


def check_base64_image(encoded: Any, limits: Limits = LIMITS) -> np.ndarray:
    """Decode a base64 image (the JSON ``image`` field of ``POST /support``), like an upload."""
    if not isinstance(encoded, str):
        raise InputError(f"image must be a base64 string of a {image_format_names(limits)} file")
    if len(encoded) > limits.image_bytes * 4 // 3 + 4:
        raise InputError(f"the image has more than {limits.image_bytes} bytes; send at most {limits.image_bytes}",
                         status=413)
    try:
        payload = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError, binascii.Error):
        raise InputError("image is not valid base64; encode the file's bytes with base64") from None
    return check_image_bytes(payload, limits)
