"""Decode each candidate once: reject what is unusable, describe the rest, hash it for duplicates.

Decoding goes by content, never by the file name: a PNG or GIF named .jpg is read as what it is.
Only raster formats a photo set can hold are opened (JPEG/MPO, PNG, GIF, BMP, WebP, TIFF); anything
else is "not an image". Every failure of a decoder -- truncated data, broken headers, odd EXIF,
decompression bombs -- becomes a rejection reason, never an exception out of :func:`screen_image`.

Reasons (the ``reason`` column of rejected.csv; ``detail`` says more):

- ``zero bytes``                 the file is empty
- ``not an image``               no supported image format recognised in the content
- ``truncated or undecodable``   the format is recognised but the pixels cannot be decoded in full
- ``too large``                  more pixels than Pillow's decompression-bomb limit (MAX_PIXELS), or, for a
                                 format other than JPEG, than MAX_FULL_DECODE_PIXELS
- ``smaller than minimum size``  either side under the configured ``min_size``
- ``unreadable``                 the archive member itself cannot be read (bad CRC, encrypted)
- ``file too large``             the member declares more bytes than any photo has (sources.MAX_MEMBER_BYTES)
- ``implausible compression ratio``  the member would inflate like a zip bomb (sources.MAX_COMPRESSION_RATIO)

The last three come from cnn_study.sources, before a member is read.

Colour: grayscale, palette, CMYK, 16-bit and alpha images are kept and converted to RGB by
:func:`to_rgb` (16-bit values scaled to 8 bits, transparency composited onto white); the mode the
file had is recorded as ``original_mode``. An animated GIF contributes its first frame. EXIF
orientation is not applied (as in Keras' own loaders).

Memory: no single image costs more than about 300 MB. JPEG decodes at a reduced scale (draft mode):
for the hash always, for the cache and predict when it has more than MAX_FULL_DECODE_PIXELS (then at
1/2, 1/4 or 1/8 scale, the largest that fits, and resized from there). Other formats decode only in
full, so above MAX_FULL_DECODE_PIXELS they are refused, by the one check (:func:`oversize`) that
screening, the cache and predict share.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from cnn_study.errors import error_text

# Formats Pillow may open (JPEG includes MPO); others (EPS would run Ghostscript, for one) count as "not an image".
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
# Signatures of the formats above: such content that does not open is damaged, not a non-image.
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
# Pillow warns above this many pixels and refuses twice as many; we refuse above it, undecoded.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Formats that decode only in full take 4 bytes a pixel, and about as much again while converting to RGB:
# above 16 Mpx (e.g. 4900 x 3265) they are refused, so that one image stays under 300 MB. A JPEG decodes at
# 1/2, 1/4 or 1/8 scale instead (draft mode), to at most this many pixels.
MAX_FULL_DECODE_PIXELS = 16_000_000
DRAFT_FORMATS = ("JPEG", "MPO")
# The I and F modes are scaled to 8 bits this many pixels at a time, so no float64 copy of a whole image is made.
_SCALE_BLOCK_PIXELS = 2**20

# The perceptual hash: DCT of a 32x32 grayscale copy (Lanczos), the 8x8 lowest frequencies compared
# with their median -- imagehash.phash's algorithm, computed here with numpy. JPEGs are decoded for it
# at a reduced scale (draft mode, at least HASH_DECODE_SIZE), which still reads every coded block.
HASH_DECODE_SIZE = (64, 64)
_HASH_INPUT = 32
_HASH_BITS = 8
_DCT = np.cos(np.pi * np.arange(_HASH_BITS)[:, None] * (2 * np.arange(_HASH_INPUT)[None, :] + 1) / (2 * _HASH_INPUT))


class ImageTooLarge(ValueError):
    """An image over the pixel limits (see :func:`oversize`); the message is ``too large (<detail>)``."""


@dataclass
class Screened:
    file: str
    label: str
    sha256: str
    reason: str | None = None  # None when the image is usable
    detail: str = ""
    width: int = 0
    height: int = 0
    original_mode: str = ""
    phash: int = 0
    kept: str = ""  # for a duplicate: the file kept in its place
    size_bytes: int = 0  # the file's length: among duplicates, the larger of equal pictures is kept

    @property
    def description(self) -> str:
        """The reason and its detail in one phrase, for messages."""
        if self.kept:
            return f"{self.reason} of {self.kept} ({self.detail})"
        return f"{self.reason} ({self.detail})" if self.detail else str(self.reason)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=FORMATS)


@contextlib.contextmanager
def _strict_decoding():
    """Truncated data fails, whatever else set Pillow's LOAD_TRUNCATED_IMAGES; its warnings stay inside."""
    truncated_setting = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF, palette and bomb warnings; the decode decides
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_setting


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as an 8-bit RGB image (itself when it is one): 16-bit and float scaled, transparency
    composited onto white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image)
        top = float(values.max()) if values.size else 0.0
        scaled = np.empty(values.shape, dtype=np.uint8)
        rows = max(1, _SCALE_BLOCK_PIXELS // max(1, image.width))
        for start in range(0, len(values), rows):
            block = values[start : start + rows].astype(np.float64)
            if mode.startswith("I;16") or 255 < top <= 65535:
                block = block / 257.0
            elif top > 65535:
                block = block * (255.0 / top)
            scaled[start : start + rows] = np.clip(np.rint(block), 0, 255)
        return Image.fromarray(scaled).convert("RGB")
    if image.has_transparency_data:
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, "white")
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image if mode == "RGB" else image.convert("RGB")  # no copy of what is RGB already: memory


def phash(image: Image.Image) -> int:
    """64-bit perceptual hash of the image (imagehash.phash, hash_size 8, as an int)."""
    gray = to_rgb(image).convert("L")
    pixels = np.asarray(gray.resize((_HASH_INPUT, _HASH_INPUT), Image.Resampling.LANCZOS))
    low = _DCT @ pixels @ _DCT.T
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def screen_image(file: str, label: str, data: bytes, min_size: int) -> Screened:
    """Decode the bytes by content (a PNG named .jpg is fine) and return what is known about them."""
    result = Screened(file, label, hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    if not data:
        result.reason = "zero bytes"
        return result
    try:
        with _strict_decoding():
            _screen(result, data, min_size)
    except Exception as error:  # noqa: BLE001 -- a decoder's failure is a reason, never a crash
        bomb = isinstance(error, Image.DecompressionBombError)
        result.reason = "too large" if bomb else "truncated or undecodable"
        result.detail = error_text(error)
    return result


def _screen(result: Screened, data: bytes, min_size: int) -> None:
    try:
        image = _open(data)
    except UnidentifiedImageError:
        if data.startswith(SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            result.reason, result.detail = "truncated or undecodable", "header unreadable"
        else:
            result.reason = "not an image"
        return
    with image:
        result.width, result.height = image.size
        result.original_mode = image.mode
        too_large = oversize(image)
        if too_large:
            result.reason, result.detail = "too large", too_large
            return
        image.draft("L", HASH_DECODE_SIZE)  # JPEG and MPO decode at reduced scale; other formats ignore it
        image.load()  # the one full decode: truncated or corrupt data fails here
        if min(result.width, result.height) < min_size:
            result.reason = "smaller than minimum size"
            result.detail = f"{result.width}x{result.height} < {min_size} px"
            return
        result.phash = phash(image)


def oversize(image: Image.Image) -> str | None:
    """Why an opened, not yet decoded image is too large to decode, or None: the pixel limits of screening, the
    cache and predict."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        return f"{width}x{height} > {MAX_PIXELS} pixels"
    if width * height > MAX_FULL_DECODE_PIXELS and image.format not in DRAFT_FORMATS:
        return (
            f"{width}x{height} > {MAX_FULL_DECODE_PIXELS} pixels, the most a {image.format} is decoded at; "
            "only JPEG decodes at a reduced scale"
        )
    return None


def _draft_within_limit(image: Image.Image) -> None:
    """A JPEG over MAX_FULL_DECODE_PIXELS decodes at the largest of 1/2, 1/4, 1/8 scale that fits under it."""
    width, height = image.size
    for scale in (1, 2, 4, 8):
        if math.ceil(width / scale) * math.ceil(height / scale) <= MAX_FULL_DECODE_PIXELS:
            break
    if scale > 1:
        image.draft(image.mode, (width // scale, height // scale))


def decode_rgb(data: bytes) -> Image.Image:
    """Decode to RGB (see to_rgb), for the cache of selected images and for predict: in full, but a JPEG over
    MAX_FULL_DECODE_PIXELS at a reduced scale; over the limits (:func:`oversize`) ImageTooLarge, undecoded."""
    with _strict_decoding():
        image = _open(data)  # not closed on return: an RGB image is returned as it is (its data is in memory)
        too_large = oversize(image)
        if too_large:
            raise ImageTooLarge(f"too large ({too_large})")
        _draft_within_limit(image)
        image.load()
        return to_rgb(image)


def near_duplicate_keepers(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """For hashes in preference order: the index of each one's group keeper (itself if it is kept).

    Groups are the connected components of "differ in at most max_distance bits" (a chain of near
    copies is one group); the keeper is a group's first member. Vectorised breadth-first search, so
    even a set where everything matches everything costs O(n^2) numpy work, not Python loops.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    keeper = np.arange(len(hashes))  # each its own keeper until an earlier near copy claims it
    remaining = np.arange(len(hashes))
    while remaining.size:
        start = int(remaining[0])
        remaining = remaining[1:]
        frontier = [start]
        while frontier and remaining.size:
            current = frontier.pop()
            near = np.bitwise_count(hashes[remaining] ^ hashes[current]) <= max_distance
            if near.any():
                found = remaining[near]
                keeper[found] = start
                frontier.extend(found.tolist())
                remaining = remaining[~near]
    return keeper
