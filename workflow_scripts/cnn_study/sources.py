"""Read image candidates from a zip archive or a folder, in either known layout, without extracting.

Layouts are detected from member names inside the source, never from the archive's own file name:
- competition: ``<any folder>/cat.123.jpg``, ``<any folder>/dog.7.jpg`` (Kaggle's dogs-vs-cats train.zip)
- petimages:   ``<any folder>/PetImages/Cat/123.jpg`` (Microsoft's PetImages release on Kaggle)
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


class SourceError(ValueError):
    """The image source is unusable; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class Candidate:
    file: str  # path inside the source, POSIX style
    label: str


def _layout_patterns(classes: list[str]) -> dict[str, re.Pattern]:
    names = "|".join(re.escape(c) for c in classes)
    suffixes = "|".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
    return {
        "competition": re.compile(rf"(?:^|/)({names})\.[^/]+\.(?:{suffixes})$", re.IGNORECASE),
        "petimages": re.compile(rf"(?:^|/)PetImages/({names})/[^/]+\.(?:{suffixes})$", re.IGNORECASE),
    }


def check_member_name(name: str) -> str:
    """Refuse absolute paths and '..' (zip-slip): such an archive is not trusted at all."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
        raise SourceError(f"unsafe member name {name!r} in archive (absolute or '..'); refusing it")
    return str(path)


class ImageSource:
    """A zip archive or a folder of images; members are read in place."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self._zip = None
            self._names = sorted(
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            )
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            self._names = sorted(
                check_member_name(info.filename) for info in self._zip.infolist() if not info.is_dir()
            )
        elif self.path.exists():
            raise SourceError(f"{self.path}: not a zip archive or a folder; give a .zip or a folder of images")
        else:
            raise SourceError(f"{self.path}: no such file or folder; check dataset.source")

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def candidates(self, classes: list[str]) -> tuple[str, list[Candidate]]:
        """The layout found in the content and every member that is an image of it, labelled."""
        patterns = _layout_patterns(classes)
        matches = {
            layout: [(name, pattern.search(name)) for name in self._names]
            for layout, pattern in patterns.items()
        }
        counts = {layout: sum(1 for _, m in found if m) for layout, found in matches.items()}
        layout = max(counts, key=counts.get)
        if counts[layout] == 0:
            raise SourceError(
                f"{self.path}: no images of classes {', '.join(classes)} in the competition layout "
                "(train/cat.1.jpg) or the PetImages layout (PetImages/Cat/1.jpg)"
            )
        by_lower = {c.lower(): c for c in classes}
        found = [Candidate(name, by_lower[m.group(1).lower()]) for name, m in matches[layout] if m]
        return layout, found

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
