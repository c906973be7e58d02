"""Image sources: both layouts as zip and folder, layout from content, zip-slip and half-written zips."""

from __future__ import annotations

import csv
import os
import struct
import tracemalloc
import zipfile

import pytest

from cnn_study import sources
from cnn_study.selection import screen_source, select_images
from cnn_study.sources import ImageSource, SourceError, check_member_name
from photo_fixtures import competition_members, jpeg, petimages_members, write_folder, write_zip

CLASSES = ["cat", "dog"]


def open_source(tmp_path, members, kind, name="source.zip"):
    if kind == "zip":
        return ImageSource(write_zip(tmp_path / name, members))
    return ImageSource(write_folder(tmp_path / name.removesuffix(".zip"), members))


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_competition_layout(tmp_path, kind):
    members = competition_members(3)
    members["train/Thumbs.db"] = b"\x00\x01junk"
    members["train/readme.txt"] = b"not a photo"
    members["train/bird.1.jpg"] = jpeg(99)  # a class that is not configured
    with open_source(tmp_path, members, kind) as source:
        layout, candidates = source.candidates(CLASSES)
        assert layout == "competition"
        assert {(c.file, c.label) for c in candidates} == {
            (f"train/{label}.{n}.jpg", label) for label in CLASSES for n in range(3)
        }
        assert source.read("train/cat.1.jpg") == members["train/cat.1.jpg"]


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_petimages_layout(tmp_path, kind):
    members = petimages_members(3)
    members["PetImages/Cat/Thumbs.db"] = b"\x00\x01junk"
    members["PetImages/Dog/Thumbs.db"] = b"\x00\x01junk"
    members["__MACOSX/PetImages/Cat/._0.jpg"] = b"\x00\x05\x16\x07resource fork"
    members["PetImages/Cat/.hidden.jpg"] = b"hidden"
    members["CDLA-Permissive-2.0.pdf"] = b"%PDF-1.4"
    with open_source(tmp_path, members, kind) as source:
        layout, candidates = source.candidates(CLASSES)
        assert layout == "petimages"
        # Folder names Cat/Dog map onto the configured classes case-insensitively.
        assert {(c.file, c.label) for c in candidates} == {
            (f"PetImages/{folder}/{n}.jpg", label)
            for folder, label in (("Cat", "cat"), ("Dog", "dog"))
            for n in range(3)
        }


def test_petimages_folder_given_directly(tmp_path):
    members = {name.removeprefix("PetImages/"): data for name, data in petimages_members(2).items()}
    with ImageSource(write_folder(tmp_path / "PetImages", members)) as source:
        layout, candidates = source.candidates(CLASSES)
    assert layout == "petimages"
    assert sorted(c.file for c in candidates) == ["Cat/0.jpg", "Cat/1.jpg", "Dog/0.jpg", "Dog/1.jpg"]


@pytest.mark.parametrize(
    "archive_name, members, expected",
    [
        ("train.zip", petimages_members(2), "petimages"),
        ("kagglecatsanddogs_5340.zip", competition_members(2), "competition"),
        ("PetImages.zip", competition_members(2), "competition"),
        ("dogs-vs-cats-train.zip", petimages_members(2), "petimages"),
    ],
)
def test_layout_comes_from_content_not_archive_name(tmp_path, archive_name, members, expected):
    with ImageSource(write_zip(tmp_path / archive_name, members)) as source:
        assert source.candidates(CLASSES)[0] == expected


def test_source_without_images_of_the_classes(tmp_path):
    members = {"test1/1.jpg": jpeg(0), "test1/2.jpg": jpeg(1)}  # the competition's unlabelled test set
    with ImageSource(write_zip(tmp_path / "test1.zip", members)) as source:
        with pytest.raises(SourceError, match="no images of classes cat, dog") as error:
            source.candidates(CLASSES)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "bad_name", ["../evil/cat.1.jpg", "train/../../cat.1.jpg", "/etc/cat.1.jpg", "C:/temp/cat.1.jpg", "..\\cat.2.jpg"]
)
def test_zip_slip_member_refuses_the_archive(tmp_path, bad_name):
    members = competition_members(2)
    path = write_zip(tmp_path / "train.zip", members)
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("x", date_time=(2020, 1, 1, 0, 0, 0))
        info.filename = bad_name  # bypass ZipInfo's own normalisation, as a hostile writer would
        archive.writestr(info, jpeg(50))
    with pytest.raises(SourceError, match="unsafe member name") as error:
        ImageSource(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["train/cat.1.jpg", "./train/cat.1.jpg", "train//cat.1.jpg"])
def test_safe_member_names_are_normalised(name):
    assert check_member_name(name) == "train/cat.1.jpg"


def test_normalised_member_names_are_still_readable(tmp_path):
    path = tmp_path / "train.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("x")
        info.filename = "./train/cat.0.jpg"
        archive.writestr(info, jpeg(0))
        archive.writestr("train/dog.0.jpg", jpeg(1))
    with ImageSource(path) as source:
        _, candidates = source.candidates(CLASSES)
        assert [c.file for c in candidates] == ["train/cat.0.jpg", "train/dog.0.jpg"]
        assert source.read("train/cat.0.jpg") == jpeg(0)


def test_member_given_twice_refuses_the_archive(tmp_path):
    path = write_zip(tmp_path / "train.zip", competition_members(1))
    with zipfile.ZipFile(path, "a") as archive:
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("train/cat.0.jpg", jpeg(7))
    with pytest.raises(SourceError, match="appears twice"):
        ImageSource(path)


def test_half_written_zip_is_refused(tmp_path):
    complete = write_zip(tmp_path / "train.zip", competition_members(3))
    data = complete.read_bytes()
    partial = tmp_path / "partial.zip"
    partial.write_bytes(data[: len(data) // 2])  # what an interrupted download leaves behind
    with pytest.raises(SourceError, match="incomplete or damaged zip") as error:
        ImageSource(partial)
    assert "\n" not in str(error.value)


def test_neither_zip_nor_folder(tmp_path):
    text = tmp_path / "train.zip"
    text.write_text("<html>login required</html>")
    with pytest.raises(SourceError, match="not a zip archive"):
        ImageSource(text)
    with pytest.raises(SourceError, match="no such file or folder"):
        ImageSource(tmp_path / "missing.zip")


def test_unreadable_member_is_rejected_not_raised(tmp_path):
    members = competition_members(2)
    path = write_zip(tmp_path / "train.zip", members)
    data = bytearray(path.read_bytes())
    offset = data.index(members["train/cat.1.jpg"][-200:])  # its entropy-coded tail is unique
    data[offset] ^= 0xFF  # stored member: the CRC no longer matches
    path.write_bytes(bytes(data))
    with ImageSource(path) as source:
        _, screened = screen_source(source, CLASSES, min_size=8)
    by_file = {s.file: s for s in screened}
    assert by_file["train/cat.1.jpg"].reason == "unreadable"
    assert "CRC" in by_file["train/cat.1.jpg"].detail
    assert all(s.reason is None for name, s in by_file.items() if name != "train/cat.1.jpg")


# ---- zip bombs and implausible sizes -------------------------------------------------------


def forge_declared_size(path, name: str, size: int) -> None:
    """Rewrite the uncompressed size of member `name` in the zip's central directory (and local header)."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, size)
    local = struct.unpack_from("<I", data, central + 42)[0]
    struct.pack_into("<I", data, local + 22, size)
    path.write_bytes(bytes(data))


def screened_by_file(path, min_size=8):
    with ImageSource(path) as source:
        return {s.file: s for s in screen_source(source, CLASSES, min_size)[1]}


def test_highly_compressible_member_is_refused_unread(tmp_path):
    path = write_zip(tmp_path / "train.zip", competition_members(2))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.9.jpg", bytes(4 * 2**20))  # 4 MiB of zeros: about 4 kB deflated
    by_file = screened_by_file(path)
    bomb = by_file["train/cat.9.jpg"]
    assert bomb.reason == "implausible compression ratio"
    assert "4194304 bytes from" in bomb.detail and "over the limit of 100:1" in bomb.detail
    assert all(s.reason is None for name, s in by_file.items() if name != "train/cat.9.jpg")


def test_small_compressible_member_is_not_a_bomb(tmp_path):
    """Under RATIO_CHECKED_FROM_BYTES the ratio cannot hurt: a flat BMP is judged as an image."""
    path = write_zip(tmp_path / "train.zip", competition_members(1))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.9.jpg", bytes(sources.RATIO_CHECKED_FROM_BYTES - 1))
    assert screened_by_file(path)["train/cat.9.jpg"].reason == "not an image"


def test_member_declaring_2_gb_is_refused_without_reading_it(tmp_path):
    path = write_zip(tmp_path / "train.zip", competition_members(2))
    forge_declared_size(path, "train/cat.1.jpg", 2**31)
    tracemalloc.start()
    try:
        by_file = screened_by_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert by_file["train/cat.1.jpg"].reason == "file too large"
    assert by_file["train/cat.1.jpg"].detail == f"2147483648 bytes, over the limit of {sources.MAX_MEMBER_BYTES}"
    assert peak < 20 * 2**20


def test_bomb_reason_lands_in_rejected_csv(tmp_path):
    path = write_zip(tmp_path / "train.zip", competition_members(3))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/dog.9.jpg", bytes(2 * 2**20))
    forge_declared_size(path, "train/cat.2.jpg", 2**31)
    out = tmp_path / "out"
    select_images(
        source_path=path,
        manifest_path=out / "manifest.csv",
        rejected_path=out / "rejected.csv",
        classes=CLASSES,
        n_train=1,
        n_val=1,
        seed=0,
        min_size=8,
        near_duplicate_distance=6,
    )
    with open(out / "rejected.csv", newline="") as handle:
        reasons = {row["file"]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons == {"train/cat.2.jpg": "file too large", "train/dog.9.jpg": "implausible compression ratio"}


def test_large_file_in_a_folder_is_refused(tmp_path, monkeypatch):
    members = competition_members(2)
    members["train/cat.9.jpg"] = bytes(5000)
    folder = write_folder(tmp_path / "train", members)
    monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", 4000)
    by_file = screened_by_file(folder)
    assert (by_file["train/cat.9.jpg"].reason, by_file["train/cat.9.jpg"].detail) == (
        "file too large",
        "5000 bytes, over the limit of 4000",
    )
    assert by_file["train/cat.0.jpg"].reason is None  # photos of about 3 kB still pass


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_no_read_takes_more_than_the_bound(tmp_path, monkeypatch, kind):
    """Even when a size check is fooled (a header that lies, a file that grew), a read stops at the bound."""
    members = {"train/cat.0.jpg": bytes(3 * 2**20), "train/dog.0.jpg": jpeg(0)}  # stored: no ratio to see
    with open_source(tmp_path, members, kind) as source:
        monkeypatch.setattr(sources, "check_member_size", lambda *args: None)
        monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", 4000)
        tracemalloc.start()
        try:
            with pytest.raises(sources.MemberRejected, match="file too large .more than 4000 bytes"):
                source.read("train/cat.0.jpg")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2**20
        assert source.read("train/dog.0.jpg") == jpeg(0)


# ---- file names that are not UTF-8 ---------------------------------------------------------

# Latin-1 names (an old camera's or archiver's), as bytes on a Linux file system: not UTF-8.
LATIN1_NAMES = {b"train/cat.\xe9t\xe9.jpg": "train/cat.0.jpg", b"train/dog.\xe0_\xefle.jpg": "train/dog.0.jpg"}


def write_bytes_names(folder, members: dict[bytes, bytes]):
    """A folder whose file names are the given bytes (os.fsencode form), whatever the locale."""
    for raw, data in members.items():
        target = os.path.join(os.fsencode(folder), raw)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)
    return folder


def zip_with_raw_names(path, members: dict[bytes, bytes]):
    """A zip whose member names are these bytes without the UTF-8 flag (as old Windows archivers write them):
    zipfile writes ASCII stand-ins of the same length, whose bytes are then replaced."""
    stand_ins = {raw: bytes(b if b < 128 else ord("~") for b in raw) for raw in members}
    assert len(set(stand_ins.values())) == len(stand_ins)
    write_zip(path, {stand_ins[raw].decode(): data for raw, data in members.items()})
    data = path.read_bytes()
    for raw, stand_in in stand_ins.items():
        assert data.count(stand_in) == 2  # the local header and the central directory
        data = data.replace(stand_in, raw)
    path.write_bytes(data)
    return path


def test_a_folder_name_that_is_not_utf8_reads_as_in_a_zip(tmp_path):
    members = {raw: competition_members(1)[name] for raw, name in LATIN1_NAMES.items()}
    folder = ImageSource(write_bytes_names(tmp_path / "photos", members))
    archive = ImageSource(zip_with_raw_names(tmp_path / "photos.zip", members))
    expected = sorted(raw.decode("cp437") for raw in LATIN1_NAMES)
    assert expected == ["train/cat.ΘtΘ.jpg", "train/dog.α_∩le.jpg"]
    assert folder.names == archive.names == expected
    for raw, name in zip(sorted(LATIN1_NAMES), expected, strict=True):
        assert folder.read(name) == archive.read(name) == members[raw]
        name.encode("utf-8")  # a name any manifest can hold
    assert [c.file for c in folder.candidates(CLASSES)[1]] == expected


def test_two_files_whose_names_read_the_same_refuse_the_folder(tmp_path):
    folder = write_bytes_names(
        tmp_path / "photos", {b"train/cat.\xe9.jpg": jpeg(1), "train/cat.Θ.jpg".encode(): jpeg(2)}
    )
    with pytest.raises(SourceError) as error:
        ImageSource(folder)
    assert str(error.value) == (
        f"{folder}: the files b'train/cat.\\xce\\x98.jpg' and b'train/cat.\\xe9.jpg' both read as 'train/cat.Θ.jpg' "
        "(a name that is not UTF-8 is read as cp437); rename one"
    )
