"""Bringing arbitrary images to the data set's shape: decode, channels, resize, centre crop.

Pure functions on uint8 arrays ``[H, W, C]`` (C = 1 or 3), so the Beam workers, the plain-loop
benchmark and the tests share exactly one definition of what "64×64 RGB" means.
"""

from __future__ import annotations

import io

import numpy as np

# Pillow modes that carry colour (converted to RGB; alpha is dropped) vs grey levels.
_COLOUR_MODES = {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"}


class BadImage(ValueError):
    """An input that does not decode to an image; the message says why."""


def decode(data: bytes) -> np.ndarray:
    """PNG/JPEG/… bytes → uint8 ``[H, W, 1 or 3]``; raises BadImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = "RGB" if image.mode in _COLOUR_MODES else "L"
            pixels = np.asarray(image.convert(mode), np.uint8)
    except UnidentifiedImageError as e:
        raise BadImage("does not decode (not an image format Pillow reads)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"does not decode ({type(e).__name__}: {str(e)[:80]})") from e
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if min(pixels.shape[:2]) < 1:
        raise BadImage("has no pixels")
    return pixels


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Grey → RGB by repetition; RGB → grey by ITU-R 601 luma (Pillow's ``convert('L')``)."""
    have = pixels.shape[2]
    if have == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=2)
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).convert("L"), np.uint8)[:, :, None]


def resize_and_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """Scale the shorter side to ``size`` (antialiased bicubic), then crop the centre square."""
    from PIL import Image

    height, width = pixels.shape[:2]
    if (height, width) == (size, size):
        return pixels
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        resized = np.asarray(image.resize((new_w, new_h), Image.Resampling.BICUBIC), np.uint8)
        pixels = resized.reshape(new_h, new_w, pixels.shape[2])
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return pixels[top : top + size, left : left + size]


def fit(pixels: np.ndarray, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    """``pixels`` in the data set's ``shape``; without ``resize`` a different size is bad input."""
    height, width, channels = shape
    pixels = to_channels(pixels, channels)
    if pixels.shape[:2] == (height, width):
        return pixels
    if not resize:
        raise BadImage(
            f"is {pixels.shape[0]}x{pixels.shape[1]}, the data set's images are "
            f"{height}x{width} (pass --image_size to resize)"
        )
    return resize_and_crop(pixels, height)
