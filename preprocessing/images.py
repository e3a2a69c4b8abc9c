"""Bringing arbitrary images to the data set's shape: decode, channels, resize, centre crop.

Pure functions on uint8 arrays ``[H, W, C]`` (C = 1 or 3), so the Beam workers, the plain-loop
benchmark and the tests share exactly one definition of what "64×64 RGB" means.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

# Pillow modes of grey levels; every other mode carries colour (converted to RGB).
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# Wider than 8 bits: 16-bit PNG/TIFF grey (and 32-bit ones holding 16-bit values).
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
WHITE = (255, 255, 255)


class BadImage(ValueError):
    """An input that does not decode to an image; the message says why."""


def decode(data: bytes, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """PNG/JPEG/… bytes → uint8 ``[H, W, 1 or 3]`` as a person sees the image: EXIF orientation
    applied, transparency (alpha, LA, a palette's or a colour key) composited over
    ``background``, 16-bit levels scaled to 8; raises BadImage."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow's notes on odd but readable files (palette transparency as bytes, large
            # images): what decodes is used as decoded, and the terminal stays the user's.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                pixels = _as_seen(ImageOps.exif_transpose(image), background)
    except UnidentifiedImageError as e:
        raise BadImage("does not decode (not an image format Pillow reads)") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImage(f"does not decode ({type(e).__name__}: {str(e)[:80]})") from e
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if min(pixels.shape[:2]) < 1:
        raise BadImage("has no pixels")
    return pixels


def _as_seen(image, background: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image

    grey = image.mode in _GREY_MODES
    if image.mode in _WIDE_MODES:
        return np.clip(np.rint(np.asarray(image, np.float64) / 257.0), 0, 255).astype(np.uint8)
    if image.mode == "F":
        return np.clip(np.rint(np.asarray(image, np.float64)), 0, 255).astype(np.uint8)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        layer = image.convert("RGBA")
        canvas = Image.new("RGBA", layer.size, (*background, 255))
        image = Image.alpha_composite(canvas, layer).convert("RGB")
    return np.asarray(image.convert("L" if grey else "RGB"), np.uint8)


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


def parse_colour(text: str) -> tuple[int, int, int]:
    """``white``, ``#202020``, ``rgb(0,128,0)`` → an RGB triple; raises ValueError."""
    from PIL import ImageColor

    return ImageColor.getrgb(text)[:3]


def colour_name(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
