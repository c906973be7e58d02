"""The Kaggle download path, run with the real kaggle client against a local fake server."""

import io
import logging
import os
import socket
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "workflow_scripts", ROOT / "tests"):  # in case pytest.ini sets no pythonpath
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import fake_kaggle_server  # noqa: E402
from cnn_study.kaggle_download import KaggleDownloadError, download_from_kaggle  # noqa: E402

USER, KEY = "cat-fancier", "s3cr3t-kaggle-key-0123456789"


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


TRAIN_ZIP = make_zip({"train/cat.0.jpg": b"cat" * 100, "train/dog.0.jpg": b"dog" * 100})
PETS_ZIP = make_zip({"PetImages/Cat/0.jpg": b"cat", "PetImages/Dog/0.jpg": b"dog"})


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Fail any connection that is not to this machine: the tests must never reach kaggle.com."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local_only(host):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"test tried to reach {host}")

    def connect(self, address):
        if isinstance(address, tuple):
            local_only(address[0])
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        local_only(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """A HOME and KAGGLE_CONFIG_DIR with nothing in them, and no KAGGLE_* variables."""
    for name in list(os.environ):
        if name.startswith("KAGGLE_") or name in ("VERBOSE", "VERBOSE_OUTPUT", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / "kaggle-config"))
    return home


@pytest.fixture
def credentials(no_credentials, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)


@pytest.fixture
def kaggle():
    state = fake_kaggle_server.FakeKaggle(
        username=USER, key=KEY,
        files={"dogs-vs-cats/train.zip": ("train.zip", TRAIN_ZIP),  # competition/file
               "someone/pet-images": ("pet-images.zip", PETS_ZIP)},  # owner/dataset
    )
    server, thread = fake_kaggle_server.start(state)
    yield state
    fake_kaggle_server.stop(server, thread)


def competition(kaggle, dest, **kwargs):
    return download_from_kaggle(competition="dogs-vs-cats", dataset=None, file_name="train.zip",
                                dest=dest, endpoint=kaggle.url, **kwargs)


def test_competition_file(kaggle, credentials, tmp_path):
    dest = tmp_path / "resources" / "kaggle" / "dogs-vs-cats" / "train.zip"
    assert competition(kaggle, dest) == dest
    with zipfile.ZipFile(dest) as archive:
        assert archive.testzip() is None
        assert "train/cat.0.jpg" in archive.namelist()
    assert [r.path.split("?")[0] for r in kaggle.requests] == [
        fake_kaggle_server.COMPETITION_PATH, "/storage/competitions/dogs-vs-cats/train.zip"]
    assert kaggle.requests[0].body == {"competitionName": "dogs-vs-cats", "fileName": "train.zip"}
    assert [p.name for p in dest.parent.iterdir()] == ["train.zip"]  # scratch folder cleaned up


def test_competition_file_zipped_again_by_server(kaggle, credentials, tmp_path):
    kaggle.files["dogs-vs-cats/train.zip"] = ("train.zip.zip", make_zip({"train.zip": TRAIN_ZIP}))
    dest = competition(kaggle, tmp_path / "train.zip")
    assert dest.read_bytes() == TRAIN_ZIP


def test_dataset(kaggle, credentials, tmp_path):
    dest = tmp_path / "datasets" / "someone__pet-images.zip"
    download_from_kaggle(competition=None, dataset="someone/pet-images", file_name=None,
                         dest=dest, endpoint=kaggle.url)
    with zipfile.ZipFile(dest) as archive:
        assert "PetImages/Cat/0.jpg" in archive.namelist()
    assert kaggle.requests[0].path == fake_kaggle_server.DATASET_PATH
    assert kaggle.requests[0].body["ownerSlug"] == "someone"


def test_missing_credentials(kaggle, no_credentials, tmp_path):
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    message = str(error.value)
    assert "\n" not in message
    assert "KAGGLE_USERNAME" in message and "~/.kaggle/kaggle.json" in message
    assert "https://www.kaggle.com/settings" in message
    assert kaggle.requests == []


def test_credentials_from_kaggle_json(kaggle, no_credentials, tmp_path):
    config_dir = no_credentials / "kaggle-config"
    config_dir.mkdir()
    (config_dir / "kaggle.json").write_text(f'{{"username": "{USER}", "key": "{KEY}"}}')
    (config_dir / "kaggle.json").chmod(0o600)
    assert zipfile.is_zipfile(competition(kaggle, tmp_path / "train.zip"))


def test_unusable_kaggle_json(kaggle, no_credentials, tmp_path, capsys):
    """The file exists, so the pre-check passes; the client's own auth failure is translated."""
    config_dir = no_credentials / "kaggle-config"
    config_dir.mkdir()
    (config_dir / "kaggle.json").write_text("{}")
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    assert "\n" not in str(error.value) and "~/.kaggle/kaggle.json" in str(error.value)
    assert kaggle.requests == []


def test_rules_not_accepted(kaggle, credentials, tmp_path, caplog, capsys):
    kaggle.rules_not_accepted.add("dogs-vs-cats")
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, out / "train.zip")
    message = str(error.value)
    assert "\n" not in message
    assert "https://www.kaggle.com/competitions/dogs-vs-cats/rules" in message
    assert list(out.iterdir()) == []  # neither dest nor a scratch folder left behind
    captured = capsys.readouterr()
    for text in (message, caplog.text, captured.out, captured.err):
        assert KEY not in text


def test_bad_credentials(kaggle, credentials, monkeypatch, tmp_path, caplog, capsys):
    wrong_key = "wrong-key-9876543210"
    monkeypatch.setenv("KAGGLE_KEY", wrong_key)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    message = str(error.value)
    assert "401" in message and "\n" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__
    captured = capsys.readouterr()
    for text in (message, caplog.text, captured.out, captured.err):
        assert wrong_key not in text


def test_existing_complete_archive_is_kept(kaggle, no_credentials, tmp_path):
    dest = tmp_path / "train.zip"
    dest.write_bytes(TRAIN_ZIP)
    assert competition(kaggle, dest) == dest  # no credentials needed either
    assert kaggle.requests == []
    assert dest.read_bytes() == TRAIN_ZIP


def test_truncated_archive_is_replaced(kaggle, credentials, tmp_path):
    dest = tmp_path / "train.zip"
    dest.write_bytes(TRAIN_ZIP[: len(TRAIN_ZIP) // 2])
    competition(kaggle, dest)
    assert dest.read_bytes() == TRAIN_ZIP
    assert len(kaggle.requests) == 2


def test_default_endpoint_is_kaggle(credentials, tmp_path, monkeypatch):
    """endpoint None or kaggle.com leaves the client on api.kaggle.com (blocked here by `offline`)."""
    tried = []
    real_getaddrinfo = socket.getaddrinfo  # the `offline` guard

    def record(host, *args, **kwargs):
        tried.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", record)
    with pytest.raises(KaggleDownloadError, match="could not download"):
        download_from_kaggle(competition="dogs-vs-cats", dataset=None, file_name="train.zip",
                             dest=tmp_path / "train.zip", endpoint="https://www.kaggle.com")
    assert tried == ["api.kaggle.com"]


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError):
        download_from_kaggle(competition="c", dataset="o/d", file_name="f.zip", dest=tmp_path / "x.zip")
    with pytest.raises(ValueError):
        download_from_kaggle(competition="c", dataset=None, file_name=None, dest=tmp_path / "x.zip")
