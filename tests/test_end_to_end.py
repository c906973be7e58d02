"""The whole DAG for real: the demo on generated images, and a small grid on the real mini archive."""

from __future__ import annotations

import csv
import json
import re
import struct
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from helpers import MINI_ARCHIVE, REPO, assert_the_demo_settles, copy_workflow, demo_workdir, ran_nothing, snakemake

pytestmark = pytest.mark.slow

DEMO = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
MODELS = DEMO["grid"]["models"]
OPTIMIZERS = DEMO["grid"]["optimizers"]
EPOCHS = DEMO["training"]["epochs"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_workdir(tmp_path_factory.mktemp("demo") / "wf", onednn="1")


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_manifest_has_the_configured_counts(demo):
    rows = list(csv.DictReader(open(demo / "results/data/manifest.csv")))
    assert list(rows[0]) == ["file", "sha256", "label", "split", "width", "height", "original_mode"]
    for label in ("cat", "dog"):
        assert sum(r["label"] == label and r["split"] == "train" for r in rows) == DEMO["dataset"]["n_train"]
        assert sum(r["label"] == label and r["split"] == "val" for r in rows) == DEMO["dataset"]["n_val"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["sha256"]) for r in rows)
    assert len({r["sha256"] for r in rows}) == len(rows)


def test_every_run_has_a_full_history(demo):
    for model in MODELS:
        for optimizer in OPTIMIZERS:
            run = demo / f"results/runs/paper/{model}/{optimizer}/lr0.001/seed0"
            history = pd.read_csv(run / "history.csv")
            assert list(history["epoch"]) == list(range(1, EPOCHS + 1))
            for column in ("loss", "val_loss", "epoch_seconds", "images_per_second"):
                assert (history[column] > 0).all(), column
            for column in ("accuracy", "val_accuracy"):
                assert history[column].between(0, 1).all(), column
            assert (run / "model.keras").stat().st_size > 1_000_000
            provenance = json.loads((run / "run.json").read_text())
            assert provenance["settings"]["model"] == model and provenance["settings"]["optimizer"] == optimizer
            assert not (run / "resume").exists()


def test_the_demo_learns(demo):
    """With oneDNN on (TensorFlow's default on x86); tests/test_demo_onednn_off.py runs it with oneDNN off."""
    assert_the_demo_settles(demo)


def test_a_demo_model_predicts_new_images_and_progress_shows_the_finished_grid(demo):
    run = demo / f"results/runs/paper/{MODELS[0]}/{OPTIMIZERS[0]}/lr0.001/seed0"
    result = subprocess.run(
        [sys.executable, "workflow_scripts/predict.py", str(run), "results/data/synthetic/train.zip", "-o", "p.csv"],
        cwd=demo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = pd.read_csv(demo / "p.csv")
    assert list(predictions.columns) == ["file", "predicted_class", "probability_cat", "probability_dog"]
    assert len(predictions) == DEMO["dataset"]["synthetic"]["images_per_class"] * 2
    # On the validation images, the same accuracy as the run's last epoch: same decoding, resizing and model.
    manifest = pd.read_csv(demo / "results/data/manifest.csv")
    val = predictions.merge(manifest[manifest["split"] == "val"], on="file")
    assert len(val) == 2 * DEMO["dataset"]["n_val"]
    final_val_accuracy = pd.read_csv(run / "history.csv")["val_accuracy"].iloc[-1]
    assert (val["predicted_class"] == val["label"]).mean() == pytest.approx(final_val_accuracy, abs=1e-6)
    result = subprocess.run(
        [sys.executable, "workflow_scripts/progress.py", "--configfile", "configs/demo.yaml"],
        cwd=demo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"{len(MODELS) * len(OPTIMIZERS)} runs: {len(MODELS) * len(OPTIMIZERS)} finished." in result.stdout
    assert "Grid finished." in result.stdout


def test_metrics_are_tidy_and_complete(demo):
    epochs = pd.read_csv(demo / "results/metrics/epochs.csv")
    assert len(epochs) == len(MODELS) * len(OPTIMIZERS) * EPOCHS
    assert {"arm", "model", "optimizer", "lr", "seed", "phase", "epoch", "accuracy", "val_loss"} <= set(epochs.columns)
    assert set(epochs["arm"]) == {"paper"}
    arms = pd.read_csv(demo / "results/metrics/arms.csv")
    assert list(arms["arm"]) == ["paper"] and bool(arms["reference"].iloc[0])
    summary = pd.read_csv(demo / "results/metrics/summary.csv")
    assert len(summary) == len(MODELS) * len(OPTIMIZERS)
    assert summary["final_val_accuracy_mean"].between(0, 1).all()


def test_figures_are_real_pngs_of_a_sensible_size(demo):
    for model in MODELS:
        for name in ("accuracy", "loss", "val_accuracy", "val_loss"):
            width, height = png_size(demo / f"results/figures/paper/{model}_{name}.png")
            assert 600 <= width <= 3000 and 400 <= height <= 3000
            assert (demo / f"results/figures/paper/{model}_{name}.pdf").read_bytes()[:4] == b"%PDF"
    assert png_size(demo / "results/figures/paper/overview.png")[0] > 1000
    assert png_size(demo / "results/figures/arms.png")[0] > 600


def test_tables_name_every_model_and_optimizer(demo):
    table = (demo / "results/tables/summary.md").read_text()
    for name in ("ResNet50", "InceptionV3", "SGD", "Adam", "RMSprop"):
        assert name in table
    # The best optimizer per model is bold only where it is a strict winner.
    summary = pd.read_csv(demo / "results/metrics/summary.csv")
    strict = summary.groupby("model")["final_val_accuracy_mean"].apply(lambda v: (v == v.max()).sum() == 1)
    bold_rows = [line for line in table.splitlines() if line.startswith("| **")]
    assert bool(bold_rows) == strict.any(), table
    assert "C1" in (demo / "results/tables/claims.md").read_text()


def test_repeat_with_nothing_changed_does_nothing(demo):
    result = snakemake(demo, "--cores", "2", "--configfile", "configs/demo.yaml")
    assert ran_nothing(result), result.stderr


def test_report_builds_with_every_figure(demo):
    snakemake(demo, "--cores", "1", "--configfile", "configs/demo.yaml", "--report", "report.html")
    html = (demo / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for model in MODELS:
        assert f"{model}_accuracy.png" in html and f"{model}_val_loss.png" in html
    assert "summary.md" in html and "claims.md" in html


def test_adding_a_seed_reruns_only_the_new_runs_and_the_results_stage(demo):
    # An overlay file, not --config: Snakemake reads numbers in --config lists as strings.
    (demo / "two_seeds.yaml").write_text(yaml.safe_dump({"grid": {**DEMO["grid"], "seeds": [0, 1]}}))
    result = snakemake(demo, "-n", "--quiet", "rules", "--configfile", "configs/demo.yaml", "two_seeds.yaml")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert counts.pop("train") == str(len(MODELS) * len(OPTIMIZERS))
    assert set(counts) <= {
        "extract_metrics",
        "plot_model_figures",
        "plot_overview",
        "plot_arms",
        "make_tables",
        "all",
        "total",
    }


def test_adding_an_arm_trains_only_its_runs(demo):
    (demo / "arm.yaml").write_text(
        yaml.safe_dump(
            {
                "arms": {
                    "no_augmentation": {
                        "training": {"augmentation": {"enabled": False}},
                        "grid": {"models": ["resnet50"]},
                    }
                }
            }
        )
    )
    result = snakemake(demo, "-n", "--configfile", "configs/demo.yaml", "arm.yaml")
    trained = set(re.findall(r"results/runs/(\w+/\w+/\w+)/lr0\.001/seed0/history\.csv", result.stdout))
    planned = set(re.findall(r"output: results/runs/(\S+)/history\.csv", result.stdout))
    assert {path.split("/")[0] for path in planned} == {"no_augmentation"} and len(planned) == len(OPTIMIZERS)
    assert {f"paper/{model}/{optimizer}" for model in MODELS for optimizer in OPTIMIZERS} <= trained


@pytest.mark.skipif(not MINI_ARCHIVE.exists(), reason=f"real photos not found at {MINI_ARCHIVE}")
def test_real_photos_are_picked_and_cached_and_a_repeat_does_nothing(tmp_path):
    """The README's way to point the demo at a local archive, up to the cache: training on it is the same code
    the demo runs, so it is not repeated here."""
    workdir = copy_workflow(tmp_path / "wf")
    args = [
        "--cores",
        "2",
        "--configfile",
        "configs/demo.yaml",
        "--config",
        f'dataset={{"source": "{MINI_ARCHIVE}"}}',
        "--until",
        "build_image_cache",
    ]
    snakemake(workdir, *args)
    rows = list(csv.DictReader(open(workdir / "results/data/manifest.csv")))
    assert all(re.fullmatch(r"train/(cat|dog)\.\d+\.jpg", r["file"]) for r in rows)
    assert {r["width"] for r in rows} == {"128"}
    assert len(rows) == 2 * (DEMO["dataset"]["n_train"] + DEMO["dataset"]["n_val"])
    sizes = {DEMO["models"][model]["input_size"] for model in MODELS}
    assert {path.name for path in (workdir / "results/data/cache").iterdir()} == {f"{size}px" for size in sizes}
    result = snakemake(workdir, *args)
    assert ran_nothing(result), result.stderr
