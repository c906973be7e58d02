"""Download the study's raw archive from Kaggle with the official client (kaggle==2.2.5).

The client is imported only inside `download_from_kaggle`: `import kaggle` authenticates at import
time, which must not happen when the workflow only parses its rules or uses another data source.

Network limits (``dataset.kaggle.network``): the client sets no timeout on its own requests (the API
call, the redirect to storage and the body it streams), so every request of its session gets the
workflow's connect and read timeouts (a read timeout is the longest wait for the next bytes: a
stalled server). The client's own retry loop (5 tries, 300 s each) is switched off; instead a failed
try that may pass later (a timeout, a dropped connection, HTTP 429 or 5xx) is retried ``retries``
times after 2, 4, 8 ... s (RETRY_WAIT_SECONDS doubled), and then the download stops with one line. A
stall therefore ends after about (retries + 1) x read_timeout plus those waits. Partial files live
in a hidden ``.part`` folder beside the archive, removed after every try and, when an earlier run
was killed, at the start of the next.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus, urlparse

from cnn_study.files import DiskFullError, check_free_space, disk_full_error

log = logging.getLogger(__name__)

SETTINGS_URL = "https://www.kaggle.com/settings"
# Endpoints that mean "the real Kaggle": the client's own default is used for them.
PRODUCTION_HOSTS = {"kaggle.com", "www.kaggle.com", "api.kaggle.com"}
# The wait before the first retry of a failed try; it doubles for each further one.
RETRY_WAIT_SECONDS = 2.0
# HTTP answers that may pass later: rate limited, and the server's or a gateway's own failures.
RETRY_STATUSES = {429, 500, 502, 503, 504}


class KaggleDownloadError(RuntimeError):
    """A download failed for a reason the user can fix; the message is one line saying how."""


def download_from_kaggle(
    *,
    competition: str | None,
    dataset: str | None,
    file_name: str | None,
    dest: Path,
    network: dict,
    endpoint: str | None = None,
) -> Path:
    """Download a competition file (e.g. competition='dogs-vs-cats', file_name='train.zip') or a whole
    Kaggle dataset (dataset='owner/name', file_name None) so that the final archive lands at `dest`
    (a .zip path). Returns dest. ``network`` is dataset.kaggle.network: connect_timeout and
    read_timeout in seconds, retries (see the module's docstring).

    No credential leaves this function in any form: what the client logs or prints meanwhile and
    every error message pass through :class:`CredentialMask`, whatever a server echoes back."""
    _check_arguments(competition, dataset, file_name)
    dest = Path(dest)
    what = f"{competition}/{file_name}" if competition else dataset
    _remove_stale_part_folders(dest)
    if _already_downloaded(dest, what):
        return dest
    config_file = _require_credentials()
    mask = CredentialMask.from_environment()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A scratch folder next to dest (same file system) so the final os.replace is atomic and an
    # interrupted download never sits at `dest`.
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    tries, api = 1, None
    with mask.applied():
        try:
            api = _authenticated_api(endpoint, config_file, network)
            mask.add_api_credentials(api)
            log.info("downloading %s from Kaggle%s into %s", what, f" ({endpoint})" if endpoint else "", dest)
            while True:
                try:
                    archive = _fetch(api, competition, dataset, file_name, scratch)
                    break
                except Exception as error:
                    if tries > network["retries"] or not _may_pass_later(error):
                        raise
                    wait = RETRY_WAIT_SECONDS * 2 ** (tries - 1)
                    log.warning(
                        "downloading %s: try %d of %d failed (%s); trying again in %g s",
                        what,
                        tries,
                        network["retries"] + 1,
                        _error_kind(error, network),
                        wait,
                    )
                    _empty(scratch)
                    time.sleep(wait)
                    tries += 1
            if not is_complete_zip(archive):
                raise KaggleDownloadError(
                    f"Kaggle sent {archive.name} for {what} but it is not a complete zip archive: rerun the download"
                )
            os.replace(archive, dest)
        except KaggleDownloadError as error:
            raise KaggleDownloadError(mask(str(error))) from None
        except Exception as error:  # noqa: BLE001 -- whatever it says, it says it masked
            if disk_full_error(error) is not None:
                raise DiskFullError(dest, getattr(api, "expected_bytes", None)) from None
            message = _failure_message(error, mask, what, competition, dataset, endpoint, network, tries)
            raise KaggleDownloadError(message) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    log.info("saved %s", dest)
    return dest


def _remove_stale_part_folders(dest: Path) -> None:
    """Remove the scratch folders of downloads that were killed (SIGKILL, a crash): no rerun would otherwise."""
    if not dest.parent.is_dir():
        return
    for folder in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        if folder.is_dir():
            log.info("removing %s, left by an interrupted download", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _empty(folder: Path) -> None:
    """Remove what a failed try left in the scratch folder, so the next try starts from nothing."""
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _may_pass_later(error: Exception) -> bool:
    """A failure worth another try: a timeout, a dropped connection, HTTP 429 or a 5xx."""
    import requests  # the client's own dependency

    if isinstance(error, requests.HTTPError):
        return error.response is not None and error.response.status_code in RETRY_STATUSES
    return isinstance(error, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError))


def _timeout_kind(error: BaseException) -> str | None:
    """ "connect" or "read" when a timeout is the error, its first argument (requests wraps urllib3's errors
    so) or its cause; else None."""
    import requests
    import urllib3

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, urllib3.exceptions.NewConnectionError):  # refused or unresolved, not slow (as requests)
            return None
        if isinstance(error, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
            return "connect"
        if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
            return "read"
        inner = error.args[0] if error.args and isinstance(error.args[0], BaseException) else None
        error = inner or error.__cause__ or error.__context__
    return None


def _error_kind(error: Exception, network: dict) -> str:
    """What went wrong, in a few words: which timeout ran out, else the HTTP status or the error's type."""
    kind = _timeout_kind(error)
    if kind == "connect":
        return f"no connection within {network['connect_timeout']:g} s"
    if kind == "read":
        return f"no data for {network['read_timeout']:g} s"
    response = getattr(error, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(error).__name__


def _check_arguments(competition: str | None, dataset: str | None, file_name: str | None) -> None:
    if bool(competition) == bool(dataset):
        raise ValueError("give exactly one of competition or dataset")
    if competition and not file_name:
        raise ValueError("a competition download needs file_name (e.g. train.zip)")
    if dataset and file_name:
        raise ValueError("a dataset is downloaded whole: leave file_name empty")


def _already_downloaded(dest: Path, what: str) -> bool:
    """True when dest is a complete archive already; an incomplete one is downloaded again."""
    if not dest.exists():
        return False
    if is_complete_zip(dest):
        log.info("%s is a complete archive, not downloading %s again", dest, what)
        return True
    log.warning("%s is incomplete or corrupt, downloading %s again", dest, what)
    return False


def _require_credentials() -> Path:
    """The client's kaggle.json path, after checking that some credential source exists."""
    config_file = _config_file()
    if not _credentials_available(config_file):
        raise KaggleDownloadError(
            "no Kaggle credentials found: create an API token at " + SETTINGS_URL + " and either export "
            "KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN) or save kaggle.json as "
            "~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json) with chmod 600"
        )
    return config_file


def _authenticated_api(endpoint: str | None, config_file: Path, network: dict):
    api = _make_api(endpoint, config_file, network)
    try:
        # authenticate() prints a multi-line help and calls exit(1) when it finds nothing usable.
        with contextlib.redirect_stdout(io.StringIO()):
            api.authenticate()
    except SystemExit:
        raise KaggleDownloadError(
            "the Kaggle client found no usable credentials: create an API token at "
            + SETTINGS_URL
            + " and put it in KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json"
        ) from None
    return api


def _fetch(api, competition: str | None, dataset: str | None, file_name: str | None, scratch: Path) -> Path:
    """Have the client download into the empty scratch folder; the archive it wrote."""
    if competition:
        # force: the scratch folder is empty anyway, and no resume across runs is wanted.
        api.competition_download_file(competition, file_name, path=str(scratch), force=True, quiet=True)
    else:
        # unzip=False: the workflow keeps the archive; the client would otherwise unpack it.
        api.dataset_download_files(dataset, path=str(scratch), force=True, quiet=True, unzip=False)
    return _archive_in(scratch, file_name)


def _failure_message(
    error: Exception, mask: CredentialMask, what: str, competition, dataset, endpoint, network: dict, tries: int
) -> str:
    """One line saying what went wrong and what to do; the error's own text is masked before it is cut short,
    so that no half of a secret escapes the mask."""
    import requests  # the client's own dependency: its HTTP errors are requests' errors

    detail = mask(" ".join(str(error).split()))[:200]
    after = f", {tries} tries" if tries > 1 else ""
    if isinstance(error, requests.HTTPError):
        status = error.response.status_code if error.response is not None else None
        return _http_message(status, what, competition, dataset, detail, after)
    if _timeout_kind(error):
        return (
            f"could not download {what} from {endpoint or 'Kaggle'} ({_error_kind(error, network)}{after}): "
            "check the network connection and dataset.kaggle.endpoint, or raise dataset.kaggle.network's "
            "timeouts, then rerun"
        )
    if isinstance(error, requests.RequestException):
        return (
            f"could not download {what} from {endpoint or 'Kaggle'} ({type(error).__name__}{after}): "
            "check the network connection and dataset.kaggle.endpoint, then rerun"
        )
    if isinstance(error, ValueError):  # e.g. the client's check that the size matches Content-Length
        return f"downloading {what} failed ({detail}): check dataset.kaggle in the config, then rerun"
    # Not expected: the traceback goes to the log (masked, as every record inside mask.applied()).
    log.error("unexpected failure downloading %s: %s", what, "".join(traceback.format_exception(error)))
    return f"downloading {what} failed unexpectedly ({type(error).__name__}: {detail}); see the log"


def damaged_archive_message(path: str | Path) -> str | None:
    """The one-line refusal of a file at the download's place that is not a zip (no central directory: a copy or
    download cut short), else None. Snakemake never runs download_kaggle again while its output exists, so the
    workflow stops before any job and says which command puts the file aside; the next run downloads it."""
    path = Path(path)
    if not path.is_file() or zipfile.is_zipfile(path):
        return None
    return (
        f"{path}: incomplete or damaged zip archive (no central directory: a copy or download cut short); "
        f"move it aside with `mv {path} {path}.damaged` and rerun: the workflow downloads it again"
    )


def is_complete_zip(path: Path) -> bool:
    """True when `path` is a zip whose every member reads back with a matching CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, EOFError, zipfile.BadZipFile):
        return False


def _config_file() -> Path:
    """Where the client looks for kaggle.json, evaluated now (KaggleApi evaluates it once, at import)."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    legacy = Path.home() / ".kaggle"
    if legacy.exists():
        return legacy / "kaggle.json"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle" / "kaggle.json"


def _credentials_available(config_file: Path) -> bool:
    """Any credential source the client accepts; checked before `import kaggle` so the import is cheap."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    token_files = ["access_token", "access_token.txt", "credentials.json"]  # token and `kaggle auth login`
    return config_file.is_file() or any((Path.home() / ".kaggle" / name).is_file() for name in token_files)


def _timeout_adapter(timeout: tuple[float, float]):
    """A requests adapter that gives every request sent without a timeout (the SDK sends all without) this one:
    requests has no session-wide timeout setting."""
    from requests.adapters import HTTPAdapter

    default = timeout

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, timeout=None, **kwargs):
            return super().send(request, timeout=default if timeout is None else timeout, **kwargs)

    return TimeoutAdapter()


def _make_api(endpoint: str | None, config_file: Path, network: dict):
    """A KaggleApi whose SDK client talks to `endpoint` (None or kaggle.com: the client's default), with the
    network's timeouts on every request and without the client's own retries."""
    from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk import KaggleEnv

    custom = endpoint and urlparse(endpoint).hostname not in PRODUCTION_HOSTS
    timeout = (float(network["connect_timeout"]), float(network["read_timeout"]))

    class _Api(KaggleApi):
        expected_bytes: int | None = None  # the archive's Content-Length, for a disk-full message

        def download_file(self, response, outfile, http_client, quiet=True, resume=False, **options):
            # The client retries 5 times itself, each try waiting up to 300 s for a read; download_from_kaggle
            # retries the whole download instead, within dataset.kaggle.network.
            length = response.headers.get("Content-Length")
            self.expected_bytes = int(length) if length and length.isdigit() else None
            if self.expected_bytes:
                check_free_space(outfile, self.expected_bytes)
            options.update(max_retries=0, timeout=timeout)
            return super().download_file(response, outfile, http_client, quiet, resume, **options)

        def build_kaggle_client(self):
            client = super().build_kaggle_client()
            http = client.http_client()
            if custom:
                # kagglesdk only knows fixed endpoints (KaggleEnv, picked by KAGGLE_API_ENVIRONMENT:
                # PROD, LOCALHOST = http://localhost, ...; the kaggle CLI passes PROD or LOCAL
                # explicitly) and has no variable for a URL or port. The hook is the HTTP client's
                # `_endpoint`, which kaggle_api_extended itself reads; a non-PROD env makes the SDK
                # send requests to <endpoint>/api/v1/<Service>/<Method>, the layout of www.kaggle.com.
                http = client.http_client()
                http._env, http._endpoint = KaggleEnv.LOCAL, endpoint.rstrip("/")
            http._init_session()  # what entering the client does first; then its session gets the timeouts
            for prefix in ("http://", "https://"):
                http._session.mount(prefix, _timeout_adapter(timeout))
            return client

    api = _Api()
    # Never verbose (VERBOSE=1 at import adds it): the SDK then prints the Authorization header.
    api.args = [arg for arg in KaggleApi.args if arg not in ("--verbose", "-v")]
    api.config = str(config_file)  # where the client reads kaggle.json
    return api


def _archive_in(scratch: Path, file_name: str | None) -> Path:
    """The archive the client wrote into `scratch`, unwrapped if the server zipped a zip again."""
    files = [p for p in scratch.rglob("*") if p.is_file() and not p.name.endswith(".kaggle-partial")]
    if len(files) != 1:
        raise KaggleDownloadError(
            f"expected one downloaded file, the Kaggle client wrote {sorted(p.name for p in files)}: rerun the download"
        )
    got = files[0]
    requested = Path(file_name).name if file_name else None
    # The server compresses big files on the fly (foo.csv arrives as foo.csv.zip); a requested
    # train.zip that arrives as train.zip.zip holds train.zip as its only member.
    if requested and requested.endswith(".zip") and got.name == requested + ".zip":
        with zipfile.ZipFile(got) as outer:
            names = outer.namelist()
            if len(names) == 1 and Path(names[0]).name == requested:
                with outer.open(names[0]) as src, open(scratch / ".unwrapped.zip", "wb") as out:
                    shutil.copyfileobj(src, out)
                return scratch / ".unwrapped.zip"
    return got


def _http_message(status, what, competition, dataset, detail: str, after: str = "") -> str:
    if status == 401:
        return (
            f"Kaggle rejected the credentials (HTTP 401) for {what}: create a new API token at "
            f"{SETTINGS_URL} and update KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json"
        )
    if status == 403 and competition:
        return (
            f"Kaggle refused {what} (HTTP 403): accept the competition rules at "
            f"https://www.kaggle.com/competitions/{competition}/rules while logged in, then rerun"
        )
    if status == 403:
        return (
            f"Kaggle refused {what} (HTTP 403): check that your account can open "
            f"https://www.kaggle.com/datasets/{dataset}"
        )
    if status == 404:
        return f"Kaggle has no {what} (HTTP 404): check dataset.kaggle in the config"
    return f"Kaggle download of {what} failed (HTTP {status}{after}: {detail}): rerun later"


class CredentialMask:
    """Replaces every form of a Kaggle credential in text with ***.

    Forms: any ``Authorization`` header value and ``Basic``/``Bearer`` credentials, ``key=...``-style
    fields (JSON, query strings, env assignments), and each known secret (the key, tokens) raw, URL-encoded
    and base64-encoded (alone and as ``user:key``, as HTTP Basic sends it). Calling it masks a string;
    ``applied()`` masks every log record and print while the client runs.
    """

    # Group 1 is kept, the rest of the match is masked.
    _PATTERNS = (
        # Authorization: Basic abc= / "Authorization": "Bearer xyz" / authorization=...
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"',;}\r\n]+"),
        # Basic/Bearer and a value that looks like one (a digit or + / = _ in it: not "Basic authentication")
        re.compile(r"(?i)(\b(?:basic|bearer)(?:\s+|%20|\+))(?=[A-Za-z.~%-]*[0-9+/=_])[A-Za-z0-9+/=._~%-]{6,}"),
        # "key": "...", token=..., KAGGLE_KEY=...
        re.compile(
            r"(?i)(\b(?:kaggle_)?(?:key|api_key|token|api_token|access_token|password|secret)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"
        ),
    )

    def __init__(self, secrets: Iterable[str | None] = (), username: str | None = None):
        self._forms: set[str] = set()
        self._username = username
        for secret in secrets:
            self.add(secret)

    @classmethod
    def from_environment(cls) -> CredentialMask:
        return cls(
            [os.environ.get("KAGGLE_KEY"), os.environ.get("KAGGLE_API_TOKEN")],
            username=os.environ.get("KAGGLE_USERNAME"),
        )

    def add(self, secret: str | None, username: str | None = None) -> None:
        """Mask this secret in every encoding the client may send it in."""
        if not secret or len(secret) < 4:
            return
        username = username or self._username
        plain = [secret] + ([f"{username}:{secret}"] if username else [])
        for text in plain:
            encoded = base64.b64encode(text.encode()).decode()
            self._forms.update(
                {
                    text,
                    quote(text, safe=""),
                    quote_plus(text),
                    encoded,
                    encoded.rstrip("="),
                    base64.urlsafe_b64encode(text.encode()).decode().rstrip("="),
                }
            )

    def add_api_credentials(self, api) -> None:
        """The secrets the client found (kaggle.json, token files), once it has authenticated."""
        values = api.config_values
        for name in ("key", "token", "api_token"):
            self.add(values.get(name), values.get("username"))

    def __call__(self, text: str) -> str:
        for form in sorted(self._forms, key=len, reverse=True):  # user:key before key
            text = text.replace(form, "***")
        for pattern in self._PATTERNS:
            text = pattern.sub(r"\g<1>***", text)
        return text

    @contextlib.contextmanager
    def applied(self):
        """Mask every log record created and everything printed to stdout/stderr inside the block."""
        make_record = logging.getLogRecordFactory()

        def masked_record(*args, **kwargs):
            record = make_record(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 -- a bad format string: keep its parts, masked
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = self(message), ()
            if record.exc_info:
                record.exc_text = self(logging.Formatter().formatException(record.exc_info))
            if record.stack_info:
                record.stack_info = self(record.stack_info)
            return record

        logging.setLogRecordFactory(masked_record)
        try:
            with (
                contextlib.redirect_stdout(_MaskedStream(sys.stdout, self)),
                contextlib.redirect_stderr(_MaskedStream(sys.stderr, self)),
            ):
                yield self
        finally:
            logging.setLogRecordFactory(make_record)


class _MaskedStream(io.TextIOBase):
    """A text stream that masks what it writes before passing it on."""

    def __init__(self, stream, mask: CredentialMask):
        self._stream, self._mask = stream, mask

    def write(self, text: str) -> int:
        self._stream.write(self._mask(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()
