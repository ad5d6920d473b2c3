"""ecmm.validation: text, k, ids, carts and images are cleaned or refused with a message that
says the limit; the table of limits is the one both the command and the server use."""

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

from ecmm.app import LIMITS, Limits
from ecmm.validation import (InputError, check_base64_image, check_image_bytes, check_image_file, check_k,
                             check_message, check_query, check_sku_ids, check_user_id, image_format_names)


def encoded(format="PNG", size=(6, 4), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize("raw, clean", [
    ("  red bag \n", "red bag"),
    ("cafe\u0301", "caf\u00e9"),  # NFC: e + combining accent -> one character
    ("red bag".encode(), "red bag"),
])
def test_text_is_normalised_and_stripped(raw, clean):
    assert check_query(raw) == clean


@pytest.mark.parametrize("raw, words", [
    (os.fsdecode(b"red \xff bag"), "byte 0xff at character 4"),
    ("where \ud800 order", r"unpaired surrogate U\+D800"),
    (b"red \xff bag", "not valid UTF-8"),
    ("   ", "empty"), (None, "empty"), (3, "must be text"),
    ("x" * 201, "has 201 characters; use at most 200"),
])
def test_bad_text_is_refused_with_a_message(raw, words):
    with pytest.raises(InputError, match=words) as raised:
        check_query(raw)
    assert raised.value.status == 400


def test_limits_are_inclusive():
    assert len(check_query("x" * LIMITS.query_characters)) == LIMITS.query_characters
    assert len(check_message("x" * LIMITS.message_characters)) == LIMITS.message_characters
    assert check_k(LIMITS.search_k, LIMITS.search_k) == LIMITS.search_k
    with pytest.raises(InputError, match=f"at most {LIMITS.message_characters}"):
        check_message("x" * (LIMITS.message_characters + 1))


@pytest.mark.parametrize("k, words", [(0, "between 1 and 100; got 0"), (101, "got 101"), ("ten", "whole number"),
                                      (True, "whole number"), (2.5, "whole number")])
def test_k_out_of_range_is_422(k, words):
    with pytest.raises(InputError, match=words) as raised:
        check_k(k, 100)
    assert raised.value.status == 422


def test_ids_and_carts():
    assert check_user_id("  u00042\t") == "u00042"
    assert check_sku_ids(" A1 , ,B2,") == ["A1", "B2"] == check_sku_ids(["A1", " ", "B2"])
    with pytest.raises(InputError, match="cart is empty"):
        check_sku_ids(" , ")
    with pytest.raises(InputError, match=f"use at most {LIMITS.cart_items}"):
        check_sku_ids(",".join(f"S{i}" for i in range(LIMITS.cart_items + 1)))
    with pytest.raises(InputError, match="user id is empty"):
        check_user_id("")


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP"])
def test_allowed_formats_decode_to_rgb(format):
    pixels = check_image_bytes(encoded(format))
    assert pixels.shape == (4, 6, 3) and pixels.dtype == np.uint8


def test_greyscale_and_palette_images_become_rgb():
    assert check_image_bytes(encoded(mode="L")).shape == (4, 6, 3)
    assert check_image_bytes(encoded(mode="P")).shape == (4, 6, 3)


@pytest.mark.parametrize("format", ["GIF", "BMP", "TIFF", "ICO", "PPM", "TGA"])
def test_other_formats_are_415(format):
    with pytest.raises(InputError, match="PNG, JPEG or WebP") as raised:
        check_image_bytes(encoded(format, mode="RGB"))
    assert raised.value.status == 415


def test_declared_size_is_checked_before_decoding(monkeypatch):
    from test_serving import bomb_png

    decoded = []
    monkeypatch.setattr(Image.Image, "convert", lambda self, *args: decoded.append(self.size))
    for width, height in [(30_000, 30_000), (5_000, 10), (4_096, 4_097), (10_000, 10_000)]:
        with pytest.raises(InputError, match="at most 4096x4096"):
            check_image_bytes(bomb_png(width, height))
    assert decoded == []  # refused from the header alone
    small = Limits(image_pixels=100, image_side=50)
    with pytest.raises(InputError, match="11x10 pixels"):
        check_image_bytes(bomb_png(11, 10), small)


def test_size_and_emptiness():
    with pytest.raises(InputError, match="empty"):
        check_image_bytes(b"")
    with pytest.raises(InputError) as raised:
        check_image_bytes(b"x" * (LIMITS.image_bytes + 1))
    assert raised.value.status == 413


def test_files_and_base64_are_checked_like_uploads(tmp_path):
    path = tmp_path / "photo.webp"
    path.write_bytes(encoded("WEBP"))
    assert check_image_file(path).shape == (4, 6, 3)
    assert check_base64_image(base64.b64encode(encoded()).decode()).shape == (4, 6, 3)
    with pytest.raises(InputError, match="no such image file"):
        check_image_file(tmp_path / "nope.png")
    with pytest.raises(InputError, match="base64"):
        check_base64_image("%%%")
    with pytest.raises(InputError, match="base64 string"):
        check_base64_image(42)


def test_format_names_follow_the_table():
    assert image_format_names() == "PNG, JPEG or WebP"
    assert image_format_names(Limits(image_formats=("PNG",))) == "PNG"
