"""The Kaggle download path, run with the real kaggle client against a local fake server."""

import base64
import gzip
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
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


# dataset.kaggle.network for the tests: a local server answers at once, so one try with short timeouts.
NETWORK = {"connect_timeout": 5, "read_timeout": 5, "retries": 0}

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
    fake_kaggle_server.stop(server, thread, state)


def competition(kaggle, dest, **kwargs):
    return download_from_kaggle(
        network=NETWORK,
        competition="dogs-vs-cats",
        dataset=None,
        file_name="train.zip",
        dest=dest,
        endpoint=kaggle.url,
        **kwargs,
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


def test_dataset(kaggle, credentials, tmp_path, capsys):
    dest = tmp_path / "datasets" / "someone__pet-images.zip"
    download_from_kaggle(
        network=NETWORK, competition=None, dataset="someone/pet-images", file_name=None, dest=dest, endpoint=kaggle.url
    )
    with zipfile.ZipFile(dest) as archive:
        assert "PetImages/Cat/0.jpg" in archive.namelist()
    assert kaggle.requests[0].path == fake_kaggle_server.DATASET_PATH
    assert kaggle.requests[0].body["ownerSlug"] == "someone"
    # The client names the dataset (even when quiet); no progress bars or further chatter.
    assert capsys.readouterr() == ("Dataset URL: https://www.kaggle.com/datasets/someone/pet-images\n", "")


NO_CREDENTIALS = (
    "no Kaggle credentials found: create an API token at https://www.kaggle.com/settings and either export "
    "KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN) or save kaggle.json as ~/.kaggle/kaggle.json "
    "(or $KAGGLE_CONFIG_DIR/kaggle.json) with chmod 600"
)
CLIENT_FOUND_NO_CREDENTIALS = (
    "the Kaggle client found no usable credentials: create an API token at https://www.kaggle.com/settings "
    "and put it in KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json"
)


def test_missing_credentials(kaggle, no_credentials, tmp_path):
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    assert str(error.value) == NO_CREDENTIALS
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
    assert str(error.value) == CLIENT_FOUND_NO_CREDENTIALS
    assert kaggle.requests == []
    assert capsys.readouterr().out == ""  # not the client's multi-line help


def test_rules_not_accepted(kaggle, credentials, tmp_path, caplog, capsys):
    kaggle.rules_not_accepted.add("dogs-vs-cats")
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, out / "train.zip")
    message = str(error.value)
    assert message == (
        "Kaggle refused dogs-vs-cats/train.zip (HTTP 403): accept the competition rules at "
        "https://www.kaggle.com/competitions/dogs-vs-cats/rules while logged in, then rerun"
    )
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
    assert message == (
        "Kaggle rejected the credentials (HTTP 401) for dogs-vs-cats/train.zip: create a new API token at "
        "https://www.kaggle.com/settings and update KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json"
    )
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


@pytest.mark.parametrize(
    "endpoint", [None, "https://www.kaggle.com", "https://kaggle.com/", "https://api.kaggle.com/v1"]
)
def test_default_endpoint_is_kaggle(credentials, tmp_path, monkeypatch, endpoint):
    """endpoint None or kaggle.com leaves the client on api.kaggle.com (blocked here by `offline`)."""
    tried = []
    real_getaddrinfo = socket.getaddrinfo  # the `offline` guard

    def record(host, *args, **kwargs):
        tried.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", record)
    with pytest.raises(KaggleDownloadError) as error:
        download_from_kaggle(
            network=NETWORK,
            competition="dogs-vs-cats",
            dataset=None,
            file_name="train.zip",
            dest=tmp_path / "train.zip",
            endpoint=endpoint,
        )
    assert tried == ["api.kaggle.com"]
    assert str(error.value) == (
        f"could not download dogs-vs-cats/train.zip from {endpoint or 'Kaggle'} (ConnectionError): "
        "check the network connection and dataset.kaggle.endpoint, then rerun"
    )


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
        download_from_kaggle(
            network=NETWORK, competition=competition, dataset=dataset, file_name=file_name, dest=tmp_path / "x.zip"
        )


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
    [record] = [r for r in caplog.records if r.name == kaggle_download.__name__ and r.levelno == logging.ERROR]
    lines = record.getMessage().splitlines()
    assert lines[0] == "unexpected failure downloading dogs-vs-cats/train.zip: Traceback (most recent call last):"
    assert lines[1].startswith('  File "') and lines[-1] == "TypeError: client bug near ***"


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
        run_logged({str(log_file)!r}, download_from_kaggle, network={NETWORK!r}, competition="dogs-vs-cats", dataset=None,
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


# ---- where the credentials come from -------------------------------------------------------


def write_kaggle_json(folder: Path, user: str = USER, key: str = KEY) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kaggle.json").write_text(f'{{"username": "{user}", "key": "{key}"}}')
    (folder / "kaggle.json").chmod(0o600)


@pytest.mark.parametrize("where", ["~/.kaggle", "$XDG_CONFIG_HOME/kaggle", "~/.config/kaggle"])
def test_kaggle_json_where_the_client_looks_without_kaggle_config_dir(
    kaggle, no_credentials, monkeypatch, tmp_path, where
):
    """Without KAGGLE_CONFIG_DIR: ~/.kaggle if that folder exists, else the XDG config folder."""
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    if where == "$XDG_CONFIG_HOME/kaggle":
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    write_kaggle_json(Path(where.replace("$XDG_CONFIG_HOME", str(tmp_path / "xdg")).replace("~", str(no_credentials))))
    assert zipfile.is_zipfile(competition(kaggle, tmp_path / "train.zip"))
    assert [r.authorized for r in kaggle.requests] == [True, True]


@pytest.mark.parametrize(
    "kaggle_json_in",
    [
        "~/.config/kaggle",  # an existing ~/.kaggle (here holding nothing) is where the client looks
        "~/.kaggle",  # KAGGLE_CONFIG_DIR is where the client looks
    ],
)
def test_kaggle_json_where_the_client_does_not_look_is_no_credential(
    kaggle, no_credentials, monkeypatch, tmp_path, kaggle_json_in
):
    if kaggle_json_in == "~/.config/kaggle":
        monkeypatch.delenv("KAGGLE_CONFIG_DIR")
        (no_credentials / ".kaggle").mkdir()
    write_kaggle_json(Path(kaggle_json_in.replace("~", str(no_credentials))))
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    assert str(error.value) == NO_CREDENTIALS
    assert kaggle.requests == []


@pytest.mark.parametrize("variable", ["KAGGLE_USERNAME", "KAGGLE_KEY"])
def test_half_a_credential_pair_is_no_credential(kaggle, credentials, monkeypatch, tmp_path, variable):
    monkeypatch.delenv(variable)
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    assert str(error.value) == NO_CREDENTIALS
    assert kaggle.requests == []


TOKEN = "KGAT_0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.mark.parametrize("source", ["KAGGLE_API_TOKEN", "~/.kaggle/access_token", "~/.kaggle/access_token.txt"])
def test_access_token(kaggle, no_credentials, monkeypatch, tmp_path, source):
    """A token from the environment or a token file: the client asks whose it is, then downloads with it."""
    kaggle.tokens[TOKEN] = USER
    if source == "KAGGLE_API_TOKEN":
        monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    else:
        token_file = Path(source.replace("~", str(no_credentials)))
        token_file.parent.mkdir()
        token_file.write_text(TOKEN + "\n")
    assert zipfile.is_zipfile(competition(kaggle, tmp_path / "train.zip"))
    assert [(r.path, r.body) for r in kaggle.requests[:2]] == [
        (fake_kaggle_server.INTROSPECT_PATH, {"token": TOKEN}),
        (fake_kaggle_server.COMPETITION_PATH, {"competitionName": "dogs-vs-cats", "fileName": "train.zip"}),
    ]
    assert kaggle.requests[1].authorized


def oauth_login(home: Path, access_token: str) -> None:
    """What `kaggle auth login` leaves in ~/.kaggle/credentials.json: a refresh token and a current access token."""
    (home / ".kaggle").mkdir()
    expires = datetime.now(UTC) + timedelta(hours=12)
    (home / ".kaggle" / "credentials.json").write_text(
        json.dumps(
            {
                "refresh_token": "refresh-0123456789",
                "access_token": access_token,
                "access_token_expiration": expires.isoformat(),
                "username": USER,
            }
        )
    )


def test_kaggle_auth_login_credentials(kaggle, no_credentials, tmp_path):
    kaggle.tokens[TOKEN] = USER
    oauth_login(no_credentials, TOKEN)
    assert zipfile.is_zipfile(competition(kaggle, tmp_path / "train.zip"))
    assert kaggle.requests[0].authorized


def test_a_token_only_the_client_knows_is_masked_when_echoed(kaggle, no_credentials, tmp_path, caplog, capsys):
    """The token from credentials.json is in no environment variable: the mask learns it from the client."""
    oauth_login(no_credentials, TOKEN)
    kaggle.fail_status, kaggle.echo = 500, "decoded"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    assert str(error.value) == (
        "Kaggle download of dogs-vs-cats/train.zip failed (HTTP 500: the server could not handle the request; "
        "credentials received: ***): rerun later"
    )
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert TOKEN not in text


# ---- what a failure says -------------------------------------------------------------------


def dataset(kaggle, dest, slug="someone/pet-images"):
    return download_from_kaggle(
        network=NETWORK, competition=None, dataset=slug, file_name=None, dest=dest, endpoint=kaggle.url
    )


def test_dataset_the_account_may_not_open(kaggle, credentials, tmp_path):
    kaggle.forbidden_datasets.add("someone/pet-images")
    with pytest.raises(KaggleDownloadError) as error:
        dataset(kaggle, tmp_path / "pets.zip")
    assert str(error.value) == (
        "Kaggle refused someone/pet-images (HTTP 403): check that your account can open "
        "https://www.kaggle.com/datasets/someone/pet-images"
    )


@pytest.mark.parametrize("what", ["competition file", "dataset"])
def test_what_kaggle_does_not_have(kaggle, credentials, tmp_path, what):
    out = tmp_path / "out"
    with pytest.raises(KaggleDownloadError) as error:
        if what == "dataset":
            dataset(kaggle, out / "x.zip", slug="someone/no-such-data")
        else:
            download_from_kaggle(
                network=NETWORK,
                competition="dogs-vs-cats",
                dataset=None,
                file_name="test1.zip",
                dest=out / "x.zip",
                endpoint=kaggle.url,
            )
    name = "someone/no-such-data" if what == "dataset" else "dogs-vs-cats/test1.zip"
    assert str(error.value) == f"Kaggle has no {name} (HTTP 404): check dataset.kaggle in the config"
    assert list(out.iterdir()) == []


def test_a_long_multi_line_server_error_becomes_one_line_of_bounded_length(kaggle, credentials, tmp_path):
    kaggle.fail_status = 502
    kaggle.fail_message = "upstream\n  gateway\terror: " + "e" * 300
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, tmp_path / "train.zip")
    detail = ("upstream gateway error: " + "e" * 300)[:200]
    assert str(error.value) == f"Kaggle download of dogs-vs-cats/train.zip failed (HTTP 502: {detail}): rerun later"


def test_a_download_of_another_size_than_announced(kaggle, credentials, tmp_path):
    """A proxy compressing in transit: the client's size check fails, nothing lands at dest."""
    kaggle.gzip_in_transit = True
    out = tmp_path / "out"
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, out / "train.zip")
    sent = len(gzip.compress(TRAIN_ZIP))
    assert str(error.value) == (
        f"downloading dogs-vs-cats/train.zip failed (Downloaded file size ({len(TRAIN_ZIP)}) does not match "
        f"expected size ({sent})): check dataset.kaggle in the config, then rerun"
    )
    assert list(out.iterdir()) == []


def test_an_endpoint_nobody_listens_on(credentials, tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(KaggleDownloadError) as error:
        download_from_kaggle(
            network=NETWORK,
            competition="dogs-vs-cats",
            dataset=None,
            file_name="train.zip",
            dest=tmp_path / "t.zip",
            endpoint=endpoint,
        )
    assert str(error.value) == (
        f"could not download dogs-vs-cats/train.zip from {endpoint} (ConnectionError): "
        "check the network connection and dataset.kaggle.endpoint, then rerun"
    )


# ---- what lands at dest --------------------------------------------------------------------


def test_endpoint_with_a_trailing_slash(kaggle, credentials, tmp_path):
    dest = download_from_kaggle(
        network=NETWORK,
        competition="dogs-vs-cats",
        dataset=None,
        file_name="train.zip",
        dest=tmp_path / "t.zip",
        endpoint=kaggle.url + "/",
    )
    assert dest.read_bytes() == TRAIN_ZIP
    assert kaggle.requests[0].path == fake_kaggle_server.COMPETITION_PATH


def test_a_download_is_logged_and_prints_nothing(kaggle, credentials, tmp_path, caplog, capsys):
    """The log names what came from where; no progress bars or client chatter on the console."""
    caplog.set_level(logging.INFO, logger=kaggle_download.__name__)
    dest = tmp_path / "train.zip"
    competition(kaggle, dest)
    assert [r.getMessage() for r in caplog.records if r.name == kaggle_download.__name__] == [
        f"downloading dogs-vs-cats/train.zip from Kaggle ({kaggle.url}) into {dest}",
        f"saved {dest}",
    ]
    assert capsys.readouterr() == ("", "")


def test_a_download_from_kaggle_itself_is_logged_without_an_endpoint(credentials, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=kaggle_download.__name__)
    with pytest.raises(KaggleDownloadError):
        download_from_kaggle(network=NETWORK, competition=None, dataset="o/d", file_name=None, dest=tmp_path / "d.zip")
    assert f"downloading o/d from Kaggle into {tmp_path / 'd.zip'}" in caplog.messages


def test_a_kept_or_replaced_archive_is_logged(kaggle, credentials, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=kaggle_download.__name__)
    dest = tmp_path / "train.zip"
    dest.write_bytes(b"half an archive")
    competition(kaggle, dest)
    competition(kaggle, dest)
    assert caplog.messages[0] == f"{dest} is incomplete or corrupt, downloading dogs-vs-cats/train.zip again"
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.messages[-1] == f"{dest} is a complete archive, not downloading dogs-vs-cats/train.zip again"
    assert len(kaggle.requests) == 2  # the second call downloads nothing


def corrupt_member(archive: bytes, member: bytes) -> bytes:
    """The archive with one byte of a stored member changed: it opens, but the CRC check fails."""
    at = archive.index(member)
    return archive[:at] + bytes([member[0] ^ 1]) + archive[at + 1 :]


def test_an_archive_with_a_corrupt_member_is_downloaded_again(kaggle, credentials, tmp_path):
    dest = tmp_path / "train.zip"
    dest.write_bytes(corrupt_member(TRAIN_ZIP, b"dog" * 100))
    assert zipfile.ZipFile(dest).namelist() == ["train/cat.0.jpg", "train/dog.0.jpg"]  # it opens
    competition(kaggle, dest)
    assert dest.read_bytes() == TRAIN_ZIP


def test_a_corrupt_download_never_lands_at_dest(kaggle, credentials, tmp_path):
    kaggle.files["dogs-vs-cats/train.zip"] = ("train.zip", corrupt_member(TRAIN_ZIP, b"dog" * 100))
    out = tmp_path / "out"
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, out / "train.zip")
    assert str(error.value) == (
        "Kaggle sent train.zip for dogs-vs-cats/train.zip but it is not a complete zip archive: rerun the download"
    )
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "outer_members",
    [
        {"train.zip": TRAIN_ZIP, "README.txt": b"two members"},
        {"other.zip": TRAIN_ZIP},
    ],
    ids=["two-members", "another-name"],
)
def test_a_zip_in_a_zip_is_unwrapped_only_when_it_is_the_requested_file_alone(
    kaggle, credentials, tmp_path, outer_members
):
    wrapped = make_zip(outer_members)
    kaggle.files["dogs-vs-cats/train.zip"] = ("train.zip.zip", wrapped)
    assert competition(kaggle, tmp_path / "train.zip").read_bytes() == wrapped


def test_a_file_zipped_by_the_server_is_kept_as_that_zip(kaggle, credentials, tmp_path):
    """sampleSubmission.csv arrives as sampleSubmission.csv.zip: that zip is the archive."""
    wrapped = make_zip({"sampleSubmission.csv": b"id,label\n1,0\n"})
    kaggle.files["dogs-vs-cats/sampleSubmission.csv"] = ("sampleSubmission.csv.zip", wrapped)
    dest = download_from_kaggle(
        network=NETWORK,
        competition="dogs-vs-cats",
        dataset=None,
        file_name="sampleSubmission.csv",
        dest=tmp_path / "submission.zip",
        endpoint=kaggle.url,
    )
    assert dest.read_bytes() == wrapped


def test_a_download_in_progress_is_a_hidden_part_folder_beside_dest(kaggle, credentials, tmp_path):
    """Nothing is at dest until the archive is complete: the client writes into a hidden .part folder
    in dest's folder (the same file system, so the final move is atomic), removed afterwards."""
    dest = tmp_path / "resources" / "train.zip"
    during = []
    kaggle.on_download = lambda: during.extend((p.name, p.is_dir()) for p in dest.parent.iterdir())
    competition(kaggle, dest)
    [(name, is_dir)] = during
    assert re.fullmatch(r"\.train\.zip\.\w+\.part", name) and is_dir
    assert list(dest.parent.iterdir()) == [dest]


def test_a_client_that_writes_more_than_the_archive(kaggle, credentials, tmp_path, monkeypatch):
    from kaggle.api.kaggle_api_extended import KaggleApi

    def two_files(self, competition, file_name, path, **options):
        for name in ("train.zip", "train (1).zip"):
            (Path(path) / name).write_bytes(TRAIN_ZIP)

    monkeypatch.setattr(KaggleApi, "competition_download_file", two_files)
    out = tmp_path / "out"
    with pytest.raises(KaggleDownloadError) as error:
        competition(kaggle, out / "train.zip")
    assert str(error.value) == (
        "expected one downloaded file, the Kaggle client wrote ['train (1).zip', 'train.zip']: rerun the download"
    )
    assert list(out.iterdir()) == []


def test_a_zipped_zip_in_a_folder_of_the_outer_zip_is_unwrapped(kaggle, credentials, tmp_path):
    kaggle.files["dogs-vs-cats/train.zip"] = ("train.zip.zip", make_zip({"dogs-vs-cats/train.zip": TRAIN_ZIP}))
    assert competition(kaggle, tmp_path / "train.zip").read_bytes() == TRAIN_ZIP


# ---- the mask in detail --------------------------------------------------------------------


def test_mask_leaves_no_remnant_of_a_longer_form():
    """A padded base64 contains its unpadded form, user:key contains key: the longer goes first."""
    forms = credential_forms(ODD_USER, ODD_KEY)
    mask = CredentialMask([ODD_KEY], username=ODD_USER)
    assert mask(f"echo: {forms['basic']}.") == "echo: ***."
    assert mask(f"credentials received: {ODD_USER}:{ODD_KEY}") == "credentials received: ***"


@pytest.mark.parametrize(
    "secret, encoded",
    [
        ("pass word+1234", "pass+word%2B1234"),  # as a form field
        ("pass word/1234", "pass%20word%2F1234"),  # percent-encoded, slash included
        ("s3cr3t?>?>key", "czNjcjN0Pz4/PmtleQ"),  # base64, unpadded
        ("s3cr3t?>?>key", "czNjcjN0Pz4_PmtleQ"),  # URL-safe base64, unpadded, as in a JWT
    ],
    ids=["form-encoded", "percent-encoded", "base64-unpadded", "urlsafe-base64"],
)
def test_mask_hides_form_and_urlsafe_encodings(secret, encoded):
    assert CredentialMask([secret])(f"sent [{encoded}]") == "sent [***]"


def test_mask_hides_a_username_key_pair_given_with_the_secret():
    mask = CredentialMask()
    mask.add(ODD_KEY, username=ODD_USER)
    basic = credential_forms(ODD_USER, ODD_KEY)["basic"]
    assert mask(f"[{ODD_USER}:{ODD_KEY}] [{basic}]") == "[***] [***]"


def test_mask_ignores_secrets_too_short_to_be_a_key():
    """Three characters would garble every message; four are masked."""
    assert CredentialMask(["abc", "", None])("abcdef abc") == "abcdef abc"
    assert CredentialMask(["abcd"])("abcdef abcd") == "***ef ***"


def test_mask_from_environment_knows_the_key_and_its_user(monkeypatch):
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", ODD_USER)
    monkeypatch.setenv("KAGGLE_KEY", ODD_KEY)
    forms = credential_forms(ODD_USER, ODD_KEY)
    text = f"[{forms['basic']}] [{forms['user:key']}] [{forms['urlencoded']}]"
    assert CredentialMask.from_environment()(text) == "[***] [***] [***]"


def test_mask_from_environment_knows_the_api_token(monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    assert CredentialMask.from_environment()(f"[{TOKEN}]") == "[***]"


def test_mask_applied_survives_a_bad_log_call_and_keeps_stacks(caplog):
    """A client's broken format string does not raise inside the download; a stack trace stays in the log."""
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("kaggle.test")
    with CredentialMask([ODD_KEY]).applied():
        logger.warning("size %d of %s", ODD_KEY)
        logger.warning("here", stack_info=True)
    bad, stacked = caplog.records
    assert bad.getMessage() == "size %d of %s ('***',)"
    assert stacked.stack_info.startswith("Stack (most recent call last):")
    assert "test_mask_applied_survives_a_bad_log_call_and_keeps_stacks" in stacked.stack_info


def test_a_verbose_client_prints_no_requests(kaggle, credentials, tmp_path, monkeypatch, capsys):
    """VERBOSE=1 when kaggle is imported makes the client dump every request; the download stays quiet."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "args", ["--verbose", "-v"])
    competition(kaggle, tmp_path / "train.zip")
    assert capsys.readouterr() == ("", "")


# ---- stalls, retries, leftovers ------------------------------------------------------------


def timed_download(kaggle, dest, network):
    """The download in a thread, so that a client without timeouts fails the test instead of hanging it."""
    outcome = {}

    def run():
        try:
            outcome["result"] = download_from_kaggle(
                network=network,
                competition="dogs-vs-cats",
                dataset=None,
                file_name="train.zip",
                dest=dest,
                endpoint=kaggle.url,
            )
        except Exception as error:  # noqa: BLE001 -- handed to the test
            outcome["error"] = error

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the download still hangs after 30 s"
    return outcome, time.monotonic() - started


@pytest.mark.parametrize("stall", ["body", "api"])
def test_a_stalled_server_is_a_timeout_retried_then_one_line_within_the_documented_time(
    kaggle, credentials, tmp_path, monkeypatch, caplog, stall
):
    """A server that sends the headers and 1,000 bytes then nothing, or never answers the API call: each try
    ends read_timeout after the last byte, retries follow after RETRY_WAIT_SECONDS doubled, then one line."""
    if stall == "body":
        kaggle.files["dogs-vs-cats/train.zip"] = ("train.zip", make_zip({"train/cat.0.jpg": os.urandom(5000)}))
        kaggle.stall_body_after = 1000
    else:
        kaggle.stall_api = True
    monkeypatch.setattr(kaggle_download, "RETRY_WAIT_SECONDS", 0.2)
    network = {"connect_timeout": 1, "read_timeout": 0.5, "retries": 2}
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger=kaggle_download.__name__)
    outcome, seconds = timed_download(kaggle, out / "train.zip", network)
    # The module's documented bound: (retries + 1) x read_timeout, plus the waits 0.2 + 0.4 s; a second of slack.
    assert 3 * 0.5 + 0.6 <= seconds < 3 * 0.5 + 0.6 + 1.0
    assert str(outcome["error"]) == (
        f"could not download dogs-vs-cats/train.zip from {kaggle.url} (no data for 0.5 s, 3 tries): check the "
        "network connection and dataset.kaggle.endpoint, or raise dataset.kaggle.network's timeouts, then rerun"
    )
    api_calls = [r for r in kaggle.requests if r.method == "POST"]
    assert len(api_calls) == 3
    retried = [m for m in caplog.messages if "trying again" in m]
    assert retried == [
        "downloading dogs-vs-cats/train.zip: try 1 of 3 failed (no data for 0.5 s); trying again in 0.2 s",
        "downloading dogs-vs-cats/train.zip: try 2 of 3 failed (no data for 0.5 s); trying again in 0.4 s",
    ]
    assert list(out.iterdir()) == []  # no .part folder, nothing at dest


def test_a_passing_outage_is_retried_and_the_download_completes(kaggle, credentials, tmp_path, monkeypatch):
    kaggle.fail_status, kaggle.fail_count = 503, 1
    monkeypatch.setattr(kaggle_download, "RETRY_WAIT_SECONDS", 0.01)
    dest = tmp_path / "train.zip"
    outcome, _ = timed_download(kaggle, dest, {**NETWORK, "retries": 1})
    assert outcome == {"result": dest} and dest.read_bytes() == TRAIN_ZIP
    assert [r.method for r in kaggle.requests] == ["POST", "POST", "GET"]


def test_an_error_no_retry_can_mend_is_not_retried(kaggle, credentials, tmp_path, monkeypatch):
    kaggle.rules_not_accepted.add("dogs-vs-cats")
    monkeypatch.setattr(kaggle_download, "RETRY_WAIT_SECONDS", 5)  # a retry would show in the time
    outcome, seconds = timed_download(kaggle, tmp_path / "train.zip", {**NETWORK, "retries": 3})
    assert "HTTP 403" in str(outcome["error"]) and seconds < 4
    assert len(kaggle.requests) == 1


def test_part_folders_left_by_a_killed_download_are_removed(kaggle, credentials, tmp_path):
    dest = tmp_path / "resources" / "train.zip"
    stale = [dest.parent / ".train.zip.k1ll3d.part", dest.parent / ".train.zip.0ther.part"]
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / "train.zip").write_bytes(TRAIN_ZIP[:100])
    (dest.parent / ".other.zip.x.part").mkdir()  # another download's: not touched
    competition(kaggle, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == [".other.zip.x.part", "train.zip"]
    stale[0].mkdir()  # also when the archive is complete already and nothing is downloaded
    competition(kaggle, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == [".other.zip.x.part", "train.zip"]


def test_an_archive_larger_than_the_free_space_is_one_disk_full_line(kaggle, credentials, tmp_path, monkeypatch):
    from cnn_study import files

    monkeypatch.setattr(files, "free_bytes", lambda path: 10)
    out = tmp_path / "out"
    with pytest.raises(files.DiskFullError) as error:
        competition(kaggle, out / "train.zip")
    assert str(error.value) == (
        f"{out / 'train.zip'}: disk full, {len(TRAIN_ZIP)} bytes needed and 10 bytes free on its file system; "
        "free space there (or run the workflow on a larger disk), then rerun"
    )
    assert list(out.iterdir()) == []


def test_the_client_gets_the_timeouts_and_no_retries_of_its_own(kaggle, credentials, tmp_path, monkeypatch):
    """The client's download_file would retry 5 times, waiting 300 s a read: it is called with neither."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    seen = {}
    real = KaggleApi.download_file

    def spy(self, response, outfile, http_client, quiet=True, resume=False, **options):
        seen.update(options)
        return real(self, response, outfile, http_client, quiet, resume, **options)

    monkeypatch.setattr(KaggleApi, "download_file", spy)
    competition(kaggle, tmp_path / "train.zip")
    assert seen == {"max_retries": 0, "timeout": (5.0, 5.0)}


GLUE_RUN = """
import runpy, sys, types
from cnn_study import kaggle_download
kaggle_download.RETRY_WAIT_SECONDS = 0.1
log, dest, url, glue = sys.argv[1:5]
params = dict(competition="dogs-vs-cats", dataset=None, file_name="train.zip", endpoint=url,
              network={"connect_timeout": 1, "read_timeout": 0.5, "retries": 1})
snakemake = types.SimpleNamespace(log=[log], output=types.SimpleNamespace(archive=dest),
                                  params=types.SimpleNamespace(**params))
runpy.run_path(glue, init_globals={"snakemake": snakemake})
"""


def test_the_rule_passes_dataset_kaggle_network_and_a_stall_ends_in_one_console_line(kaggle, tmp_path):
    """download_kaggle.py, as the rule runs it, with a server that never answers: one line on the console."""
    kaggle.stall_api = True
    log_file, dest = tmp_path / "download_kaggle.log", tmp_path / "resources" / "train.zip"
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAGGLE_")}
    env.update(KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY, HOME=str(tmp_path), PYTHONPATH=str(ROOT / "workflow_scripts"))
    glue = str(ROOT / "workflow_scripts" / "download_kaggle.py")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", GLUE_RUN, str(log_file), str(dest), kaggle.url, glue],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert time.monotonic() - started < 2 * 0.5 + 0.1 + 10  # the stall's bound, and the start of Python
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: could not download dogs-vs-cats/train.zip from {kaggle.url} (no data for 0.5 s, 2 tries): check "
        "the network connection and dataset.kaggle.endpoint, or raise dataset.kaggle.network's timeouts, then "
        f"rerun (log: {log_file})\n"
    )
    assert len(kaggle.requests) == 2 and list(dest.parent.iterdir()) == []


def test_the_network_defaults_are_the_schemas_and_config_yaml_repeats_them():
    import yaml

    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    kaggle_schema = schema["properties"]["dataset"]["properties"]["kaggle"]["properties"]["network"]
    defaults = {key: value["default"] for key, value in kaggle_schema["properties"].items()}
    assert defaults == {"connect_timeout": 10, "read_timeout": 60, "retries": 3}
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config["dataset"]["kaggle"]["network"] == defaults
    from snakemake.utils import validate

    del config["dataset"]["kaggle"]["network"]
    validate(config, str(ROOT / "schemas" / "config.schema.yaml"))
    assert config["dataset"]["kaggle"]["network"] == defaults
    assert 'network=config["dataset"]["kaggle"]["network"]' in (ROOT / "rules" / "download.smk").read_text()


def test_a_half_written_archive_is_named_with_the_command_that_puts_it_aside(tmp_path):
    path = tmp_path / "train.zip"
    assert kaggle_download.damaged_archive_message(path) is None  # not there: downloaded as usual
    path.write_bytes(TRAIN_ZIP)
    assert kaggle_download.damaged_archive_message(path) is None
    path.write_bytes(TRAIN_ZIP[: len(TRAIN_ZIP) // 2])
    assert kaggle_download.damaged_archive_message(path) == (
        f"{path}: incomplete or damaged zip archive (no central directory: a copy or download cut short); "
        f"move it aside with `mv {path} {path}.damaged` and rerun: the workflow downloads it again"
    )


@pytest.mark.workflow
def test_a_half_written_archive_in_resources_stops_the_workflow_and_the_named_command_fixes_it(tmp_path):
    """Snakemake would keep the file (the rule's output exists) and every job reading it would fail; the
    workflow stops before any job, and after the command it names, plans the download again."""
    from helpers import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "wf")
    archive = workdir / "resources" / "kaggle" / "dogs-vs-cats" / "train.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(TRAIN_ZIP[: len(TRAIN_ZIP) // 2])
    result = snakemake(workdir, "-n", "--quiet", "rules", check=False)
    assert result.returncode != 0
    [line] = [line for line in (result.stdout + result.stderr).splitlines() if "damaged zip archive" in line]
    command = re.search(r"`(mv [^`]+)`", line).group(1)
    assert command == "mv resources/kaggle/dogs-vs-cats/train.zip resources/kaggle/dogs-vs-cats/train.zip.damaged"
    subprocess.run(command.split(), cwd=workdir, check=True)
    assert "download_kaggle" in snakemake(workdir, "-n", "--quiet", "rules").stdout


def test_a_full_disk_before_the_download_starts_is_still_one_disk_full_line(credentials, tmp_path, monkeypatch):
    """The client may write its token files while it authenticates: a full disk there names the archive too."""
    import errno

    from cnn_study import files

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kaggle_download, "_authenticated_api", full)
    monkeypatch.setattr(files, "free_bytes", lambda path: 0)
    with pytest.raises(files.DiskFullError) as error:
        download_from_kaggle(
            network=NETWORK, competition="dogs-vs-cats", dataset=None, file_name="train.zip", dest=tmp_path / "t.zip"
        )
    assert str(error.value).startswith(f"{tmp_path / 't.zip'}: disk full, 0 bytes free on its file system; ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # the fixture's; no .part folder
