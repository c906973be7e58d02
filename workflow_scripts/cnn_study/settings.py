"""The study's config: validation, its arms, the run grid and each run's settings (the logic behind rules/common.smk).

A study is the top-level config (the paper's protocol in config.yaml) and its **arms**: each arm is a name and an
overlay of the run settings (``grid``, ``models``, ``optimizers``, ``training``) merged over the top level. The
grid of models, optimizers, learning rates and seeds runs inside every arm. The top level must be a complete,
valid config by itself, and so must every arm's merged config; all are checked here before any job runs, and a
problem is one line naming the arm and the key.

Defaults live only in ``schemas/config.schema.yaml``: validation fills them in, and the code reads them from the
validated config.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from cnn_study.model_specs import MODEL_SPECS

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
#: The sections an arm may overlay: what a run trains with, and which runs its grid spans.
ARM_SECTIONS = ("grid", "models", "optimizers", "training")
#: The sections that decide how a run trains (an arm's changes against the reference arm are taken over these).
TRAINING_SECTIONS = ("models", "optimizers", "training")


class ConfigError(ValueError):
    """A config value is wrong; the message is one line naming the key and what to do."""


# ---- the schema ---------------------------------------------------------------------------------------------
@cache
def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _resolve(node: dict, root: dict) -> dict:
    """A schema node with its local ``$ref`` followed (the referenced keywords merged under its own)."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        own = {key: value for key, value in node.items() if key != "$ref"}
        properties = {**target.get("properties", {}), **own.get("properties", {})}
        node = {**target, **own, **({"properties": properties} if properties else {})}
    return node


def property_names(node: dict, root: dict) -> list[str]:
    """The keys a schema object names, its ``$ref``'d ones included."""
    node = _resolve(node, root)
    return sorted(node.get("properties", {}))


def _child(node: dict, key, root: dict) -> dict | None:
    """The schema of ``key`` inside an object or array node (None: not described)."""
    node = _resolve(node, root)
    if isinstance(key, int):
        return node.get("items")
    if key in node.get("properties", {}):
        return node["properties"][key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _valid(value, node: dict, root: dict) -> bool:
    """Whether ``value`` is valid at a schema node (its local ``$ref``s resolved against the whole schema)."""
    schema = {**_resolve(node, root), "$defs": root.get("$defs", {})}
    return jsonschema.validators.validator_for(root)(schema).is_valid(value)


def _parsed(text: str):
    """What a YAML or JSON scalar spelled as text means: 5, 0.5, 1e-3, true, null."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None, "~": None}.get(text.strip().lower(), text)


def coerce_strings(value, node: dict | None, root: dict | None = None):
    """The config with text that the schema types as a number, boolean or null converted to it.

    Snakemake hands values given with ``--config key='{...}'`` over as text (YAML's base loader): ``5``
    arrives as ``'5'``. Text stays text where the schema accepts it (``null`` and ``~`` become null where null
    is allowed); elsewhere it becomes the number, boolean or null it spells, so that validation judges the value
    (``epochs: 0`` is below the minimum) or names the text and the form that works (``epochs: ten``).
    """
    root = root if root is not None else node
    if node is None:
        return value
    if isinstance(value, dict):
        return {key: coerce_strings(item, _child(node, key, root), root) for key, item in value.items()}
    if isinstance(value, list):
        return [coerce_strings(item, _child(node, index, root), root) for index, item in enumerate(value)]
    if isinstance(value, str) and not _valid(value, node, root):
        parsed = _parsed(value)
        return value if isinstance(parsed, str) else parsed  # its error, if any, then names the value, not the text
    if value in ("null", "~") and _valid(None, node, root):
        return None
    return value


# ---- one-line errors ------------------------------------------------------------------------------------------
EXAMPLES = {"integer": "5", "number": "0.001", "boolean": "true or false", "null": "null", "array": "[a, b]"}


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def describe_schema_error(error: jsonschema.ValidationError, root: dict | None = None) -> str:
    """Turn a jsonschema error into one line that names the offending key."""
    root = root if root is not None else load_schema()
    key = _key_path(error)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = property_names(error.schema, root)
        extra = sorted(set(error.instance) - set(allowed))
        where = f"{key}." if error.absolute_path else ""
        if extra and extra[0] == "learning_rate" and key.startswith("optimizers."):
            return f"{key}.learning_rate: the learning rate comes from grid.learning_rates; remove it here"
        return f"unknown key {where}{extra[0] if extra else '?'}: allowed keys here are {', '.join(allowed)}"
    if "propertyNames" in error.schema_path:
        rule = _resolve(error.schema, root).get("description", error.message)
        return f"{key}: the name {error.instance!r} is not allowed: {rule}"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{key}: {error.instance!r} is not one of {allowed}"
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        forms = " or ".join(EXAMPLES.get(kind, kind) for kind in expected)
        return f"{key}: expected {' or '.join(expected)}, got {error.instance!r}; write it as e.g. {forms}"
    return f"{key}: {error.message}"


def explain_config_error(config: dict, schema: dict | None = None) -> str:
    """One line naming the key that breaks the schema (Snakemake's own message spans many lines)."""
    schema = schema if schema is not None else load_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(config))
    if not errors:
        return "invalid config"
    # best_match prefers the deepest, most specific error: the one that names the exact key.
    return f"invalid config: {describe_schema_error(jsonschema.exceptions.best_match(errors), schema)}"


def validated(config: dict, where: str = "") -> dict:
    """The config, validated in place against the schema with its defaults filled in; ConfigError otherwise."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = load_schema()
    try:
        validate(config, schema=str(SCHEMA_PATH))
    except WorkflowError:
        raise ConfigError(
            explain_config_error(config, schema).replace("invalid config: ", f"invalid config: {where}", 1)
        ) from None
    return config


# ---- the study and its arms -------------------------------------------------------------------------------------
def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, key by key (a nested mapping merges, any other value replaces), as
    Snakemake merges ``--configfile`` files and ``--config``; ``base`` is changed and returned."""
    for key, value in (overlay or {}).items():
        base[key] = merge(base.get(key) or {}, value) if isinstance(value, dict) else copy.deepcopy(value)
    return base


def read_config_files(paths: list[Path]) -> dict:
    """config.yaml, then each overlay over it, as ``snakemake --configfile`` reads them."""
    config = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def add_study_arguments(parser) -> None:
    """The options a user command takes to read the same study as the snakemake command: --configfile, --directory."""
    parser.add_argument(
        "--configfile",
        nargs="+",
        type=Path,
        default=[],
        help="the same overlays as given to snakemake (read after config.yaml)",
    )
    parser.add_argument("--directory", "-d", type=Path, default=Path("."), help="the workflow's folder (default: .)")


def study_of(args) -> tuple[dict, dict[str, dict]]:
    """(config, arms) of the study that add_study_arguments' options name: config.yaml of the folder, then the
    overlays. FileNotFoundError or ConfigError with one line."""
    config = read_config_files([args.directory / "config.yaml", *args.configfile])
    return config, prepare_study(config)


def prepare_study(config: dict) -> dict[str, dict]:
    """Check the whole study before any job runs; returns each arm's merged, validated config, in config order.

    ``config`` itself is coerced (text given with ``--config``) and validated in place, defaults filled in.
    Raises ConfigError with one line naming the arm (where the problem is an arm's) and the key."""
    schema = load_schema()
    config.update(coerce_strings(config, schema))
    validated(config)
    check_config(config)
    arms = {}
    for name, overlay in config["arms"].items():
        if overlay is None:
            continue
        where = f"arm {name}: "
        merged = validated(arm_config(config, overlay), where)
        try:
            check_config(merged)
        except ConfigError as error:
            raise ConfigError(str(error).replace("invalid config: ", f"invalid config: {where}", 1)) from None
        arms[name] = merged
    _check_arms(config, arms)
    return arms


def arm_config(config: dict, overlay: dict | None) -> dict:
    """An arm's complete config: the top level (without the arms) with the arm's overlay merged over it."""
    base = {key: copy.deepcopy(value) for key, value in config.items() if key != "arms"}
    return merge(base, coerce_strings(overlay or {}, load_schema()))


def _check_arms(config: dict, arms: dict[str, dict]) -> None:
    if not arms:
        raise ConfigError("invalid config: arms: every arm is null; keep at least one (config.yaml has paper: {})")
    reference = config["results"]["reference_arm"]
    if reference not in arms:
        raise ConfigError(
            f"invalid config: results.reference_arm = {reference!r} is not an arm of this study; "
            f"set it to one of {', '.join(arms)}"
        )
    keeps = {name: model_keep(arm) for name, arm in arms.items()}
    if len(set(keeps.values())) > 1:
        differing = next(name for name, keep in keeps.items() if keep != model_keep(config))
        raise ConfigError(
            f"invalid config: arm {differing}: training.keep = {keeps[differing]} differs from the study's "
            f"{model_keep(config)}; it names the train rule's outputs, so set it once at the top level"
        )


def check_config(config: dict) -> dict:
    """Checks the schema cannot express. Raises ConfigError with one line naming the key."""
    _check_models(config)
    _check_test_split_has_models(config)
    _check_batch_size(config)
    _check_steps_per_execution(config)
    return config


def _check_steps_per_execution(config: dict) -> None:
    """Keras runs one step per call on torch and refuses more, which would stop every job once it has started."""
    training = config["training"]
    if training["backend"] == "torch" and training["steps_per_execution"] > 1:
        raise ConfigError(
            f"invalid config: training.steps_per_execution = {training['steps_per_execution']}, but Keras runs one "
            "step per call on the torch backend; set it to 1 or choose another training.backend"
        )


def _check_test_split_has_models(config: dict) -> None:
    """The test split is evaluated on each run's saved model, which training.keep: none does not keep."""
    if config["dataset"]["n_test"] > 0 and model_keep(config) == "none":
        raise ConfigError(
            "invalid config: dataset.n_test > 0 evaluates every run's saved model, but training.keep = none "
            "keeps none; set training.keep to model, full or weights"
        )


def _check_batch_size(config: dict) -> None:
    """A batch larger than the training set would silently train on one smaller batch per epoch."""
    dataset = config["dataset"]
    if dataset["picklist"]:  # the picklist decides the training set's size: train_run checks it
        return
    images = dataset["n_train"] * len(dataset["classes"])
    batch_size = config["training"]["batch_size"]
    if batch_size > images:
        raise ConfigError(
            f"invalid config: training.batch_size = {batch_size} is larger than the training set ({images} images: "
            f"dataset.n_train {dataset['n_train']} x {len(dataset['classes'])} classes); lower it or pick more images"
        )


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
    given = config["models"].get(model) or {}
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


def run_grid(arms: dict[str, dict]) -> list[dict]:
    """Every run of the study: each arm's grid, in a stable order (arms as configured, then the grid's)."""
    return [
        {"arm": arm, "model": model, "optimizer": optimizer, "lr": format_lr(lr), "seed": seed}
        for arm, config in arms.items()
        for model in config["grid"]["models"]
        for optimizer in config["grid"]["optimizers"]
        for lr in config["grid"]["learning_rates"]
        for seed in config["grid"]["seeds"]
    ]


def model_keep(config: dict) -> str:
    """What a finished run keeps of its model (training.keep; see cnn_study.run_model)."""
    return config["training"]["keep"]


def run_settings(config: dict, model: str, optimizer: str, lr: str | float, seed: str | int) -> dict:
    """Everything one training job depends on, resolved from its arm's config; its hash names the run's
    provenance. The arm's name is not in it: two arms with the same settings train the same run."""
    training = config["training"]
    return {
        "model": model,
        **model_settings(config, model),
        "optimizer": optimizer,
        "optimizer_params": dict(config["optimizers"].get(optimizer) or {}),
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
        "batch_norm_statistics": training["batch_norm_statistics"],
        "augmentation": dict(training["augmentation"]),
        "deterministic": training["deterministic"],
        "jit_compile": training["jit_compile"],
        "steps_per_execution": training["steps_per_execution"],
        "precision": training["precision"],
        "backend": training["backend"],
        "classes": list(config["dataset"]["classes"]),
    }


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def arm_changes(arms: dict[str, dict], reference: str) -> dict[str, dict]:
    """Per arm, the settings it trains with that differ from the reference arm's, as {dotted key: value}
    (over models, optimizers and training; the grid only chooses which runs exist). The reference: {}."""
    base = _flatten({section: arms[reference][section] for section in TRAINING_SECTIONS})
    changes = {}
    for name, config in arms.items():
        flat = _flatten({section: config[section] for section in TRAINING_SECTIONS})
        changes[name] = {
            key: flat.get(key)
            for key in sorted(set(base) | set(flat))
            if key not in base or key not in flat or json.dumps(flat[key]) != json.dumps(base[key])
        }
    return changes
