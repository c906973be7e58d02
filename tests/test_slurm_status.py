"""The check before a Slurm run submits anything (cnn_study.slurm_status), on fake `scontrol show config`."""

from __future__ import annotations

import io
import logging
import subprocess
from types import SimpleNamespace

import pytest

from cnn_study import slurm_status

# Trimmed from a real `scontrol show config` of Slurm 22.05 (the test cluster of tests/slurm_cluster.py).
CONFIG = """Configuration data as of 2026-11-26T17:00:00
AccountingStorageBackupHost = (null)
AccountingStorageEnforce = none
AccountingStorageHost   = localhost
AccountingStorageType   = {accounting}
AccountingStorageUser   = root
ClusterName             = smktest
JobCompType             = jobcomp/none
MinJobAge               = {min_job_age}
SlurmctldHost[0]        = vm(127.0.0.1)
SlurmctldParameters     = (null)
"""


def scontrol(accounting="accounting_storage/none", min_job_age="300 sec"):
    return CONFIG.format(accounting=accounting, min_job_age=min_job_age)


def test_parse_config_reads_key_value_lines():
    config = slurm_status.parse_config(scontrol())
    assert config["AccountingStorageType"] == "accounting_storage/none"
    assert config["MinJobAge"] == "300 sec"
    assert config["SlurmctldHost[0]"] == "vm(127.0.0.1)"
    assert "Configuration data as of 2026-11-26T17:00:00" not in config


@pytest.mark.parametrize("value, expected", [("300 sec", 300), ("3600", 3600), ("1h", 3600), ("", None), (None, None)])
def test_min_job_age_in_seconds(value, expected):
    assert slurm_status.seconds(value) == expected


def test_sacct_without_accounting_stops_naming_the_profile_key():
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, scontrol(), sacct_installed=True)
    message = str(raised.value)
    assert "\n" not in message
    assert "AccountingStorageType=accounting_storage/none" in message
    assert "set slurm-status-command: squeue in slurm/config.yaml" in message
    # MinJobAge 300 s >= 3 x 40 s: squeue alone is enough, nothing else to change.
    assert "slurm-init-seconds-before-status-checks" not in message


def test_sacct_without_accounting_and_a_short_min_job_age_names_both_keys():
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, scontrol(min_job_age="60 sec"), sacct_installed=True)
    message = str(raised.value)
    assert "set slurm-status-command: squeue" in message
    assert "slurm-init-seconds-before-status-checks to at most 20 (MinJobAge=60 s)" in message


def test_squeue_that_the_plugin_would_swap_for_sacct_stops_too():
    # MinJobAge 60 s < 3 x 40 s: plugin 2.8 falls back to sacct, which cannot answer here.
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("squeue", 40, scontrol(min_job_age="60 sec"), sacct_installed=True)
    message = str(raised.value)
    assert message.startswith("slurm-status-command is squeue, but this cluster forgets finished jobs after")
    assert "set slurm-init-seconds-before-status-checks to at most 20 in slurm/config.yaml" in message


def test_squeue_with_a_long_enough_min_job_age_is_used_and_said():
    line = slurm_status.check_status_command("squeue", 2, scontrol(min_job_age="3600 sec"), sacct_installed=True)
    assert line == "Slurm job states from squeue (MinJobAge=3600 s, slurm-init-seconds-before-status-checks=2)"


def test_squeue_exactly_at_the_plugins_threshold_is_kept():
    line = slurm_status.check_status_command("squeue", 40, scontrol(min_job_age="120 sec"), sacct_installed=True)
    assert line.startswith("Slurm job states from squeue")


def test_sacct_with_accounting_is_fine():
    line = slurm_status.check_status_command(
        "sacct", 40, scontrol(accounting="accounting_storage/slurmdbd"), sacct_installed=True
    )
    assert line == "Slurm job states from sacct (AccountingStorageType=accounting_storage/slurmdbd)"


def test_without_sacct_installed_the_plugin_uses_squeue():
    assert slurm_status.effective_status_command("sacct", 300, 40, sacct_installed=False) == "squeue"
    # Too short a MinJobAge for squeue, but nothing to fall back to: the plugin keeps squeue.
    assert slurm_status.effective_status_command("squeue", 60, 40, sacct_installed=False) == "squeue"
    assert slurm_status.effective_status_command("squeue", 60, 40, sacct_installed=True) == "sacct"
    line = slurm_status.check_status_command("sacct", 40, scontrol(), sacct_installed=False)
    assert line.startswith("Slurm job states from squeue")


def fake_run(stdout="", returncode=0, stderr=""):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, stdout=stdout, stderr=stderr)

    run.calls = calls
    return run


def settings(status_command="sacct", init_seconds=40):
    return SimpleNamespace(status_command=status_command, init_seconds_before_status_checks=init_seconds)


def test_check_executor_asks_scontrol_and_stops_a_hanging_setup():
    run = fake_run(stdout=scontrol())
    with pytest.raises(slurm_status.SlurmStatusError, match="set slurm-status-command: squeue"):
        slurm_status.check_executor("slurm", settings(), run=run, which=lambda name: f"/usr/bin/{name}")
    assert run.calls == [["scontrol", "show", "config"]]


def test_check_executor_passes_the_profile_values_on():
    run = fake_run(stdout=scontrol(min_job_age="100 sec"))

    def which(name):
        return f"/usr/bin/{name}"

    with pytest.raises(slurm_status.SlurmStatusError, match="at most 33 in slurm/config.yaml"):
        slurm_status.check_executor("slurm", settings("squeue", 40), run=run, which=which)
    line = slurm_status.check_executor("slurm", settings("squeue", 30), run=run, which=which)
    assert line.startswith("Slurm job states from squeue")


def test_other_executors_are_not_checked():
    run = fake_run(stdout=scontrol())
    assert slurm_status.check_executor("local", settings(), run=run) is None
    assert run.calls == []


def test_an_unreadable_scontrol_leaves_the_choice_to_the_plugin():
    run = fake_run(returncode=1, stderr="slurm_load_ctl_conf error: Unable to contact slurm controller\n")
    line = slurm_status.check_executor("slurm", settings(), run=run, which=lambda name: None)
    assert line == (
        "Slurm job states: not checked, `scontrol show config` failed "
        "(slurm_load_ctl_conf error: Unable to contact slurm controller)"
    )

    def missing(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "scontrol")

    assert "not checked" in slurm_status.check_executor("slurm", settings(), run=missing)


# ---- show-failed-logs of an expected stop: the job's own log only ------------------------------------


def job_error_output(tmp_path, state: str) -> str:
    """What Snakemake's console formatter prints for a failed Slurm job, with the filter installed."""
    from snakemake.logging import DefaultFormatter
    from snakemake_interface_logger_plugins.common import LogEvent

    slurm_log = tmp_path / "logs" / "slurm" / "rule_train" / "alexnet_sgd_0.001_0" / "17.log"
    slurm_log.parent.mkdir(parents=True)
    slurm_log.write_text("SNAKEMAKE\n=========\n" + "wrapper line\n" * 100)
    own_log = tmp_path / "logs" / "train" / "seed0.log"
    own_log.parent.mkdir(parents=True)
    own_log.write_text("train model=alexnet: attempt 1 (Slurm job 17)\nstopped by SIGTERM after epoch 72 of 187\n")

    logger = logging.getLogger(f"test_slurm_status.{state}")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(DefaultFormatter(show_failed_logs=True))
    logger.addHandler(handler)
    slurm_status.report_expected_stops_briefly(tmp_path / "logs" / "slurm", logger_name=logger.name)
    # As Snakemake's Job.log_error reports a failed Slurm job: the plugin's message, get_log_error_info's fields.
    message = f"SLURM-job '17' failed, SLURM status is: '{state}'. For further error details see the logs."
    logger.error(
        message,
        extra=dict(
            event=LogEvent.JOB_ERROR,
            rule_name="train",
            jobid=0,
            input=["cache.npy"],
            output=["history.csv"],
            rule_msg=message,
            log=[str(own_log), str(slurm_log)],
            aux={"external_jobid": "17"},
            conda_env=None,
            container_img=None,
            shellcmd=None,
            indent=False,
        ),
    )
    return stream.getvalue()


def test_a_time_limit_prints_the_jobs_own_log_and_names_the_slurm_log(tmp_path):
    output = job_error_output(tmp_path, "TIMEOUT")
    assert "stopped by SIGTERM after epoch 72 of 187" in output
    assert "wrapper line" not in output
    assert f"slurm log: {tmp_path / 'logs' / 'slurm' / 'rule_train' / 'alexnet_sgd_0.001_0' / '17.log'}" in output
    assert "SLURM status is: 'TIMEOUT'" in output
    assert len(output.splitlines()) < 20, output


def test_other_failures_still_print_every_log(tmp_path):
    output = job_error_output(tmp_path, "FAILED")
    assert "stopped by SIGTERM after epoch 72 of 187" in output
    assert output.count("wrapper line") == 100
