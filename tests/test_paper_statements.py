"""The study that judges every statement of the paper (configs/paper_statements.yaml), trained for real at the
demo's sizes on the CPU: every arm in one DAG, claims.md with all eleven claims, the arms figure; and a change to
one arm's overlay reruns exactly that arm's runs. Cheap on purpose: one seed, AlexNet at 67 px (seconds per run;
the demo in test_end_to_end.py trains ResNet50 and InceptionV3 for real), 3 epochs (the longer arm 5), two
optimizers, 10 training images per class; it shows the machinery, not the paper's results."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from helpers import FAST_MODEL, FAST_MODEL_SETTINGS, copy_workflow, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

MODEL = FAST_MODEL
SMALL = {
    "dataset": {"n_train": 10, "n_val": 5},
    "grid": {"models": [MODEL], "optimizers": ["sgd", "adam"], "seeds": [0]},
    "models": FAST_MODEL_SETTINGS,
    # Fine-tuning unfreezes the top 6 of AlexNet's 12 layers, so that it differs from full training in more
    # than the frozen first epoch.
    "training": {"epochs": 3, "protocol": {"warmup_epochs": 1, "unfreeze_top_layers": 6}},
    "results": {"final_epochs": 1},
    # The longer arm trains InceptionV3 in the study; here AlexNet, the only model, for 5 epochs.
    "arms": {"longer_training": {"grid": {"models": [MODEL]}, "training": {"epochs": 5}}},
}
STUDY = ["--configfile", "config.yaml", "configs/demo.yaml", "configs/paper_statements.yaml", "small.yaml"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("statements") / "wf")
    (workdir / "small.yaml").write_text(yaml.safe_dump(SMALL))
    snakemake(workdir, "--cores", "2", *STUDY, timeout=3000)
    return workdir


def test_every_arm_trained_in_its_own_folder(study):
    arms = list(yaml.safe_load((study / "configs/paper_statements.yaml").read_text())["arms"])
    runs = pd.read_csv(study / "results/metrics/runs.csv")
    assert set(runs["arm"]) == set(arms)
    summary = (study / "results/tables/summary.md").read_text()
    headings = [line.split()[2].rstrip(":") for line in summary.splitlines() if line.startswith("## Arm ")]
    assert headings == arms  # in the study's order, the reference first
    for row in runs.itertuples():
        assert (
            study / f"results/runs/{row.arm}/{row.model}/{row.optimizer}/lr{row.lr:g}/seed{row.seed}/history.csv"
        ).is_file()
    assert set(runs.loc[runs["arm"] == "lower_learning_rate", "lr"]) == {0.0001}
    assert set(runs.loc[runs["arm"] == "longer_training", "n_epochs"]) == {5}
    table = pd.read_csv(study / "results/metrics/arms.csv", keep_default_na=False)
    changes = dict(zip(table["arm"], table["described"], strict=True))
    assert changes["no_augmentation"] == "training.augmentation.enabled=false"
    assert changes["transfer"] == 'training.protocol.mode="transfer"' and changes["paper"] == ""


def test_claims_md_judges_all_eleven_claims_and_the_arms_figure_is_drawn(study):
    claims = (study / "results/tables/claims.md").read_text()
    for number in range(1, 12):
        assert re.search(rf"\| C{number}: ", claims), f"C{number} missing"
    assert (study / "results/figures/arms.png").stat().st_size > 10_000
    for arm in ("paper", "no_augmentation", "full_training"):
        assert (study / f"results/figures/{arm}/{MODEL}_accuracy.png").is_file()
    assert (
        "## Arm no_augmentation: training.augmentation.enabled=false"
        in (study / "results/tables/summary.md").read_text()
    )


def test_changing_one_arms_overlay_reruns_exactly_that_arms_runs(study):
    (study / "change.yaml").write_text(yaml.safe_dump({"arms": {"transfer": {"training": {"head": {"dropout": 0.3}}}}}))
    result = snakemake(study, "-n", *STUDY, "change.yaml")
    rerun = set(re.findall(r"output: results/runs/(\S+)/history\.csv", result.stdout))
    assert rerun == {f"transfer/{MODEL}/{optimizer}/lr0.001/seed0" for optimizer in SMALL["grid"]["optimizers"]}
