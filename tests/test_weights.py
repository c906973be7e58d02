"""Tests for cnn_study.weights: Keras notop weight files fetched with hash checks.

A local http.server plays the keras-applications root; the served file is a tiny
Keras model's weights saved by the test itself.
"""

import ast
import functools
import hashlib
import http.server
import inspect
import os
import shutil
import socket
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from keras.src.applications import inception_v3, mobilenet_v2, resnet, vgg16  # noqa: E402
from keras.src.utils import file_utils  # noqa: E402

from cnn_study import settings  # noqa: E402
from cnn_study import weights as W  # noqa: E402
from cnn_study.model_specs import MODEL_SPECS  # noqa: E402
from cnn_study.settings import load_schema
from cnn_study.weights import WeightsError, fetch_weights, weights_url  # noqa: E402
from conftest import study_config

# Keras/TF internals, not this code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

KERAS_ROOT = "https://storage.googleapis.com/tensorflow/keras-applications"
PUBLISHED = {name: spec.imagenet_weights for name, spec in MODEL_SPECS.items() if spec.imagenet_weights}


# --- what the installed Keras source says -----------------------------------


def _module_ast(module):
    return ast.parse(inspect.getsource(module))


def _keras_notop_name(module, **names):
    """Evaluate the notop file-name f-string in a Keras module with the given variables."""
    for node in ast.walk(_module_ast(module)):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if "notop" in text or "no_top" in text:
                return eval(compile(ast.Expression(body=node), module.__file__, "eval"), {}, names)
    raise AssertionError(f"no notop file name f-string in {module.__name__}")


def _get_file_calls(module):
    for node in ast.walk(_module_ast(module)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get_file":
            yield node


def _keras_notop_hash(module):
    """file_hash literal of the get_file call whose file name literal is the notop file."""
    for call in _get_file_calls(module):
        if call.args and isinstance(call.args[0], ast.Constant) and "notop" in call.args[0].value:
            kw = {k.arg: k.value for k in call.keywords}
            return ast.literal_eval(kw["file_hash"])
    raise AssertionError(f"no notop get_file call in {module.__name__}")


KERAS_FILE_NAMES = {
    "resnet50": _keras_notop_name(resnet, weights_name="resnet50"),
    "inceptionv3": inception_v3.WEIGHTS_PATH_NO_TOP.rsplit("/", 1)[1],
    "vgg16": vgg16.WEIGHTS_PATH_NO_TOP.rsplit("/", 1)[1],
    "mobilenetv2": _keras_notop_name(mobilenet_v2, alpha=1.0, rows=224),
}

KERAS_URLS = {
    "resnet50": resnet.BASE_WEIGHTS_PATH + KERAS_FILE_NAMES["resnet50"],
    "inceptionv3": inception_v3.WEIGHTS_PATH_NO_TOP,
    "vgg16": vgg16.WEIGHTS_PATH_NO_TOP,
    "mobilenetv2": mobilenet_v2.BASE_WEIGHT_PATH + KERAS_FILE_NAMES["mobilenetv2"],
}


def _keras_path(model):
    """Path of the model's file relative to the keras-applications root, per Keras' URLs."""
    url = KERAS_URLS[model]
    assert url.startswith(KERAS_ROOT + "/")
    return url[len(KERAS_ROOT) + 1 :]


def md5(data):
    return hashlib.md5(data).hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Bytes of a tiny Keras model's saved weights (a real .weights.h5 file)."""
    import keras

    path = tmp_path_factory.mktemp("tiny") / "tiny.weights.h5"
    _tiny_model(keras).save_weights(path)
    return path.read_bytes()


def _tiny_model(keras):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])


class _Server:
    def __init__(self, root):
        self.root = root
        self.requests = []
        self.short_bodies = {}  # path -> bytes sent under a Content-Length 10 bytes larger
        requests, short_bodies = self.requests, self.short_bodies

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                requests.append(self.path)
                if self.path in short_bodies:
                    body = short_bodies[self.path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 10))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tensorflow/keras-applications"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def publish(self, model, data):
        """Serve ``data`` as the model's notop file under Keras' URL layout."""
        path = self.root / "tensorflow" / "keras-applications" / _keras_path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return "/tensorflow/keras-applications/" + _keras_path(model)


@pytest.fixture
def server(tmp_path):
    srv = _Server(tmp_path / "www")
    srv.root.mkdir()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


def _one_line(exc):
    text = str(exc.value)
    assert "\n" not in text and text.strip() == text
    return text


# --- registry against the installed Keras ----------------------------------------


def test_registry_covers_models_with_imagenet_weights():
    assert set(PUBLISHED) == {"resnet50", "inceptionv3", "vgg16", "mobilenetv2"}


@pytest.mark.parametrize("model", sorted(KERAS_URLS))
def test_file_names_match_keras(model):
    assert PUBLISHED[model].file_name == KERAS_FILE_NAMES[model]


@pytest.mark.parametrize("model", sorted(KERAS_URLS))
def test_urls_match_keras(model):
    assert weights_url(model, KERAS_ROOT) == KERAS_URLS[model]
    assert weights_url(model, KERAS_ROOT + "/") == KERAS_URLS[model]
    assert (
        weights_url(model, load_schema()["properties"]["weights"]["properties"]["base_url"]["default"])
        == (KERAS_URLS[model])
    )  # the schema's default (weights.base_url) is Keras' root


def test_published_hashes_match_keras():
    assert PUBLISHED["resnet50"].file_hash == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert PUBLISHED["inceptionv3"].file_hash == _keras_notop_hash(inception_v3)
    assert PUBLISHED["vgg16"].file_hash == _keras_notop_hash(vgg16)
    # Keras downloads MobileNetV2 weights without any hash, so there is none to publish.
    for call in _get_file_calls(mobilenet_v2):
        assert not {"file_hash", "md5_hash"} & {k.arg for k in call.keywords}
    assert PUBLISHED["mobilenetv2"].file_hash is None


@pytest.mark.parametrize("digest", [w.file_hash for w in PUBLISHED.values() if w.file_hash] + ["0" * 64])
def test_hash_algorithm_follows_keras_auto_rule(digest):
    assert W.hash_algorithm(digest) == file_utils.resolve_hasher("auto", digest).name


def test_published_hashes_are_md5():
    digests = {model: w.file_hash for model, w in PUBLISHED.items() if w.file_hash is not None}
    assert len(digests) == 3
    assert {model: W.hash_algorithm(digest) for model, digest in digests.items()} == dict.fromkeys(digests, "md5")


@pytest.mark.parametrize("model", sorted(MODEL_SPECS))
def test_config_check_accepts_imagenet_exactly_where_fetch_can_verify(model):
    """The config check and fetch_weights agree: weights: imagenet passes the check only for a model whose
    download fetch_weights can verify against a published hash."""
    overlay = {"grid": {"models": [model]}, "models": {model: {"weights": "imagenet"}}}
    try:
        W.expected_hash_of(model)
    except WeightsError:
        with pytest.raises(settings.ConfigError) as exc:
            study_config(overlay)
        assert _one_line(exc).startswith(f"invalid config: models.{model}.weights = imagenet, but ")
    else:
        study_config(overlay)


def test_config_check_refuses_unverifiable_imagenet_weights():
    with pytest.raises(settings.ConfigError) as exc:
        study_config({"grid": {"models": ["mobilenetv2"]}})  # imagenet is the registry's default
    assert _one_line(exc) == (
        "invalid config: models.mobilenetv2.weights = imagenet, but Keras publishes no hash for MobileNetV2's "
        "ImageNet weights, so their download cannot be verified; set models.mobilenetv2.weights to none or "
        "to a weight file you trust"
    )
    study_config({"grid": {"models": ["mobilenetv2"]}, "models": {"mobilenetv2": {"weights": "none"}}})


# --- fetching -------------------------------------------------------------------


def test_fetch_then_skip_second_request(server, tiny_weights, tmp_path):
    served = server.publish("resnet50", tiny_weights)
    dest = tmp_path / "out" / "resnet50_notop.h5"

    got = fetch_weights("resnet50", dest, server.base_url, timeout=10, expected_hash=md5(tiny_weights))
    assert got == dest
    assert dest.read_bytes() == tiny_weights
    assert server.requests == [served]
    assert os.listdir(dest.parent) == [dest.name]  # no temp file left behind

    assert fetch_weights("resnet50", dest, server.base_url, timeout=10, expected_hash=md5(tiny_weights)) == dest
    assert server.requests == [served]  # second fetch made no request
    assert dest.read_bytes() == tiny_weights

    # The fetched bytes are a usable weight file.
    import keras

    copy = tmp_path / "copy.weights.h5"
    shutil.copy(dest, copy)
    model = _tiny_model(keras)
    model.load_weights(copy)


@pytest.mark.parametrize("model", ["inceptionv3", "vgg16", "mobilenetv2"])
def test_fetch_sha256_override(server, tiny_weights, tmp_path, model):
    served = server.publish(model, tiny_weights)
    dest = tmp_path / f"{model}.h5"
    fetch_weights(model, dest, server.base_url + "/", timeout=10, expected_hash=sha256(tiny_weights).upper())
    assert dest.read_bytes() == tiny_weights
    assert server.requests == [served]


def test_wrong_hash_raises_and_leaves_no_file(server, tiny_weights, tmp_path):
    corrupted = bytearray(tiny_weights)
    corrupted[len(corrupted) // 2] ^= 0xFF
    server.publish("resnet50", bytes(corrupted))
    dest = tmp_path / "out" / "resnet50_notop.h5"

    with pytest.raises(WeightsError) as exc:
        fetch_weights("resnet50", dest, server.base_url, timeout=10, expected_hash=md5(tiny_weights))
    text = _one_line(exc)
    assert PUBLISHED["resnet50"].file_name in text
    assert md5(tiny_weights) in text and md5(bytes(corrupted)) in text
    assert "retry" in text
    assert not dest.exists()
    assert os.listdir(dest.parent) == []


def test_published_hash_rejects_other_file(server, tiny_weights, tmp_path):
    server.publish("vgg16", tiny_weights)
    dest = tmp_path / "vgg16.h5"
    with pytest.raises(WeightsError) as exc:
        fetch_weights("vgg16", dest, server.base_url, timeout=10)  # published md5
    text = _one_line(exc)
    assert PUBLISHED["vgg16"].file_hash in text and md5(tiny_weights) in text
    assert not dest.exists() and os.listdir(tmp_path) == ["www"]


def test_stale_dest_is_replaced(server, tiny_weights, tmp_path):
    served = server.publish("resnet50", tiny_weights)
    dest = tmp_path / "resnet50.h5"
    dest.write_bytes(b"stale partial download")
    fetch_weights("resnet50", dest, server.base_url, timeout=10, expected_hash=md5(tiny_weights))
    assert dest.read_bytes() == tiny_weights
    assert server.requests == [served]


def test_truncated_download_is_discarded(server, tiny_weights, tmp_path):
    path = "/tensorflow/keras-applications/" + _keras_path("resnet50")
    server.short_bodies[path] = tiny_weights
    dest = tmp_path / "out" / "resnet50.h5"
    with pytest.raises(WeightsError) as exc:
        fetch_weights("resnet50", dest, server.base_url, timeout=10, expected_hash=md5(tiny_weights))
    size = len(tiny_weights)
    assert _one_line(exc) == (
        f"truncated download of {weights_url('resnet50', server.base_url)}: got {size} of {size + 10} bytes; retry"
    )
    assert server.requests == [path]
    assert os.listdir(dest.parent) == []


def test_404_names_url(server, tmp_path):
    dest = tmp_path / "out" / "resnet50.h5"
    with pytest.raises(WeightsError) as exc:
        fetch_weights("resnet50", dest, server.base_url, timeout=10, expected_hash="0" * 32)
    text = _one_line(exc)
    assert text.startswith(f"HTTP 404 File not found fetching {weights_url('resnet50', server.base_url)}; check ")
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_unreachable_server_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/keras-applications"
    with pytest.raises(WeightsError) as exc:
        fetch_weights("resnet50", tmp_path / "w.h5", base, timeout=5, expected_hash="0" * 32)
    assert _one_line(exc).startswith(f"cannot fetch {weights_url('resnet50', base)}: ")
    assert os.listdir(tmp_path) == []


def test_alexnet_has_no_imagenet_weights(server, tmp_path):
    for call in (
        lambda: weights_url("alexnet", server.base_url),
        lambda: fetch_weights("alexnet", tmp_path / "a.h5", server.base_url, timeout=10),
    ):
        with pytest.raises(WeightsError) as exc:
            call()
        text = _one_line(exc)
        assert text.startswith("model 'alexnet' has no ImageNet weights to fetch")
        assert "resnet50, inceptionv3, vgg16, mobilenetv2" in text
    assert server.requests == []
    assert os.listdir(tmp_path) == ["www"]


def test_mobilenetv2_needs_an_explicit_hash(server, tiny_weights, tmp_path):
    served = server.publish("mobilenetv2", tiny_weights)
    dest = tmp_path / "mnv2.h5"
    with pytest.raises(WeightsError) as exc:
        fetch_weights("mobilenetv2", dest, server.base_url, timeout=10)
    assert _one_line(exc).startswith("Keras publishes no hash for mobilenetv2 (mobilenet_v2_weights_")
    assert server.requests == [] and not dest.exists()

    fetch_weights("mobilenetv2", dest, server.base_url, timeout=10, expected_hash=md5(tiny_weights))
    assert dest.read_bytes() == tiny_weights
    assert server.requests == [served]
