"""Image sources: both layouts as zip and folder, layout from content, zip-slip and half-written zips."""

from __future__ import annotations

import zipfile

import pytest
from photo_fixtures import competition_members, jpeg, petimages_members, write_folder, write_zip

from cnn_study.selection import screen_source
from cnn_study.sources import ImageSource, SourceError, check_member_name

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
            (f"PetImages/{folder}/{n}.jpg", label) for folder, label in (("Cat", "cat"), ("Dog", "dog")) for n in range(3)
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
