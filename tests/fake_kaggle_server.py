"""A local stand-in for the Kaggle API, enough for the client's competition-file and dataset downloads.

What kaggle==2.2.5 / kagglesdk 0.1.38 send (with a non-PROD endpoint, see kaggle_download._make_api):

    POST /api/v1/competitions.CompetitionApiService/DownloadDataFile  {"competitionName", "fileName"}
    POST /api/v1/datasets.DatasetApiService/DownloadDataset           {"ownerSlug", "datasetSlug"}

both with HTTP Basic auth (username:key) or a Bearer token. A client with an access token
(KAGGLE_API_TOKEN, ~/.kaggle/access_token) first asks whose it is:

    POST /api/v1/security.OAuthService/IntrospectToken                {"token"} -> {"active", "username"}
 Kaggle answers with a 302 to a signed
storage URL; requests follows it with a GET and the client streams the body to a file named after
the URL's last path segment (dataset downloads are always saved as <dataset-slug>.zip). Errors come
back as JSON {"code": N, "message": ...}, which the SDK turns into requests.HTTPError.

A stalled server (``stall_api``: an API call never answered; ``stall_body_after``: a file's headers and
that many bytes, then nothing) holds the connection open until the test stops the server.

Like some real servers and proxies, it can echo the request back in its error messages (``echo``) and
fail every API call with a given status (``fail_status``): that is how a credential the client sent
comes back into the client's error text, and what kaggle_download's masking must catch.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

log = logging.getLogger("fake_kaggle_server")

COMPETITION_PATH = "/api/v1/competitions.CompetitionApiService/DownloadDataFile"
DATASET_PATH = "/api/v1/datasets.DatasetApiService/DownloadDataset"
INTROSPECT_PATH = "/api/v1/security.OAuthService/IntrospectToken"
# A stalled answer waits at most this long, so that no test can hang on it.
STALL_LIMIT_SECONDS = 60


@dataclass
class Request:
    method: str
    path: str
    body: dict
    authorized: bool


@dataclass
class FakeKaggle:
    username: str
    key: str
    # "competition/file" or "owner/slug" -> (name the storage URL ends with, bytes served)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    rules_not_accepted: set[str] = field(default_factory=set)
    # "owner/slug" of datasets this account may not open (private, or not shared with it): HTTP 403
    forbidden_datasets: set[str] = field(default_factory=set)
    # access token -> its user's name; a request with "Authorization: Bearer <token>" is that user's
    tokens: dict[str, str] = field(default_factory=dict)
    # Send files gzip-compressed in transit (Content-Encoding: gzip) with the compressed size as
    # Content-Length, as some proxies do: the client then sees more bytes than announced.
    gzip_in_transit: bool = False
    # Called before a file's bytes go out: a test's look at the client's side mid-download.
    on_download: Callable[[], None] | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    # Answer every API call with this HTTP status (an outage, a misconfigured proxy) instead of serving;
    # with fail_count, only that many (a passing outage), then serve.
    fail_status: int | None = None
    fail_count: int | None = None
    fail_message: str = "the server could not handle the request"
    # Echo in every error message: "headers" (all request headers, Authorization included), "decoded"
    # (the Basic credentials as user:key, or the Bearer token), "urlencoded" (the key percent-encoded,
    # as in a query string).
    echo: str | None = None
    # Stall: read an API call and never answer it; or send a file's headers (its full Content-Length) and
    # this many bytes of it, then nothing. Until `stop`, which sets `released`.
    stall_api: bool = False
    stall_body_after: int | None = None
    released: threading.Event = field(default_factory=threading.Event)


def start(state: FakeKaggle) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve `state` on 127.0.0.1 at a free port; state.url is set to the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # stderr spam -> logging (never headers, so no secrets)
            log.debug("fake kaggle: " + fmt, *args)

        def parse_request(self):
            # http.server turns a leading // into / (an open-redirect guard); a real server routes the
            # path as sent, so //api/v1/... finds no method.
            parsed = super().parse_request()
            if parsed:
                self.path = self.requestline.split()[1]
            return parsed

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            authorized = self._authorized()
            state.requests.append(Request("POST", self.path, body, authorized))
            log.info("fake kaggle: POST %s %s", self.path, body)
            if state.stall_api:
                state.released.wait(STALL_LIMIT_SECONDS)
                return
            if state.fail_status and (state.fail_count is None or state.fail_count > 0):
                if state.fail_count is not None:
                    state.fail_count -= 1
                return self._error(state.fail_status, state.fail_message)
            if self.path == INTROSPECT_PATH:
                username = state.tokens.get(body.get("token", ""))
                return self._json(200, {"active": username is not None, "username": username or ""})
            if not authorized:
                return self._error(401, "Unauthenticated")
            if self.path == COMPETITION_PATH:
                competition, file_name = body.get("competitionName", ""), body.get("fileName", "")
                if competition in state.rules_not_accepted:
                    return self._error(
                        403, "You must accept this competition's rules before you'll be able to download files."
                    )
                key, where = f"{competition}/{file_name}", f"competitions/{competition}"
            elif self.path == DATASET_PATH:
                key = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
                where = f"datasets/{key}"
                if key in state.forbidden_datasets:
                    return self._error(403, "Permission 'datasets.get' was denied")
            else:
                return self._error(404, f"no such method {self.path}")
            if key not in state.files:
                return self._error(404, f"{key} not found")
            self.send_response(302)
            self.send_header("Location", f"{state.url}/storage/{where}/{state.files[key][0]}?X-Goog-Signature=abc")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            state.requests.append(Request("GET", self.path, {}, self._authorized()))
            log.info("fake kaggle: GET %s", self.path)
            path = self.path.split("?")[0]
            for served_name, data in state.files.values():
                if path.startswith("/storage/") and path.endswith("/" + served_name):
                    if state.on_download:
                        state.on_download()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/zip")
                    if state.gzip_in_transit:
                        data = gzip.compress(data)
                        self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Last-Modified", formatdate(usegmt=True))
                    self.send_header("ETag", f'"{hash(data) & 0xFFFFFFFF:x}"')
                    self.end_headers()
                    if state.stall_body_after is not None:
                        self.wfile.write(data[: state.stall_body_after])
                        self.wfile.flush()
                        state.released.wait(STALL_LIMIT_SECONDS)
                        return
                    self.wfile.write(data)
                    return
            self._error(404, "no such object")

        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{state.username}:{state.key}".encode()).decode()
            authorization = self.headers.get("Authorization") or ""
            scheme, _, credential = authorization.partition(" ")
            return (scheme, credential) == ("Basic", expected) or (scheme == "Bearer" and credential in state.tokens)

        def _echo(self) -> str:
            authorization = self.headers.get("Authorization") or ""
            scheme, _, credential = authorization.partition(" ")
            try:
                decoded = base64.b64decode(credential).decode() if scheme == "Basic" else credential
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if state.echo == "headers":
                return f"; request headers: {dict([('Authorization', authorization), *self.headers.items()])}"
            if state.echo == "decoded":
                return f"; credentials received: {decoded}"
            if state.echo == "urlencoded":
                user, _, key = decoded.partition(":")
                return f"; query was ?user={quote(user)}&auth={quote(key, safe='')}"
            return ""

        def _error(self, code: int, message: str):
            self._json(code, {"code": code, "message": message + self._echo()})

        def _json(self, code: int, answer: dict):
            payload = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def stop(server: ThreadingHTTPServer, thread: threading.Thread, state: FakeKaggle | None = None) -> None:
    if state is not None:
        state.released.set()  # stalled answers end
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
