"""cnn_study.optimizers: each name, Keras defaults, config parameters over them, one-line errors."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from cnn_study.optimizers import OPTIMIZERS, build_optimizer  # noqa: E402
from cnn_study.settings import property_names  # noqa: E402

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

EXPECTED = {
    "sgd": keras.optimizers.SGD,
    "sgd_momentum": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
    "adagrad": keras.optimizers.Adagrad,
}


def lr(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def test_names_match_schema():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(OPTIMIZERS) == set(schema["$defs"]["optimizer_name"]["enum"]) == set(EXPECTED)
    assert set(schema["properties"]["optimizers"]["properties"]) == set(OPTIMIZERS)


def schema_keywords(name: str) -> list[str]:
    """The keywords the schema lets optimizers.<name> set (checked at parse time, without Keras)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    return property_names(schema["properties"]["optimizers"]["properties"][name], schema)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_keywords_are_the_keras_signature(name):
    """The keywords the config check allows (without importing Keras) are exactly what the class takes."""
    parameters = inspect.signature(EXPECTED[name].__init__).parameters
    expected = [key for key, p in parameters.items() if key not in ("self", "learning_rate", "kwargs")]
    assert schema_keywords(name) == sorted(expected)


def test_every_optimizer_has_a_display_name_and_its_own_colour():
    assert len({spec.color for spec in OPTIMIZERS.values()}) == len(OPTIMIZERS)
    assert [name for name in OPTIMIZERS][:3] == ["sgd", "adam", "rmsprop"]  # the paper's three first, in its order
    assert OPTIMIZERS["rmsprop"].display_name == "RMSprop" and OPTIMIZERS["sgd_momentum"].defaults == {"momentum": 0.9}


def test_config_check_does_not_import_keras():
    code = (
        "import sys, cnn_study.settings, cnn_study.optimizers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'torch', 'jax')))"
    )
    scripts = Path(__file__).resolve().parents[1] / "workflow_scripts"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(scripts)},
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_keras_optimizer_with_learning_rate(name):
    optimizer = build_optimizer(name, 0.0123, {})
    assert type(optimizer) is EXPECTED[name]
    assert lr(optimizer) == pytest.approx(0.0123)


def test_keras_defaults_apart_from_momentum():
    assert build_optimizer("sgd", 0.01, {}).momentum == 0.0
    assert build_optimizer("sgd_momentum", 0.01, {}).momentum == 0.9
    adam = build_optimizer("adam", 0.001, {})
    assert (adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (0.9, 0.999, 1e-7, False)
    assert build_optimizer("adamw", 0.001, {}).weight_decay == keras.optimizers.AdamW().weight_decay
    assert build_optimizer("rmsprop", 0.001, {}).rho == 0.9
    assert build_optimizer("adagrad", 0.001, {}).initial_accumulator_value == 0.1


def test_config_params_override_defaults():
    assert build_optimizer("sgd_momentum", 0.01, {"momentum": 0.5, "nesterov": True}).momentum == 0.5
    assert build_optimizer("sgd_momentum", 0.01, {"nesterov": True}).nesterov is True
    adam = build_optimizer("adam", 0.001, {"beta_1": 0.8, "epsilon": 1e-6})
    assert (adam.beta_1, adam.epsilon) == (0.8, 1e-6)
    assert build_optimizer("adamw", 0.001, {"weight_decay": 0.01}).weight_decay == 0.01
    assert build_optimizer("rmsprop", 0.001, {"rho": 0.95, "momentum": 0.1}).rho == 0.95
    assert build_optimizer("sgd", 0.01, {"clipnorm": 1.0}).clipnorm == 1.0


@pytest.mark.parametrize(
    "name, params, words",
    [
        ("sgd", {"momentum": 2.0}, "invalid config: optimizers.sgd: "),
        ("lion", {}, "unknown optimizer"),
    ],
)
def test_bad_config_is_one_line_error(name, params, words):
    """What reaches build_optimizer was checked against the schema; what Keras still refuses is one line."""
    with pytest.raises(ValueError) as error:
        build_optimizer(name, 0.01, params)
    assert words in str(error.value) and "\n" not in str(error.value)
