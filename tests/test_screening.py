"""Screening: one decode per file, a reason for every bad file, conversions to RGB, perceptual hashes."""

from __future__ import annotations

import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFile

from cnn_study import screening
from cnn_study.screening import decode_rgb, near_duplicate_keepers, phash, screen_image
from photo_fixtures import encode, jpeg, photo

ROOT = Path(__file__).resolve().parents[1]
REASONS = {
    "zero bytes",
    "not an image",
    "truncated or undecodable",
    "too large",
    "smaller than minimum size",
}


def default_threshold() -> int:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())["dataset"]["near_duplicate_distance"]
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    default = schema["properties"]["dataset"]["properties"]["near_duplicate_distance"]["default"]
    assert config == default, "config.yaml and the schema disagree on near_duplicate_distance"
    return default


def screen(data: bytes, min_size: int = 32, file: str = "train/cat.1.jpg"):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak out of screening, not even a warning
        return screen_image(file, "cat", data, min_size)


def distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# ---- reasons -------------------------------------------------------------------------------


def test_good_jpeg_is_usable_and_described():
    data = jpeg(3, size=(96, 80))
    result = screen(data)
    assert result.reason is None
    assert (result.width, result.height, result.original_mode) == (96, 80, "RGB")
    assert len(result.sha256) == 64 and result.phash != 0
    assert result.size_bytes == len(data)  # among equal pictures, the larger file is kept


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "zero bytes"),
        (jpeg(1)[: len(jpeg(1)) // 2], "truncated or undecodable"),
        (jpeg(1)[:-300], "truncated or undecodable"),
        (jpeg(1)[:40], "truncated or undecodable"),  # cut inside the header: opens, fails to load
        (encode(photo(1), "PNG")[:-400], "truncated or undecodable"),
        (b"This is a text file that someone named cat.1.jpg\n", "not an image"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),  # never Ghostscript
        (encode(photo(1, size=(20, 20))), "smaller than minimum size"),
        (encode(photo(1, size=(200, 31))), "smaller than minimum size"),
    ],
    ids=[
        "zero",
        "truncated-half",
        "truncated-tail",
        "header-only",
        "truncated-png",
        "text",
        "html",
        "eps",
        "small",
        "thin",
    ],
)
def test_each_kind_of_bad_file_gets_a_reason(data, reason):
    result = screen(data)
    assert result.reason == reason
    assert result.description.startswith(reason)
    assert result.phash == 0  # a rejected file has no hash, so it is nobody's near duplicate


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff" + bytes(50),
        b"\x89PNG\r\n\x1a\n" + bytes(40),
        b"GIF89a\x00",
        b"BM" + bytes(10),
        b"II*\x00" + bytes(20),
        jpeg(1)[:4],
        b"RIFF" + bytes(4) + b"WEBP" + bytes(20),
    ],
    ids=["jpeg", "png", "gif", "bmp", "tiff", "jpeg-4-bytes", "webp"],
)
def test_a_known_signature_with_an_unreadable_header_is_damaged_not_a_non_image(data):
    result = screen(data)
    assert (result.reason, result.detail) == ("truncated or undecodable", "header unreadable")


@pytest.mark.parametrize(
    "data",
    [b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(30), bytes(8) + b"WEBP" + bytes(20)],
    ids=["riff-wave", "webp-without-riff"],
)
def test_only_riff_and_webp_together_mark_a_damaged_webp(data):
    assert (screen(data).reason, screen(data).detail) == ("not an image", "")


def test_a_decode_failure_names_the_decoder_error():
    assert screen(jpeg(1)[:-300]).detail == "OSError: image file is truncated (34 bytes not processed)"
    assert screen(jpeg(1)[:40]).description == "truncated or undecodable (OSError: Truncated File Read)"


def test_too_small_detail_gives_the_size():
    result = screen(encode(photo(2, size=(20, 24))), min_size=32)
    assert result.detail == "20x24 < 32 px"
    assert screen(encode(photo(2, size=(40, 40))), min_size=32).reason is None


@pytest.mark.parametrize("size, usable", [((32, 50), True), ((50, 32), True), ((31, 50), False), ((50, 31), False)])
def test_an_image_exactly_at_min_size_is_kept(size, usable):
    result = screen(encode(photo(2, size=size)), min_size=32)
    assert (result.reason is None) == usable, result.description


def test_truncated_is_rejected_even_when_pillow_is_told_to_load_truncated_images(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert screen(jpeg(1)[:-300]).reason == "truncated or undecodable"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_decompression_bomb_header_is_rejected_not_raised():
    # A PNG claiming 100,000 x 100,000 pixels with almost no data: Pillow refuses it at open.
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )
    result = screen(data)
    assert (result.reason, result.width, result.height) == ("too large", 0, 0)  # refused at open, undecoded
    assert result.detail.startswith("DecompressionBombError: Image size (10000000000 pixels) exceeds limit")


def test_image_over_the_pixel_limit_is_rejected_undecoded(monkeypatch):
    monkeypatch.setattr(screening, "MAX_PIXELS", 5000)
    result = screen(jpeg(1, size=(96, 80)))
    assert result.reason == "too large" and "96x80" in result.detail


def test_an_image_of_exactly_the_pixel_limit_is_kept(monkeypatch):
    monkeypatch.setattr(screening, "MAX_PIXELS", 96 * 80)
    assert screen(jpeg(1, size=(96, 80))).reason is None
    monkeypatch.setattr(screening, "MAX_PIXELS", 96 * 80 - 1)
    assert screen(jpeg(1, size=(96, 80))).description == "too large (96x80 > 7679 pixels)"


def test_a_format_without_reduced_decoding_is_refused_over_its_pixel_limit(monkeypatch):
    monkeypatch.setattr(screening, "MAX_FULL_DECODE_PIXELS", 96 * 80 - 1)
    message = "96x80 > 7679 pixels, the most a PNG is decoded at; only JPEG decodes at a reduced scale"
    assert screen(encode(photo(1), "PNG")).description == f"too large ({message})"
    with pytest.raises(screening.ImageTooLarge, match=rf"^too large \({re.escape(message)}\)$"):
        decode_rgb(encode(photo(1), "PNG"))
    monkeypatch.setattr(screening, "MAX_FULL_DECODE_PIXELS", 96 * 80)
    assert screen(encode(photo(1), "PNG")).reason is None and decode_rgb(encode(photo(1), "PNG")).size == (96, 80)


@pytest.mark.parametrize(
    "limit, size", [(96 * 80, (96, 80)), (96 * 80 - 1, (48, 40)), (48 * 40, (48, 40)), (48 * 40 - 1, (24, 20))]
)
def test_a_jpeg_over_the_full_decode_limit_decodes_at_the_largest_scale_under_it(monkeypatch, limit, size):
    monkeypatch.setattr(screening, "MAX_FULL_DECODE_PIXELS", limit)
    data = jpeg(1, size=(96, 80))
    assert screen(data).reason is None  # the hash decodes at a reduced scale anyway
    image = decode_rgb(data)
    assert (image.mode, image.size) == ("RGB", size)
    assert screening.oversize(Image.open(io.BytesIO(data))) is None


def test_the_pixel_limit_over_every_format_comes_first(monkeypatch):
    monkeypatch.setattr(screening, "MAX_PIXELS", 96 * 80 - 1)
    with pytest.raises(screening.ImageTooLarge, match=r"^too large \(96x80 > 7679 pixels\)$"):
        decode_rgb(jpeg(1, size=(96, 80)))


def big_png(width: int, height: int, color_type: int, bit_depth: int = 8, extra: bytes = b"") -> bytes:
    """A flat PNG compressed row by row, without the memory and time of encoding it with Pillow."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = bytes(1 + width * channels * bit_depth // 8)  # filter byte 0, then zeros
    compressor = zlib.compressobj(1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + extra + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


# Images at (or, for JPEG, far over) MAX_FULL_DECODE_PIXELS, in the formats and modes that cost most to
# decode and convert, and the 81-megapixel PNG that used to cost 761 MB: (bytes, screening's reason, cached size).
LARGE = {
    "png-rgba-16mpx": (lambda: big_png(4000, 4000, 6), None, (4000, 4000)),
    "png-16-bit-16mpx": (lambda: big_png(4000, 4000, 0, 16), None, (4000, 4000)),
    "png-palette-transparent-16mpx": (
        lambda: big_png(4000, 4000, 3, extra=png_chunk(b"PLTE", bytes(6)) + png_chunk(b"tRNS", b"\x00")),
        None,
        (4000, 4000),
    ),
    "webp-16mpx": (
        lambda: encode(Image.new("RGB", (4000, 4000), (9, 99, 199)), "WEBP", quality=1, method=0),
        None,
        (4000, 4000),
    ),
    "jpeg-49mpx": (lambda: encode(Image.new("RGB", (7000, 7000), (9, 99, 199))), None, (3500, 3500)),
    "png-81mpx": (lambda: big_png(9000, 9000, 2), "too large", None),
}

# Peak memory is the process's VmHWM: ru_maxrss would start at the forking pytest's size (Linux keeps it over exec).
MEMORY_PROBE = """
import json, re, sys
from cnn_study.image_cache import resize_rgb
from cnn_study.screening import decode_rgb, screen_image

def peak_kb():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))

data = open(sys.argv[1], "rb").read()
before = peak_kb()
screened = screen_image("x", "cat", data, 32)
try:
    image = decode_rgb(data)
    decoded = [image.size, resize_rgb(image, 299).shape]
except ValueError as error:  # screening.ImageTooLarge
    decoded = str(error)
print(json.dumps({"reason": screened.reason, "detail": screened.detail, "decoded": decoded, "peak_kb": peak_kb() - before}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc (Linux)")
@pytest.mark.parametrize("name", LARGE)
def test_no_single_large_image_costs_300_mb_to_screen_and_cache(tmp_path, name):
    make, reason, size = LARGE[name]
    path = tmp_path / "image"
    path.write_bytes(make())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow_scripts")}
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout)
    assert probe["peak_kb"] < 300 * 1024, f"{name}: {probe['peak_kb'] / 1024:.0f} MB"
    assert probe["reason"] == reason, probe["detail"]
    if size is None:
        assert probe["decoded"] == f"too large ({probe['detail']})"
        assert probe["detail"] == (
            "9000x9000 > 16000000 pixels, the most a PNG is decoded at; only JPEG decodes at a reduced scale"
        )
    else:
        assert probe["decoded"] == [list(size), [299, 299, 3]]


def test_pillow_bomb_warning_does_not_escape(monkeypatch):
    # Pillow warns between MAX_IMAGE_PIXELS and twice that; the warning must not reach the caller.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    monkeypatch.setattr(screening, "MAX_PIXELS", 10**9)
    assert screen(jpeg(1, size=(96, 80))).reason is None  # 7,680 pixels: a warning, still decoded
    assert screen(jpeg(1, size=(128, 128))).reason == "too large"  # 16,384 pixels: Pillow's error


def test_odd_exif_is_harmless():
    rng = np.random.default_rng(0)
    garbage = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    data = encode(photo(4), "JPEG", exif=garbage)
    result = screen(data)
    assert result.reason is None
    assert decode_rgb(data).mode == "RGB"


def test_no_corruption_crashes_screening():
    """Bit flips and cuts anywhere in JPEG, PNG and GIF files: always a result, never an exception."""
    rng = random.Random(0)
    originals = [jpeg(5), encode(photo(5), "PNG"), encode(photo(5).convert("P"), "GIF"), encode(photo(5), "BMP")]
    for original in originals:
        for _ in range(40):
            data = bytearray(original)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.5:
                data = data[: rng.randrange(1, len(data))]
            result = screen(bytes(data))
            assert result.reason is None or result.reason in REASONS, result


def test_decode_for_the_cache_refuses_truncated_data_even_when_pillow_is_told_to_load_it(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(OSError, match=r"^image file is truncated \(34 bytes not processed\)$"):
        decode_rgb(jpeg(1)[:-300])  # never a half-grey picture in the cache
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored after a failure
    assert decode_rgb(jpeg(1)).size == (96, 80)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # and after a success


# ---- conversions ---------------------------------------------------------------------------


def sixteen_bit_png() -> bytes:
    ramp = np.linspace(0, 65535, 96 * 80).reshape(80, 96).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def animated_gif() -> bytes:
    frames = [photo(seed).convert("P") for seed in (6, 7, 8)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


CONVERSIONS = {
    "grayscale-jpeg": (lambda: encode(photo(6).convert("L")), "L"),
    "cmyk-jpeg": (lambda: encode(photo(6).convert("CMYK")), "CMYK"),
    "palette-png": (lambda: encode(photo(6).convert("P"), "PNG"), "P"),
    "png-named-jpg": (lambda: encode(photo(6), "PNG"), "RGB"),
    "gif-named-jpg": (lambda: encode(photo(6).convert("P"), "GIF"), "P"),
    "animated-gif": (animated_gif, "P"),
    "rgba-png": (lambda: encode(photo(6).convert("RGBA"), "PNG"), "RGBA"),
    "la-png": (lambda: encode(photo(6).convert("LA"), "PNG"), "LA"),
    "16-bit-png": (sixteen_bit_png, "I;16"),
    "bilevel-png": (lambda: encode(photo(6).convert("1"), "PNG"), "1"),
    "bmp": (lambda: encode(photo(6), "BMP"), "RGB"),
    "tiff": (lambda: encode(photo(6), "TIFF"), "RGB"),
    "progressive-jpeg": (lambda: encode(photo(6), "JPEG", progressive=True), "RGB"),
    "mpo": (lambda: encode(photo(6), "MPO", save_all=True, append_images=[photo(7)]), "RGB"),
}


@pytest.mark.parametrize("name", CONVERSIONS)
def test_other_modes_and_formats_are_converted_not_dropped(name):
    make, mode = CONVERSIONS[name]
    data = make()
    result = screen(data, file="train/cat.6.jpg")  # always a .jpg name: decoded by content
    assert result.reason is None, result.description
    assert result.original_mode == mode
    assert (result.width, result.height) == (96, 80)
    image = decode_rgb(data)
    assert image.mode == "RGB" and image.size == (96, 80)


@pytest.mark.parametrize(
    "name", ["grayscale-jpeg", "cmyk-jpeg", "palette-png", "png-named-jpg", "gif-named-jpg", "rgba-png", "la-png"]
)
def test_converted_copies_hash_like_the_original(name):
    original = screen(jpeg(6)).phash
    assert distance(original, screen(CONVERSIONS[name][0]()).phash) <= default_threshold()


def test_sixteen_bit_values_are_scaled_not_clipped():
    pixels = np.asarray(decode_rgb(sixteen_bit_png()), dtype=np.float64)
    assert 100 < pixels.mean() < 155  # clipping to 255 would make it nearly white
    assert pixels.min() == 0 and pixels.max() == 255


def test_sixteen_bit_values_are_scaled_a_block_of_rows_at_a_time_as_in_one_piece(monkeypatch):
    ramp = np.linspace(0, 65535, 96 * 80).reshape(80, 96)
    expected = np.clip(np.rint(ramp.astype(np.uint16) / 257.0), 0, 255)
    monkeypatch.setattr(screening, "_SCALE_BLOCK_PIXELS", 96 * 3 + 5)  # 3 rows a block, the last block short
    pixels = np.asarray(decode_rgb(sixteen_bit_png()))
    assert np.array_equal(pixels[..., 0], expected) and np.array_equal(pixels[..., 2], expected)


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert np.all(np.asarray(decode_rgb(encode(clear, "PNG"))) == 255)
    half = Image.new("RGBA", (40, 40), (0, 0, 0, 128))
    assert np.allclose(np.asarray(decode_rgb(encode(half, "PNG"))), 127, atol=1)


def test_transparent_grayscale_is_composited_on_white():
    clear = Image.new("LA", (40, 40), (0, 0))
    assert np.all(np.asarray(decode_rgb(encode(clear, "PNG"))) == 255)
    half = Image.new("LA", (40, 40), (0, 128))
    assert np.allclose(np.asarray(decode_rgb(encode(half, "PNG"))), 127, atol=1)
    keyed = Image.fromarray(np.array([[0, 100]] * 40, dtype=np.uint8))  # value 0 transparent (PNG tRNS)
    pixels = np.asarray(decode_rgb(encode(keyed, "PNG", transparency=0)))
    assert np.all(pixels[:, 0] == 255) and np.all(pixels[:, 1] == 100)


def test_transparent_colour_of_an_rgb_png_is_composited_on_white():
    pixels = np.array([[[0, 0, 0], [10, 200, 30]]] * 40, dtype=np.uint8)  # black is the PNG tRNS colour
    decoded = np.asarray(decode_rgb(encode(Image.fromarray(pixels), "PNG", transparency=(0, 0, 0))))
    assert np.all(decoded[:, 0] == 255) and np.all(decoded[:, 1] == (10, 200, 30))


def test_a_palette_with_alpha_is_composited_on_white():
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0)).quantize()  # P mode, the alpha in the palette
    assert np.all(np.asarray(screening.to_rgb(clear)) == 255)


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0, 100, 255], [0, 100, 255]),  # 8-bit range: as is
        ([0, 256], [0, 1]),  # above 255: 16-bit data, divided by 257
        ([0, 32896, 65535], [0, 128, 255]),
        ([0, 65535, 131070], [0, 128, 255]),  # beyond 16 bits: scaled by the maximum
        ([-50, 20], [0, 20]),  # negative values clipped
    ],
    ids=["8-bit", "just-over-8-bit", "16-bit", "over-16-bit", "negative"],
)
def test_32_bit_integer_tiffs_are_scaled_by_their_range(values, expected):
    image = Image.fromarray(np.array([values] * 2, dtype=np.int32))
    decoded = np.asarray(decode_rgb(encode(image, "TIFF")))
    assert decoded[0, :, 0].tolist() == expected and np.all(decoded == decoded[..., :1])


def test_cmyk_jpeg_keeps_its_colours():
    original = np.asarray(photo(9), dtype=np.float64)
    converted = np.asarray(decode_rgb(encode(photo(9).convert("CMYK"), quality=95)), dtype=np.float64)
    assert np.abs(original - converted).mean() < 6


# ---- perceptual hash -----------------------------------------------------------------------


def test_phash_matches_imagehash():
    imagehash = pytest.importorskip("imagehash")
    for seed in range(5):
        image = photo(seed)
        assert phash(image) == int(str(imagehash.phash(image)), 16)


def test_black_frame_hashes_to_zero():
    # every DCT coefficient equals the median: no bit is set (strictly greater, as in imagehash)
    assert phash(Image.new("RGB", (64, 64))) == 0
    assert screen(encode(Image.new("L", (64, 64)), "PNG")).phash == 0


def test_grayscale_with_a_transparent_key_hashes_like_its_flattened_copy():
    pixels = np.asarray(photo(6).convert("L")).copy()
    pixels[:, :48] = 0  # the left half is the transparent key colour
    keyed = encode(Image.fromarray(pixels), "PNG", transparency=0)
    flattened = encode(decode_rgb(keyed), "PNG")  # what training sees: the key area white
    assert screen(keyed).phash == screen(flattened).phash


@pytest.mark.parametrize(
    "transform",
    [
        lambda im: encode(im, quality=30),
        lambda im: encode(im.resize((72, 60)), quality=50),
        lambda im: encode(im.resize((48, 40)), quality=60),
        lambda im: encode(im.resize((144, 120)), quality=40),
        lambda im: encode(im.resize((160, 120)), quality=75),  # aspect ratio changed too
    ],
    ids=["q30", "75%-q50", "50%-q60", "150%-q40", "stretched"],
)
def test_reencoded_and_resized_copies_are_within_the_default_threshold(transform):
    threshold = default_threshold()
    for seed in range(30):
        original = screen(jpeg(seed)).phash
        copy = screen(transform(photo(seed))).phash
        assert distance(original, copy) <= threshold, seed


def test_distinct_test_photos_are_not_near_duplicates():
    hashes = np.array([screen(jpeg(seed)).phash for seed in range(120)], dtype=np.uint64)
    distances = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    upper = distances[np.triu_indices(len(hashes), 1)]
    assert upper.min() > default_threshold() + 4


def test_keepers_follow_chains_and_preference_order():
    a, b, c, far = 0b0, 0b11, 0b1111, (1 << 64) - 1
    hashes = np.array([c, far, a, b], dtype=np.uint64)  # c~b (2 bits), b~a (2 bits), c and a 4 apart
    assert near_duplicate_keepers(hashes, 2).tolist() == [0, 1, 0, 0]
    assert near_duplicate_keepers(hashes, 1).tolist() == [0, 1, 2, 3]
    assert near_duplicate_keepers(np.array([], dtype=np.uint64), 4).tolist() == []


def test_keepers_stay_fast_when_everything_matches():
    hashes = np.zeros(5000, dtype=np.uint64)
    started = time.perf_counter()
    keepers = near_duplicate_keepers(hashes, 4)
    assert time.perf_counter() - started < 2
    assert set(keepers.tolist()) == {0}
