"""Fetch Keras' published ImageNet "notop" weight files, with hash checks.

The file names, URL layout and hashes are exactly those used by the installed
Keras (``keras/src/applications/*.py``), so a file fetched here is byte-for-byte
the file ``keras.applications.<Model>(weights="imagenet", include_top=False)``
would download and cache.

Hash algorithm: Keras' ``get_file(..., file_hash=h)`` uses ``hash_algorithm="auto"``,
which means SHA-256 when ``h`` is 64 hex characters and MD5 otherwise
(``keras.src.utils.file_utils.resolve_hasher``). Every published notop hash is
32 hex characters, so these files are checked with MD5; an ``expected_hash``
override of 64 characters is checked with SHA-256.

Keras publishes no hash for MobileNetV2 (its ``get_file`` call passes none), so
its entry has ``None``: fetching it needs an explicit ``expected_hash`` or
``allow_unverified=True`` (which mirrors Keras' own unchecked download).

Models without ImageNet weights (``alexnet``: built from random init only) are
not in the registry and raise :class:`WeightsError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import tempfile
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"

# model name -> (file name, published hash) for the include_top=False weights.
WEIGHT_FILES: dict[str, tuple[str, str | None]] = {
    # keras/src/applications/resnet.py: WEIGHTS_HASHES["resnet50"][1]
    "resnet50": (
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "4d473c1dd8becc155b73f8504c6f6626",
    ),
    # keras/src/applications/inception_v3.py: file_hash of the notop get_file call
    "inceptionv3": (
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "bcbd6486424b2319ff4ef7d526e38f63",
    ),
    # keras/src/applications/vgg16.py: file_hash of the notop get_file call
    "vgg16": (
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc",
    ),
    # keras/src/applications/mobilenet_v2.py (alpha=1.0, rows=224): Keras passes no file_hash.
    "mobilenetv2": (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        None,
    ),
}

# Sub-folder of the keras-applications root that holds each model's files (Keras' URL layout).
WEIGHT_SUBDIRS: dict[str, str] = {
    "resnet50": "resnet",
    "inceptionv3": "inception_v3",
    "vgg16": "vgg16",
    "mobilenetv2": "mobilenet_v2",
}

_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A weight file could not be fetched or failed its hash check (one-line message)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _entry(model: str) -> tuple[str, str | None]:
    try:
        return WEIGHT_FILES[model]
    except KeyError:
        known = ", ".join(sorted(WEIGHT_FILES))
        raise WeightsError(
            f"model {model!r} has no ImageNet weights to fetch (Keras publishes none for it; "
            f"models with published weights: {known}); use weights: none for random init"
        ) from None


def hash_algorithm(file_hash: str) -> str:
    """Keras' "auto" rule: 64 hex characters -> sha256, anything else -> md5."""
    return "sha256" if len(file_hash) == 64 else "md5"


def file_hash(path: os.PathLike | str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _expected(model: str, expected_hash: str | None) -> str | None:
    _, published = _entry(model)
    h = expected_hash if expected_hash is not None else published
    return h.strip().lower() if h is not None else None


def weights_url(model: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """URL of the model's notop file under ``base_url`` (the keras-applications root)."""
    file_name, _ = _entry(model)
    return f"{base_url.rstrip('/')}/{WEIGHT_SUBDIRS[model]}/{file_name}"


def verify_weights(
    path: os.PathLike | str, model: str, expected_hash: str | None = None
) -> None:
    """Raise WeightsError unless ``path`` exists and matches the model's hash."""
    path = pathlib.Path(path)
    file_name, _ = _entry(model)
    expected = _expected(model, expected_hash)
    if expected is None:
        raise WeightsError(
            f"no published hash for {model} ({file_name}): Keras publishes none; "
            f"pass expected_hash to verify {path}"
        )
    if not path.is_file():
        raise WeightsError(f"weight file {path} for {model} does not exist")
    algo = hash_algorithm(expected)
    got = file_hash(path, algo)
    if got != expected:
        raise WeightsError(
            f"{path} ({file_name}) has {algo} {got}, expected {expected}; "
            f"delete it and fetch it again"
        )


def fetch_weights(
    model: str,
    dest: os.PathLike | str,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60,
    expected_hash: str | None = None,
    allow_unverified: bool = False,
) -> pathlib.Path:
    """Download the model's notop weight file to ``dest``, verified, atomically.

    ``expected_hash`` None means the published hash (md5, or sha256 if 64 hex
    characters). If ``dest`` already holds a file with the right hash nothing is
    downloaded; a ``dest`` with the wrong hash is removed and fetched again. The
    file is streamed to a temporary file next to ``dest`` and renamed into place
    only after it passed the check, so ``dest`` never holds a partial or bad file.
    ``allow_unverified`` permits a download with no hash at all (MobileNetV2,
    for which Keras publishes none).
    """
    dest = pathlib.Path(dest)
    file_name, _ = _entry(model)
    expected = _expected(model, expected_hash)
    if expected is None and not allow_unverified:
        raise WeightsError(
            f"Keras publishes no hash for {model} ({file_name}); pass expected_hash "
            f"(md5 or sha256 of a trusted copy) or allow_unverified=True to download it unchecked"
        )
    url = weights_url(model, base_url)
    algo = hash_algorithm(expected) if expected is not None else "sha256"

    if dest.is_file():
        if expected is None:
            log.info("%s exists (no hash to check); not downloading %s", dest, url)
            return dest
        got = file_hash(dest, algo)
        if got == expected:
            log.info("%s exists with %s %s; not downloading", dest, algo, got)
            return dest
        log.warning("%s has %s %s, expected %s; removing it and fetching again",
                    dest, algo, got, expected)
        dest.unlink()

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = pathlib.Path(tmp_name)
    try:
        hasher = hashlib.new(algo)
        size = 0
        with os.fdopen(fd, "wb") as out:
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
                    f"HTTP {exc.code} {_one_line(exc.reason)} fetching {url}; "
                    f"check weights.base_url (the keras-applications root)"
                ) from None
            except urllib.error.URLError as exc:
                raise WeightsError(f"cannot fetch {url}: {_one_line(exc.reason)}") from None
            except (TimeoutError, OSError) as exc:
                raise WeightsError(f"cannot fetch {url}: {_one_line(exc) or type(exc).__name__}") from None
            if length is not None and length.isdigit() and int(length) != size:
                raise WeightsError(
                    f"truncated download of {url}: got {size} of {length} bytes; retry"
                )
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        got = hasher.hexdigest()
        if expected is not None and got != expected:
            raise WeightsError(
                f"{file_name} from {url} has {algo} {got}, expected {expected}; "
                f"the download was discarded: retry, or check that weights.base_url serves "
                f"Keras' published file (pass expected_hash only for a deliberately different file)"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("fetched %s -> %s (%d bytes, %s %s)", url, dest, size, algo, got)
    return dest
