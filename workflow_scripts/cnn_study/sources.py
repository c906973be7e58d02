"""Read image candidates from a zip archive or a folder, in either known layout, without extracting.

Layouts are detected from member names inside the source, never from the archive's own file name:
- competition: ``<any folder>/cat.123.jpg``, ``<any folder>/dog.7.jpg`` (Kaggle's dogs-vs-cats train.zip)
- petimages:   ``<any folder>/PetImages/Cat/123.jpg`` (Microsoft's PetImages release on Kaggle); any
  folder named after a class counts, so the PetImages folder itself may be given as the source.
Class names match case-insensitively. Whichever layout matches more members wins (competition on a
tie). Members that are not images of that layout -- Thumbs.db, readme files, macOS ``__MACOSX`` and
``._`` resource forks, hidden files -- are ignored.

A zip is read in place and trusted only as a whole: a member with an absolute path or '..'
(zip-slip), a drive letter, or a name given twice refuses the archive; so does an archive with no
central directory (a half-written download, which writers avoid with temp + rename).

Names are text that any file (manifest.csv, rejected.csv, logs) can hold. A zip member's name is what
zipfile makes of it (UTF-8 when the archive flags it so, else cp437); a folder's file name that is not
UTF-8 (bytes a Linux file system keeps as they were written, e.g. Latin-1 from an old camera or
archive) is decoded the same way, as cp437, so the same bytes give the same name in a zip and in a
folder. Two files whose names become the same text refuse the folder.

A member is read only when its size is plausible for a photo: one declaring more than
MAX_MEMBER_BYTES, or inflating more than MAX_COMPRESSION_RATIO times (a zip bomb), is refused with
:class:`MemberRejected` before any byte is read, and no read ever returns more than MAX_MEMBER_BYTES,
whatever the header claims. The pick records such a member in rejected.csv.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
LAYOUTS = ("competition", "petimages")
# Far above any photo (Kaggle's are under 1 MB; a 24-megapixel BMP is 72 MB uncompressed, and such an image
# is refused anyway above screening.MAX_FULL_DECODE_PIXELS); the bound on memory per read.
MAX_MEMBER_BYTES = 96 * 2**20
# Photos barely compress (JPEG, PNG: about 1:1; BMP a few to one); a zip bomb inflates a thousandfold.
MAX_COMPRESSION_RATIO = 100
# Below this size a member cannot hurt, whatever its ratio (a flat-colour BMP compresses well).
RATIO_CHECKED_FROM_BYTES = 2**20


class SourceError(ValueError):
    """The image source is unusable; the message is one line saying why and what to do."""


class MemberRejected(SourceError):
    """One member is refused unread; ``reason`` and ``detail`` go to rejected.csv, the rest of the source is fine."""

    def __init__(self, name: str, reason: str, detail: str):
        super().__init__(f"{name}: {reason} ({detail})")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Candidate:
    file: str  # path inside the source, POSIX style
    label: str


def _layout_patterns(classes: list[str]) -> dict[str, re.Pattern]:
    names = "|".join(re.escape(c) for c in classes)
    suffixes = "|".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
    return {
        "competition": re.compile(rf"(?:^|/)({names})\.[^/]+\.(?:{suffixes})$", re.IGNORECASE),
        "petimages": re.compile(rf"(?:^|/)({names})/[^/]+\.(?:{suffixes})$", re.IGNORECASE),
    }


def _ignored(name: str) -> bool:
    """Hidden files, macOS resource forks and metadata folders are never candidates."""
    parts = name.split("/")
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def text_name(name: str) -> str:
    """A file name as text every UTF-8 file can hold: itself when it is UTF-8, else its bytes (what
    os.fsdecode kept as surrogates) decoded as cp437, as zipfile decodes a member name without the UTF-8 flag."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("cp437")
    return name


def check_member_name(name: str) -> str:
    """Refuse absolute paths and '..' (zip-slip): such an archive is not trusted at all."""
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", posix):
        raise SourceError(f"unsafe member name {name!r} in archive (absolute or '..'); refusing it")
    return str(path)


def check_member_size(name: str, size: int, compressed_size: int | None = None) -> None:
    """Refuse a member whose declared size or compression ratio no photo has (raises MemberRejected)."""
    if size > MAX_MEMBER_BYTES:
        raise MemberRejected(name, "file too large", f"{size} bytes, over the limit of {MAX_MEMBER_BYTES}")
    if compressed_size is not None and size >= RATIO_CHECKED_FROM_BYTES:
        ratio = size / max(compressed_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise MemberRejected(
                name,
                "implausible compression ratio",
                f"{size} bytes from {compressed_size}, {ratio:.0f}:1, over the limit of {MAX_COMPRESSION_RATIO}:1",
            )


class ImageSource:
    """A zip archive or a folder of images; members are read in place."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._zip = None
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._files: dict[str, Path] = {}
        if self.path.is_dir():
            self._list_folder()
            self._names = sorted(self._files)
        elif self.path.is_file():
            self._open_zip()
            self._names = sorted(self._members)
        else:
            raise SourceError(f"{self.path}: no such file or folder; check dataset.source")

    def _list_folder(self) -> None:
        for path in self.path.rglob("*"):
            if not path.is_file():
                continue
            relative = path.relative_to(self.path).as_posix()
            name = text_name(relative)
            if name in self._files:
                first, second = sorted([os.fsencode(self._files[name].relative_to(self.path)), os.fsencode(relative)])
                raise SourceError(
                    f"{self.path}: the files {first!r} and {second!r} both read as {name!r} (a name that is not "
                    "UTF-8 is read as cp437); rename one"
                )
            self._files[name] = path

    def _open_zip(self) -> None:
        with open(self.path, "rb") as handle:
            head = handle.read(4)
        if not zipfile.is_zipfile(self.path):
            if head.startswith(b"PK"):
                raise SourceError(
                    f"{self.path}: incomplete or damaged zip archive (no central directory); download it again"
                )
            raise SourceError(f"{self.path}: not a zip archive or a folder; give a .zip or a folder of images")
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise SourceError(f"{self.path}: damaged zip archive ({error}); download it again") from None
        for info in infos:
            name = check_member_name(info.filename)
            if info.is_dir() or name in (".", ""):
                continue
            if name in self._members:
                raise SourceError(f"{self.path}: member {name!r} appears twice; the archive is ambiguous")
            self._members[name] = info

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def read(self, name: str) -> bytes:
        """The member's bytes, refused unread (MemberRejected) when its size is implausible for a photo."""
        if self._zip is not None:
            info = self._members[name]
            check_member_size(name, info.file_size, info.compress_size)
            with self._zip.open(info) as member:
                data = member.read(MAX_MEMBER_BYTES + 1)
        else:
            path = self._files[name]
            check_member_size(name, path.stat().st_size)
            with open(path, "rb") as handle:
                data = handle.read(MAX_MEMBER_BYTES + 1)
        if len(data) > MAX_MEMBER_BYTES:  # the header lied, or a file grew since
            raise MemberRejected(name, "file too large", f"more than {MAX_MEMBER_BYTES} bytes")
        return data

    def detect_layout(self, classes: list[str]) -> tuple[str, dict[str, list[tuple[str, str]]]]:
        patterns = _layout_patterns(classes)
        by_lower = {c.lower(): c for c in classes}
        found: dict[str, list[tuple[str, str]]] = {layout: [] for layout in LAYOUTS}
        for name in self._names:
            if _ignored(name):
                continue
            for layout in LAYOUTS:
                match = patterns[layout].search(name)
                if match:
                    found[layout].append((name, by_lower[match.group(1).lower()]))
        layout = max(LAYOUTS, key=lambda key: len(found[key]))  # first of LAYOUTS on a tie
        return layout, found

    def candidates(self, classes: list[str]) -> tuple[str, list[Candidate]]:
        """The layout found in the content and every member that is an image of it, labelled."""
        layout, found = self.detect_layout(classes)
        if not found[layout]:
            raise SourceError(
                f"{self.path}: no images of classes {', '.join(classes)} in the competition layout "
                "(train/cat.1.jpg) or the PetImages layout (PetImages/Cat/1.jpg)"
            )
        return layout, [Candidate(name, label) for name, label in found[layout]]

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
