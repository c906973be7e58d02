"""Runs finished before the study had arms: found, named in one line, moved into their arm without retraining."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cnn_study import migrate_runs, settings
from conftest import study_config
from helpers import REPO, copy_workflow, snakemake

RUN = {"model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 0}
OLD = "resnet50/sgd/lr0.001/seed0"


def old_run(workdir, arm_config, keys=RUN, finished=True, drop=("head.batch_norm",), **changes):
    """A run folder of the layout before arms, with its logs and benchmark, as training left it."""
    old = migrate_runs.LEGACY_RUN_PATH.format(**keys)
    run_dir = workdir / "results/runs" / old
    run_dir.mkdir(parents=True)
    recorded = settings.run_settings(arm_config, **keys)
    for key in drop:  # a setting added since: an old run.json does not have it
        section, name = key.split(".")
        del recorded[section][name]
    recorded.update(changes)
    (run_dir / "history.csv").write_text("epoch,phase\n1,frozen\n")
    if finished:
        (run_dir / "run.json").write_text(json.dumps({"settings": recorded}))
        (run_dir / "model.keras").write_bytes(b"model")
    else:
        (run_dir / "resume").mkdir()
    (workdir / "logs/train" / old).mkdir(parents=True)
    (workdir / "logs/train" / old / "attempt1.log").write_text("full log\n")
    (workdir / "logs/train" / f"{old}.log").write_text("rule log\n")
    (workdir / "results/benchmarks/train" / old).parent.mkdir(parents=True, exist_ok=True)
    (workdir / "results/benchmarks/train" / f"{old}.tsv").write_text("s\n1\n")
    return run_dir


def test_old_runs_are_found_and_named_in_one_line(tmp_path):
    _, arms = study_config()
    assert migrate_runs.legacy_runs(tmp_path / "results/runs") == []
    assert migrate_runs.legacy_runs_message(tmp_path / "results/runs") == ""
    old_run(tmp_path, arms["paper"])
    old_run(tmp_path, arms["paper"], keys={**RUN, "optimizer": "adam"})
    (tmp_path / "results/runs/paper/resnet50/sgd/lr0.001/seed0").mkdir(parents=True)  # the new layout: not old
    message = migrate_runs.legacy_runs_message(tmp_path / "results/runs")
    assert message == (
        f"{tmp_path}/results/runs/resnet50/adam/lr0.001/seed0 and 1 more run folder(s) are in the layout before "
        "arms (results/runs/{model}/{optimizer}/lr{lr}/seed{seed}); move them into their arm without retraining: "
        "python workflow_scripts/migrate_runs.py (add the --configfile overlays of this study), or delete them"
    )


def test_finished_runs_move_with_their_logs_and_benchmark(tmp_path):
    _, arms = study_config()
    old_run(tmp_path, arms["paper"])
    moved, kept = migrate_runs.migrate("paper", arms["paper"], tmp_path)
    assert moved == [f"{OLD} -> paper/{OLD}"] and kept == []
    new = tmp_path / "results/runs/paper" / OLD
    assert sorted(path.name for path in new.iterdir()) == ["history.csv", "model.keras", "run.json"]
    assert (tmp_path / f"logs/train/paper/{OLD}/attempt1.log").read_text() == "full log\n"
    assert (tmp_path / f"logs/train/paper/{OLD}.log").is_file()
    assert (tmp_path / f"results/benchmarks/train/paper/{OLD}.tsv").is_file()
    assert not (tmp_path / "results/runs/resnet50").exists() or not any(
        (tmp_path / "results/runs/resnet50").rglob("*.csv")
    )
    assert migrate_runs.legacy_runs(tmp_path / "results/runs") == []


def test_runs_trained_otherwise_or_unfinished_stay_where_they_are(tmp_path):
    _, arms = study_config()
    old_run(tmp_path, arms["paper"], epochs=6)
    old_run(tmp_path, arms["paper"], keys={**RUN, "seed": 1}, finished=False)
    other = settings.run_settings(arms["paper"], **RUN)
    other["head"]["dropout"] = 0.2
    old_run(tmp_path, arms["paper"], keys={**RUN, "seed": 2}, head=other["head"])
    moved, kept = migrate_runs.migrate("paper", arms["paper"], tmp_path)
    assert moved == []
    assert kept == [
        f"{OLD}: trained with other settings than arm paper (epochs: 6 in its run.json, 50 in the arm); not moved",
        "resnet50/sgd/lr0.001/seed1: not finished (no run.json); delete it, the arm's job trains it afresh",
        "resnet50/sgd/lr0.001/seed2: trained with other settings than arm paper (head.dropout: 0.2 in its "
        "run.json, 0.5 in the arm); not moved",
    ]
    assert len(migrate_runs.legacy_runs(tmp_path / "results/runs")) == 3


def test_a_run_already_in_the_arm_is_never_overwritten(tmp_path):
    _, arms = study_config()
    old_run(tmp_path, arms["paper"])
    (tmp_path / "results/runs/paper" / OLD).mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"paper/resnet50/sgd/lr0.001/seed0 already exists: move or delete it"):
        migrate_runs.migrate("paper", arms["paper"], tmp_path)


@pytest.mark.workflow
@pytest.mark.slow
def test_finished_runs_of_the_old_layout_are_not_retrained(tmp_path):
    """The workflow stops on old-layout runs with one line naming the command; after the command, the runs are
    where Snakemake expects them and it plans no training, only the results stage."""
    workdir = copy_workflow(tmp_path / "wf")
    demo = ["--configfile", "configs/demo.yaml"]
    snakemake(workdir, "--cores", "2", *demo, "--until", "build_image_cache")
    config = settings.read_config_files([workdir / "config.yaml", workdir / "configs/demo.yaml"])
    arms = settings.prepare_study(config)
    for run in settings.run_grid(arms):
        old_run(workdir, arms["paper"], keys={key: value for key, value in run.items() if key != "arm"})

    stopped = snakemake(workdir, "-n", *demo, check=False)
    assert stopped.returncode != 0
    lines = [line for line in (stopped.stdout + stopped.stderr).splitlines() if "layout before arms" in line]
    assert len(lines) == 1 and "python workflow_scripts/migrate_runs.py" in lines[0]

    moved = subprocess.run(
        [sys.executable, str(REPO / "workflow_scripts/migrate_runs.py"), *demo],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert moved.stdout.rstrip().endswith("6 run(s) moved into arm paper, 0 kept in place.")
    planned = snakemake(workdir, "-n", "--quiet", "rules", *demo)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", planned.stdout, re.MULTILINE))
    assert "train" not in counts and counts["extract_metrics"] == "1", planned.stdout
