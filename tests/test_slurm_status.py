"""The check before a Slurm run submits anything (cnn_study.slurm_status), on fake `scontrol show config`."""

from __future__ import annotations

import io
import logging
import subprocess

import pytest

from cnn_study import slurm_partitions, slurm_status

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


def test_parse_config_keeps_values_with_an_equals_sign_and_skips_prose():
    text = (
        "AuthAltParameters       = jwt_key=/var/spool/slurm/jwt_hs256.key\n"
        "\n"
        "Cgroup Support Configuration:\n"
        "Slurmctld(primary) at vm is UP\n"
        "Account Gather: frequency = 30 sec\n"
        " = orphan value\n"
        "MinJobAge               = 300 sec\n"
    )
    assert slurm_status.parse_config(text) == {
        "AuthAltParameters": "jwt_key=/var/spool/slurm/jwt_hs256.key",
        "MinJobAge": "300 sec",
    }


@pytest.mark.parametrize(
    "value, expected",
    [
        ("300 sec", 300),
        ("3600", 3600),
        ("1h", 3600),
        ("1 hour", 3600),
        ("2 hours", 7200),
        ("2 HOURS", 7200),
        ("3H", 10800),
        ("", None),
        (None, None),
        ("(null)", None),
    ],
)
def test_min_job_age_in_seconds(value, expected):
    assert slurm_status.seconds(value) == expected


def test_sacct_without_accounting_stops_naming_the_profile_key():
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, scontrol(), sacct_installed=True)
    message = str(raised.value)
    assert "\n" not in message
    assert "AccountingStorageType=accounting_storage/none" in message
    # The setting, the files that can hold it, and the flag.
    assert message.endswith(
        "set slurm-status-command: squeue in your profile (slurm/config.yaml, or an overlay profile given after it "
        "with --profile, whose value wins), or pass --slurm-status-command squeue"
    )
    # MinJobAge 300 s >= 3 x 40 s: squeue alone is enough, nothing else to change.
    assert "slurm-init-seconds-before-status-checks" not in message


def test_sacct_without_accounting_and_a_short_min_job_age_names_both_keys():
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, scontrol(min_job_age="60 sec"), sacct_installed=True)
    message = str(raised.value)
    assert "set slurm-status-command: squeue and slurm-init-seconds-before-status-checks: 20 in your profile" in message
    assert (
        "or pass --slurm-status-command squeue --slurm-init-seconds-before-status-checks 20 (MinJobAge=60 s" in message
    )


def test_squeue_that_the_plugin_would_swap_for_sacct_stops_too():
    # MinJobAge 60 s < 3 x 40 s: plugin 2.8 falls back to sacct, which cannot answer here.
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("squeue", 40, scontrol(min_job_age="60 sec"), sacct_installed=True)
    message = str(raised.value)
    assert message.startswith("slurm-status-command is squeue, but this cluster forgets finished jobs after")
    assert (
        "set slurm-init-seconds-before-status-checks to at most 20 in your profile (slurm/config.yaml, or an" in message
    )
    assert "or pass --slurm-init-seconds-before-status-checks 20" in message


def test_squeue_with_a_long_enough_min_job_age_is_used_and_said():
    line = slurm_status.check_status_command("squeue", 2, scontrol(min_job_age="3600 sec"), sacct_installed=True)
    assert line == "Slurm job states from squeue (MinJobAge=3600 s, slurm-init-seconds-before-status-checks=2)"


def test_squeue_exactly_at_the_plugins_threshold_is_kept():
    line = slurm_status.check_status_command("squeue", 40, scontrol(min_job_age="120 sec"), sacct_installed=True)
    assert line.startswith("Slurm job states from squeue")


@pytest.mark.parametrize("min_job_age", [None, "(null)"])
def test_a_missing_or_unreadable_min_job_age_is_not_taken_as_long_enough_for_squeue(min_job_age):
    """The plugin reads an unknown MinJobAge as too short for squeue and falls back to sacct, which has no
    accounting here: the check must say so, not wave squeue through."""
    text = scontrol()
    text = (
        text.replace("300 sec", min_job_age) if min_job_age else text.replace("MinJobAge               = 300 sec\n", "")
    )
    assert slurm_status.effective_status_command("squeue", None, 40, sacct_installed=True) == "sacct"
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("squeue", 40, text, sacct_installed=True)
    assert str(raised.value) == (
        "slurm-status-command is squeue, but this cluster forgets finished jobs after MinJobAge unknown, less than "
        "3 x slurm-init-seconds-before-status-checks (40 s), so the Slurm plugin would fall back to sacct, which has "
        "no accounting here (accounting_storage/none) and would never see a job finish: set "
        "slurm-init-seconds-before-status-checks to at most 1 in your profile (slurm/config.yaml, or an overlay "
        "profile given after it with --profile, whose value wins), or pass "
        "--slurm-init-seconds-before-status-checks 1, or ask for a longer MinJobAge"
    )
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, text, sacct_installed=True)
    assert str(raised.value).endswith(
        "or pass --slurm-status-command squeue --slurm-init-seconds-before-status-checks 1 (MinJobAge unknown: "
        "squeue sees a finished job that long)"
    )
    # Without sacct there is nothing to fall back to: squeue stays, whatever MinJobAge is.
    assert slurm_status.effective_status_command("squeue", None, 40, sacct_installed=False) == "squeue"


def test_a_min_job_age_exactly_at_the_plugins_threshold_needs_only_squeue():
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, scontrol(min_job_age="120 sec"), sacct_installed=True)
    assert str(raised.value).endswith("or pass --slurm-status-command squeue")
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_status_command("sacct", 40, scontrol(min_job_age="119 sec"), sacct_installed=True)
    assert "--slurm-init-seconds-before-status-checks 39 (MinJobAge=119 s" in str(raised.value)


def test_sacct_on_a_cluster_that_does_not_say_its_accounting_is_left_to_sacct():
    text = "\n".join(line for line in scontrol().splitlines() if not line.startswith("AccountingStorageType "))
    line = slurm_status.check_status_command("sacct", 40, text, sacct_installed=True)
    assert line == "Slurm job states from sacct (AccountingStorageType=unknown)"


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


def test_the_plugins_squeue_threshold_is_what_this_module_repeats():
    """effective_status_command repeats a choice the plugin makes inside check_active_jobs, with no function to
    ask: this fails when an upgrade of the plugin changes it, instead of the check going silently wrong."""
    import inspect

    from snakemake_executor_plugin_slurm import Executor

    source = inspect.getsource(Executor.check_active_jobs)
    assert f"dynamic_check_threshold = {slurm_status.SQUEUE_MIN_JOB_AGE_FACTOR} * initial_interval" in source
    assert "min_job_age is None or min_job_age < dynamic_check_threshold" in source
    assert 'status_command_name == "sacct" and not is_query_tool_available("sacct")' in source


SINFO = "test*|2|24105|(null)\n"
SCONTROL_PARTITIONS = "PartitionName=test Default=YES MaxCPUsPerNode=UNLIMITED MaxMemPerNode=UNLIMITED State=UP\n"


def fake_run(config=None, returncode=0, stderr="", sinfo=SINFO):
    calls = []
    outputs = {
        "scontrol show config": config or scontrol(),
        "sinfo": sinfo,
        "scontrol show partition": SCONTROL_PARTITIONS,
    }

    def run(argv, **kwargs):
        calls.append(argv)
        key = argv[0] if argv[0] != "scontrol" else " ".join(argv[:3])
        return subprocess.CompletedProcess(argv, returncode, stdout=outputs[key], stderr=stderr)

    run.calls = calls
    return run


def installed(name):
    return f"/usr/bin/{name}"


FITS = [slurm_partitions.Request("train", "test", 0, 2, 4000)]
NO_GPU = [slurm_partitions.Request("train", "test", 1, 2, 4000)]


def test_a_setup_that_would_hang_or_cannot_run_stops_with_one_line_per_problem():
    run = fake_run()
    with pytest.raises(slurm_status.SlurmStatusError) as raised:
        slurm_status.check_before_submitting("sacct", 40, NO_GPU, run=run, which=installed)
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("Slurm accounting is off on this cluster")
        and "set slurm-status-command: squeue" in lines[0]
    )
    assert lines[1].startswith("rule train asks for 1 GPU(s), but Slurm partition 'test' has no GPUs")
    assert [argv[:3] for argv in run.calls] == [
        ["scontrol", "show", "config"],
        ["sinfo", "--noheader", "--format=%P|%c|%m|%G"],
        ["scontrol", "show", "partition"],
    ]


def test_a_setup_that_works_says_what_was_checked():
    run = fake_run(scontrol(min_job_age="3600 sec"))
    lines = slurm_status.check_before_submitting("squeue", 2, FITS, run=run, which=installed)
    assert lines == [
        "Slurm job states from squeue (MinJobAge=3600 s, slurm-init-seconds-before-status-checks=2)",
        "Slurm partitions: every job fits the partition it names",
    ]
    # The plugin's defaults where the profile sets neither key.
    with pytest.raises(slurm_status.SlurmStatusError, match="set slurm-status-command: squeue"):
        slurm_status.check_before_submitting(None, None, FITS, run=run, which=installed)


def test_the_plugins_default_wait_before_status_checks_is_40_seconds():
    run = fake_run(scontrol(min_job_age="120 sec"))
    lines = slurm_status.check_before_submitting("squeue", None, FITS, run=run, which=installed)
    assert lines[0] == "Slurm job states from squeue (MinJobAge=120 s, slurm-init-seconds-before-status-checks=40)"


def test_whether_sacct_is_installed_is_asked_of_the_path():
    """MinJobAge 60 s < 3 x 40 s: the plugin falls back from squeue to sacct only where sacct is installed."""
    run = fake_run(scontrol(accounting="accounting_storage/slurmdbd", min_job_age="60 sec"))

    def only_sacct(name):
        return "/usr/bin/sacct" if name == "sacct" else None

    lines = slurm_status.check_before_submitting("squeue", 40, FITS, run=run, which=only_sacct)
    assert lines[0] == "Slurm job states from sacct (AccountingStorageType=accounting_storage/slurmdbd)"
    lines = slurm_status.check_before_submitting("squeue", 40, FITS, run=run, which=lambda name: None)
    assert lines[0].startswith("Slurm job states from squeue (MinJobAge=60 s")


def test_the_profile_values_are_passed_on():
    run = fake_run(scontrol(min_job_age="100 sec"))
    with pytest.raises(slurm_status.SlurmStatusError, match="at most 33 in your profile"):
        slurm_status.check_before_submitting("squeue", 40, FITS, run=run, which=installed)
    lines = slurm_status.check_before_submitting("squeue", 30, FITS, run=run, which=installed)
    assert lines[0].startswith("Slurm job states from squeue")


def test_an_unreadable_scontrol_or_sinfo_leaves_the_choice_to_the_plugin():
    run = fake_run(returncode=1, stderr="slurm_load_ctl_conf error: Unable to contact slurm controller\n")
    lines = slurm_status.check_before_submitting("sacct", 40, NO_GPU, run=run, which=lambda name: None)
    assert lines == [
        "Slurm job states: not checked, `scontrol show config` failed "
        "(slurm_load_ctl_conf error: Unable to contact slurm controller)",
        "Slurm partitions: not checked, `sinfo --noheader --format=%P|%c|%m|%G` failed "
        "(slurm_load_ctl_conf error: Unable to contact slurm controller)",
    ]

    def missing(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    assert all("not checked" in line for line in slurm_status.check_before_submitting("sacct", 40, FITS, run=missing))


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


def job_error_record(state, logs, **extra):
    message = f"SLURM-job '17' failed, SLURM status is: '{state}'. For further error details see the logs."
    return logging.makeLogRecord({"msg": message, "rule_msg": message, "log": logs, **extra})


def test_the_filter_moves_every_slurm_log_to_aux_and_keeps_what_aux_had(tmp_path):
    keep = slurm_status.ExpectedStopLogs(tmp_path / "slurm")
    own, first, second = str(tmp_path / "train.log"), str(tmp_path / "slurm/17.log"), str(tmp_path / "slurm/18.log")
    record = job_error_record("PREEMPTED", [own, first, second], aux={"external_jobid": "17"})
    assert keep.filter(record)
    assert record.log == [own]
    assert record.aux == {"external_jobid": "17", "slurm log": f"{first}, {second}"}
    record = job_error_record("NODE_FAIL", [own, first])  # no aux yet
    assert keep.filter(record) and record.aux == {"slurm log": first}


def test_the_filter_leaves_records_it_cannot_shorten_as_they_are(tmp_path):
    keep = slurm_status.ExpectedStopLogs(tmp_path / "slurm")
    own, slurm = str(tmp_path / "train.log"), str(tmp_path / "slurm/17.log")
    for logs in ([slurm], [own]):  # only one of the two logs: nothing to leave out
        record = job_error_record("TIMEOUT", logs, aux={"external_jobid": "17"})
        assert keep.filter(record)
        assert record.log == logs and record.aux == {"external_jobid": "17"}
    plain = logging.makeLogRecord({"msg": "Finished job 3."})  # any other record: no rule_msg, log or aux
    assert keep.filter(plain) and not hasattr(plain, "log") and not hasattr(plain, "aux")
    no_logs = logging.makeLogRecord({"rule_msg": "SLURM status is: 'TIMEOUT'"})
    assert keep.filter(no_logs) and not hasattr(no_logs, "aux")


def test_the_filter_goes_on_snakemakes_own_logger(tmp_path):
    from snakemake.logging import logger

    before = list(logger.filters)
    try:
        slurm_status.report_expected_stops_briefly(tmp_path / "slurm")
        [added] = [f for f in logger.filters if f not in before]
        assert isinstance(added, slurm_status.ExpectedStopLogs) and added.slurm_logdir == (tmp_path / "slurm")
    finally:
        logger.filters[:] = before
