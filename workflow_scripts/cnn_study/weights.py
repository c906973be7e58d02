"""Fetch Keras' published ImageNet "notop" weight files, with hash checks.

File names, URL layout and hashes come from the model registry (``cnn_study.model_specs``), which
copies them from the installed Keras, so a file fetched here is byte-for-byte the file
``keras.applications.<Model>(weights="imagenet", include_top=False)`` would download and cache.

Hash algorithm: Keras' ``get_file(..., file_hash=h)`` uses ``hash_algorithm="auto"``, which means
SHA-256 when ``h`` is 64 hex characters and MD5 otherwise (``keras.src.utils.file_utils.resolve_hasher``).
Every published notop hash is 32 hex characters, so these files are checked with MD5; an
``expected_hash`` override of 64 characters is checked with SHA-256.

A model without a published hash (MobileNetV2: Keras downloads it unchecked) is refused by the
config check; here it needs an explicit ``expected_hash``. A model without ImageNet weights
(AlexNet) raises :class:`WeightsError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import urllib.error
import urllib.request

from cnn_study.errors import one_line
from cnn_study.files import atomic_write
from cnn_study.model_specs import MODEL_SPECS, ImagenetWeights

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A weight file could not be fetched or failed its hash check (one-line message)."""


def published_weights(model: str) -> ImagenetWeights:
    """The registry's entry for the model's ImageNet file; WeightsError for a model without one."""
    spec = MODEL_SPECS.get(model)
    if spec is None or spec.imagenet_weights is None:
        known = ", ".join(name for name, spec in MODEL_SPECS.items() if spec.has_imagenet_weights)
        raise WeightsError(
            f"model {model!r} has no ImageNet weights to fetch (Keras publishes none for it; "
            f"models with published weights: {known}); use weights: none for random init"
        )
    return spec.imagenet_weights


def hash_algorithm(file_hash: str) -> str:
    """Keras' "auto" rule: 64 hex characters -> sha256, anything else -> md5."""
    return "sha256" if len(file_hash) == 64 else "md5"


def file_hash(path: os.PathLike | str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def weights_url(model: str, base_url: str) -> str:
    """URL of the model's notop file under ``base_url`` (the keras-applications root)."""
    weights = published_weights(model)
    return f"{base_url.rstrip('/')}/{weights.folder}/{weights.file_name}"


def expected_hash_of(model: str, expected_hash: str | None = None) -> str:
    """The hash the file must have: ``expected_hash`` if given, else the published one (lower case)."""
    weights = published_weights(model)
    expected = expected_hash if expected_hash is not None else weights.file_hash
    if expected is None:
        raise WeightsError(
            f"Keras publishes no hash for {model} ({weights.file_name}), so its download cannot be "
            "verified; pass expected_hash (md5 or sha256 of a trusted copy)"
        )
    return expected.strip().lower()


def has_expected_hash(path: pathlib.Path, expected: str) -> bool:
    """Whether an existing ``path`` already holds the file; a wrong one is removed, to fetch again."""
    algo = hash_algorithm(expected)
    got = file_hash(path, algo)
    if got == expected:
        log.info("%s exists with %s %s; not downloading", path, algo, got)
        return True
    log.warning("%s has %s %s, expected %s; removing it and fetching again", path, algo, got, expected)
    path.unlink()
    return False


def download(url: str, out, hasher, timeout: float) -> int:
    """Stream ``url`` into the open file ``out`` and ``hasher``; return the size. Errors: one-line WeightsError."""
    size = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "cnn_study-weights"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        raise WeightsError(
            f"HTTP {exc.code} {one_line(exc.reason)} fetching {url}; check weights.base_url (the keras-applications root)"
        ) from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"cannot fetch {url}: {one_line(exc.reason)}") from None
    except (TimeoutError, OSError) as exc:
        raise WeightsError(f"cannot fetch {url}: {one_line(exc) or type(exc).__name__}") from None
    if length is not None and length.isdigit() and int(length) != size:
        raise WeightsError(f"truncated download of {url}: got {size} of {length} bytes; retry")
    return size


def fetch_weights(
    model: str,
    dest: os.PathLike | str,
    base_url: str,
    timeout: float = 60,
    expected_hash: str | None = None,
) -> pathlib.Path:
    """Download the model's notop weight file to ``dest``, verified, atomically.

    ``expected_hash`` None means the published hash (md5, or sha256 if 64 hex characters). If ``dest``
    already holds a file with the right hash nothing is downloaded; a ``dest`` with the wrong hash is
    removed and fetched again. The file is streamed to a partial file next to ``dest`` and renamed into
    place only after it passed the check, so ``dest`` never holds a partial or bad file.
    """
    dest = pathlib.Path(dest)
    file_name = published_weights(model).file_name
    expected = expected_hash_of(model, expected_hash)
    if dest.is_file() and has_expected_hash(dest, expected):
        return dest
    url = weights_url(model, base_url)
    algo = hash_algorithm(expected)
    hasher = hashlib.new(algo)
    with atomic_write(dest, durable=True) as partial:
        with open(partial, "wb") as out:
            size = download(url, out, hasher, timeout)
        got = hasher.hexdigest()
        if got != expected:
            raise WeightsError(
                f"{file_name} from {url} has {algo} {got}, expected {expected}; "
                f"the download was discarded: retry, or check that weights.base_url serves "
                f"Keras' published file (pass expected_hash only for a deliberately different file)"
            )
    log.info("fetched %s -> %s (%d bytes, %s %s)", url, dest, size, algo, got)
    return dest
