"""Config validation and the run grid (the logic behind rules/common.smk)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml

from cnn_study import settings
from conftest import study_config
from helpers import REPO, copy_workflow, snakemake

SCHEMA = REPO / "schemas" / "config.schema.yaml"


@pytest.fixture
def config(paper_config):
    return paper_config


def test_the_paper_config_is_the_papers_protocol(config):
    assert config["grid"]["models"] == ["resnet50", "inceptionv3"]
    assert config["grid"]["optimizers"] == ["sgd", "adam", "rmsprop"]
    assert config["grid"]["learning_rates"] == [0.001]
    assert config["training"]["batch_size"] == 10 and config["training"]["epochs"] == 50
    assert (config["dataset"]["n_train"], config["dataset"]["n_val"]) == (250, 50)
    assert {settings.model_settings(config, m)["input_size"] for m in config["grid"]["models"]} == {224, 299}
    assert config["dataset"]["kaggle"]["competition"] == "dogs-vs-cats"
    assert config["arms"] == {"paper": {}} and config["results"]["reference_arm"] == "paper"
    assert config["training"]["head"] == {"dropout": 0.5, "batch_norm": True}


def test_settings_module_points_at_the_schema_beside_it():
    assert settings.SCHEMA_PATH == SCHEMA and settings.load_schema() == yaml.safe_load(SCHEMA.read_text())


def test_validation_fills_nested_defaults(config):
    del config["training"]["head"]
    del config["arms"]
    settings.validated(config)
    assert config["training"]["head"] == {"dropout": 0.5, "batch_norm": True}
    assert config["results"]["target_accuracy"] == 0.9
    assert config["arms"] == {"paper": {}}


def test_run_grid_spans_every_combination_in_every_arm():
    _, arms = study_config({"grid": {"learning_rates": [0.001, 0.0001], "seeds": [0, 1, 2]}})
    runs = settings.run_grid(arms)
    assert len(runs) == 2 * 3 * 2 * 3
    assert {"arm": "paper", "model": "inceptionv3", "optimizer": "rmsprop", "lr": "0.0001", "seed": 2} in runs
    _, arms = study_config({"arms": {"longer": {"grid": {"models": ["inceptionv3"], "optimizers": ["sgd"]}}}})
    runs = settings.run_grid(arms)
    assert len(runs) == 6 + 1 and runs[-1] == {
        "arm": "longer",
        "model": "inceptionv3",
        "optimizer": "sgd",
        "lr": "0.001",
        "seed": 0,
    }
    assert list(arms) == ["paper", "longer"]  # the study's order, the reference first as config.yaml lists it


def test_an_arm_overlays_only_its_own_runs_settings():
    overlay = {"arms": {"no_augmentation": {"training": {"augmentation": {"enabled": False}, "epochs": 7}}}}
    config, arms = study_config(overlay)
    paper = settings.run_settings(arms["paper"], "resnet50", "sgd", "0.001", "0")
    other = settings.run_settings(arms["no_augmentation"], "resnet50", "sgd", "0.001", "0")
    assert paper["augmentation"]["enabled"] is True and paper["epochs"] == 50
    assert other["augmentation"] == {**paper["augmentation"], "enabled": False} and other["epochs"] == 7
    assert {key for key in paper if paper[key] != other[key]} == {"augmentation", "epochs"}
    assert config["training"]["augmentation"]["enabled"] is True  # the top level is not changed by an arm
    assert settings.arm_changes(arms, "paper") == {
        "paper": {},
        "no_augmentation": {"training.augmentation.enabled": False, "training.epochs": 7},
    }


def test_arm_changes_name_settings_only_one_side_has():
    _, arms = study_config({"arms": {"momentum": {"optimizers": {"sgd": {"momentum": 0.9}}}}})
    assert settings.arm_changes(arms, "paper")["momentum"] == {"optimizers.sgd.momentum": 0.9}
    assert settings.arm_changes(arms, "momentum")["paper"] == {"optimizers.sgd.momentum": None}


def test_a_null_arm_is_left_out():
    _, arms = study_config(
        {
            "arms": {"paper": None, "transfer": {"training": {"protocol": {"mode": "transfer"}}}},
            "results": {"reference_arm": "transfer"},
        }
    )
    assert list(arms) == ["transfer"]


@pytest.mark.parametrize(
    "overlay, message",
    [
        (
            {"arms": {"short": {"training": {"epochs": 0}}}},
            "invalid config: arm short: training.epochs: 0 is less than the minimum of 1",
        ),
        (
            {"arms": {"short": {"models": {"resnet50": {"input_size": 16}}}}},
            "invalid config: arm short: models.resnet50.input_size = 16 is below ResNet50's minimum of 32; raise it",
        ),
        (
            {"arms": {"short": {"dataset": {"n_train": 3}}}},
            "invalid config: unknown key arms.short.dataset: allowed keys here are grid, models, optimizers, training",
        ),
        (
            {"arms": {"resnet50": {}}},
            "invalid config: arms: the name 'resnet50' is not allowed: an arm's name is lowercase letters, digits "
            "and _, starting with a letter, and not a model's name",
        ),
        (
            {"arms": {"paper": None}},
            "invalid config: arms: every arm is null; keep at least one (config.yaml has paper: {})",
        ),
        (
            {"results": {"reference_arm": "baseline"}},
            "invalid config: results.reference_arm = 'baseline' is not an arm of this study; set it to one of paper",
        ),
        (
            {"arms": {"lean": {"training": {"keep": "none"}}}},
            "invalid config: arm lean: training.keep = none differs from the study's model; it names the train "
            "rule's outputs, so set it once at the top level",
        ),
    ],
)
def test_each_arm_is_checked_before_any_job_with_one_line_naming_it(overlay, message):
    with pytest.raises(settings.ConfigError) as error:
        study_config(overlay)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"training": {"epochs": "5", "batch_size": "10"}}, {"training": {"epochs": 5, "batch_size": 10}}),
        (
            {"training": {"head": {"dropout": "0.25", "batch_norm": "false"}}},
            {"training": {"head": {"dropout": 0.25, "batch_norm": False}}},
        ),
        (
            {"grid": {"learning_rates": ["1e-3", "0.01"], "seeds": ["0", "1"]}},
            {"grid": {"learning_rates": [0.001, 0.01], "seeds": [0, 1]}},
        ),
        (
            {"training": {"protocol": {"unfreeze_top_layers": "30", "fine_tune_learning_rate": "null"}}},
            {"training": {"protocol": {"unfreeze_top_layers": 30, "fine_tune_learning_rate": None}}},
        ),
        (
            {"training": {"protocol": {"unfreeze_top_layers": "all"}}},
            {"training": {"protocol": {"unfreeze_top_layers": "all"}}},
        ),
        (
            {"optimizers": {"sgd": {"momentum": "0.9", "nesterov": "true"}}},
            {"optimizers": {"sgd": {"momentum": 0.9, "nesterov": True}}},
        ),
        ({"dataset": {"source": "123", "picklist": "null"}}, {"dataset": {"source": "123", "picklist": None}}),
        ({"training": {"epochs": "ten", "batch_size": "2.5"}}, {"training": {"epochs": "ten", "batch_size": 2.5}}),
    ],
)
def test_text_from_the_command_line_becomes_the_type_the_schema_gives(given, expected):
    assert settings.coerce_strings(given, settings.load_schema()) == expected


def test_command_line_numbers_are_accepted_and_bad_ones_say_what_works():
    config, arms = study_config({"training": {"epochs": "5"}, "dataset": {"n_train": "20"}})
    assert config["training"]["epochs"] == 5 and arms["paper"]["dataset"]["n_train"] == 20
    with pytest.raises(settings.ConfigError) as error:
        study_config({"training": {"epochs": "ten"}})
    assert str(error.value) == "invalid config: training.epochs: expected integer, got 'ten'; write it as e.g. 5"
    config, arms = study_config({"arms": {"short": {"training": {"epochs": "3"}}}})
    assert arms["short"]["training"]["epochs"] == 3


def test_models_left_out_of_the_config_use_registry_defaults(config):
    assert settings.model_settings(config, "vgg16") == {"input_size": 224, "weights": "imagenet"}
    assert settings.model_settings(config, "alexnet") == {"input_size": 227, "weights": "none"}


def test_semantic_errors_are_one_line_naming_the_key(config):
    bad = copy.deepcopy(config)
    bad["models"]["resnet50"]["input_size"] = 16
    with pytest.raises(settings.ConfigError, match=r"^invalid config: models\.resnet50\.input_size = 16 is below"):
        settings.check_config(bad)
    bad = copy.deepcopy(config)
    bad["grid"]["models"] = ["alexnet"]
    bad["models"]["alexnet"] = {"weights": "imagenet"}
    with pytest.raises(settings.ConfigError, match="alexnet.weights = imagenet"):
        settings.check_config(bad)


def test_a_batch_larger_than_the_training_set_is_refused(config):
    config["training"]["batch_size"] = 81
    config["dataset"].update(n_train=40)
    with pytest.raises(settings.ConfigError) as error:
        settings.check_config(config)
    assert str(error.value) == (
        "invalid config: training.batch_size = 81 is larger than the training set (80 images: dataset.n_train 40 "
        "x 2 classes); lower it or pick more images"
    )
    config["training"]["batch_size"] = 80
    assert settings.check_config(config) is config
    config["training"]["batch_size"] = 81
    config["dataset"]["picklist"] = "mine.csv"  # the picklist decides the size: checked when training starts
    assert settings.check_config(config) is config


def test_several_steps_per_execution_on_torch_are_refused_before_any_job(config):
    config["training"].update(backend="torch", steps_per_execution=4)
    with pytest.raises(settings.ConfigError) as error:
        settings.check_config(config)
    assert str(error.value) == (
        "invalid config: training.steps_per_execution = 4, but Keras runs one step per call on the torch backend; "
        "set it to 1 or choose another training.backend"
    )
    config["training"]["steps_per_execution"] = 1
    assert settings.check_config(config) is config
    config["training"].update(backend="jax", steps_per_execution=4)
    assert settings.check_config(config) is config


@pytest.mark.parametrize(
    "optimizer, params, message",
    [
        ("sgd", {"momentun": 0.9}, "unknown key optimizers.sgd.momentun: allowed keys here are clipnorm, "),
        ("rmsprop", {"rho": 0.9, "betta": 1}, "unknown key optimizers.rmsprop.betta: allowed keys here are "),
        ("adamw", {"beta_1": 0.8, "nesterov": True}, "unknown key optimizers.adamw.nesterov: "),
        ("sgd", {"momentum": 5}, "optimizers.sgd.momentum: 5 is greater than the maximum of 1"),
        ("sgd", {"momentum": "high"}, "optimizers.sgd.momentum: expected number, got 'high'; write it as e.g. 0.001"),
        ("adam", {"epsilon": 0}, "optimizers.adam.epsilon: 0 is less than or equal to the minimum of 0"),
        (
            "adam",
            {"learning_rate": 0.1},
            "optimizers.adam.learning_rate: the learning rate comes from grid.learning_rates",
        ),
    ],
)
def test_optimizer_keywords_and_values_are_checked_at_parse_time(optimizer, params, message):
    with pytest.raises(settings.ConfigError) as error:
        study_config({"optimizers": {optimizer: params}})
    assert str(error.value).startswith(f"invalid config: {message}") and "\n" not in str(error.value), error.value


def test_known_optimizer_keywords_pass():
    _, arms = study_config(
        {"optimizers": {"sgd": {"momentum": 0.9, "nesterov": True}, "adam": {"beta_1": 0.8, "clipnorm": 1.0}}}
    )
    assert settings.run_settings(arms["paper"], "resnet50", "adam", 0.001, 0)["optimizer_params"] == {
        "beta_1": 0.8,
        "clipnorm": 1.0,
    }


def test_dry_run_refuses_a_mistyped_optimizer_keyword(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "typo.yaml").write_text("optimizers:\n  sgd: {momentun: 0.9}\n")
    result = snakemake(workdir, "-n", "--configfile", "typo.yaml", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "momentun" in line]
    expected = (
        "invalid config: unknown key optimizers.sgd.momentun: allowed keys here are clipnorm, clipvalue, "
        "ema_momentum, ema_overwrite_frequency, global_clipnorm, gradient_accumulation_steps, loss_scale_factor, "
        "momentum, name, nesterov, use_ema, weight_decay"
    )
    assert lines == [expected], result.stderr[-2000:]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["training"].update(optimizer="adam"), r"unknown key training\.optimizer"),
        (lambda c: c["grid"].update(optimizers=["adamx"]), r"grid\.optimizers\.0: 'adamx' is not one of"),
        (lambda c: c["training"].update(batch_size=2.5), r"training\.batch_size: expected integer, got 2\.5"),
        (lambda c: c["dataset"].update(source=""), r"dataset\.source"),
    ],
)
def test_schema_errors_explained_in_one_line(config, change, expected):
    change(config)
    message = settings.explain_config_error(config)
    assert "\n" not in message and re.search(expected, message), message


def test_yaml_syntax_errors_in_overlays_can_be_located_as_the_readme_says(tmp_path):
    """Snakemake reads --configfile files before the workflow runs (snakemake.settings.types.ConfigSettings),
    so its message names neither file nor line; the README's command does. If a Snakemake release names
    the file, the first check fails: then drop the README's note."""
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "more_seeds.yaml").write_text("grid:\n  seeds: [0, 1\n  models: [resnet50]\n")
    result = snakemake(workdir, "-n", "--configfile", "more_seeds.yaml", check=False)
    assert result.returncode != 0 and "Config file is not valid JSON or YAML" in result.stdout + result.stderr
    assert "more_seeds.yaml" not in result.stdout + result.stderr
    (command,) = re.findall(
        r"^`(python3 -c .*yaml\.safe_load.*more_seeds\.yaml)`$", (REPO / "README.md").read_text(), re.MULTILINE
    )
    located = subprocess.run(
        command.replace("python3", sys.executable, 1),
        shell=True,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert located.returncode != 0
    assert located.stderr.rstrip().endswith('in "more_seeds.yaml", line 3, column 9'), located.stderr


def test_kaggle_archive_paths():
    assert settings.kaggle_archive_path({"competition": "dogs-vs-cats", "file": "train.zip", "dataset": None}) == (
        "resources/kaggle/dogs-vs-cats/train.zip"
    )
    assert settings.kaggle_archive_path({"competition": None, "file": None, "dataset": "owner/pets"}) == (
        "resources/kaggle/datasets/owner__pets.zip"
    )


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", readme, re.DOTALL)
    demo_command, test_command = blocks[0], blocks[1]
    assert "configs/demo.yaml" in demo_command and "pytest" in test_command
    assert test_command in (REPO / ".ci" / "run").read_text()


def test_a_test_split_needs_runs_that_keep_their_model():
    with pytest.raises(settings.ConfigError, match=r"dataset.n_test > 0 .* training.keep = none keeps none"):
        study_config({"dataset": {"n_test": 10}, "training": {"keep": "none"}})
    config, _ = study_config({"dataset": {"n_test": 10}, "training": {"keep": "weights"}})
    assert config["training"]["keep"] == "weights"


def test_the_schemas_model_list_is_the_registrys():
    schema = settings.load_schema()
    assert schema["$defs"]["model_name"]["enum"] == list(settings.MODEL_SPECS)
