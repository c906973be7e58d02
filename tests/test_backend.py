"""training.backend: which backend a job loads, the GPU env and fail-fast, and training on JAX (determinism,
resume after a SIGKILL) at tiny sizes. The JAX runs skip where jax is not installed (requirements-jax.txt)."""

import importlib.util
import logging
import os
import stat
import sys

import pandas as pd
import pytest
import yaml

from cnn_study.backend import JAX_DETERMINISM_FLAGS, nvidia_gpu_present, select_backend
from conftest import study_config, untimed
from helpers import copy_workflow, snakemake
from test_training import Job, assert_same_weights, make_data, make_settings

HAVE_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed (pip install -r requirements-jax.txt)")


@pytest.fixture
def clean_env(monkeypatch):
    """KERAS_BACKEND and XLA_FLAGS as select_backend leaves them are undone after the test."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for name in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "TF_FORCE_GPU_ALLOW_GROWTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as in a fresh job process; restored after
    return monkeypatch


# --- choosing the backend ---------------------------------------------------------------------


def test_the_setting_wins_over_keras_backend_in_the_environment_with_a_warning(clean_env, caplog):
    clean_env.setenv("KERAS_BACKEND", "torch")
    with caplog.at_level(logging.WARNING):
        assert select_backend("tensorflow") == "tensorflow"
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    assert "KERAS_BACKEND=torch in the environment: using training.backend = tensorflow instead" in caplog.text


def test_no_setting_keeps_the_environment_and_defaults_to_tensorflow(clean_env, caplog):
    assert select_backend(None) == "tensorflow"
    clean_env.setenv("KERAS_BACKEND", "torch")
    with caplog.at_level(logging.WARNING):
        assert select_backend(None) == "torch"
    assert not caplog.text


def test_a_missing_backend_package_names_its_requirements_file(clean_env):
    clean_env.delitem(sys.modules, "keras", raising=False)  # as in a fresh job process
    real_find_spec = importlib.util.find_spec
    clean_env.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match=r"^training.backend is jax, but jax is not installed.*requirements-jax.txt"):
        select_backend("jax")
    assert "KERAS_BACKEND" not in os.environ


def test_keras_imported_on_another_backend_is_refused(clean_env):
    keras = pytest.importorskip("keras")
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    with pytest.raises(RuntimeError, match=f"already imported on the {keras.backend.backend()} backend.*{other}"):
        select_backend(other)


@needs_jax
def test_jax_gets_the_xla_determinism_flags_once_and_keeps_the_users(clean_env):
    clean_env.delitem(sys.modules, "keras", raising=False)  # as in a fresh job process
    clean_env.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    select_backend("jax", deterministic=True)
    select_backend("jax", deterministic=True)
    assert os.environ["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", *JAX_DETERMINISM_FLAGS]
    assert "--xla_gpu_deterministic_ops=true" in JAX_DETERMINISM_FLAGS
    # Runs side by side on one GPU: neither JAX nor the TensorFlow that Keras imports takes all its memory.
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    clean_env.delenv("XLA_FLAGS")
    select_backend("jax", deterministic=False)
    assert "XLA_FLAGS" not in os.environ


def test_run_settings_carry_the_backend():
    from cnn_study import settings

    _, arms = study_config()
    assert settings.run_settings(arms["paper"], "resnet50", "sgd", "0.001", "0")["backend"] == "tensorflow"
    _, arms = study_config({"training": {"backend": "jax"}})
    assert settings.run_settings(arms["paper"], "resnet50", "sgd", "0.001", "0")["backend"] == "jax"


# --- the GPU env and the GPU fail-fast ----------------------------------------------------------


def fake_conda(directory):
    """Just enough of conda's answers for `snakemake --list-conda-envs` (which creates nothing)."""
    directory.mkdir()
    script = directory / "conda"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  "info --json") echo \'{{"conda_version": "25.1.0", "platform": "linux-64", "conda_prefix": "{directory}",'
        f' "root_prefix": "{directory}", "active_prefix": null, "envs_dirs": ["{directory}"], "channels": []}}\';;\n'
        '  "--version") echo "conda 25.1.0";;\n'
        '  "config --get channel_priority --json") echo \'{"get": {"channel_priority": "strict"}}\';;\n'
        "  *) echo '{}';;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


def training_env_of(workdir, *args):
    result = snakemake(workdir, "--list-conda-envs", *args)
    envs = {line.split("\t")[0] for line in result.stdout.splitlines() if line.startswith("envs/")}
    return envs & {"envs/train.yaml", "envs/train-gpu.yaml"}


def test_profiles_choose_the_training_env(tmp_path, monkeypatch):
    """train_env, a resource the profiles give the train rule, picks the env; the rule's own gpu=1 does not."""
    workdir = copy_workflow(tmp_path / "wf")
    monkeypatch.setenv("PATH", f"{fake_conda(tmp_path / 'bin')}:{os.environ['PATH']}")
    assert training_env_of(workdir) == {"envs/train.yaml"}
    assert training_env_of(workdir, "--profile", "profiles/local") == {"envs/train-gpu.yaml"}
    assert training_env_of(workdir, "--profile", "slurm", "--profile", "profiles/slurm-cpu") == {"envs/train.yaml"}
    assert training_env_of(workdir, "--set-resources", "train:train_env=gpu") == {"envs/train-gpu.yaml"}
    bad = snakemake(workdir, "--list-conda-envs", "--set-resources", "train:train_env=cuda", check=False)
    assert bad.returncode != 0
    assert "invalid resource train_env='cuda' for rule train" in bad.stderr and "use one of cpu, gpu" in bad.stderr


def fake_nvidia_smi(directory, listing):
    """An nvidia-smi that prints `listing` for -L: this machine then shows the job an NVIDIA GPU (or not)."""
    directory.mkdir(exist_ok=True)
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return directory


no_nvidia_device = pytest.mark.skipif(
    bool(__import__("glob").glob("/dev/nvidia[0-9]*")), reason="this machine has NVIDIA device files"
)


@no_nvidia_device
def test_an_nvidia_gpu_is_present_only_where_nvidia_smi_lists_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not nvidia_gpu_present()
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "none", "No devices were found\\n")))
    assert not nvidia_gpu_present()
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "one", "GPU 0: NVIDIA H100 (UUID: GPU-1)\\n")))
    assert nvidia_gpu_present()


@no_nvidia_device
@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=needs_jax)])
def test_a_job_given_a_gpu_its_backend_cannot_see_stops_at_once_naming_the_gpu_setup(tmp_path, monkeypatch, backend):
    """Through Snakemake and the rule's glue, on this CPU, with an nvidia-smi that lists a GPU: the machine has
    one, the job asked for it (the rule's gpu=1), and the CPU-only install cannot use it."""
    workdir = copy_workflow(tmp_path / "wf")
    make_data(workdir / "results" / "data" / "cache" / "67px", 67)
    (workdir / "tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {"source": "synthetic"},
                "grid": {"models": ["alexnet"], "optimizers": ["adam"], "learning_rates": [0.001], "seeds": [0]},
                "models": {"alexnet": {"input_size": 67, "weights": "none"}},
                "training": {"batch_size": 4, "epochs": 1, "backend": backend},
            }
        )
    )
    run = "results/runs/paper/alexnet/adam/lr0.001/seed0"
    monkeypatch.setenv(
        "PATH", f"{fake_nvidia_smi(tmp_path / 'bin', 'GPU 0: NVIDIA H100 (UUID: GPU-1)')}:{os.environ['PATH']}"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = snakemake(
        workdir,
        f"{run}/history.csv",
        "--cores",
        "1",
        "--configfile",
        "config.yaml",
        "tiny.yaml",
        "--allowed-rules",
        "train",
        check=False,
    )
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error: this job")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"given 1 GPU(s) (resources gpu=1) on a machine with an NVIDIA GPU, but the {backend} backend" in errors[0]
    assert "pip install -r requirements-gpu.txt" in errors[0] and "envs/train-gpu.yaml" in errors[0]
    attempt_logs = list((workdir / "logs/train/paper/alexnet/adam/lr0.001/seed0").glob("attempt*.log"))
    assert len(attempt_logs) == 1 and "backend sees none" in attempt_logs[0].read_text()
    assert "Epoch 1/1" not in attempt_logs[0].read_text()  # stopped before training
    assert not (workdir / run / "history.csv").exists() and not (workdir / run / "run.json").exists()


# --- training on JAX ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("cache67"), 67, train=8, val=4)


@needs_jax
@pytest.mark.slow
def test_jax_runs_are_repeatable_and_resume_after_sigkill_to_the_same_history(tmp_path, jax_data):
    """AlexNet at 67 px on 8 images, 2 epochs of full training (one XLA compilation per process; the phase
    switch is the same code on every backend and test_training covers it). Two processes start together:
    one runs uninterrupted, the other is SIGKILLed after its first backup and resumed in a third. Both
    runs end bit-identical: the same epoch computed in two processes, and a resumed run, agree."""
    settings = make_settings(size=67, mode="full", epochs=2, backend="jax")
    # The environment says torch: the setting must win (torch is not needed for it).
    uninterrupted = Job(tmp_path / "uninterrupted", settings, jax_data, backend="torch")
    killed = Job(tmp_path / "resumed", settings, jax_data, backend="torch")
    assert killed.kill_after_backup(1) == 1
    resumed = Job(tmp_path / "resumed", settings, jax_data, backend="torch", attempt=2).finish()
    assert "resuming at epoch 2 of 2" in resumed.text()
    uninterrupted.finish()

    history = uninterrupted.history()
    assert history["epoch"].tolist() == [1, 2] and history["loss"].notna().all()
    pd.testing.assert_frame_equal(untimed(history), untimed(resumed.history()), check_exact=True)
    assert_same_weights(uninterrupted.run_dir / "model.keras", resumed.run_dir / "model.keras")

    record = uninterrupted.provenance()
    assert record["backend"] == "jax" and record["settings"]["backend"] == "jax"
    assert record["gpus"] == [] and record["device"].startswith("cpu: ") and record["gpus_requested"] == 0
    assert {"jax", "jaxlib"} <= set(record["packages"])
    assert "KERAS_BACKEND=torch in the environment: using training.backend = jax instead" in uninterrupted.text()
    assert resumed.provenance()["resumed_at_epoch"] == 2
