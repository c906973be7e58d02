"""Config validation and the run grid (the logic behind rules/common.smk)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

from cnn_study import settings
from helpers import REPO, copy_workflow, snakemake

SCHEMA = REPO / "schemas" / "config.schema.yaml"


@pytest.fixture
def config():
    loaded = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(loaded, str(SCHEMA))
    return loaded


def test_the_paper_config_is_the_papers_protocol(config):
    assert config["grid"]["models"] == ["resnet50", "inceptionv3"]
    assert config["grid"]["optimizers"] == ["sgd", "adam", "rmsprop"]
    assert config["grid"]["learning_rates"] == [0.001]
    assert config["training"]["batch_size"] == 10 and config["training"]["epochs"] == 50
    assert (config["dataset"]["n_train"], config["dataset"]["n_val"]) == (250, 50)
    assert {settings.model_settings(config, m)["input_size"] for m in config["grid"]["models"]} == {224, 299}
    assert config["dataset"]["kaggle"]["competition"] == "dogs-vs-cats"


def test_validation_fills_nested_defaults(config):
    del config["training"]["head"]
    validate(config, str(SCHEMA))
    assert config["training"]["head"]["dropout"] == 0.5
    assert config["results"]["target_accuracy"] == 0.9


def test_run_grid_spans_every_combination(config):
    config["grid"]["learning_rates"] = [0.001, 0.0001]
    config["grid"]["seeds"] = [0, 1, 2]
    runs = settings.run_grid(config)
    assert len(runs) == 2 * 3 * 2 * 3
    assert {"model": "inceptionv3", "optimizer": "rmsprop", "lr": "0.0001", "seed": 2} in runs


@pytest.mark.parametrize("lr, text", [(0.001, "0.001"), (1e-4, "0.0001"), (1e-5, "1e-05"), (0.1, "0.1"), (1, "1")])
def test_learning_rates_format_stably_for_paths(lr, text):
    assert settings.format_lr(lr) == text
    assert float(text) == lr


def test_run_settings_resolve_everything_a_job_depends_on(config):
    config["optimizers"]["sgd"] = {"momentum": 0.5}
    resolved = settings.run_settings(config, "resnet50", "sgd", "0.001", "3")
    assert resolved["learning_rate"] == 0.001 and resolved["seed"] == 3
    assert resolved["optimizer_params"] == {"momentum": 0.5}
    assert resolved["input_size"] == 224 and resolved["weights"] == "imagenet"
    other = settings.run_settings(config, "inceptionv3", "sgd", "0.001", "3")
    assert other["input_size"] == 299


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


@pytest.mark.parametrize(
    "optimizer, params, key",
    [
        ("sgd", {"momentun": 0.9}, "sgd.momentun"),
        ("rmsprop", {"rho": 0.9, "betta": 1}, "rmsprop.betta"),
        ("adamw", {"beta_1": 0.8, "nesterov": True}, "adamw.nesterov"),
    ],
)
def test_mistyped_optimizer_keyword_is_one_line_naming_it(config, optimizer, params, key):
    config["optimizers"][optimizer] = params
    with pytest.raises(settings.ConfigError) as error:
        settings.check_config(config)
    message = str(error.value)
    assert message.startswith(f"invalid config: unknown key optimizers.{key}: keras.optimizers.")
    assert "\n" not in message


def test_known_optimizer_keywords_pass(config):
    config["optimizers"] = {"sgd": {"momentum": 0.9, "nesterov": True}, "adam": {"beta_1": 0.8, "clipnorm": 1.0}}
    assert settings.check_config(config) is config


def test_dry_run_refuses_a_mistyped_optimizer_keyword(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "typo.yaml").write_text("optimizers:\n  sgd: {momentun: 0.9}\n")
    result = snakemake(workdir, "-n", "--configfile", "typo.yaml", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "momentun" in line]
    expected = (
        "invalid config: unknown key optimizers.sgd.momentun: keras.optimizers.SGD takes momentum, nesterov, "
        "weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency, "
        "loss_scale_factor, gradient_accumulation_steps, name"
    )
    assert lines == [expected], result.stderr[-2000:]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["training"].update(optimizer="adam"), r"unknown key training\.optimizer"),
        (lambda c: c["grid"].update(optimizers=["adamx"]), r"grid\.optimizers\.0: 'adamx' is not one of"),
        (lambda c: c["training"].update(batch_size=2.5), r"training\.batch_size: expected integer"),
        (lambda c: c["dataset"].update(source=""), r"dataset\.source"),
    ],
)
def test_schema_errors_explained_in_one_line(config, change, expected):
    change(config)
    message = settings.explain_config_error(config, SCHEMA)
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


def test_a_test_split_needs_runs_that_keep_their_model(config):
    config["dataset"]["n_test"] = 10
    config["training"]["keep"] = "none"
    with pytest.raises(settings.ConfigError, match=r"dataset.n_test > 0 .* training.keep = none keeps none"):
        settings.check_config(config)
    config["training"]["keep"] = "weights"
    assert settings.check_config(config) is config
