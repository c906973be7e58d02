"""Decode each candidate once: reject what is unusable, describe the rest, hash it for duplicates."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

# Perceptual hashes are taken from a small grayscale copy; JPEG's draft mode decodes at reduced scale.
HASH_DECODE_SIZE = (64, 64)


@dataclass
class Screened:
    file: str
    label: str
    sha256: str
    reason: str | None = None  # None when the image is usable
    width: int = 0
    height: int = 0
    original_mode: str = ""
    phash: int = 0


def screen_image(file: str, label: str, data: bytes, min_size: int) -> Screened:
    """Decode the bytes by content (a PNG named .jpg is fine) and return what is known about them."""
    result = Screened(file, label, hashlib.sha256(data).hexdigest())
    if not data:
        result.reason = "zero bytes"
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns on odd EXIF; the decode itself decides
            image = Image.open(io.BytesIO(data))
            result.width, result.height = image.size
            result.original_mode = image.mode
            image.draft("L", HASH_DECODE_SIZE)
            image.load()
    except UnidentifiedImageError:
        result.reason = "not an image"
        return result
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        result.reason = f"truncated or undecodable ({type(error).__name__})"
        return result
    if min(result.width, result.height) < min_size:
        result.reason = f"smaller than {min_size} px ({result.width}x{result.height})"
        return result
    # Grayscale, CMYK and palette images are converted, not dropped.
    result.phash = int(str(imagehash.phash(image.convert("L"))), 16)
    return result


def decode_rgb(data: bytes) -> Image.Image:
    """Full decode to RGB, for the cache of selected images."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = Image.open(io.BytesIO(data))
        image.load()
    return image.convert("RGB")


def hamming_matrix_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """All pairs (i, j, distance) with i < j whose 64-bit hashes differ in at most max_distance bits."""
    hashes = hashes.astype(np.uint64)
    pairs = []
    for i in range(len(hashes) - 1):
        distances = np.bitwise_count(hashes[i + 1 :] ^ hashes[i])
        for offset in np.flatnonzero(distances <= max_distance):
            pairs.append((i, i + 1 + int(offset), int(distances[offset])))
    return pairs
