"""Pixels as a person sees them (preprocessing/images.py), on files made here byte by byte."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from preprocessing import images


def encoded(image: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def test_a_transparent_pixel_shows_the_background_not_its_bled_colour():
    # An exporter's bleed: fully transparent pixels that still hold the edge colour (red).
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # transparent
    rgba[1, :, 3] = 128  # half
    data = encoded(Image.fromarray(rgba, "RGBA"))
    pixels = images.decode(data)
    assert pixels.shape == (2, 2, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[0, 1].tolist() == [255, 255, 255]  # the page, not the bleed
    assert pixels[1, 0].tolist() == [255, 127, 127]  # half red over white
    dark = images.decode(data, background=(0, 0, 0))
    assert dark[0, 1].tolist() == [0, 0, 0] and dark[1, 0].tolist() == [128, 0, 0]


def test_palette_transparency_is_composited_without_a_warning():
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)  # index 0 blue, 1 green
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    data = encoded(palette, transparency=b"\x00\xff")  # index 0 transparent, as bytes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = images.decode(data)
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [0, 255, 0]


def test_grey_with_alpha_stays_grey_over_the_background():
    la = np.array([[[10, 0], [10, 255]]], np.uint8)
    pixels = images.decode(encoded(Image.fromarray(la, "LA")))
    assert pixels.shape == (1, 2, 1) and pixels[0, :, 0].tolist() == [255, 10]


def test_exif_orientation_is_applied():
    # A phone photo stored sideways: 2 wide, 1 high, tagged "rotate 90° clockwise to view".
    stored = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.fromarray(stored), "PNG", exif=exif)
    pixels = images.decode(data)
    assert pixels.shape == (2, 1, 3)  # upright: 1 wide, 2 high
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[1, 0].tolist() == [0, 0, 255]


def test_16_bit_grey_levels_scale_to_8_bits():
    levels = np.array([[0, 257, 32896, 65535]], np.uint16)
    pixels = images.decode(encoded(Image.fromarray(levels, "I;16")))
    assert pixels.shape == (1, 4, 1) and pixels[0, :, 0].tolist() == [0, 1, 128, 255]


def test_cmyk_converts_to_rgb():
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # full magenta + yellow: red
    pixels = images.decode(encoded(cmyk, "JPEG", quality=100))
    assert pixels.shape == (1, 1, 3)
    red, green, blue = pixels[0, 0].tolist()
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(
    ("text", "rgb"),
    [("white", (255, 255, 255)), ("#202020", (32, 32, 32)), ("rgb(0,128,0)", (0, 128, 0))],
)
def test_background_colours_parse(text, rgb):
    assert images.parse_colour(text) == rgb
    assert images.parse_colour(images.colour_name(rgb)) == rgb


def test_a_bad_colour_is_an_error():
    with pytest.raises(ValueError):
        images.parse_colour("not-a-colour")
