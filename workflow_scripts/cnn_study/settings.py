"""Config validation and the run grid: the pure logic behind rules/common.smk."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from cnn_study.model_specs import MODEL_SPECS
from cnn_study.optimizers import keyword_error


class ConfigError(ValueError):
    """A config value is wrong; the message is one line naming the key and what to do."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def describe_schema_error(error: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into one line that names the offending key."""
    key = _key_path(error)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        where = f"{key}." if error.absolute_path else ""
        return f"unknown key {where}{extra[0] if extra else '?'}: allowed keys here are {allowed}"
    if error.validator == "propertyNames":
        return f"{key}: unknown name {error.instance!r}: {error.message}"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{key}: {error.instance!r} is not one of {allowed}"
    if error.validator == "type":
        return f"{key}: expected {error.validator_value}, got {error.instance!r}"
    return f"{key}: {error.message}"


def explain_config_error(config: dict, schema_path: str | Path) -> str:
    """One line naming the key that breaks the schema (snakemake's own message spans many lines)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(config))
    if not errors:
        return "invalid config"
    # best_match prefers the deepest, most specific error: the one that names the exact key.
    return f"invalid config: {describe_schema_error(jsonschema.exceptions.best_match(errors))}"


def check_config(config: dict) -> dict:
    """Checks the schema cannot express. Raises ConfigError with one line naming the key."""
    _check_models(config)
    _check_optimizer_keywords(config)
    _check_test_split_has_models(config)
    return config


def _check_test_split_has_models(config: dict) -> None:
    """The test split is evaluated on each run's saved model, which training.keep: none does not keep."""
    if (config.get("dataset") or {}).get("n_test", 0) > 0 and model_keep(config) == "none":
        raise ConfigError(
            "invalid config: dataset.n_test > 0 evaluates every run's saved model, but training.keep = none "
            "keeps none; set training.keep to model, full or weights"
        )


def _check_optimizer_keywords(config: dict) -> None:
    """A mistyped keyword (sgd: {momentun: 0.9}) fails the dry-run, not the training job hours later."""
    for name, params in (config.get("optimizers") or {}).items():
        message = keyword_error(name, params or {})
        if message:
            raise ConfigError(message)


def _check_models(config: dict) -> None:
    for name in config["grid"]["models"]:
        settings = model_settings(config, name)
        spec = MODEL_SPECS[name]
        if settings["input_size"] < spec.min_size:
            raise ConfigError(
                f"invalid config: models.{name}.input_size = {settings['input_size']} is below "
                f"{spec.display_name}'s minimum of {spec.min_size}; raise it"
            )
        if settings["weights"] == "imagenet" and not spec.has_imagenet_weights:
            raise ConfigError(
                f"invalid config: models.{name}.weights = imagenet, but {spec.display_name} has no "
                "published ImageNet weights; use none or a weight file"
            )
        if settings["weights"] == "imagenet" and not spec.has_verified_weights:
            raise ConfigError(
                f"invalid config: models.{name}.weights = imagenet, but Keras publishes no hash for "
                f"{spec.display_name}'s ImageNet weights, so their download cannot be verified; set "
                f"models.{name}.weights to none or to a weight file you trust"
            )


def model_settings(config: dict, model: str) -> dict:
    """Input size and weights of a model: the config's values over the registry's defaults."""
    spec = MODEL_SPECS[model]
    given = (config.get("models") or {}).get(model) or {}
    default_weights = "imagenet" if spec.has_imagenet_weights else "none"
    return {
        "input_size": int(given.get("input_size", spec.default_size)),
        "weights": given.get("weights", default_weights),
    }


def format_lr(lr: float) -> str:
    """The learning rate as it appears in paths: short and stable (0.001 -> '0.001', 1e-05 -> '1e-05')."""
    return f"{float(lr):g}"


def kaggle_archive_path(kaggle: dict) -> str:
    """Where the Kaggle download lands in resources/: a competition file or a whole dataset."""
    if kaggle["dataset"]:
        owner, name = kaggle["dataset"].split("/", 1)
        return f"resources/kaggle/datasets/{owner}__{name}.zip"
    return f"resources/kaggle/{kaggle['competition']}/{kaggle['file']}"


def run_grid(config: dict) -> list[dict]:
    """Every run the config spans, in a stable order."""
    grid = config["grid"]
    return [
        {"model": model, "optimizer": optimizer, "lr": format_lr(lr), "seed": seed}
        for model in grid["models"]
        for optimizer in grid["optimizers"]
        for lr in grid["learning_rates"]
        for seed in grid["seeds"]
    ]


def model_keep(config: dict) -> str:
    """What a finished run keeps of its model (training.keep; see cnn_study.run_model)."""
    return (config.get("training") or {}).get("keep", "model")


def run_settings(config: dict, model: str, optimizer: str, lr: str, seed: str | int) -> dict:
    """Everything one training job depends on, resolved; its hash names the run's provenance."""
    training = config["training"]
    return {
        "model": model,
        **model_settings(config, model),
        "optimizer": optimizer,
        "optimizer_params": dict((config.get("optimizers") or {}).get(optimizer) or {}),
        "learning_rate": float(lr),
        "seed": int(seed),
        "batch_size": training["batch_size"],
        "epochs": training["epochs"],
        "loss": training["loss"],
        "metrics": list(training["metrics"]),
        "protocol": dict(training["protocol"]),
        "lr_schedule": training["lr_schedule"],
        "head": dict(training["head"]),
        "batch_norm_momentum": training["batch_norm_momentum"],
        "augmentation": dict(training["augmentation"]),
        "deterministic": training["deterministic"],
        "jit_compile": training["jit_compile"],
        "steps_per_execution": training["steps_per_execution"],
        "precision": training["precision"],
        "backend": training["backend"],
        "classes": list(config["dataset"]["classes"]),
    }
