"""The Kaggle download path, run with the real kaggle client against a local fake server."""

import base64
import io
import logging
import os
import socket
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "workflow_scripts", ROOT / "tests"):  # in case pytest.ini sets no pythonpath
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import fake_kaggle_server  # noqa: E402
from cnn_study import kaggle_download  # noqa: E402
from cnn_study.kaggle_download import CredentialMask, KaggleDownloadError, download_from_kaggle  # noqa: E402

USER, KEY = "cat-fancier", "s3cr3t-kaggle-key-0123456789"
# A key whose URL encoding differs from it, and with the user a base64 that ends in padding.
ODD_USER, ODD_KEY = "cat-fancier", "s3cr3t/k+y=0123456789&x"


def credential_forms(user: str, key: str) -> dict[str, str]:
    """Every form in which the client may send the key, so a server may echo it."""
    basic = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {
        "raw": key,
        "user:key": f"{user}:{key}",
        "basic": basic,
        "basic unpadded": basic.rstrip("="),
        "urlencoded": quote(key, safe=""),
    }


def leaks(text: str, user: str = USER, key: str = KEY) -> list[str]:
    return [name for name, form in credential_forms(user, key).items() if form in text]


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
        username=USER,
        key=KEY,
        files={
            "dogs-vs-cats/train.zip": ("train.zip", TRAIN_ZIP),  # competition/file
            "someone/pet-images": ("pet-images.zip", PETS_ZIP),
        },  # owner/dataset
    )
    server, thread = fake_kaggle_server.start(state)
    yield state
    fake_kaggle_server.stop(server, thread)


def competition(kaggle, dest, **kwargs):
    return download_from_kaggle(
        competition="dogs-vs-cats", dataset=None, file_name="train.zip", dest=dest, endpoint=kaggle.url, **kwargs
    )


def test_competition_file(kaggle, credentials, tmp_path):
    dest = tmp_path / "resources" / "kaggle" / "dogs-vs-cats" / "train.zip"
    assert competition(kaggle, dest) == dest
    with zipfile.ZipFile(dest) as archive:
        assert archive.testzip() is None
        assert "train/cat.0.jpg" in archive.namelist()
    assert [r.path.split("?")[0] for r in kaggle.requests] == [
        fake_kaggle_server.COMPETITION_PATH,
        "/storage/competitions/dogs-vs-cats/train.zip",
    ]
    assert kaggle.requests[0].body == {"competitionName": "dogs-vs-cats", "fileName": "train.zip"}
    assert [p.name for p in dest.parent.iterdir()] == ["train.zip"]  # scratch folder cleaned up


def test_competition_file_zipped_again_by_server(kaggle, credentials, tmp_path):
    kaggle.files["dogs-vs-cats/train.zip"] = ("train.zip.zip", make_zip({"train.zip": TRAIN_ZIP}))
    dest = competition(kaggle, tmp_path / "train.zip")
    assert dest.read_bytes() == TRAIN_ZIP


def test_dataset(kaggle, credentials, tmp_path):
    dest = tmp_path / "datasets" / "someone__pet-images.zip"
    download_from_kaggle(competition=None, dataset="someone/pet-images", file_name=None, dest=dest, endpoint=kaggle.url)
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
    assert capsys.readouterr().out == ""  # not the client's multi-line help


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
        download_from_kaggle(
            competition="dogs-vs-cats",
            dataset=None,
            file_name="train.zip",
            dest=tmp_path / "train.zip",
            endpoint="https://www.kaggle.com",
        )
    assert tried == ["api.kaggle.com"]


@pytest.mark.parametrize(
    "competition, dataset, file_name, message",
    [
        ("c", "o/d", "f.zip", "^give exactly one of competition or dataset$"),
        (None, None, None, "^give exactly one of competition or dataset$"),
        ("c", None, None, r"^a competition download needs file_name \(e.g. train.zip\)$"),
        (None, "o/d", "f.zip", "^a dataset is downloaded whole: leave file_name empty$"),
    ],
)
def test_arguments_are_checked(tmp_path, competition, dataset, file_name, message):
    with pytest.raises(ValueError, match=message):
        download_from_kaggle(competition=competition, dataset=dataset, file_name=file_name, dest=tmp_path / "x.zip")


# ---- credentials never leave in any form ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{'Authorization': 'Basic %(basic)s', 'Accept': 'application/json'}",
        '{"authorization": "Basic %(basic)s"}',
        "Authorization: Basic %(basic_unpadded)s\r\nHost: x",
        "header was basic %(basic)s",
        "credentials received: %(user)s:%(key)s",
        "https://host/api?user=%(user)s&auth=%(urlencoded)s",
        'kaggle.json: {"username": "%(user)s", "key": "%(key)s"}',
        "echo: %(basic)s.",
        "echo: %(basic_unpadded)s.",
        "echo: %(key)s.",
    ],
    ids=[
        "headers-dict",
        "json",
        "raw-header",
        "basic-lowercase",
        "decoded",
        "urlencoded",
        "kaggle-json",
        "bare-base64",
        "bare-base64-unpadded",
        "bare-key",
    ],
)
def test_mask_hides_every_form_of_a_known_key(text):
    forms = credential_forms(ODD_USER, ODD_KEY)
    text = text % {
        "basic": forms["basic"],
        "basic_unpadded": forms["basic unpadded"],
        "user": ODD_USER,
        "key": ODD_KEY,
        "urlencoded": forms["urlencoded"],
    }
    masked = CredentialMask([ODD_KEY], username=ODD_USER)(text)
    assert leaks(masked, ODD_USER, ODD_KEY) == [] and "***" in masked, masked


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Authorization: Bearer KGAT_0123456789abcdef", "Authorization: ***"),
        ("sent bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl today", "sent bearer *** today"),
        ("'Authorization': 'Basic dXNlcjprZXk='}", "'Authorization': '***'}"),
        ('{"token": "KGAT_abcdef0123", "ok": 1}', '{"token": "***", "ok": 1}'),
        ("export KAGGLE_KEY=abcdef0123456", "export KAGGLE_KEY=***"),
        ("https://x/y?api_key=abc123def&page=2", "https://x/y?api_key=***&page=2"),
        ("Kaggle has no dogs-vs-cats/train.zip (HTTP 404): check dataset.kaggle", None),
        ("Basic authentication is required", None),
    ],
)
def test_mask_hides_credential_shapes_it_was_not_told_about(text, expected):
    assert CredentialMask()(text) == (text if expected is None else expected)


@pytest.fixture(params=["environment", "kaggle.json"])
def odd_credentials(request, no_credentials, monkeypatch):
    """The odd key from the environment, or only from kaggle.json (the client's config, not os.environ)."""
    if request.param == "environment":
        monkeypatch.setenv("KAGGLE_USERNAME", ODD_USER)
        monkeypatch.setenv("KAGGLE_KEY", ODD_KEY)
    else:
        config_dir = no_credentials / "kaggle-config"
        config_dir.mkdir()
        (config_dir / "kaggle.json").write_text(f'{{"username": "{ODD_USER}", "key": "{ODD_KEY}"}}')
        (config_dir / "kaggle.json").chmod(0o600)


@pytest.fixture
def echoing_kaggle(kaggle):
    """A server whose every API answer is HTTP 500 echoing what it was sent."""
    kaggle.username, kaggle.key, kaggle.fail_status = ODD_USER, ODD_KEY, 500
    return kaggle


@pytest.mark.parametrize("echo", ["headers", "decoded", "urlencoded"])
def test_echoed_credentials_are_masked(echoing_kaggle, odd_credentials, tmp_path, caplog, capsys, echo):
    echoing_kaggle.echo = echo
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KaggleDownloadError) as error:
        competition(echoing_kaggle, tmp_path / "train.zip")
    message = str(error.value)
    assert message.startswith(
        "Kaggle download of dogs-vs-cats/train.zip failed (HTTP 500: the server could not handle the request; "
    ) and message.endswith("): rerun later")
    assert "***" in message  # the echo came back, masked
    captured = capsys.readouterr()
    for text in (message, caplog.text, captured.out, captured.err):
        assert leaks(text, ODD_USER, ODD_KEY) == [], text


def test_a_secret_cut_short_in_an_error_is_still_masked(echoing_kaggle, odd_credentials, tmp_path):
    """Error details are cut at 200 characters: masked first, or half a key would escape."""
    echoing_kaggle.echo = "decoded"
    prefix = "; credentials received: " + ODD_USER + ":"
    echoing_kaggle.fail_message = "x" * (200 - len(prefix) - 10)  # the key straddles the cut
    with pytest.raises(KaggleDownloadError) as error:
        competition(echoing_kaggle, tmp_path / "train.zip")
    assert ODD_KEY[:10] not in str(error.value) and "***" in str(error.value)


def test_a_server_chosen_file_name_is_masked(kaggle, credentials, tmp_path):
    kaggle.files["dogs-vs-cats/train.zip"] = (f"train-{KEY}.zip", b"not a zip archive")
    with pytest.raises(KaggleDownloadError, match=r"^Kaggle sent train-\*\*\*\.zip for dogs-vs-cats/train.zip but"):
        competition(kaggle, tmp_path / "train.zip")


def test_an_unexpected_failure_is_one_masked_line_with_the_traceback_in_the_log(
    kaggle, odd_credentials, tmp_path, monkeypatch, caplog
):
    def broken(*args):
        raise TypeError(f"client bug near {ODD_USER}:{ODD_KEY}")

    kaggle.username, kaggle.key = ODD_USER, ODD_KEY
    monkeypatch.setattr(kaggle_download, "_archive_in", broken)
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    assert str(error.value) == (
        "downloading dogs-vs-cats/train.zip failed unexpectedly (TypeError: client bug near ***); see the log"
    )
    assert "Traceback (most recent call last)" in caplog.text and "in broken" in caplog.text
    assert leaks(caplog.text, ODD_USER, ODD_KEY) == []


def test_client_logs_and_prints_are_masked_while_it_runs(monkeypatch, capsys):
    """Whatever the client logs or prints during a download (VERBOSE prints the headers) goes out masked."""
    monkeypatch.setenv("KAGGLE_USERNAME", ODD_USER)
    monkeypatch.setenv("KAGGLE_KEY", ODD_KEY)
    basic = credential_forms(ODD_USER, ODD_KEY)["basic"]
    mask = CredentialMask.from_environment()
    stream, handler = io.StringIO(), logging.StreamHandler()
    logger = logging.getLogger("kaggle.test")
    handler.stream = stream
    logger.addHandler(handler)
    try:
        with mask.applied():
            logger.warning("request headers %s", {"Authorization": f"Basic {basic}"})
            try:
                raise RuntimeError(f"server said {ODD_KEY}")
            except RuntimeError:
                logger.exception("failed")
            sys.stdout.write(f"Authorization: Basic {basic}\n")
            print(f"key {ODD_KEY}", file=sys.stderr)
    finally:
        logger.removeHandler(handler)
    logger.warning("after the block: %s", "not masked")  # the factory is restored
    assert leaks(stream.getvalue(), ODD_USER, ODD_KEY) == []
    assert stream.getvalue().count("***") >= 2 and "server said ***" in stream.getvalue()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("Authorization: ***\n", "key ***\n")


def test_echoed_credentials_never_reach_console_or_log_file(echoing_kaggle, tmp_path):
    """The rule's path: download_kaggle.py's run_logged, a console and logs/download_kaggle.log."""
    echoing_kaggle.echo = "headers"
    log_file = tmp_path / "download_kaggle.log"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from cnn_study.kaggle_download import download_from_kaggle
        from cnn_study.logs import run_logged
        run_logged({str(log_file)!r}, download_from_kaggle, competition="dogs-vs-cats", dataset=None,
                   file_name="train.zip", dest=Path({str(tmp_path / "train.zip")!r}), endpoint={echoing_kaggle.url!r})
    """)
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAGGLE_")}
    env.update(
        KAGGLE_USERNAME=ODD_USER,
        KAGGLE_KEY=ODD_KEY,
        HOME=str(tmp_path),
        KAGGLE_CONFIG_DIR=str(tmp_path),
        PYTHONPATH=str(ROOT / "workflow_scripts"),
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 1
    console, log_text = result.stdout + result.stderr, log_file.read_text()
    assert console.startswith("Error: Kaggle download of dogs-vs-cats/train.zip failed (HTTP 500")
    assert "Authorization': '***'" in console and "Authorization': '***'" in log_text
    assert leaks(console, ODD_USER, ODD_KEY) == [] and leaks(log_text, ODD_USER, ODD_KEY) == []
    assert [r.body for r in echoing_kaggle.requests] == [{"competitionName": "dogs-vs-cats", "fileName": "train.zip"}]
