"""The shipped profiles as users type them, by dry-run (no scheduler needed): `--profile slurm` from the
workflow's folder, `--profile profiles/local`, a site overlay, and the documented ways to change one value of
a training job (README, "Cluster use")."""

from __future__ import annotations

import re

import yaml

from helpers import REPO, copy_workflow, snakemake

DEMO = ("--configfile", "configs/demo.yaml")


def planned_resources(output: str, rule: str) -> list[dict[str, str]]:
    """The `resources:` of every planned job of one rule, from a dry-run's job listing."""
    planned = []
    for block in re.split(r"\n(?=\S)", output):
        if block.startswith(f"rule {rule}:"):
            found = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
            planned.append(dict(item.split("=", 1) for item in found.group(1).split(", ")) if found else {})
    return planned


def test_profile_slurm_as_typed_in_the_workflow_folder(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "--profile", "slurm", "-n", *DEMO)
    output = result.stdout + result.stderr
    assert "Using profile slurm for setting default command line arguments." in output
    train = planned_resources(output, "train")
    assert len(train) == 6  # the demo's 2 models x 3 optimizers
    for job in train:
        assert job["slurm_partition"] == "CHANGE_ME_gpu_partition" and job["slurm_account"] == "CHANGE_ME_account"
        assert (job["gpu"], job["cpus_per_task"], job["mem_mb"], job["runtime"]) == ("1", "8", "32000", "240")
        assert job["train_env"] == "gpu"
    # The CPU rules get the profile's defaults.
    select = planned_resources(output, "select_images")
    assert select and select[0]["slurm_partition"] == "CHANGE_ME_cpu_partition" and select[0]["runtime"] == "30"


def test_profiles_local_by_path_still_works(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "--profile", "profiles/local", "-n", *DEMO)
    output = result.stdout + result.stderr
    assert "Using profile profiles/local for setting default command line arguments." in output
    train = planned_resources(output, "train")
    assert len(train) == 6 and all(job["gpu"] == "1" and "slurm_partition" not in job for job in train)


def test_a_site_overlay_changing_one_value_keeps_the_rest(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    # What a user writes for their site: a later --profile replaces the whole set-resources key, so the overlay
    # holds the train block whole, and one changed value in it.
    site = workdir / "mysite" / "config.yaml"
    site.parent.mkdir()
    train_block = {"slurm_partition": "gpu_a100", "train_env": "gpu", "runtime": 480}
    site.write_text(yaml.safe_dump({"set-resources": {"train": train_block}}))
    result = snakemake(workdir, "--profile", "slurm", "--profile", "mysite", "-n", *DEMO)
    train = planned_resources(result.stdout + result.stderr, "train")
    assert len(train) == 6
    for job in train:
        assert (job["slurm_partition"], job["train_env"], job["runtime"]) == ("gpu_a100", "gpu", "480")
        # The job's needs come from the rule.
        assert (job["gpu"], job["cpus_per_task"], job["mem_mb"]) == ("1", "8", "32000")


def test_the_documented_command_line_change_keeps_the_rest(tmp_path):
    """--set-resources replaces the profile's whole set-resources: the README's form repeats the train block."""
    workdir = copy_workflow(tmp_path / "wf")
    readme = (REPO / "README.md").read_text()
    flags = "--set-resources train:slurm_partition=CHANGE_ME_gpu_partition train:train_env=gpu train:runtime=60"
    assert flags in readme
    result = snakemake(workdir, "--profile", "slurm", "-n", *DEMO, *flags.split())
    train = planned_resources(result.stdout + result.stderr, "train")
    assert len(train) == 6
    for job in train:
        assert (job["slurm_partition"], job["train_env"], job["runtime"]) == ("CHANGE_ME_gpu_partition", "gpu", "60")
        assert (job["gpu"], job["cpus_per_task"], job["mem_mb"]) == ("1", "8", "32000")


def test_the_slurm_profile_leaves_the_jobs_needs_to_the_rule():
    """Under set-resources: train only the partition and the env, so an overlay of them loses nothing the job
    needs; the CPU overlay replaces them with what a CPU node can give."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert set(profile["set-resources"]) == {"train"}
    assert set(profile["set-resources"]["train"]) == {"slurm_partition", "train_env"}
    cpu = yaml.safe_load((REPO / "profiles" / "slurm-cpu" / "config.yaml").read_text())
    assert cpu == {
        "set-resources": {"train": {"gpu": 0, "cpus_per_task": 2, "mem_mb": 4000}},
        "set-threads": {"train": 2},
    }
